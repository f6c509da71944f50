#!/usr/bin/env python
"""Our benchmarks beside their peers: one table per comparison group.

    python -m pytest benchmarks --benchmark-enable --size large --benchmark-json results.json
    python scripts/compare_peers.py results.json [--markdown peers.md]

Reads the ``group`` / ``impl`` / quality conventions of ``benchmarks/conftest.py`` from the
``extra_info`` of a pytest-benchmark JSON file. For every group: segmint's median time, each
peer's median time, the ratio peer / segmint (above 1: segmint is faster) and the quality
figure of each, under a header naming the machine, the date, the size and the commit. A figure
measured over several seeds (the inertia of a fit) shows its median and its worst seed in two
columns; a figure of unseeded work has no worst ("-"). Notes a benchmark records about its
quality (``quality_note``, e.g. seed fits on a sample) are listed under the group's table, and
so is a peer that ran on another thread count than segmint (``threads``).
Peers appear only when the ``bench`` extra (scikit-learn, faiss, DuckDB, Polars) is installed.

Exit status: 0, or 2 when the file cannot be used (missing, not pytest-benchmark JSON, empty).
"""
import argparse
import json
import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_gate import (GateError, format_number, format_seconds, is_ours, load_results,  # noqa: E402
                        render_markdown, render_text)

EXIT_OK, EXIT_UNUSABLE = 0, 2
HEADER = ("implementation", "median", "peer / segmint", "quality (median)", "quality (worst)")
READING = {"lower": "lower is better", "higher": "higher is better", "equal": "must be equal"}


def extra_figures(path):
    """{fullname: figures} from the ``extra_info`` of a pytest-benchmark JSON file.

    ``figures`` holds ``quality_worst`` (None for a figure of unseeded work), ``quality_runs``
    (the number of seeds, or None), ``quality_note`` ("" when absent) and ``threads`` (the
    thread count the timed code ran with, or None). Call it after ``load_results`` has
    accepted the file; anything malformed is read as absent.
    """
    with open(path, encoding="utf-8") as fh:
        data = json.load(fh)
    figures = {}
    for raw in data.get("benchmarks") or []:
        info = raw.get("extra_info") if isinstance(raw, dict) else None
        if not isinstance(info, dict):
            continue
        worst, runs, note, threads = (info.get(k) for k in ("quality_worst", "quality_runs", "quality_note",
                                                            "threads"))
        figures[raw.get("fullname") or raw.get("name")] = dict(
            quality_worst=float(worst) if _is_number(worst) else None,
            quality_runs=int(runs) if _is_number(runs) and runs >= 1 else None,
            quality_note=note if isinstance(note, str) else "",
            threads=int(threads) if _is_number(threads) and threads >= 1 else None)
    return figures


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


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
    """(quality caption or None, rows of cells, notes) for one group.

    Entries may carry ``quality_worst``, ``quality_runs``, ``quality_note`` and ``threads`` (see
    :func:`extra_figures`); the quality cells are the median (or the one value) and the worst.
    A peer that ran on another thread count than segmint gets a note saying so.
    """
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
        worst = e.get("quality_worst")
        worst = "-" if e["quality"] is None or worst is None else format_number(worst)
        rows.append([e["impl"], format_seconds(e["median"]), ratio, quality, worst])
    caption = None
    if shared:
        name, better = names.pop()
        caption = f"{name} ({READING[better]})"
        runs = sorted({e.get("quality_runs") for e in entries if e.get("quality_runs")})
        if runs:
            caption += f"; median and worst over {'/'.join(map(str, runs))} seeds"
    notes = [f"{e['impl']}: {e['quality_note']}" for e in entries if e.get("quality_note")]
    ours = ref.get("threads") if ref is not None else None
    notes += [f"{e['impl']}: ran on {e['threads']} threads, segmint on {ours} (not equal work)"
              for e in entries if ours and e.get("threads") and e["threads"] != ours]
    return caption, rows, notes


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
    for fullname, figures in extra_figures(args.results).items():
        if fullname in results["benchmarks"]:
            results["benchmarks"][fullname].update(figures)
    run = describe_run(results)
    text = [f"Run: {run}", "Ratio = peer median / segmint median (above 1: segmint is faster).", ""]
    md = ["## segmint beside its peers", "", f"Run: {run}.", "",
          ("Median times; ratio = peer / segmint (above 1: segmint is faster); quality as each "
           "benchmark records it (`benchmarks/conftest.py`): the median over seeds and the worst "
           "seed where the work is seeded, else the one value."), ""]
    for group, entries in groups_of(results).items():
        caption, rows, notes = group_table(entries)
        text += [group + (f"  -  quality: {caption}" if caption else ""), render_text(HEADER, rows)]
        text += [f"  note: {note}" for note in notes] + [""]
        md += [f"### {group}", ""] + ([f"Quality: {caption}.", ""] if caption else [])
        md += [render_markdown(HEADER, rows), ""] + ([f"- {note}" for note in notes] + [""] if notes else [])
    print("\n".join(text).rstrip())
    if args.markdown:
        with open(args.markdown, "w", encoding="utf-8") as fh:
            fh.write("\n".join(md))
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
