#!/usr/bin/env python
"""Our benchmarks beside their peers: one table per comparison group.

    python -m pytest benchmarks --benchmark-enable --size large --benchmark-json results.json
    python scripts/compare_peers.py results.json [--markdown peers.md]

Reads the ``group`` / ``impl`` / quality conventions of ``benchmarks/conftest.py`` from the
``extra_info`` of a pytest-benchmark JSON file. For every group: segmint's median time, each
peer's median time, the ratio peer / segmint (above 1: segmint is faster) and the quality
figure of each, under a header naming the machine, the date, the size and the commit.
Peers appear only when the ``bench`` extra (scikit-learn, faiss, DuckDB, Polars) is installed.

Exit status: 0, or 2 when the file cannot be used (missing, not pytest-benchmark JSON, empty).
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_gate import (GateError, format_number, format_seconds, is_ours, load_results,  # noqa: E402
                        render_markdown, render_text)

EXIT_OK, EXIT_UNUSABLE = 0, 2
HEADER = ("implementation", "median", "peer / segmint", "quality")
READING = {"lower": "lower is better", "higher": "higher is better", "equal": "must be equal"}


def groups_of(results):
    """{group: [entries]} in order of first appearance, segmint's entry first in each group."""
    groups = {}
    for entry in results["benchmarks"].values():
        groups.setdefault(entry["group"], []).append(entry)
    for name, entries in groups.items():
        # stable sort: ours ("segmint" before "segmint.<variant>"), then peers in file order
        groups[name] = sorted(entries, key=lambda e: (e["impl"] != "segmint", not is_ours(e["impl"])))
    return groups


def reference(entries):
    """The entry the peers are measured against: impl ``segmint``, else the first of ours."""
    for entry in entries:
        if entry["impl"] == "segmint":
            return entry
    return next((e for e in entries if is_ours(e["impl"])), None)


def group_table(entries):
    """(quality caption or None, rows of cells) for one group."""
    ref = reference(entries)
    names = {(e["quality_name"], e["quality_better"]) for e in entries if e["quality"] is not None}
    shared = len(names) == 1
    rows = []
    for e in entries:
        if ref is None or e is ref or ref["median"] <= 0:
            ratio = "-" if e is not ref else "1.00x"
        else:
            ratio = f"{e['median'] / ref['median']:.2f}x"
        if e["quality"] is None:
            quality = "-"
        elif shared:
            quality = format_number(e["quality"])
        else:
            quality = f"{e['quality_name']} ({e['quality_better']}): {format_number(e['quality'])}"
        rows.append([e["impl"], format_seconds(e["median"]), ratio, quality])
    caption = None
    if shared:
        name, better = names.pop()
        caption = f"{name} ({READING[better]})"
    return caption, rows


def describe_run(results):
    """One line naming the machine, the date, the size and the commit of a results file."""
    m, c = results["machine"], results["commit"]
    cpu = m.get("cpu") if isinstance(m.get("cpu"), dict) else {}
    parts = []
    brand = cpu.get("brand_raw") or m.get("processor")
    if brand:
        parts.append(f"{brand}" + (f", {cpu['count']} logical cores" if cpu.get("count") else ""))
    system = " ".join(str(m[k]) for k in ("system", "release") if m.get(k))
    if system:
        parts.append(system)
    if m.get("python_version"):
        parts.append(f"Python {m['python_version']}")
    sizes = sorted({e["size"] for e in results["benchmarks"].values() if e["size"]})
    if sizes:
        parts.append("--size " + "/".join(sizes))
    if results["datetime"]:
        parts.append(str(results["datetime"])[:16].replace("T", " ") + " UTC")
    if c.get("id"):
        parts.append(f"commit {str(c['id'])[:10]}" + (" (dirty)" if c.get("dirty") else ""))
    return "; ".join(parts) or "machine not recorded"


def main(argv=None):
    p = argparse.ArgumentParser(prog="compare_peers.py", description=__doc__.split("\n\n")[0])
    p.add_argument("results", help="pytest-benchmark JSON (pytest --benchmark-json)")
    p.add_argument("--markdown", metavar="FILE", help="also write the tables as Markdown")
    args = p.parse_args(argv)
    try:
        results = load_results(args.results)
    except GateError as exc:
        print(f"compare_peers: error: {exc}", file=sys.stderr)
        return EXIT_UNUSABLE
    run = describe_run(results)
    text = [f"Run: {run}", "Ratio = peer median / segmint median (above 1: segmint is faster).", ""]
    md = ["## segmint beside its peers", "", f"Run: {run}.", "",
          ("Median times; ratio = peer / segmint (above 1: segmint is faster); quality as each "
           "benchmark records it (`benchmarks/conftest.py`)."), ""]
    for group, entries in groups_of(results).items():
        caption, rows = group_table(entries)
        text += [group + (f"  -  quality: {caption}" if caption else ""), render_text(HEADER, rows), ""]
        md += [f"### {group}", ""] + ([f"Quality: {caption}.", ""] if caption else [])
        md += [render_markdown(HEADER, rows), ""]
    print("\n".join(text).rstrip())
    if args.markdown:
        with open(args.markdown, "w", encoding="utf-8") as fh:
            fh.write("\n".join(md))
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
