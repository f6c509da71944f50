"""Benchmark options, shared data and the conventions every benchmark follows.

``--size small`` (default: CI smoke runs, seconds), ``medium`` (1M customers) or ``large``
(10M customers: the figures the issues quote). Data are generated once per session into a
temporary folder; compilation and data generation happen outside the timed region.

Conventions (``scripts/compare_peers.py`` and ``scripts/bench_gate.py`` read them from the
``extra_info`` of pytest-benchmark's JSON; a benchmark that breaks them fails, also in the
untimed run the test suite makes):

- **Pairing.** Call :func:`compare` before timing: ``compare(benchmark, "assign[k=8,float32]",
  impl="sklearn")``. Every benchmark of one group does the same work on the same data;
  ``impl`` says whose code runs: ``"segmint"`` for ours (the reference of the group), or the
  peer's name, ``"sklearn"``, ``"faiss"``, ``"duckdb"``, ``"polars"``, ``"pyarrow"``, with a
  ``.variant`` suffix when one library brings two (``"sklearn.KMeans"``). The group is also
  pytest-benchmark's own group, so its terminal tables already put peers side by side.
  Peer benchmarks are named ``test_peer_<impl>_...`` so ``-k "not peer"`` leaves them out.
- **Quality.** Call :func:`record` after timing with ``quality=(name, value, better)``:
  ``better`` is ``"lower"`` (inertia, potential), ``"higher"`` (label agreement) or
  ``"equal"`` (exact results such as rows matched, where any change is a bug). It lands in
  ``extra_info`` as ``quality_name``, ``quality`` and ``quality_better``. Compute it from a
  result whose work does not depend on how many rounds the timer ran, so two runs of the
  same code give the same figure.
  A figure that depends on a seed (the inertia of a fit) is never taken from one seed: pass
  the values over :data:`SEEDS` (``quality=(name, [v0, ..., v4], better)``); the median becomes
  ``quality`` and the worst ``quality_worst``, with ``quality_runs`` and ``quality_values``. The
  timed work stays one fit of seed 0; the other seeds are fitted untimed.
- **Threads.** Every implementation runs with segmint's thread count (:data:`THREADS`): DuckDB
  through ``SET threads``, Polars through ``POLARS_MAX_THREADS`` (set below, before anything
  imports polars), faiss through ``omp_set_num_threads``, scikit-learn and its BLAS through
  threadpoolctl (:func:`sklearn_threads`), pyarrow through ``set_cpu_count``. Each benchmark's
  ``extra_info["threads"]`` is the count its timed code ran with, as read back from the tool:
  :func:`compare` records ours; peers pass the count the helpers below return.
- **Size.** Every benchmark's ``extra_info["size"]`` is the ``--size`` it ran at (set here;
  ``rows=N`` when ``--rows N`` chose the row count instead), so the gate can refuse to compare
  runs of different sizes.
"""
import contextlib
import math
import os
import statistics
import tempfile

import numpy as np
import pytest

import segmint

SIZES = {"small": 100_000, "medium": 1_000_000, "large": 10_000_000}
BETTER = ("lower", "higher", "equal")
OURS = "segmint"
SEEDS = tuple(range(5))  # quality of seeded work: median and worst over these, never one seed

# Every peer gets segmint's thread count. Polars sizes its pool once, when it is first
# imported, so the variable must be set before any benchmark module imports polars.
THREADS = segmint.get_num_threads()
os.environ["POLARS_MAX_THREADS"] = str(THREADS)


def pytest_addoption(parser):
    parser.addoption("--size", choices=sorted(SIZES), default="small",
                     help="benchmark data size: small (CI), medium (1M rows), large (10M rows)")
    parser.addoption("--rows", type=int, default=None,
                     help="rows (customers) instead of --size's count, e.g. 2000000 for issue #18's 2M")


@pytest.fixture(scope="session")
def n_customers(request):
    rows = request.config.getoption("--rows")
    return rows if rows is not None else SIZES[request.config.getoption("--size")]


@pytest.fixture(scope="session")
def bench_dir():
    with tempfile.TemporaryDirectory(prefix="segmint-bench-") as folder:
        yield folder


@pytest.fixture(scope="session")
def customers_files(bench_dir, n_customers):
    """The synthetic customer base as an uncompressed IPC file and a Parquet file."""
    import segmint

    ipc_path = os.path.join(bench_dir, "customers.arrow")
    parquet_path = os.path.join(bench_dir, "customers.parquet")
    segmint.write_customers(ipc_path, n_customers, random_state=0)
    segmint.write_customers(parquet_path, n_customers, random_state=0)
    return {"ipc": ipc_path, "parquet": parquet_path}


# -- the conventions ----------------------------------------------------------------------------
def compare(benchmark, group, impl=OURS, threads=None):
    """Declare the comparison this benchmark belongs to and whose code it times.

    Call it before ``benchmark(...)``: pytest-benchmark copies the group when timing starts.

    Parameters
    ----------
    benchmark : pytest-benchmark fixture
    group : str
        The comparison, including what fixes its work, e.g. ``"assign[k=64,float64]"``.
    impl : str
        ``"segmint"`` for ours, else the peer (``"sklearn"``, ``"faiss.Kmeans"``, ...).
    threads : int, optional
        The threads the timed code runs with. Ours: segmint's current count when omitted.
        Peers must pass the count read back from their tool (the helpers below return it).
    """
    benchmark.group = group
    benchmark.extra_info.update(group=group, impl=impl)
    if threads is None and impl.split(".")[0] == OURS:
        threads = segmint.get_num_threads()
    if threads is not None:
        benchmark.extra_info["threads"] = int(threads)


def record(benchmark, quality=None, **info):
    """Put the quality figure, and any other figures and sizes, beside the time.

    Parameters
    ----------
    benchmark : pytest-benchmark fixture
    quality : tuple (name, value, better), optional
        ``better`` is one of ``"lower"``, ``"higher"``, ``"equal"``; ``value`` a finite
        number, or a sequence of them (one per seed of :data:`SEEDS`): then ``quality`` is
        their median and ``quality_worst`` the worst of them (highest for ``"lower"``).
    **info
        More figures for ``extra_info`` (JSON-serialisable).
    """
    if quality is not None:
        name, value, better = quality
        benchmark.extra_info.update(quality_name=str(name), quality_better=better)
        if np.ndim(value) == 0:
            benchmark.extra_info["quality"] = _number(value)
        else:
            values = [_number(v) for v in value]
            worst = min(values) if better == "higher" else max(values)
            benchmark.extra_info.update(quality=_number(statistics.median(values)), quality_worst=worst,
                                        quality_runs=len(values), quality_values=values)
    benchmark.extra_info.update(info)


# -- peers on segmint's thread count --------------------------------------------------------------
def duckdb_connection():
    """A DuckDB connection on :data:`THREADS` threads, and the count DuckDB reports back."""
    duckdb = pytest.importorskip("duckdb")
    con = duckdb.connect()
    con.execute(f"SET threads TO {THREADS}")
    return con, int(con.sql("SELECT current_setting('threads')").fetchall()[0][0])


def polars_threads():
    """polars and the size of its thread pool (POLARS_MAX_THREADS, set at the top of this file)."""
    pl = pytest.importorskip("polars")
    return pl, int(pl.thread_pool_size())


def faiss_threads():
    """faiss with its OpenMP pool set to :data:`THREADS`, and the count it reports back."""
    faiss = pytest.importorskip("faiss")
    faiss.omp_set_num_threads(THREADS)
    return faiss, int(faiss.omp_get_max_threads())


@contextlib.contextmanager
def sklearn_threads():
    """Limit scikit-learn's OpenMP and BLAS pools to :data:`THREADS`; yields the largest pool.

    Enter it around ``benchmark(...)``, not inside the timed function: threadpoolctl inspects
    the loaded libraries on entry, which costs milliseconds.
    """
    threadpoolctl = pytest.importorskip("threadpoolctl")
    with threadpoolctl.threadpool_limits(limits=THREADS):
        pools = [lib["num_threads"] for lib in threadpoolctl.threadpool_info()]
        yield max(pools, default=THREADS)


def pyarrow_threads():
    """pyarrow with its CPU pool set to :data:`THREADS`, and the count it reports back."""
    import pyarrow as pa
    pa.set_cpu_count(THREADS)
    return int(pa.cpu_count())


def _number(value):
    if isinstance(value, (bool, np.bool_)):
        return int(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    return float(value)


def convention_problems(info):
    """What in a benchmark's ``extra_info`` breaks the conventions above (empty list: nothing)."""
    problems = []
    missing = [key for key in ("group", "impl") if not isinstance(info.get(key), str) or not info.get(key)]
    if missing:
        problems.append(f"no {' or '.join(map(repr, missing))}: call compare(benchmark, group, impl=...) "
                        "before timing")
    threads = info.get("threads")
    if not isinstance(threads, int) or isinstance(threads, bool) or threads < 1:
        problems.append("no thread count: peers pass compare(..., threads=n) as read back from "
                        "their tool (duckdb_connection, polars_threads, faiss_threads, sklearn_threads)")
    if "quality" not in info:
        problems.append("no quality figure: call record(benchmark, quality=(name, value, better))")
    else:
        value = info["quality"]
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
            problems.append(f"quality must be a finite number, got {value!r}")
        if info.get("quality_better") not in BETTER:
            problems.append(f"quality_better must be one of {BETTER}, got {info.get('quality_better')!r}")
        if not info.get("quality_name"):
            problems.append("quality_name is empty")
        worst = info.get("quality_worst")
        if "quality_worst" in info and (not isinstance(worst, (int, float)) or isinstance(worst, bool)
                                        or not math.isfinite(worst)):
            problems.append(f"quality_worst must be a finite number, got {worst!r}")
    return problems


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    # Checked on every passing benchmark, so the untimed CI run keeps the JSON readable by
    # the comparison scripts, not only the timed runs nobody makes on every commit.
    fixture = getattr(item, "funcargs", {}).get("benchmark")
    if fixture is not None:
        # the gate refuses to compare runs of different sizes, and the tables name the size
        rows = item.config.getoption("--rows")
        fixture.extra_info["size"] = item.config.getoption("--size") if rows is None else f"rows={rows}"
    result = yield
    if fixture is not None:
        problems = convention_problems(fixture.extra_info)
        if problems:
            raise AssertionError(f"{item.nodeid} breaks the benchmark conventions "
                                 f"(benchmarks/conftest.py): " + "; ".join(problems))
    return result


# -- exact reference figures --------------------------------------------------------------------
def nearest_float64(X, centers, block=1 << 22):
    """Nearest center and squared distance of every row, in float64 (the reference).

    Parameters
    ----------
    X : (n, d) array, any float dtype
    centers : (k, d) array
    block : int, distance-matrix entries per block (bounds the scratch memory)

    Returns
    -------
    labels : (n,) int64
    dist : (n,) float64
    """
    C = np.asarray(centers, dtype=np.float64)
    cn = np.einsum("ij,ij->i", C, C)
    n = X.shape[0]
    labels = np.empty(n, dtype=np.int64)
    dist = np.empty(n, dtype=np.float64)
    step = max(1, block // max(1, C.shape[0]))
    for lo in range(0, n, step):
        x = np.asarray(X[lo:lo + step], dtype=np.float64)
        d2 = x @ (-2.0 * C.T)
        d2 += cn
        lab = np.argmin(d2, axis=1)
        labels[lo:lo + step] = lab
        dist[lo:lo + step] = np.maximum(d2[np.arange(len(x)), lab] + np.einsum("ij,ij->i", x, x), 0.0)
    return labels, dist


def inertia_float64(X, centers):
    """Sum of squared distances of the rows of X to their nearest center, in float64."""
    return float(nearest_float64(X, centers)[1].sum())
