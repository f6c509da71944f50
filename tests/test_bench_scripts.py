"""scripts/bench_gate.py and scripts/compare_peers.py on synthetic pytest-benchmark JSON files.

The base-head test builds a throwaway git repository with a fake package laid out like
segmint (``src/<pkg>`` plus a top-level ``kernels/`` mapped to ``<pkg>.kernels``), so it checks
that each run imports its own tree's kernels and that the worktree is removed afterwards.
"""
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"
BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def _load(name):
    spec = importlib.util.spec_from_file_location(f"_{name}_under_test", SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


gate = _load("bench_gate")
peers = _load("compare_peers")


def bench(name, median, quality=None, better="lower", impl="segmint", group=None, size="small",
          quality_name="inertia", conventions=True, file="bench_x.py", **more_info):
    """One benchmark as pytest-benchmark writes it (``more_info``: further extra_info keys)."""
    info = {}
    if conventions:
        info = {"group": group or name, "impl": impl, "size": size, "threads": 2}
        info.update(more_info)
        if quality is not None:
            info.update(quality=quality, quality_name=quality_name, quality_better=better)
    return {"group": group, "name": name, "fullname": f"benchmarks/{file}::{name}", "params": None,
            "param": None, "extra_info": info,
            "stats": {"min": median * 0.9, "max": median * 1.2, "mean": median, "median": median,
                      "rounds": 5, "stddev": 0.0}}


def write(tmp_path, filename, benchmarks, **top):
    data = {"machine_info": {"cpu": {"brand_raw": "Test CPU", "count": 2}, "system": "Linux",
                             "python_version": "3.11.0"},
            "commit_info": {"id": "0123456789abcdef"}, "datetime": "2026-01-02T03:04:05+00:00",
            "version": "5.0.0", "benchmarks": benchmarks}
    data.update(top)
    path = tmp_path / filename
    path.write_text(json.dumps(data))
    return str(path)


def run_gate(capsys, *argv):
    status = gate.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


def verdict_of(out, name):
    line = next(line for line in out.splitlines() if line.startswith(name + " ") or f"::{name} " in line)
    return line.rstrip()


# -- compare: verdicts and exit status --------------------------------------------------------------
def test_identical_runs_pass(tmp_path, capsys):
    runs = [bench("test_a", 0.010, 5.0), bench("test_b", 0.002, 0.99, "higher")]
    status, out, _ = run_gate(capsys, "compare", write(tmp_path, "b.json", runs), write(tmp_path, "c.json", runs))
    assert status == 0
    assert "OK: none of 2 segmint benchmarks regressed" in out
    for name in ("test_a", "test_b"):
        assert verdict_of(out, name).endswith(" ok")
    assert "baseline" in out.splitlines()[0] and "verdict" in out.splitlines()[0]


def test_slowdown_beyond_tolerance_fails(tmp_path, capsys):
    base = write(tmp_path, "b.json", [bench("test_a", 0.100, 5.0), bench("test_b", 0.100, 5.0)])
    cur = write(tmp_path, "c.json", [bench("test_a", 0.120, 5.0), bench("test_b", 0.110, 5.0)])
    status, out, _ = run_gate(capsys, "compare", base, cur)
    assert status == 1
    assert "SLOWER" in verdict_of(out, "test_a") and "+20.0%" in verdict_of(out, "test_a")
    assert verdict_of(out, "test_b").endswith(" ok")
    assert "FAIL: 1 of 2 segmint benchmarks regressed" in out and "bench_x.py::test_a" in out.splitlines()[-1]
    # a tighter tolerance catches the 10% too
    status, out, _ = run_gate(capsys, "compare", base, cur, "--tolerance", "0.05")
    assert status == 1 and "SLOWER" in verdict_of(out, "test_b")


def test_faster_is_reported_and_passes(tmp_path, capsys):
    base = write(tmp_path, "b.json", [bench("test_a", 0.100, 5.0)])
    cur = write(tmp_path, "c.json", [bench("test_a", 0.050, 5.0)])
    status, out, _ = run_gate(capsys, "compare", base, cur)
    assert status == 0 and verdict_of(out, "test_a").endswith(" faster") and "-50.0%" in out


@pytest.mark.parametrize("better, before, after, qtol, fails", [
    ("lower", 100.0, 100.05, 0.001, False),    # within the quality tolerance
    ("lower", 100.0, 100.5, 0.001, True),
    ("lower", 100.0, 90.0, 0.001, False),      # better
    ("higher", 0.999, 0.99, 0.001, True),
    ("higher", 0.999, 1.0, 0.001, False),
    ("higher", 0.999, 0.99, 0.05, False),
    ("equal", 73838, 73839, 0.5, True),        # exact results: any change, whatever the tolerance
    ("equal", 73838, 73838, 0.0, False),
])
def test_quality(tmp_path, capsys, better, before, after, qtol, fails):
    base = write(tmp_path, "b.json", [bench("test_q", 0.01, before, better)])
    cur = write(tmp_path, "c.json", [bench("test_q", 0.01, after, better)])
    status, out, _ = run_gate(capsys, "compare", base, cur, "--quality-tolerance", qtol)
    assert status == (1 if fails else 0)
    assert ("WORSE QUALITY" in verdict_of(out, "test_q")) == fails
    assert f"inertia ({better})" in verdict_of(out, "test_q")


def test_slower_and_worse_both_named(tmp_path, capsys):
    base = write(tmp_path, "b.json", [bench("test_a", 0.1, 1.0)])
    cur = write(tmp_path, "c.json", [bench("test_a", 0.2, 2.0)])
    status, out, _ = run_gate(capsys, "compare", base, cur)
    assert status == 1 and verdict_of(out, "test_a").endswith("SLOWER, WORSE QUALITY")


def test_peers_are_listed_not_gated(tmp_path, capsys):
    base = write(tmp_path, "b.json", [bench("test_a", 0.1, 1.0),
                                      bench("test_peer_sklearn_a", 0.1, 1.0, impl="sklearn")])
    cur = write(tmp_path, "c.json", [bench("test_a", 0.1, 1.0),
                                     bench("test_peer_sklearn_a", 0.3, 9.0, impl="sklearn")])
    status, out, _ = run_gate(capsys, "compare", base, cur)
    assert status == 0
    assert verdict_of(out, "test_peer_sklearn_a").endswith(" peer") and "+200.0%" in out
    assert "Noise gauge: the 1 peer benchmarks moved by +200.0%" in out
    assert "none of 1 segmint benchmarks" in out


def test_segmint_variants_are_gated(tmp_path, capsys):
    base = write(tmp_path, "b.json", [bench("test_k", 0.1, 1.0, impl="segmint.KMeans")])
    cur = write(tmp_path, "c.json", [bench("test_k", 0.2, 1.0, impl="segmint.KMeans")])
    assert run_gate(capsys, "compare", base, cur)[0] == 1


def test_benchmarks_in_one_file_only_are_listed(tmp_path, capsys):
    base = write(tmp_path, "b.json", [bench("test_a", 0.1, 1.0), bench("test_old", 0.1, 1.0)])
    cur = write(tmp_path, "c.json", [bench("test_a", 0.1, 1.0), bench("test_new", 9.9, 1.0)])
    status, out, _ = run_gate(capsys, "compare", base, cur)
    assert status == 0
    assert verdict_of(out, "test_new").endswith(" new") and verdict_of(out, "test_old").endswith(" gone")


def test_results_without_conventions(tmp_path, capsys):
    """Older results: no extra_info; peers told apart by their test_peer_<impl>_ names."""
    base = write(tmp_path, "b.json", [bench("test_a", 0.1, conventions=False),
                                      bench("test_peer_duckdb_a", 0.1, conventions=False)])
    cur = write(tmp_path, "c.json", [bench("test_a", 0.1, conventions=False),
                                     bench("test_peer_duckdb_a", 0.5, conventions=False)])
    status, out, _ = run_gate(capsys, "compare", base, cur)
    assert status == 0 and "duckdb" in verdict_of(out, "test_peer_duckdb_a")
    cur = write(tmp_path, "c2.json", [bench("test_a", 0.5, conventions=False)])
    assert run_gate(capsys, "compare", base, cur)[0] == 1


def test_quality_not_compared_when_its_name_changed(tmp_path, capsys):
    base = write(tmp_path, "b.json", [bench("test_a", 0.1, 1.0, quality_name="inertia")])
    cur = write(tmp_path, "c.json", [bench("test_a", 0.1, 9.0, quality_name="potential")])
    assert run_gate(capsys, "compare", base, cur)[0] == 0


def test_markdown_table(tmp_path, capsys):
    base = write(tmp_path, "b.json", [bench("test_a", 0.1, 1.0)])
    cur = write(tmp_path, "c.json", [bench("test_a", 0.2, 1.0)])
    md = tmp_path / "gate.md"
    status, _, _ = run_gate(capsys, "compare", base, cur, "--markdown", md)
    text = md.read_text()
    assert status == 1
    assert "| benchmark | impl | baseline | current | change | quality | before | after | verdict |" in text
    assert "| bench_x.py::test_a | segmint | 100 ms | 200 ms | +100.0% | inertia (lower) | 1 | 1 | SLOWER |" in text
    assert "**FAIL: 1 of 1" in text


# -- compare: unusable input --------------------------------------------------------------------------
def _one_line_error(err, *fragments):
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("bench_gate: error: "), err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_missing_file(tmp_path, capsys):
    cur = write(tmp_path, "c.json", [bench("test_a", 0.1)])
    status, _, err = run_gate(capsys, "compare", tmp_path / "nope.json", cur)
    assert status == 2
    _one_line_error(err, "nope.json", "no such file")


@pytest.mark.parametrize("content, message", [
    ("{not json", "not JSON"),
    ('{"results": []}', "not a pytest-benchmark JSON file"),
    ('[1, 2]', "not a pytest-benchmark JSON file"),
    ('{"benchmarks": [{"name": "x"}]}', "not a pytest-benchmark JSON file"),
    ('{"benchmarks": []}', "holds no benchmarks"),
])
def test_not_pytest_benchmark_json(tmp_path, capsys, content, message):
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    cur = write(tmp_path, "c.json", [bench("test_a", 0.1)])
    status, _, err = run_gate(capsys, "compare", bad, cur)
    assert status == 2
    _one_line_error(err, "bad.json", message)


def test_no_benchmarks_in_common(tmp_path, capsys):
    base = write(tmp_path, "b.json", [bench("test_a", 0.1)])
    cur = write(tmp_path, "c.json", [bench("test_b", 0.1)])
    status, _, err = run_gate(capsys, "compare", base, cur)
    assert status == 2
    _one_line_error(err, "no benchmarks in common")


def test_different_sizes_are_not_compared(tmp_path, capsys):
    base = write(tmp_path, "b.json", [bench("test_a", 0.1, size="small")])
    cur = write(tmp_path, "c.json", [bench("test_a", 0.1, size="large")])
    status, _, err = run_gate(capsys, "compare", base, cur)
    assert status == 2
    _one_line_error(err, "--size small", "--size large")


def test_time_format():
    assert [gate.format_seconds(s) for s in (2.5, 0.1234, 0.012345, 4.5e-5, 3e-8)] == \
        ["2.50 s", "123 ms", "12.3 ms", "45.0 us", "30.0 ns"]


# -- compare_peers ----------------------------------------------------------------------------------
def run_peers(capsys, *argv):
    status = peers.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


def test_peer_table(tmp_path, capsys):
    g = "assign[k=8,float32]"
    path = write(tmp_path, "r.json", [
        bench("test_peer_sklearn_assign", 0.004, 0.999, "higher", impl="sklearn", group=g,
              quality_name="label agreement"),
        bench("test_assign", 0.002, 1.0, "higher", group=g, quality_name="label agreement"),
        bench("test_peer_faiss_assign", 0.001, 0.9995, "higher", impl="faiss", group=g,
              quality_name="label agreement"),
        bench("test_prepare", 0.01, 1000, "equal", group="prepare[100 segments]", quality_name="instructions"),
    ])
    md = tmp_path / "peers.md"
    status, out, _ = run_peers(capsys, path, "--markdown", md)
    assert status == 0
    assert "Test CPU, 2 logical cores" in out and "2026-01-02 03:04 UTC" in out and "--size small" in out
    block = out.split(g)[1].split("prepare[")[0]
    assert "quality: label agreement (higher is better)" in block
    impl_lines = [line.split() for line in block.splitlines() if line.split() and line.split()[0] in
                  ("segmint", "sklearn", "faiss")]
    # ours first, then the peers in file order, each with its ratio and quality
    # unseeded figures: one value, no worst
    assert impl_lines == [["segmint", "2.00", "ms", "1.00x", "1", "-"],
                          ["sklearn", "4.00", "ms", "2.00x", "0.999", "-"],
                          ["faiss", "1.00", "ms", "0.50x", "0.9995", "-"]]
    assert "instructions (must be equal)" in out and "seeds" not in out
    text = md.read_text()
    assert f"### {g}" in text and "Quality: label agreement (higher is better)." in text
    assert "| implementation | median | peer / segmint | quality (median) | quality (worst) |" in text
    assert "| sklearn | 4.00 ms | 2.00x | 0.999 | - |" in text


def test_peer_table_shows_median_and_worst_seed_and_the_notes(tmp_path, capsys):
    g = "fit[k=8]"
    path = write(tmp_path, "r.json", [
        bench("test_minibatch_fit", 0.5, 787.5, group=g, quality_worst=799.25, quality_runs=5,
              quality_values=[787.5, 780.0, 799.25, 790.0, 785.0]),
        bench("test_peer_sklearn_minibatch_fit", 2.0, 792.25, impl="sklearn.MiniBatchKMeans", group=g,
              quality_worst=808.5, quality_runs=5, quality_note="seed fits on a random sample of 1,000,000 rows"),
        bench("test_peer_faiss_kmeans", 0.25, 800.0, impl="faiss.Kmeans", group=g, quality_worst=float("nan"),
              quality_runs=True),  # malformed worst and runs: shown as no worst, not a crash
        bench("test_peer_sklearn_kmeans_fit", 3.0, 770.0, impl="sklearn.KMeans", group=g, threads=8),
    ])
    md = tmp_path / "peers.md"
    status, out, _ = run_peers(capsys, path, "--markdown", md)
    assert status == 0
    assert f"{g}  -  quality: inertia (lower is better); median and worst over 5 seeds" in out
    rows = {line.split()[0]: line.split() for line in out.splitlines()
            if line.split() and line.split()[0] in ("segmint", "sklearn.MiniBatchKMeans", "faiss.Kmeans")}
    assert rows["segmint"][-2:] == ["787.5", "799.25"]
    assert rows["sklearn.MiniBatchKMeans"][-3:] == ["4.00x", "792.25", "808.5"]
    assert rows["faiss.Kmeans"][-2:] == ["800", "-"]
    assert "  note: sklearn.MiniBatchKMeans: seed fits on a random sample of 1,000,000 rows" in out
    assert "  note: sklearn.KMeans: ran on 8 threads, segmint on 2 (not equal work)" in out
    assert "faiss.Kmeans: ran on" not in out  # same thread count as ours: no note
    text = md.read_text()
    assert "Quality: inertia (lower is better); median and worst over 5 seeds." in text
    assert "| segmint | 500 ms | 1.00x | 787.5 | 799.25 |" in text
    assert "- sklearn.MiniBatchKMeans: seed fits on a random sample of 1,000,000 rows" in text


def test_peer_table_without_segmint_or_shared_quality(tmp_path, capsys):
    path = write(tmp_path, "r.json", [
        bench("test_peer_duckdb_x", 0.004, 10, "equal", impl="duckdb", group="x", quality_name="rows"),
        bench("test_peer_polars_x", 0.002, 0.5, "lower", impl="polars", group="x", quality_name="error"),
    ])
    status, out, _ = run_peers(capsys, path)
    assert status == 0
    duck = next(line for line in out.splitlines() if line.startswith("duckdb"))
    assert duck.split()[3] == "-" and "rows (equal): 10" in duck
    assert "error (lower): 0.5" in out


def test_peer_table_unusable_input(tmp_path, capsys):
    status, _, err = run_peers(capsys, tmp_path / "missing.json")
    assert status == 2 and err.startswith("compare_peers: error: ") and "no such file" in err
    bad = tmp_path / "bad.json"
    bad.write_text('{"benchmarks": "no"}')
    status, _, err = run_peers(capsys, bad)
    assert status == 2 and "not a pytest-benchmark JSON file" in err


# -- the benchmark conventions (benchmarks/conftest.py) ----------------------------------------------
@pytest.fixture(scope="module")
def conventions():
    """benchmarks/conftest.py as a module; the POLARS_MAX_THREADS it sets is put back afterwards."""
    before = os.environ.get("POLARS_MAX_THREADS")
    spec = importlib.util.spec_from_file_location("_bench_conftest_under_test", BENCHMARKS / "conftest.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    yield module
    if before is None:
        os.environ.pop("POLARS_MAX_THREADS", None)
    else:
        os.environ["POLARS_MAX_THREADS"] = before


class FakeBenchmark:
    def __init__(self):
        self.group, self.extra_info = None, {}


def test_seeded_quality_is_recorded_as_median_and_worst(conventions):
    b = FakeBenchmark()
    conventions.compare(b, "fit[k=8]")
    conventions.record(b, quality=("inertia", [5.0, 1.0, 3.0, 9.0, 2.0], "lower"), rows=10)
    info = b.extra_info
    assert (info["quality"], info["quality_worst"], info["quality_runs"]) == (3.0, 9.0, 5)
    assert info["quality_values"] == [5.0, 1.0, 3.0, 9.0, 2.0] and info["rows"] == 10
    assert conventions.convention_problems(info) == []
    higher = FakeBenchmark()
    conventions.compare(higher, "g", impl="sklearn", threads=2)
    conventions.record(higher, quality=("agreement", [0.9, 0.99, 0.5], "higher"))
    assert (higher.extra_info["quality"], higher.extra_info["quality_worst"]) == (0.9, 0.5)
    single = FakeBenchmark()
    conventions.compare(single, "g")
    conventions.record(single, quality=("rows", 7, "equal"))
    assert single.extra_info["quality"] == 7 and "quality_worst" not in single.extra_info


@settings(max_examples=50, deadline=None)
@given(values=st.lists(st.floats(-1e12, 1e12), min_size=1, max_size=9),
       better=st.sampled_from(["lower", "higher"]))
def test_median_and_worst_match_their_definitions(conventions, values, better):
    b = FakeBenchmark()
    conventions.compare(b, "g")
    conventions.record(b, quality=("q", values, better))
    ordered = sorted(values)
    n = len(ordered)
    median = ordered[n // 2] if n % 2 else (ordered[n // 2 - 1] + ordered[n // 2]) / 2
    assert b.extra_info["quality"] == pytest.approx(median)
    assert b.extra_info["quality_worst"] == (max(values) if better == "lower" else min(values))
    assert conventions.convention_problems(b.extra_info) == []


def test_every_benchmark_names_its_thread_count(conventions):
    ours = FakeBenchmark()
    conventions.compare(ours, "g")
    assert ours.extra_info["threads"] == conventions.THREADS >= 1
    peer = FakeBenchmark()
    conventions.compare(peer, "g", impl="duckdb")  # a peer must say how many threads it ran on
    conventions.record(peer, quality=("rows", 1, "equal"))
    assert any("thread count" in p for p in conventions.convention_problems(peer.extra_info))
    conventions.compare(peer, "g", impl="duckdb", threads=2)
    assert conventions.convention_problems(peer.extra_info) == []
    assert os.environ["POLARS_MAX_THREADS"] == str(conventions.THREADS)


def test_a_worst_figure_that_is_not_finite_breaks_the_conventions(conventions):
    b = FakeBenchmark()
    conventions.compare(b, "g")
    conventions.record(b, quality=("inertia", 1.0, "lower"), quality_worst=float("nan"))
    assert any("quality_worst" in p for p in conventions.convention_problems(b.extra_info))


# -- base-head ------------------------------------------------------------------------------------------
FAKE_BENCH = '''
import time

import fakepkg
import fakepkg.kernels as kernels


def test_work(benchmark, request):
    benchmark.group = "work"
    benchmark.extra_info.update(group="work", impl="segmint", size=request.config.getoption("--size"),
                                quality_name="value", quality=kernels.VALUE, quality_better="lower",
                                kernels_file=kernels.__file__, package_file=fakepkg.__file__)
    benchmark.pedantic(time.sleep, args=(0.0005,), rounds=3, iterations=1)


def test_steady(benchmark, request):
    benchmark.extra_info.update(group="steady", impl="segmint", size=request.config.getoption("--size"),
                                quality_name="value", quality=1.0, quality_better="lower")
    benchmark.pedantic(time.sleep, args=(0.0005,), rounds=3, iterations=1)
'''


def _git(repo, *argv):
    env = dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@example.com", GIT_COMMITTER_NAME="t",
               GIT_COMMITTER_EMAIL="t@example.com")
    return subprocess.run(["git", "-C", str(repo), *argv], check=True, capture_output=True, text=True,
                          env=env).stdout


@pytest.fixture
def fake_repo(tmp_path):
    """A repository laid out like segmint: src/fakepkg, kernels/ shipped as fakepkg.kernels."""
    if shutil.which("git") is None:
        pytest.skip("git not installed")
    repo = tmp_path / "repo"
    files = {
        "pyproject.toml": textwrap.dedent('''
            [tool.setuptools]
            package-dir = { "fakepkg" = "src/fakepkg", "fakepkg.kernels" = "kernels" }
            [tool.pytest.ini_options]
            python_files = ["bench_*.py"]
        '''),
        "src/fakepkg/__init__.py": "",
        "kernels/__init__.py": "VALUE = 1.0\n",
        "README": "no benchmarks yet\n",
    }
    for name, text in files.items():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text(text)
    _git(repo, "init", "-q")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "no benchmarks")
    (repo / "benchmarks").mkdir()
    (repo / "benchmarks/conftest.py").write_text(
        "def pytest_addoption(parser):\n    parser.addoption('--size', default='small')\n")
    (repo / "benchmarks/bench_fake.py").write_text(FAKE_BENCH)
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "benchmarks")
    return repo


def _worktrees(repo):
    return [line for line in _git(repo, "worktree", "list", "--porcelain").splitlines() if line.startswith("worktree ")]


def test_base_head_uses_each_trees_code_and_cleans_up(fake_repo, tmp_path, capsys):
    # head (the working tree, uncommitted) makes the quality figure worse: only visible if the
    # base run really imported the base's kernels/ and the head run the working tree's
    (fake_repo / "kernels/__init__.py").write_text("VALUE = 2.0\n")
    kept, md = tmp_path / "kept", tmp_path / "gate.md"
    # sleeps time noisily: a generous time tolerance leaves the verdicts to the quality figures
    status, out, err = run_gate(capsys, "base-head", "HEAD", "--repo", fake_repo, "--keep-json", kept,
                                "--markdown", md, "--tolerance", "10")
    assert status == 1, out + err
    assert verdict_of(out, "test_work").endswith(" WORSE QUALITY")
    assert verdict_of(out, "test_steady").endswith(" ok")
    base = json.loads((kept / "base.json").read_text())["benchmarks"][0]["extra_info"]
    head = json.loads((kept / "head.json").read_text())["benchmarks"][0]["extra_info"]
    assert (base["quality"], head["quality"]) == (1.0, 2.0)
    # each imported from a staged copy of its own tree, laid out as installed
    assert base["kernels_file"].endswith(os.path.join("base-site", "fakepkg", "kernels", "__init__.py"))
    assert head["kernels_file"].endswith(os.path.join("head-site", "fakepkg", "kernels", "__init__.py"))
    assert "uncommitted changes" in md.read_text()
    assert len(_worktrees(fake_repo)) == 1
    assert not os.path.exists(base["kernels_file"])  # temporary copies removed


def test_base_head_unusable_base(fake_repo, capsys):
    status, _, err = run_gate(capsys, "base-head", "no-such-ref", "--repo", fake_repo)
    assert status == 2 and "'no-such-ref' is not a commit" in err
    # the first commit has no benchmarks: the base run writes nothing, the worktree still goes
    status, _, err = run_gate(capsys, "base-head", "HEAD~1", "--repo", fake_repo)
    assert status == 2 and "base" in err and "wrote no results" in err
    assert len(_worktrees(fake_repo)) == 1


def test_import_check_catches_a_tree_laid_out_wrong(fake_repo, tmp_path):
    """PYTHONPATH at src/ alone: fakepkg.kernels is not under src/fakepkg, so the check stops."""
    env = dict(os.environ, PYTHONPATH=str(fake_repo / "src"))
    with pytest.raises(gate.GateError, match="cannot import fakepkg"):
        gate.check_imports(sys.executable, str(fake_repo), env, ["fakepkg", "fakepkg.kernels"], str(tmp_path))
    with pytest.raises(gate.GateError, match="not from the tree under test"):
        gate.check_imports(sys.executable, str(fake_repo), env, ["fakepkg"], str(tmp_path / "elsewhere"))


def test_package_dirs_without_tomllib(fake_repo, monkeypatch):
    expected = {"fakepkg": "src/fakepkg", "fakepkg.kernels": "kernels"}
    assert gate.package_dirs(str(fake_repo)) == expected
    monkeypatch.setitem(sys.modules, "tomllib", None)  # as on Python 3.10
    assert gate.package_dirs(str(fake_repo)) == expected
