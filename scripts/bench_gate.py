#!/usr/bin/env python
"""Benchmark regression gate: compare pytest-benchmark results with a baseline.

Two ways to use it::

    # against a stored baseline (both files from --benchmark-json)
    python scripts/bench_gate.py compare BASELINE.json CURRENT.json [--tolerance 0.15]
        [--quality-tolerance 0.001] [--markdown OUT.md]

    # base against head on this machine, in this job: robust on noisy shared runners
    python scripts/bench_gate.py base-head origin/main [--size small] [-k "not peer"]
        [--tolerance ...] [--markdown OUT.md] [-- more pytest arguments]

A benchmark fails the gate when its median time is slower than the baseline's by more than
``--tolerance`` (relative, default 0.15), or when its quality figure (``extra_info``, see
``benchmarks/conftest.py``) is worse: higher for ``lower`` figures, lower for ``higher`` ones,
by more than ``--quality-tolerance`` (relative, default 0.001), or different at all for
``equal`` figures (exact results such as rows matched). Only segmint's benchmarks are gated;
peers (scikit-learn, DuckDB, ...) are listed, since their times move with the machine, not
with our code, which makes them a handy noise gauge. Benchmarks found in one file only are
listed, not failed.

Exit status: 0 no regression; 1 a regression (or failing benchmarks in the head run);
2 the input cannot be used (missing file, not pytest-benchmark JSON, no benchmarks in common,
runs of different ``--size``, a git or pytest problem in ``base-head``); 130 interrupted.

``base-head`` checks the base ref out into a temporary ``git worktree`` and runs
``python -m pytest benchmarks --benchmark-enable --benchmark-json ... --size ...`` there,
then the same in the current working tree (uncommitted changes included), then compares.
Each run imports its own tree's code: the packages named in that tree's ``pyproject.toml``
``[tool.setuptools] package-dir`` (``segmint`` from ``src/segmint``, ``segmint.kernels`` from
``kernels/``) are copied into a temporary folder laid out as installed, which goes first on
``PYTHONPATH``. Pointing ``PYTHONPATH`` at the worktree's ``src`` alone is not enough: the
worktree's ``src/segmint`` has no ``kernels`` folder, so an editable install of head would
quietly supply head's kernels to the base run (setuptools' editable finder maps
``segmint.kernels`` to head's ``kernels/``). Before each run the gate checks where every
package is imported from and stops if it is not the tree under test. Numba compiles both
copies from scratch into a temporary cache (the benchmarks warm up outside the timed region).
The worktree and the copies are removed at the end, also on failure, Ctrl-C or SIGTERM.
"""
import argparse
import json
import math
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile

OURS = "segmint"
BETTER = ("lower", "higher", "equal")
EXIT_OK, EXIT_REGRESSION, EXIT_UNUSABLE, EXIT_INTERRUPTED = 0, 1, 2, 130


class GateError(Exception):
    """Input the gate cannot use; the message is printed as one line and the exit status is 2."""


# -- reading pytest-benchmark JSON -----------------------------------------------------------------
def load_results(path):
    """Read a pytest-benchmark ``--benchmark-json`` file.

    Parameters
    ----------
    path : str

    Returns
    -------
    dict
        ``benchmarks``: {fullname: entry} in file order, each entry a dict with ``name``,
        ``fullname``, ``group``, ``impl``, ``median`` (seconds), ``rounds``, ``size``,
        ``quality``, ``quality_name``, ``quality_better`` (the last three None when the
        benchmark records no valid quality figure); ``machine``, ``datetime``, ``commit``
        as found in the file.

    Raises
    ------
    GateError
        The file is missing, not JSON, not pytest-benchmark output, or holds no benchmarks.
    """
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except FileNotFoundError:
        raise GateError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise GateError(f"{path}: is a directory, not a pytest-benchmark JSON file") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise GateError(f"{path}: not JSON ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("benchmarks"), list):
        raise GateError(f"{path}: not a pytest-benchmark JSON file (no 'benchmarks' list; "
                        "write one with pytest --benchmark-json FILE)")
    entries = {}
    for raw in data["benchmarks"]:
        entry = _entry(raw)
        if entry is None:
            raise GateError(f"{path}: not a pytest-benchmark JSON file (a benchmark without "
                            "'name' and 'stats.median')")
        entries[entry["fullname"]] = entry
    if not entries:
        raise GateError(f"{path}: holds no benchmarks (timing disabled? run pytest with "
                        "--benchmark-enable)")
    return {"benchmarks": entries, "machine": data.get("machine_info") or {},
            "datetime": data.get("datetime"), "commit": data.get("commit_info") or {}}


def _entry(raw):
    if not isinstance(raw, dict) or not isinstance(raw.get("stats"), dict):
        return None
    median = raw["stats"].get("median")
    name = raw.get("name")
    if not isinstance(name, str) or not _is_number(median):
        return None
    info = raw.get("extra_info") if isinstance(raw.get("extra_info"), dict) else {}
    entry = {"name": name, "fullname": raw.get("fullname") or name, "median": float(median),
             "rounds": raw["stats"].get("rounds"), "size": info.get("size"),
             "group": info.get("group") or raw.get("group") or name,
             "impl": info.get("impl") or _impl_from_name(name),
             "quality": None, "quality_name": None, "quality_better": None}
    if _is_number(info.get("quality")) and info.get("quality_better") in BETTER:
        entry.update(quality=float(info["quality"]), quality_better=info["quality_better"],
                     quality_name=str(info.get("quality_name") or "quality"))
    return entry


def _impl_from_name(name):
    # results written before the conventions: peers were already named test_peer_<impl>_...
    match = re.match(r"test_peer_([a-z0-9]+)_", name)
    return match.group(1) if match else OURS


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def is_ours(impl):
    """True for segmint's own benchmarks (``"segmint"`` or ``"segmint.<variant>"``)."""
    return impl == OURS or str(impl).startswith(OURS + ".")


# -- comparing ------------------------------------------------------------------------------------
def quality_worse(before, after, better, tolerance):
    """Whether the quality figure got worse beyond ``tolerance`` (relative to ``before``).

    ``equal`` figures are exact results: any change is worse, whatever the tolerance.
    """
    if better == "equal":
        return after != before
    slack = tolerance * abs(before)
    if better == "lower":
        return after > before + slack
    return after < before - slack


def compare_results(baseline, current, tolerance=0.15, quality_tolerance=0.001):
    """Row by row verdicts of ``current`` against ``baseline`` (both from :func:`load_results`).

    Returns
    -------
    rows : list of dict
        ``name``, ``impl``, ``base`` / ``cur`` (entries or None), ``change`` (relative change of
        the median, or None), ``verdict`` and ``failed`` (bool). Verdicts: ``ok``, ``faster``,
        ``SLOWER``, ``WORSE QUALITY``, ``SLOWER, WORSE QUALITY``, ``peer`` (not gated),
        ``new`` (current only), ``gone`` (baseline only).

    Raises
    ------
    GateError
        No benchmark is in both files, or they were run at different ``--size``.
    """
    base, cur = baseline["benchmarks"], current["benchmarks"]
    common = [name for name in cur if name in base]
    if not common:
        raise GateError("no benchmarks in common between baseline and current (different "
                        "benchmark files, or a -k that selected different benchmarks?)")
    sizes = {(base[n]["size"], cur[n]["size"]) for n in common}
    mismatched = {pair for pair in sizes if None not in pair and pair[0] != pair[1]}
    if mismatched:
        b, c = min(mismatched)
        raise GateError(f"baseline was run with --size {b}, current with --size {c}: times are not comparable")
    rows = []
    for name in list(cur) + [n for n in base if n not in cur]:
        b, c = base.get(name), cur.get(name)
        row = {"name": _short(name), "impl": (c or b)["impl"], "base": b, "cur": c, "change": None,
               "failed": False}
        if b is None or c is None:
            row["verdict"] = "new" if b is None else "gone"
            rows.append(row)
            continue
        row["change"] = c["median"] / b["median"] - 1 if b["median"] > 0 else 0.0
        slower = row["change"] > tolerance
        worse = (b["quality"] is not None and c["quality"] is not None
                 and b["quality_name"] == c["quality_name"] and b["quality_better"] == c["quality_better"]
                 and quality_worse(b["quality"], c["quality"], c["quality_better"], quality_tolerance))
        if not is_ours(row["impl"]):
            row["verdict"] = "peer"
        elif slower or worse:
            row["verdict"] = ", ".join(v for v, on in (("SLOWER", slower), ("WORSE QUALITY", worse)) if on)
            row["failed"] = True
        else:
            row["verdict"] = "faster" if row["change"] < -tolerance else "ok"
        rows.append(row)
    return rows


def _short(fullname):
    return fullname.removeprefix("benchmarks/")


# -- tables -----------------------------------------------------------------------------------------
def format_seconds(seconds):
    """A time with a unit that keeps three or four significant digits: ``12.3 ms``."""
    if seconds is None:
        return "-"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6), ("ns", 1e-9)):
        if abs(seconds) >= scale or unit == "ns":
            v = seconds / scale
            return f"{v:.2f} {unit}" if abs(v) < 10 else f"{v:.1f} {unit}" if abs(v) < 100 else f"{v:.0f} {unit}"


def format_number(value):
    if value is None:
        return "-"
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.6g}"


HEADER = ("benchmark", "impl", "baseline", "current", "change", "quality", "before", "after", "verdict")


def table_cells(rows):
    """The table as lists of strings, one per row (the header not included)."""
    out = []
    for row in rows:
        b, c = row["base"], row["cur"]
        q = c if c is not None and c["quality"] is not None else b
        quality = f"{q['quality_name']} ({q['quality_better']})" if q and q["quality"] is not None else "-"
        out.append([row["name"], row["impl"], format_seconds(b and b["median"]), format_seconds(c and c["median"]),
                    "-" if row["change"] is None else f"{row['change']:+.1%}", quality,
                    format_number(b and b["quality"]), format_number(c and c["quality"]), row["verdict"]])
    return out


def render_text(header, cells):
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths)).rstrip(),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip() for r in cells]
    return "\n".join(lines)


def render_markdown(header, cells):
    def esc(v):
        return v.replace("|", "\\|")
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(esc(v) for v in r) + " |" for r in cells]
    return "\n".join(lines)


def summary(rows, tolerance, quality_tolerance):
    failed = [r for r in rows if r["failed"]]
    gated = sum(1 for r in rows if r["base"] and r["cur"] and is_ours(r["impl"]))
    rule = f"tolerance {tolerance:.0%} on the median, {quality_tolerance:g} relative on quality"
    if failed:
        return (f"FAIL: {len(failed)} of {gated} segmint benchmarks regressed ({rule}): "
                + ", ".join(r["name"] for r in failed))
    return f"OK: none of {gated} segmint benchmarks regressed ({rule})"


def peer_drift(rows):
    """A line on how far the peers' times moved: their code did not change, the machine did."""
    changes = [r["change"] for r in rows if r["change"] is not None and not is_ours(r["impl"])]
    if not changes:
        return ""
    return (f"Noise gauge: the {len(changes)} peer benchmarks moved by {statistics.median(changes):+.1%} "
            "(median change); "
            "their code is the same in both runs.")


def report(rows, args, title=None, head_failed=False):
    """Print the table and the verdict; write the Markdown file if asked; return the exit status."""
    cells = table_cells(rows)
    verdict = summary(rows, args.tolerance, args.quality_tolerance)
    if head_failed:
        verdict += "; and the head run had failing benchmarks"
    gauge = peer_drift(rows)
    print(render_text(HEADER, cells))
    print()
    if gauge:
        print(gauge)
    print(verdict)
    if args.markdown:
        parts = [f"### {title}" if title else "### Benchmark gate", "", render_markdown(HEADER, cells), "",
                 *([gauge, ""] if gauge else []), f"**{verdict}**", ""]
        with open(args.markdown, "w", encoding="utf-8") as fh:
            fh.write("\n".join(parts))
    return EXIT_REGRESSION if head_failed or any(r["failed"] for r in rows) else EXIT_OK


def cmd_compare(args):
    baseline = load_results(args.baseline)
    current = load_results(args.current)
    rows = compare_results(baseline, current, args.tolerance, args.quality_tolerance)
    return report(rows, args, title=f"Benchmarks: {args.current} against {args.baseline}")


# -- base against head ----------------------------------------------------------------------------
def git(repo, *argv):
    """Run git in ``repo``; its stdout, stripped. Failures become :class:`GateError`."""
    proc = subprocess.run(["git", "-C", repo, *argv], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        msg = (proc.stderr or proc.stdout).strip().splitlines()
        raise GateError(f"git {' '.join(argv)}: {msg[-1] if msg else 'failed'}")
    return proc.stdout.strip()


def package_dirs(tree):
    """``[tool.setuptools] package-dir`` of the tree's pyproject.toml: {package: folder}.

    Python 3.10 has no tomllib; the inline table segmint uses is then read with a pattern.
    """
    path = os.path.join(tree, "pyproject.toml")
    if not os.path.exists(path):
        return {}
    try:
        import tomllib
    except ImportError:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
        match = re.search(r"^\s*package-dir\s*=\s*\{([^}]*)\}", text, re.MULTILINE)
        return dict(re.findall(r'"([^"]*)"\s*=\s*"([^"]*)"', match.group(1))) if match else {}
    with open(path, "rb") as fh:
        data = tomllib.load(fh)
    mapping = data.get("tool", {}).get("setuptools", {}).get("package-dir", {})
    return dict(mapping) if isinstance(mapping, dict) else {}


def stage_packages(tree, dest):
    """Copy the tree's packages into ``dest`` laid out as an installation would lay them out.

    Returns
    -------
    path : list of str, the ``PYTHONPATH`` entries (``dest`` first)
    packages : list of str, the package names to check the imports of
    """
    mapping = package_dirs(tree)
    path = [dest]
    os.makedirs(dest, exist_ok=True)
    if "" in mapping:  # a root folder for every top-level package ("src" layouts)
        path.append(os.path.join(tree, mapping.pop("")))
    if not mapping:  # no mapping: the usual src layout, or packages at the top of the tree
        src = os.path.join(tree, "src")
        path.append(src if os.path.isdir(src) else tree)
        return path, []
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in sorted(mapping, key=lambda n: n.count(".")):  # parents before children
        parent = name.rpartition(".")[0]
        if parent and parent not in mapping:
            raise GateError(f"{tree}/pyproject.toml maps {name!r} but not its parent {parent!r}: "
                            "cannot lay the packages out")
        shutil.copytree(os.path.join(tree, mapping[name]), os.path.join(dest, *name.split(".")),
                        ignore=ignore, dirs_exist_ok=True)
    return path, sorted(mapping)


def check_imports(python, cwd, env, packages, expected_root):
    """Stop unless every package imports from ``expected_root`` (and not, say, an editable install)."""
    if not packages:
        return
    code = ("import importlib, json, sys\n"
            f"print(json.dumps({{n: importlib.import_module(n).__file__ for n in {packages!r}}}))")
    proc = subprocess.run([python, "-c", code], cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        lines = proc.stderr.strip().splitlines()
        raise GateError(f"cannot import {', '.join(packages)} from {cwd}: {lines[-1] if lines else 'failed'}")
    root = os.path.realpath(expected_root) + os.sep
    for name, file in json.loads(proc.stdout.strip().splitlines()[-1]).items():
        if not os.path.realpath(file or "").startswith(root):
            raise GateError(f"{name} is imported from {file}, not from the tree under test "
                            f"({expected_root}); check PYTHONPATH and installed copies")


def run_child(cmd, cwd, env):
    """Run a command with our stdout/stderr; terminate it if we are interrupted while it runs."""
    proc = subprocess.Popen(cmd, cwd=cwd, env=env)
    try:
        return proc.wait()
    except BaseException:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        raise


def benchmark_command(args, json_path):
    cmd = [args.python, "-m", "pytest", args.benchmarks, "--benchmark-enable", "--benchmark-json", json_path,
           "--size", args.size, "-p", "no:cacheprovider", "-q"]
    if args.k:
        cmd += ["-k", args.k]
    return cmd + list(args.pytest_args)


def run_tree(label, tree, stage, args, json_path, numba_cache):
    """Benchmark one tree with its own code; returns pytest's exit status."""
    path, packages = stage_packages(tree, stage)
    # not a pytest-xdist worker's identity: pytest-benchmark, seeing PYTEST_XDIST_WORKER, turns
    # timing off (the gate run from a test of a suite run with -n wrote no results)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_XDIST")}
    env["PYTHONPATH"] = os.pathsep.join(path + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env["NUMBA_CACHE_DIR"] = numba_cache  # fresh: never mixes with, or litters, the user's cache
    check_imports(args.python, tree, env, packages, stage)
    cmd = benchmark_command(args, json_path)
    print(f"== {label}: {' '.join(cmd)}  (in {tree})", flush=True)
    status = run_child(cmd, tree, env)
    if not os.path.exists(json_path):
        raise GateError(f"{label} run wrote no results (pytest exit status {status})")
    return status


def cmd_base_head(args):
    repo = git(args.repo, "rev-parse", "--show-toplevel")
    try:
        base_commit = git(repo, "rev-parse", "--verify", "--quiet", f"{args.base}^{{commit}}")
    except GateError:
        raise GateError(f"{args.base!r} is not a commit in {repo} (fetch it first? "
                        "actions/checkout needs fetch-depth: 0)") from None
    head_label = git(repo, "rev-parse", "--short", "HEAD")
    if git(repo, "status", "--porcelain"):  # untracked files count: the head run copies them too
        head_label += " + uncommitted changes"
    tmp = tempfile.mkdtemp(prefix="bench-gate-")
    worktree = os.path.join(tmp, "base")
    added = False
    try:
        git(repo, "worktree", "add", "--detach", worktree, base_commit)
        added = True
        if args.benchmarks_from == "head":  # the same benchmark code on both sides
            if not os.path.isdir(os.path.join(repo, args.benchmarks)):
                raise GateError(f"no {args.benchmarks}/ folder in {repo}")
            target = os.path.join(worktree, args.benchmarks)
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(os.path.join(repo, args.benchmarks), target,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        base_json, head_json = os.path.join(tmp, "base.json"), os.path.join(tmp, "head.json")
        numba_cache = os.path.join(tmp, "numba-cache")
        base_status = run_tree(f"base {base_commit[:10]}", worktree, os.path.join(tmp, "base-site"), args,
                               base_json, numba_cache)
        if base_status != 0:
            print(f"bench_gate: warning: the base run exited with status {base_status}; comparing what it "
                  "recorded", file=sys.stderr)
        head_status = run_tree(f"head {head_label}", repo, os.path.join(tmp, "head-site"), args, head_json,
                               numba_cache)
        if args.keep_json:
            os.makedirs(args.keep_json, exist_ok=True)
            shutil.copy(base_json, os.path.join(args.keep_json, "base.json"))
            shutil.copy(head_json, os.path.join(args.keep_json, "head.json"))
        rows = compare_results(load_results(base_json), load_results(head_json), args.tolerance,
                               args.quality_tolerance)
        print()
        return report(rows, args, title=f"Benchmarks: {head_label} against {args.base} ({base_commit[:10]}), "
                                        f"--size {args.size}", head_failed=head_status != 0)
    finally:
        if added:
            try:
                git(repo, "worktree", "remove", "--force", worktree)
            except GateError:
                shutil.rmtree(worktree, ignore_errors=True)
                subprocess.run(["git", "-C", repo, "worktree", "prune"], capture_output=True, check=False)
        shutil.rmtree(tmp, ignore_errors=True)


# -- command line ---------------------------------------------------------------------------------
def _fraction(text):
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be a number >= 0, got {text!r}")
    return value


def parser():
    p = argparse.ArgumentParser(prog="bench_gate.py", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--tolerance", type=_fraction, default=0.15,
                        help="allowed relative slowdown of the median (default 0.15 = 15%%)")
    common.add_argument("--quality-tolerance", type=_fraction, default=0.001,
                        help="allowed relative worsening of a lower/higher quality figure (default 0.001); "
                             "'equal' figures must not change at all")
    common.add_argument("--markdown", metavar="FILE",
                        help="also write the table as Markdown (e.g. $GITHUB_STEP_SUMMARY)")

    c = sub.add_parser("compare", parents=[common], help="compare two pytest-benchmark JSON files")
    c.add_argument("baseline", help="baseline JSON (pytest --benchmark-json)")
    c.add_argument("current", help="current JSON")
    c.set_defaults(func=cmd_compare)

    b = sub.add_parser("base-head", parents=[common], help="benchmark a base ref and the working tree, then compare",
                       usage="bench_gate.py base-head BASE [options] [-- PYTEST_ARGS ...]",
                       description="Benchmark BASE (in a temporary git worktree) and the current working tree "
                                   "on this machine, one after the other, then compare. Arguments after -- go "
                                   "to pytest.")
    b.add_argument("base", help="the base: a branch, tag or commit (e.g. origin/main)")
    b.add_argument("--size", default="small", help="benchmark size (default small)")
    b.add_argument("-k", metavar="EXPR", help='pytest -k expression, e.g. "not peer" to time segmint only')
    b.add_argument("--repo", default=".", help="the repository (default: the current directory)")
    b.add_argument("--benchmarks", default="benchmarks", help="benchmark folder in each tree (default benchmarks)")
    b.add_argument("--benchmarks-from", choices=("each", "head"), default="each",
                   help="'each': every tree runs its own benchmarks (default); 'head': both run head's")
    b.add_argument("--python", default=sys.executable, help="interpreter to run pytest with (default: this one)")
    b.add_argument("--keep-json", metavar="DIR", help="keep base.json and head.json in DIR")
    b.set_defaults(func=cmd_base_head)
    return p


def _terminate(signum, frame):
    raise KeyboardInterrupt  # so that finally blocks remove the worktree on SIGTERM too


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    # split by hand: argparse's own "--" handling does not reach into a subcommand's positionals
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    argv = argv[:argv.index("--")] if "--" in argv else argv
    p = parser()
    args = p.parse_args(argv)
    if extra and args.command != "base-head":
        p.error("arguments after -- are passed to pytest, which only base-head runs")
    args.pytest_args = extra
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        return args.func(args)
    except GateError as exc:
        print(f"bench_gate: error: {exc}", file=sys.stderr)
        return EXIT_UNUSABLE
    except KeyboardInterrupt:
        print("bench_gate: interrupted (temporary worktree removed)", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
