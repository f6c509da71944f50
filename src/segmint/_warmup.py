"""Compile every Numba kernel ahead of time.

With caching on (the default), compiled kernels are written to the Numba cache: next to the
installed package, or below ``NUMBA_CACHE_DIR``. Run ``segmint.warmup()`` (or
``python -c "import segmint; segmint.warmup()"``) once when building a container image, with
``NUMBA_CACHE_DIR`` pointing at a folder kept in the image, and later processes start warm.
"""
import numpy as np


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
             ("d", "small in ('a', 'b') or starts_with(large, 'v1') or not segment('a')")]
    for mode in ("waterfall", "multi"):
        rs = RuleSet(rules, mode=mode)
        rs.evaluate(table, as_of="2026-01-01")
        rs.counts(table, as_of="2026-01-01")
    rs.evaluate(table, as_of="2026-01-01", memberships="bitmask")


def _warm_layout_checks():
    """The offset checks every string column read from an IPC file passes (int32 and int64
    offsets), so that the first read of a file does not compile them."""
    import pyarrow as pa

    from .io.columns import check_layout

    for strings in (pa.array(["a", None, "bc"]), pa.array(["a", None, "bc"], pa.large_string())):
        check_layout(strings)
        check_layout(strings.dictionary_encode())


def _warm_pipeline():
    """Feature transforms, a Segmenter fit and score (float32 and float64), event aggregation."""
    import datetime as dt

    import pyarrow as pa

    from .cluster import MiniBatchKMeans
    from .events import aggregate, btyd_summary
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
            {"column": "i32", "scale": "robust"}, "f32", {"column": "f64", "impute": 0.0},
            {"column": "region", "one_hot": True}]
    for dtype in (np.float32, np.float64):
        model = Segmenter(spec, clusterer=MiniBatchKMeans(n_clusters=3, random_state=0, max_iter=2),
                          rules={"odd": "not flag"}, id_column="id", dtype=dtype).fit(table)
        model.score(table)
    as_of = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    events = pa.table({"customer_id": pa.array(idx % 17), "ts": pa.array(
        (1_760_000_000 + idx * 3600) * 10**6).cast(pa.timestamp("us", tz="UTC")),
        "event_type": pa.array(["purchase", "view"] * (n // 2)).dictionary_encode(),
        "amount": pa.array(idx * 1.5)})
    for ids in (events, events.set_column(0, "customer_id", events.column(0).cast(pa.string()))):
        aggregate(ids, amount="amount", event_type="event_type", qualifying="purchase", as_of=as_of,
                  windows={"n": {"last": "30d", "type": "purchase"}, "s": {"agg": "sum", "last": "9d"}})
        btyd_summary(ids, amount="amount", event_type="event_type", qualifying="purchase", as_of=as_of)


def _warm_explain():
    """Profiles (every column kind, codes and memberships), a small k sweep, validation."""
    import pyarrow as pa

    from .explain import profile, sweep_k, validate
    from .rules import RuleSet

    n = 240
    idx = np.arange(n)
    table = pa.table({
        "id": pa.array(idx.astype(np.int64)), "seg": pa.array(["a", "b", "c"] * (n // 3)),
        "i64": pa.array(idx.astype(np.int64), mask=idx % 9 == 0), "i32": pa.array(idx.astype(np.int32)),
        "f32": pa.array((idx / 7).astype(np.float32)), "f64": pa.array(idx / 3.0, mask=idx % 11 == 0),
        "flag": pa.array(idx % 2 == 0), "region": pa.array(["a", "b", None, "c"] * (n // 4)).dictionary_encode(),
    })
    profile(table, segments="seg", id_column="id", revenue="f64", reachable="flag")
    profile(table, segments=RuleSet({"x": "i32 > 10", "y": "f32 < 20"}, mode="multi"), id_column="id")
    validate(table, segments="seg", id_column="id", reachable="flag")
    sweep_k(table, features=["i32", "f32"], ks=[2, 3], n_seeds=2, sample_size=60, n_bootstrap=10)


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


def warmup(verbose=False):
    """Compile the kernels: clustering for float32 and float64, arrays and columnar sources;
    the rule VM and its loaders for the usual column types; the layout checks of string columns
    read from files; feature transforms, Segmenter
    scoring and event aggregation; profiles, k sweeps and validation; drift and refits.

    Returns
    -------
    float
        Seconds spent (mostly compiling on a cold cache, loading on a warm one).
    """
    import time

    import pyarrow as pa

    from .cluster import KMeans, MiniBatchKMeans

    t0 = time.perf_counter()
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
    _warm_rules()
    _warm_layout_checks()
    _warm_pipeline()
    _warm_explain()
    _warm_monitor()
    elapsed = time.perf_counter() - t0
    if verbose:
        print(f"segmint kernels ready in {elapsed:.2f} s")
    return elapsed
