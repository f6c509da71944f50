"""Compile every Numba kernel ahead of time, and tell whether the cache is warm.

With caching on (the default), compiled kernels are written to the Numba cache: next to the
installed package, or below ``NUMBA_CACHE_DIR``. Run ``segmint warmup`` (or
``segmint.warmup()``) once when building a container image, with ``NUMBA_CACHE_DIR`` pointing
at a folder kept in the image, and later processes start warm. :func:`warmup` also records
which kernel signatures it compiled (``segmint-warmup.json`` beside the cache), so that
:func:`cache_status` (``segmint warmup --check``) can tell, without compiling anything,
whether each of them would load from the cache here.

How a cached kernel is found (Numba's ``numba.core.caching``): each ``cache=True`` kernel
has an index file ``<module>.<name>-<line>.py<XY>.nbi`` in the cache folder, holding Numba's
version, the source file's stamp (modification time and size) and a mapping from a key to a
data file ``....<n>.nbc``. The key is the argument types, the machine (target triple, CPU
name and features: ``codegen.magic_tuple()``) and hashes of the function's bytecode and
closure. An index of another Numba version or of a changed source file counts as empty; a
key of another CPU or of other bytecode does not match. :func:`cache_status` reads those
index files and computes the same keys, which is all that loading does before it reads the
data file.
"""
import contextlib
import gc
import json
import os
import warnings
from typing import NamedTuple

import numpy as np

MANIFEST = "segmint-warmup.json"


def _warm_rules():
    """The rule VM and its loaders for the column types customer tables usually hold."""
    import pyarrow as pa

    from .rules import RuleSet

    n = 200
    idx = np.arange(n)
    table = pa.table({
        "i8": pa.array((idx % 100).astype(np.int8)), "i16": pa.array((idx % 90).astype(np.int16)),
        "i32": pa.array(idx.astype(np.int32), mask=idx % 7 == 0), "i64": pa.array(idx.astype(np.int64)),
        "u8": pa.array((idx % 200).astype(np.uint8)), "f32": pa.array(idx.astype(np.float32)),
        "f64": pa.array(idx / 3.0), "flag": pa.array(idx % 2 == 0, mask=idx % 5 == 0),
        "day": pa.array((19_000 + idx).astype(np.int32)).cast(pa.date32()),
        "ts": pa.array(idx.astype(np.int64) * 10**6).cast(pa.timestamp("us", tz="UTC")),
        "small": pa.array(["a", "b", None, "c"] * (n // 4)).dictionary_encode(),
        "large": pa.array([f"v{i}" for i in idx]),
    })
    rules = [("a", "i8 > 3 and i16 < 50 and i32 >= 1 and i64 != 5 and u8 <= 9"),
             ("b", "(f32 + f64) / 2 > 10 or coalesce(i32, 0) = 0 or abs(-f64) between 1 and 2"),
             ("c", "flag and days_since(day) > 30 and within_last(ts, 90d) and i32 is not null"),
             ("d", "small in ('a', 'b') or starts_with(large, 'v1') or not segment('a')"),
             # comparisons with a constant run in one pass per column (the bit-plane kernels:
             # column_planes for every type, read as bytes; integer_planes for int32/int64)
             ("e", "f32 < 5 and f64 >= 1 and day > date '2024-01-01' and ts <= timestamp '2026-01-01 00:00:00'"),
             ("f", "i8 + i16 + u8 > 3")]
    for mode in ("waterfall", "multi"):
        rs = RuleSet(rules, mode=mode)
        rs.evaluate(table, as_of="2026-01-01")
        rs.counts(table, as_of="2026-01-01")
    rs.evaluate(table, as_of="2026-01-01", memberships="bitmask")
    # one customer at a time (RuleSet.matches, the Scorer): one signature serves every rule set
    rs.record_evaluator(table.schema, as_of="2026-01-01").members(table.slice(0, 1).to_pylist()[0])


def _warm_layout_checks():
    """The offset checks every string column read from an IPC file passes (int32 and int64
    offsets), so that the first read of a file does not compile them."""
    import pyarrow as pa

    from .io.columns import check_layout

    for strings in (pa.array(["a", None, "bc"]), pa.array(["a", None, "bc"], pa.large_string())):
        check_layout(strings)
        check_layout(strings.dictionary_encode())


def _warm_pipeline():
    """Feature transforms, a Segmenter fit and score (float32 and float64), the Scorer."""
    import pyarrow as pa

    from .cluster import MiniBatchKMeans
    from .pipeline import Segmenter

    n = 300
    idx = np.arange(n)
    table = pa.table({
        "id": pa.array(idx.astype(np.int64)),
        "i64": pa.array(idx.astype(np.int64), mask=idx % 9 == 0), "i32": pa.array(idx.astype(np.int32)),
        "f32": pa.array((idx / 7).astype(np.float32)), "f64": pa.array(idx / 3.0, mask=idx % 11 == 0),
        "flag": pa.array(idx % 2 == 0), "region": pa.array(["a", "b", None, "c"] * (n // 4)).dictionary_encode(),
    })
    spec = [{"column": "i64", "impute": "median", "indicator": True, "log1p": True, "clip": [0.01, 0.99]},
            {"column": "i32", "scale": "robust"}, {"column": "f32", "impute": "median"},  # float32 samples
            {"column": "f64", "impute": 0.0},
            {"column": "region", "one_hot": True}]
    for dtype in (np.float32, np.float64):
        model = Segmenter(spec, clusterer=MiniBatchKMeans(n_clusters=3, random_state=0, max_iter=2),
                          rules={"odd": "not flag"}, id_column="id", dtype=dtype).fit(table)
        model.score(table)
        _warm_scorer(model, table)


def _warm_events():
    """Event aggregation and the BTYD summary over int64, string and dictionary customer ids."""
    import datetime as dt

    import pyarrow as pa

    from .events import aggregate, btyd_summary

    n = 300
    idx = np.arange(n)
    as_of = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    events = pa.table({"customer_id": pa.array(idx % 17), "ts": pa.array(
        (1_760_000_000 + idx * 3600) * 10**6).cast(pa.timestamp("us", tz="UTC")),
        "event_type": pa.array(["purchase", "view"] * (n // 2)).dictionary_encode(),
        "amount": pa.array(idx * 1.5)})
    # string ids are numbered by kernels (segmint.kernels.string_ids): plain, large and dictionary
    # strings, dictionaries with int8 and int32 indices, each its own specialisation
    many = pa.array([f"c{i}" for i in idx])
    # the last: sparse ids (hash mode)
    id_columns = (events.column(0), many, many.cast(pa.large_string()), many.dictionary_encode(),
                  pa.DictionaryArray.from_arrays(pa.array(idx % 100, pa.int8()), many[:100]),
                  pa.array(idx * 10**12))
    for column in id_columns:
        ids = events.set_column(0, "customer_id", column)
        aggregate(ids, amount="amount", event_type="event_type", qualifying="purchase", as_of=as_of,
                  windows={"n": {"last": "30d", "type": "purchase"}, "s": {"agg": "sum", "last": "9d"}})
        btyd_summary(ids, amount="amount", event_type="event_type", qualifying="purchase", as_of=as_of)
    # a stream whose ids start dense and turn sparse moves its state into hash mode (a table or a
    # mapped file is scanned for its id range first and never does)
    sparse_later = events.set_column(0, "customer_id", pa.array(np.where(idx < n // 2, idx % 17, idx * 10**12)))
    aggregate(pa.RecordBatchReader.from_batches(sparse_later.schema, sparse_later.to_batches(max_chunksize=n // 2)),
              amount="amount", as_of=as_of, batch_size=n // 2)
    from .kernels import string_ids
    # a table's growth: compiled here as every string-id table may need it once it fills
    string_ids.grow_cells(np.zeros((256, 8, 4), np.int64), np.zeros(256, np.int64), np.full((256, 32), -1, np.int64))
    # the same for the event hash tables (customers and window pairs): the few customers above
    # never fill them, thousands do
    from .kernels import aggregate as _agg
    _agg.grow_tables(np.full((_agg.N_PART, 2, 2), -1, np.int64), np.zeros(_agg.N_PART, np.int64),
                     np.full((_agg.N_PART, 4, 2), -1, np.int64))
    _agg.grow_pairs(np.full((_agg.N_PART, 2), -1, np.int64), np.full((_agg.N_PART, 4), -1, np.int64))
    # the two-thread sort of 65,536+ customer ids merges its halves
    _agg.merge_order(np.arange(4), np.arange(2), np.arange(2, 4), np.empty(4, np.int64))


def _warm_scorer(model, table):
    """One customer at a time: the Scorer of a Segmenter (its record kernel for the model's
    dtype, the rules' record evaluator) and a rule set's ``matches``, on records with nulls and
    an unseen category."""
    records = table.slice(0, 4).to_pylist()
    records[1] = dict(records[1], region="never seen", i64=None)
    scorer = model.scorer()
    for record in records:
        scorer.score_one(record)
    scorer.score_many(records)
    for record in records:
        model.rules_.matches(record, as_of="2026-01-01")


def _explain_table():
    """The small table the explain parts profile and validate."""
    import pyarrow as pa

    n = 240
    idx = np.arange(n)
    table = pa.table({
        "id": pa.array(idx.astype(np.int64)), "seg": pa.array(["a", "b", "c"] * (n // 3)),
        "i64": pa.array(idx.astype(np.int64), mask=idx % 9 == 0), "i32": pa.array(idx.astype(np.int32)),
        "f32": pa.array((idx / 7).astype(np.float32)), "f64": pa.array(idx / 3.0, mask=idx % 11 == 0),
        "flag": pa.array(idx % 2 == 0), "region": pa.array(["a", "b", None, "c"] * (n // 4)).dictionary_encode(),
        "channel": pa.array(["web", "app"] * (n // 2)),  # a category without nulls: its own specialisation
    })
    return table


def _warm_explain():
    """Profiles: every column kind, codes and memberships."""
    from .explain import profile
    from .rules import RuleSet

    table = _explain_table()
    profile(table, segments="seg", id_column="id", revenue="f64", reachable="flag")
    profile(table, segments="seg", batch_size=100)  # a row block cut by batch edges: the passes by parts
    profile(table, segments=RuleSet({"x": "i32 > 10", "y": "f32 < 20"}, mode="multi"), id_column="id")


def _warm_validation():
    """Validation and a small k sweep (their own part: it balances the warm-up's processes)."""
    from .explain import sweep_k, validate

    table = _explain_table()
    validate(table, segments="seg", id_column="id", reachable="flag")
    sweep_k(table, features=["i32", "f32"], ks=[2, 3], n_seeds=2, sample_size=60, n_bootstrap=10)
    # silhouettes row by row: what sweep_k runs when many clusters meet a large sample
    from .kernels.metrics import silhouette_rows
    silhouette_rows(np.zeros((2, 4)), np.array([0, 2, 4], np.int64), 0, 4, np.empty(4))


def _warm_distributed():
    """The kernels segmint.dask runs on workers and nothing local does: the label digest of the
    fit's strict convergence, the event buckets and their in-order fold (plain kernels: no dask
    import here, so ``segmint warmup`` builds them into an image's cache too)."""
    from .kernels import aggregate as _agg
    from .kernels import bucket as _bucket
    from .kernels.hashing import labels_digest

    labels_digest(np.zeros(5, np.int32), np.empty(2, np.uint64))
    out = np.empty(1, np.int32)
    _bucket.int_buckets(np.zeros(1, np.int64), 2, out)
    _bucket.string_buckets(np.zeros(2, np.int64), np.zeros(0, np.uint8), 2, out)
    _bucket.string_buckets(np.zeros(2, np.int32), np.zeros(0, np.uint8), 2, out)
    starts = np.array([0, 1], np.int64)
    _bucket.fold_partials(starts, np.zeros((1, _agg.N_ISTATE), np.int64), np.zeros((1, 1)),
                          np.empty((1, _agg.N_ISTATE), np.int64), np.empty((1, 1)), _agg.I_COUNT,
                          _agg.I_AMOUNT_N, _agg.I_FIRST, _agg.I_LAST, _agg.I_FIRST_Q, _agg.I_LAST_Q)
    _bucket.fold_first_period(starts, np.zeros(1, np.int64), np.zeros(1), np.empty(1, np.int64), np.empty(1))


def _warm_monitor():
    """Drift (migration over dense, scattered and string ids; feature and segment-share PSI)
    and a refit."""
    import pyarrow as pa

    from .cluster import MiniBatchKMeans
    from .monitor.compare import drift
    from .pipeline import Segmenter

    n = 240
    idx = np.arange(n)
    table = pa.table({
        "id": pa.array(idx.astype(np.int64)), "i32": pa.array(idx.astype(np.int32)),
        "f32": pa.array((idx / 7).astype(np.float32)), "f64": pa.array(idx / 3.0, mask=idx % 11 == 0),
        "flag": pa.array(idx % 2 == 0), "region": pa.array(["a", "b", None, "c"] * (n // 4)).dictionary_encode(),
    })
    model = Segmenter(["i32", "f32", {"column": "f64", "impute": 0.0}, "flag",
                       {"column": "region", "one_hot": True}],
                      clusterer=MiniBatchKMeans(n_clusters=3, random_state=0, max_iter=2), id_column="id").fit(table)
    names = pa.array(["a", "b", "c"] * (n // 3)).dictionary_encode()
    scattered = (idx.astype(np.int64) + 1) * 0x1F3A5B7C9D1E3F5 - (1 << 61)  # far apart: hash partitions
    for ids in (pa.array(idx.astype(np.int64)), pa.array(scattered), pa.array([f"c{i}" for i in idx])):
        previous = pa.table({"id": ids, "segment": names})
        current = pa.table({"id": ids, "segment": names.take(pa.array(np.roll(idx, 1)))})
        drift(current, previous=previous, id_column="id")
    named = pa.array(model.segment_names_).take(pa.array(idx % len(model.segment_names_))).dictionary_encode()
    drift(table, model=model, previous=pa.table({"id": table["id"], "segment": named}))
    model.refit(table)


def _warm_clustering():
    """KMeans and MiniBatchKMeans, float32 and float64, on arrays and on columnar sources."""
    import pyarrow as pa

    from .cluster import KMeans, MiniBatchKMeans

    rng = np.random.default_rng(0)
    for dtype in (np.float32, np.float64):
        X = rng.normal(size=(300, 5)).astype(dtype)
        w = np.ones(300)
        table = pa.table({f"x{j}": X[:, j] for j in range(X.shape[1])})
        for data in (X, table):
            km = KMeans(n_clusters=3, random_state=0, max_iter=3).fit(data, sample_weight=w)
            km.predict(data)
            km.transform(data)
            km.score(data)
            mb = MiniBatchKMeans(n_clusters=3, random_state=0, batch_size=64, max_iter=2).fit(data)
            mb.predict(data)
        MiniBatchKMeans(n_clusters=3, random_state=0).partial_fit(X)
        # an empty cluster (duplicate rows) relocates a center: KMeans, and the default
        # MiniBatchKMeans's Lloyd refinement of its seedings on the init sample
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # ConvergenceWarning: fewer distinct rows than clusters
            KMeans(n_clusters=3, random_state=0, max_iter=3).fit(np.repeat(X[:2], 50, axis=0))
        # a Fortran-ordered array (a column-major frame's values): the kernels take its
        # C-ordered transpose (segmint.cluster._matrix.kernel_layout), so no kernel of its own
        MiniBatchKMeans(n_clusters=3, random_state=0, batch_size=64, max_iter=2).fit(np.asfortranarray(X))
    # float64 at 128 centers or more: screened in float32 (segmint.kernels.assign.assign_rows_screened)
    X = rng.normal(size=(300, 5))
    KMeans(n_clusters=128, init=X[:128], n_init=1, max_iter=1).fit(X).predict(X)


# Every part of the warm-up, in the order one process runs them.
PARTS = ("segmint._warmup:_warm_clustering", "segmint._warmup:_warm_rules",
         "segmint._warmup:_warm_layout_checks", "segmint._warmup:_warm_pipeline",
         "segmint._warmup:_warm_events", "segmint._warmup:_warm_explain", "segmint._warmup:_warm_validation",
         "segmint._warmup:_warm_monitor", "segmint._warmup:_warm_distributed")
# How a cold warm-up splits over two processes (Numba compiles one function at a time per
# process, under a global lock: threads cannot share the work, processes can): this process
# compiles the first share while a child compiles the second. A kernel both need is compiled
# by whichever gets there first; the other then loads it from the cache if it was written in
# the meantime (Numba looks there before compiling). So each share starts with what only it
# needs and ends with what it shares: the first share's profiles come when the second has
# cached the rule VM they evaluate segments with, the second share's validation and k sweeps
# when the first has cached the assignment kernels they fit models with.
# Measured (2026-12-01, cold, both at once, from a common start, imports included): the first
# share 17.4 s, the second 17.9 s (with profiles and validation both in the second: 15.8 and
# 19.3 s).
SHARES = (("segmint._warmup:_warm_clustering", "segmint._warmup:_warm_pipeline",
           "segmint._warmup:_warm_monitor", "segmint._warmup:_warm_layout_checks",
           "segmint._warmup:_warm_distributed", "segmint._warmup:_warm_explain"),
          ("segmint._warmup:_warm_rules", "segmint._warmup:_warm_events", "segmint._warmup:_warm_validation"))


# Python's cyclic garbage collector during a cold warm-up: Numba's compiler makes millions of
# short-lived objects (IR, types, LLVM wrappers) while its caches keep ~500,000 alive, so with
# the default thresholds (700, 10, 10) the full collections, each a walk over everything alive,
# ran 27 times for ~150 ms each: 4.5 s of a 31 s single-process warm-up (measured 2026-12-01).
# These thresholds run them ~10x less often (1.2 s in all, the same warm-up 26.2 s) for ~55 MB
# more at the peak (673 against 619 MB); the young generations are still collected often, so
# garbage does not pile up. (700, 10, 100): 27.9 s; collection off: 26.9 s but 986 MB.
_COMPILE_GC_THRESHOLDS = (5000, 20, 100)


@contextlib.contextmanager
def _fewer_collections():
    """Raise the garbage collector's thresholds while compiling, then put the caller's back.

    Thresholds already higher are kept; a collector switched off (``gc.disable()`` or a first
    threshold of 0) is left alone."""
    old = gc.get_threshold()
    if not gc.isenabled() or old[0] == 0:
        yield
        return
    gc.set_threshold(*(max(mine, theirs) for mine, theirs in zip(_COMPILE_GC_THRESHOLDS, old)))
    try:
        yield
    finally:
        gc.set_threshold(*old)


def _run_parts(parts):
    """Run warm-up parts given as ``"module:function"``."""
    import importlib

    with _fewer_collections():
        for part in parts:
            module, _, name = part.partition(":")
            getattr(importlib.import_module(module), name)()


def _start_children(shares):
    """Start one child process per non-empty share of warm-up parts, filling the Numba cache;
    return their handles.

    Only a head start: :func:`warmup` then runs every part itself (loading what the children
    cached, compiling whatever they did not: a child that failed, was killed, or lost a cache
    index entry to a race), so the result never depends on them.
    """
    import subprocess
    import sys

    import segmint

    script = ("import sys, segmint\n"
              "if segmint.__file__ != sys.argv[1]: sys.exit(3)  # another segmint: leave it to the parent\n"
              "from segmint._warmup import _run_parts\n"
              "_run_parts(sys.argv[2:])\n"
              "import os; os._exit(0)  # the cache is written: skip the ~0.9 s teardown the parent waits on\n")
    return [subprocess.Popen([sys.executable, "-c", script, segmint.__file__, *share],
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL) for share in shares if share]


def _wait_children(children, timeout=900.0):
    """Wait for the children (killing one that outlives ``timeout`` seconds); return how many
    ended well."""
    import subprocess

    ok = 0
    for child in children:
        try:
            ok += child.wait(timeout=timeout) == 0
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
    return ok


def _compile_shares(shares):
    """Compile the first share here while children compile the others (a process fewer to
    start, and this process need not load back what it compiled itself); return the parts
    this process has run.

    Then, while the children finish their last parts, this process runs their earlier ones,
    which they cached long before: it loads them instead of waiting idle (measured: ~0.7 s of
    loading off the end of a cold warm-up). Should a child be behind, this process compiles
    what it finds missing itself, as after a failed child."""
    children = _start_children(shares[1:])
    early = tuple(part for share in shares[1:] for part in share[:-1])
    try:
        _run_parts(shares[0])
        _run_parts(early)
    except BaseException:
        for child in children:  # this process's error is the one to report: stop the head start
            child.kill()
        _wait_children(children)
        raise
    _wait_children(children)
    return tuple(shares[0]) + early


def warmup(verbose=False, n_jobs=None):
    """Compile the kernels: clustering for float32 and float64, arrays and columnar sources;
    the rule VM and its loaders for the usual column types; the layout checks of string columns
    read from files; feature transforms, Segmenter
    scoring and event aggregation; profiles, k sweeps and validation; drift and refits.

    Parameters
    ----------
    verbose : bool, default False
        Print the time taken.
    n_jobs : int, optional
        Processes compiling at once on a cold cache (Numba compiles one function at a time per
        process). None: segmint's thread count (:func:`segmint.get_num_threads`), at most 2;
        1: this process alone. Extra processes run only when kernels are cached (the default)
        and the cache is not already warm; this process then loads what they compiled.

    Returns
    -------
    float
        Seconds spent (mostly compiling on a cold cache, loading on a warm one).
    """
    import time

    from .kernels.settings import CACHE

    t0 = time.perf_counter()
    if n_jobs is None:
        from ._parallel import get_num_threads
        n_jobs = min(get_num_threads(), len(SHARES))
    if not isinstance(n_jobs, (int, np.integer)) or isinstance(n_jobs, bool) or n_jobs < 1:
        from .errors import ParameterError
        raise ParameterError(f"n_jobs must be a positive integer or None, got {n_jobs!r}")
    done = ()
    if CACHE and n_jobs > 1 and not cache_status().warm:
        done = _compile_shares(SHARES[:n_jobs])
    # every part here, whatever the children did: what they cached loads, anything they did not
    # compile (a child that failed or lost a cache index entry to a race) compiles now
    _run_parts([part for part in PARTS if part not in done])
    _write_manifest()
    elapsed = time.perf_counter() - t0
    if verbose:
        print(f"segmint kernels ready in {elapsed:.2f} s")
    return elapsed


class CacheStatus(NamedTuple):
    """What :func:`cache_status` found.

    Attributes
    ----------
    warm : bool
        The last :func:`warmup` here ran with this segmint version, recorded every cached
        kernel segmint has now, and each signature it compiled loads from the cache (nothing
        would compile).
    path : str
        The folder holding segmint's compiled kernels (below ``NUMBA_CACHE_DIR`` when set).
    expected : int
        Kernel signatures the last warm-up recorded (0 when none was recorded).
    missing : tuple of str
        Those not in the cache for this Numba, source, bytecode and CPU, as
        ``module.kernel(argument types)``; a kernel the warm-up did not record, as
        ``module.kernel (not warmed up)``; a kernel whose cache index cannot be read, as
        ``module.kernel (unreadable cache index <file>)``.
    reason : str
        One line saying why the cache is cold, or that it is warm.
    """
    warm: bool
    path: str
    expected: int
    missing: tuple
    reason: str


def cache_status():
    """Whether the Numba cache is warm, found without compiling anything.

    Reads the record the last :func:`warmup` left beside the cache (the segmint version, every
    cached kernel, the signatures it compiled) and checks that it is of this segmint version,
    that no kernel of this segmint is missing from it, and, for each signature, that Numba's
    cache index holds it for this Numba version, this source file, this bytecode and this CPU,
    and that its data file is there. Costs about the import of the kernel modules plus a few
    milliseconds of file reads. A damaged index file counts as cold, naming the file.

    Returns
    -------
    CacheStatus
        ``warm`` is False when caching is off (``SEGMINT_NUMBA_CACHE=0``), when no warm-up was
        recorded in this cache folder, when it was recorded by another segmint version or
        before a kernel was added, or when a recorded signature would compile.
    """
    import numba
    from numba.core.registry import cpu_target

    from . import __version__
    from .kernels.settings import CACHE

    dispatchers = _kernel_dispatchers()
    path = _cache_folder(dispatchers)
    if not CACHE:
        return CacheStatus(False, path, 0, (), "kernel caching is off (SEGMINT_NUMBA_CACHE=0): every "
                                               "process compiles the kernels it uses")
    try:
        with open(os.path.join(path, MANIFEST), encoding="utf-8") as f:
            manifest = json.load(f)
        recorded = manifest["kernels"]
        version = manifest.get("segmint")
        warmed = manifest.get("cached_kernels")
        if not isinstance(recorded, dict) or not isinstance(warmed, list):
            raise TypeError("not a segmint warm-up record of this format")
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return CacheStatus(False, path, 0, (), f"no warm-up recorded in {path}: run 'segmint warmup'")
    expected = sum(len(signatures) for signatures in recorded.values())
    if (version, manifest.get("numba")) != (__version__, numba.__version__):
        # new kernels or new signatures of old ones would compile: the record cannot tell
        return CacheStatus(False, path, expected, (), f"the last warm-up here was by segmint {version} with "
                                                      f"Numba {manifest.get('numba')}, this is segmint "
                                                      f"{__version__} with Numba {numba.__version__}: "
                                                      f"run 'segmint warmup'")
    codegen = cpu_target.target_context.codegen()
    # a kernel segmint has now that the warm-up did not know would compile at its first call
    warmed = set(warmed)
    missing = [f"{name} (not warmed up)" for name in dispatchers if name not in warmed]
    unreadable = []
    for name, signatures in recorded.items():
        dispatcher = dispatchers.get(name)
        try:
            have = set() if dispatcher is None else _cached_signatures(dispatcher, codegen)
        except Exception as exc:  # noqa: BLE001 - any damage to Numba's pickle: the kernel would compile
            index = getattr(getattr(dispatcher._cache, "_cache_file", None), "_index_path", "?")
            missing.append(f"{name} (unreadable cache index {index}: {type(exc).__name__})")
            unreadable.append(index)
            continue
        missing.extend(f"{name}{sig}" for sig in signatures if sig not in have)
    if unreadable:
        more = f" and {len(unreadable) - 1} more" if len(unreadable) > 1 else ""
        reason = (f"unreadable cache index {unreadable[0]}{more} (damaged?): delete it and run "
                  f"'segmint warmup'")
    elif missing:
        reason = (f"{len(missing)} kernel signatures or kernels would compile (cache of another Numba or "
                  f"CPU, files removed, or kernels not warmed up): run 'segmint warmup'")
    else:
        reason = f"all {expected} kernel signatures of the last warm-up load from the cache"
    return CacheStatus(not missing, path, expected, tuple(missing), reason)


def is_cached(dispatcher, argtypes):
    """Whether calling ``dispatcher`` with arguments of these Numba types would load it from
    the cache rather than compile it (True also when this process already has it).

    Parameters
    ----------
    dispatcher : numba Dispatcher
        A segmint kernel.
    argtypes : tuple of numba types
        As ``tuple(numba.typeof(a) for a in args)``.

    Returns
    -------
    bool
    """
    from numba.core.registry import cpu_target

    argtypes = tuple(argtypes)
    if argtypes in dispatcher.overloads:
        return True
    if not _caches(dispatcher):
        return False
    try:
        return str(argtypes) in _cached_signatures(dispatcher, cpu_target.target_context.codegen())
    except Exception:  # noqa: BLE001 - a damaged index: Numba would compile (and overwrite it)
        return False


def _caches(dispatcher):
    from numba.core.caching import Cache
    return isinstance(getattr(dispatcher, "_cache", None), Cache)


def _cached_signatures(dispatcher, codegen):
    """The argument types (as text) that ``dispatcher`` would load from the cache here."""
    cache = dispatcher._cache
    index = cache._cache_file._load_index()  # {} when missing, stale or of another Numba
    _, machine, code = cache._index_key((), codegen)
    return {str(sig) for (sig, key_machine, key_code), data in index.items()
            if key_machine == machine and key_code == code
            and os.path.exists(os.path.join(cache.cache_path, data))}


def _kernel_dispatchers():
    """``{"module.kernel": dispatcher}`` of every cached kernel in ``segmint.kernels``."""
    import importlib
    import pkgutil

    from numba.core.dispatcher import Dispatcher

    from . import kernels

    found = {}
    for info in pkgutil.iter_modules(kernels.__path__):
        module = importlib.import_module(f"{kernels.__name__}.{info.name}")
        for attr, value in vars(module).items():
            if isinstance(value, Dispatcher) and value.py_func.__module__ == module.__name__:
                found[f"{info.name}.{value.py_func.__name__}"] = value
    return {name: d for name, d in sorted(found.items()) if _caches(d)}


def _cache_folder(dispatchers):
    """Where Numba keeps segmint's compiled kernels (one folder: they share a package)."""
    for dispatcher in dispatchers.values():
        return dispatcher._cache.cache_path
    from . import kernels
    return os.path.join(os.environ.get("NUMBA_CACHE_DIR") or kernels.__path__[0], "__pycache__")


def _write_manifest():
    """Record, beside the cache, the kernel signatures this process compiled or loaded (all of
    them in the cache now), for :func:`cache_status`. Written whole or not at all."""
    from .kernels.settings import CACHE

    if not CACHE:
        return None
    dispatchers = _kernel_dispatchers()
    kernels = {name: sorted(str(sig) for sig in d.signatures) for name, d in dispatchers.items() if d.signatures}
    path = os.path.join(_cache_folder(dispatchers), MANIFEST)
    import numba
    from . import __version__
    # the version and every cached kernel's name: cache_status calls a cache cold when either
    # changed (a kernel added or changed by an upgrade would compile even with all the
    # recorded signatures in place)
    text = json.dumps({"format": "segmint-warmup", "segmint": __version__, "numba": numba.__version__,
                       "cached_kernels": sorted(dispatchers), "kernels": kernels}, indent=1)
    from .errors import OutputError
    from .io.writers import write_text

    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        write_text(path, text)  # atomic: whole or not at all
    except (OSError, OutputError):  # a read-only install: the cache itself could not be written either
        return None
    return path
