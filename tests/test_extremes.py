"""Events, clustering and parameters at their extremes: huge ids, times and values, absurd
arguments. Every case ends in a correct result or in a segmint error naming the problem,
never in a raw exception, a silent overflow or an allocation sized by an argument."""
import datetime as dt
import re
import subprocess
import sys
import textwrap

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import segmint
from segmint.cluster._matrix import FeatureError, kernel_layout, value_limit
from segmint.cluster._passes import no_sums, prepare
from segmint.errors import DataError, ParameterError, SegmintError
from segmint._time import MAX_US, MIN_US
from segmint.events.aggregate import _inputs, _Scan
from segmint.kernels.assign import assign_rows, count_beyond

AS_OF = dt.datetime(2026, 10, 1, tzinfo=dt.timezone.utc)
AS_OF_US = int(AS_OF.timestamp()) * 1_000_000
US_DAY = 86_400_000_000
U64_MAX = 2**64 - 1
FAST = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# -- item 9: uint64 customer ids ---------------------------------------------------------------

def aggregate_twin(ids, ts_us):
    """The slow twin in plain Python: per id (sorted as Python ints), event count, first and last time."""
    rows = {}
    for cid, t in zip(ids, ts_us):
        count, first, last = rows.get(cid, (0, t, t))
        rows[cid] = (count + 1, min(first, t), max(last, t))
    return [(cid, *rows[cid]) for cid in sorted(rows)]


def uint64_log(ids, seed):
    rng = np.random.default_rng(seed)
    ts = (AS_OF_US - rng.integers(0, 400 * US_DAY, len(ids))).tolist()
    table = pa.table({"customer_id": pa.array(ids, pa.uint64()),
                      "ts": pa.array(ts, pa.timestamp("us", tz="UTC"))})
    return table, ts


def assert_matches_twin(table, ids, ts):
    got = table.column("customer_id")
    assert got.type == pa.uint64()  # the id column keeps its type, every value exact
    expected = aggregate_twin(ids, ts)
    assert got.to_pylist() == [e[0] for e in expected]
    assert table.column("frequency").to_pylist() == [e[1] for e in expected]
    first = table.column("first_event").cast(pa.int64()).to_pylist()
    last = table.column("last_event").cast(pa.int64()).to_pylist()
    assert first == [e[2] for e in expected] and last == [e[3] for e in expected]


# ids near the ends of uint64 and around 2^63, where int64 wraps
_EDGES = [0, 1, 2**63 - 2, 2**63 - 1, 2**63, 2**63 + 1, U64_MAX - 1, U64_MAX]


@FAST
@given(st.lists(st.one_of(st.sampled_from(_EDGES), st.integers(0, U64_MAX)), min_size=1, max_size=60),
       st.integers(1, 7), st.integers(0, 2**32))
def test_uint64_ids_of_any_size_aggregate_like_the_twin_in_hash_mode(ids, batch_size, seed):
    table, ts = uint64_log(ids, seed)
    result = segmint.aggregate(table, as_of=AS_OF, batch_size=batch_size)
    assert_matches_twin(result.table, ids, ts)


@pytest.mark.parametrize("base", [0, 2**63 - 40, 2**63, U64_MAX - 79])
def test_dense_uint64_ids_stay_in_dense_mode_and_come_back_exact(base):
    ids = [base + int(i) for i in np.random.default_rng(1).integers(0, 80, 500)]
    table, ts = uint64_log(ids, 2)
    inputs = _inputs(table, "customer_id", "ts", None, None, None, AS_OF)
    assert _Scan(inputs, [], 1 << 20).dense  # ids base..base+79: slots straight from the id
    for batch_size in (64, 1 << 20):
        assert_matches_twin(segmint.aggregate(table, as_of=AS_OF, batch_size=batch_size).table, ids, ts)


def test_dense_uint64_ids_that_cross_2_to_the_63_switch_to_hash_mode_correctly():
    # first batches dense just below 2^63, then ids far away at both ends
    ids = [2**63 - 1 - (i % 50) for i in range(300)] + [0, U64_MAX, 2**63 + 5] * 10 + [2**63 - 3] * 5
    table, ts = uint64_log(ids, 3)
    for batch_size in (50, 1000):
        stream = pa.RecordBatchReader.from_batches(table.schema, table.to_batches(max_chunksize=50))
        assert_matches_twin(segmint.aggregate(stream, as_of=AS_OF, batch_size=batch_size).table, ids, ts)
        assert_matches_twin(segmint.aggregate(table, as_of=AS_OF, batch_size=batch_size).table, ids, ts)


def test_btyd_summary_keeps_uint64_ids_exact_and_sorted():
    ids = [U64_MAX, 0, 2**63, U64_MAX, 2**63]
    table = pa.table({"customer_id": pa.array(ids, pa.uint64()),
                      "ts": pa.array([AS_OF_US - d * US_DAY for d in (1, 2, 3, 10, 30)],
                                     pa.timestamp("us", tz="UTC"))})
    out = segmint.btyd_summary(table, as_of=AS_OF).table
    assert out.column("customer_id").type == pa.uint64()
    assert out.column("customer_id").to_pylist() == [0, 2**63, U64_MAX]
    assert out.column("frequency").to_pylist() == [0, 1, 1]
    assert out.column("recency").to_pylist() == [0.0, 27.0, 9.0]


# -- item 9: times at the int64 extremes ------------------------------------------------------

UNIT_US = {"s": (1_000_000, 1), "ms": (1_000, 1), "us": (1, 1), "ns": (1, 1_000), "D": (US_DAY, 1)}


def time_log(values, unit):
    arrow_type = pa.date32() if unit == "D" else pa.timestamp(unit, tz="UTC")
    raw = pa.array(values, pa.int32() if unit == "D" else pa.int64())
    return pa.table({"customer_id": pa.array(np.arange(len(values)) % 3, pa.int64()),
                     "ts": raw.cast(arrow_type)})


@pytest.mark.parametrize("unit", ["s", "ms", "us", "D"])
@pytest.mark.parametrize("end", ["min", "max"])
def test_times_at_the_int_extremes_are_refused_naming_the_column_and_value(unit, end):
    info = np.iinfo(np.int32 if unit == "D" else np.int64)
    value = int(info.min if end == "min" else info.max)
    log = time_log([AS_OF_US // UNIT_US[unit][0] - 5, value], unit)
    with pytest.raises(DataError, match=rf"timestamp column 'ts': row 1 holds {value:,} .*years 1 to 9999"):
        segmint.aggregate(log, as_of=AS_OF)
    with pytest.raises(DataError, match=f"{value:,}"):
        segmint.btyd_summary(log, as_of=AS_OF)


def test_nanosecond_times_at_the_int64_extremes_fit_and_are_exact():
    # int64 nanoseconds span 1677..2262: every one converts to microseconds without overflow
    lo, hi = int(np.iinfo(np.int64).min), int(np.iinfo(np.int64).max)
    log = time_log([lo, hi, lo + 1], "ns")
    table = segmint.aggregate(log, as_of=dt.datetime(2263, 1, 1, tzinfo=dt.timezone.utc)).table
    # floor division, as the twin: the first is -9223372036854776 (not ...775)
    assert table.column("first_event").cast(pa.int64()).to_pylist() == [lo // 1000, hi // 1000, (lo + 1) // 1000]


@FAST
@given(st.sampled_from(sorted(UNIT_US)), st.lists(st.integers(-2**63, 2**63 - 1), min_size=1, max_size=8))
def test_any_time_is_either_exact_or_refused_never_wrapped(unit, values):
    if unit == "D":
        values = [v % 2**32 - 2**31 for v in values]  # date32 holds int32 days
    mul, div = UNIT_US[unit]
    us = [v * mul // div for v in values]  # Python ints: no overflow in the twin
    as_of = dt.datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=dt.timezone.utc)
    log = time_log(values, unit)
    if all(MIN_US <= u <= MAX_US for u in us):
        table = segmint.aggregate(log, as_of=as_of).table
        by_id = {}
        for i, u in enumerate(us):
            by_id.setdefault(i % 3, []).append(u)
        assert table.column("first_event").cast(pa.int64()).to_pylist() == [min(v) for _, v in sorted(by_id.items())]
        assert table.column("last_event").cast(pa.int64()).to_pylist() == [max(v) for _, v in sorted(by_id.items())]
    else:
        first_bad = next(i for i, u in enumerate(us) if not MIN_US <= u <= MAX_US)
        with pytest.raises(DataError, match=rf"row {first_bad:,} holds {values[first_bad]:,} \({unit} "):
            segmint.aggregate(log, as_of=as_of)


def test_as_of_and_time_arguments_of_the_wrong_kind_are_parameter_errors():
    log = time_log([AS_OF_US], "us")
    with pytest.raises(ParameterError, match="as_of 'yesterday' is not an ISO date"):
        segmint.aggregate(log, as_of="yesterday")
    with pytest.raises(ParameterError, match="as_of must be a datetime"):
        segmint.aggregate(log, as_of=12)
    with pytest.raises(ParameterError, match="as_of is NaT"):
        segmint.aggregate(log, as_of=np.datetime64("NaT"))
    with pytest.raises(ParameterError, match="outside the years 1 to 9999"):
        segmint.aggregate(log, as_of=np.datetime64("10000-01-01"))


@pytest.mark.parametrize("value, expected", [
    ("2026-01-01", "2026-01-01T00:00:00"),
    ("2026-01-01T05:06:07.123456789", "2026-01-01T05:06:07.123456"),  # nanoseconds: truncated
    ("1969-12-31T23:59:59.9999999", "1969-12-31T23:59:59.999999"),    # toward the past
    ("2026-03", "2026-03-01T00:00:00"),
])
def test_as_of_takes_numpy_datetime64_as_a_naive_utc_time(value, expected):
    from segmint._time import as_of_microseconds
    assert as_of_microseconds(np.datetime64(value)) == as_of_microseconds(expected)


# -- item 9/11: window specs and other arguments ------------------------------------------------

@pytest.mark.parametrize("windows, message", [
    ([1, 2], r"windows must be a dict of name -> spec.*got list \[1, 2\]"),
    ("90d", "windows must be a dict"),
    ({"w": {"last": "99999999999999d"}}, r"window 'w': last '99999999999999d' is longer than .*3,652,058d"),
    ({"w": {"last": "1" + "0" * 400 + "d"}}, "window 'w': last '1000000000.* is longer than"),
    ({"w": {"between": ["1d", "99999999999w"]}}, "window 'w': between '99999999999w' is longer"),
    ({"w": {"agg": "trend", "last": "5000000d"}}, "window 'w': last '5000000d' is longer"),
    ({"w": {"last": 90}}, "window 'w': last 90 is not a duration"),
    ({"w": {"last": ["90d"]}}, r"window 'w': last \['90d'\] is not a duration"),
    ({"w": {"last": "9d", "type": 5}}, "window 'w': type must be a string or a list of strings, got 5"),
    ({"w": {"last": "9d", "type": [["a"]]}}, "window 'w': type must be a string or a list of strings"),
    ({"w": {"last": "9d", "agg": ["count"]}}, r"window 'w': agg must be 'count', 'sum' or 'trend', got \['count'\]"),
    ({"w": {"last": "9d", 5: 1}}, "window 'w': unknown keys 5"),
    ({"w": {"between": "9d"}}, "window 'w': 'between' takes two durations"),
    ({"w": "9d"}, "window 'w': expected a dict"),
    ({7: {"last": "9d"}}, "window names must be non-empty strings, got 7"),
])
def test_bad_windows_are_parameter_errors_naming_the_window_and_field(windows, message):
    log = time_log([AS_OF_US], "us")
    with pytest.raises(ParameterError, match=message):
        segmint.aggregate(log, as_of=AS_OF, windows=windows)


def test_the_longest_window_still_works_and_counts_every_event():
    log = time_log([AS_OF_US - 10 * US_DAY, MIN_US + 1], "us")
    table = segmint.aggregate(log, as_of=AS_OF, windows={"ever": {"last": "3652058d"}}).table
    assert table.column("ever").to_pylist() == [1, 1]


def test_a_window_without_last_or_between_counts_all_time_even_the_first_instant():
    log = time_log([AS_OF_US - 10 * US_DAY, MIN_US, AS_OF_US, AS_OF_US + 1], "us")
    table = segmint.aggregate(log, as_of=AS_OF, windows={"ever": {}, "ever_sum": {"agg": "sum"}}).table
    assert table.column("ever").to_pylist() == table.column("frequency").to_pylist()
    assert sum(table.column("ever").to_pylist()) == 3  # the event after as_of is left out
    with pytest.raises(ParameterError, match="a trend compares the 'last' window"):
        segmint.aggregate(log, as_of=AS_OF, windows={"t": {"agg": "trend"}})


@pytest.mark.parametrize("kwargs, message", [
    (dict(id_column=["customer_id"]), "id_column= names a column: expected a string"),
    (dict(qualifying=5, event_type=None), "qualifying= must be a string or a list of strings"),
    (dict(batch_size=0), "batch_size must be a positive number of events, got 0"),
    (dict(batch_size=2.5), "batch_size must be a positive number of events, got 2.5"),
    (dict(batch_size="1000"), "batch_size must be a positive number"),
])
def test_bad_aggregate_arguments_are_parameter_errors(kwargs, message):
    with pytest.raises(ParameterError, match=message):
        segmint.aggregate(time_log([AS_OF_US], "us"), as_of=AS_OF, **kwargs)
    with pytest.raises(ParameterError, match="period=\\['D'\\]"):
        segmint.btyd_summary(time_log([AS_OF_US], "us"), as_of=AS_OF, period=["D"])


# -- item 10: huge feature values -------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("d", [1, 3, 17])
def test_values_at_the_limit_give_finite_distances_and_inertia(dtype, d):
    # the worst case the bound allows: rows and centers at opposite corners +-L
    limit = dtype(value_limit(dtype, d))
    assert float(limit) == value_limit(dtype, d)  # the limit is a value of the dtype
    assert float(np.nextafter(limit, dtype(np.inf))) > value_limit(dtype, d) * (1 - 1e-6)
    X = np.zeros((6, d), dtype)
    X[0::2] = limit
    X[1::2] = -limit
    model = segmint.KMeans(n_clusters=2, random_state=0).fit(X)
    assert np.isfinite(model.inertia_) and np.isfinite(model.cluster_centers_).all()
    model.cluster_centers_ = np.full((2, d), limit, dtype)
    far = np.full((2, d), -limit, dtype)  # rows at the opposite corner of every center: 4 d L^2
    assert np.isfinite(model.transform(far)).all()
    assert np.isfinite(model.score(far)) and model.score(far) < -1e30
    # and twice as many rows with the heaviest weights the weight check allows: inertia finite
    weights = np.full(2, 2.0**63)
    assert np.isfinite(model.score(far, sample_weight=weights))


def huge_row_cases():
    return st.tuples(st.sampled_from([np.float32, np.float64]), st.integers(1, 6), st.integers(2, 300),
                     st.floats(1.0001, 1e9), st.booleans(), st.integers(0, 2**32))


@FAST
@given(huge_row_cases())
def test_values_beyond_the_limit_are_refused_everywhere_naming_the_column_and_value(case):
    dtype, d, n, factor, negative, seed = case
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)).astype(dtype)
    row, col = int(rng.integers(0, n)), int(rng.integers(0, d))
    limit = value_limit(dtype, d)
    big = dtype(min(limit * factor, float(np.finfo(dtype).max)) * (-1 if negative else 1))
    if not abs(float(big)) > limit:  # rounding to float32 brought it back within the limit
        return
    X[row, col] = big
    message = rf"beyond \u00b1{re.escape(f'{limit:.3g}')}.*'x{col}' holds {re.escape(str(big))} \(row {row:,}\)"
    fitted = segmint.KMeans(n_clusters=1, random_state=0).fit(np.zeros((2, d), dtype))
    calls = {
        "KMeans.fit": lambda: segmint.KMeans(n_clusters=1, random_state=0).fit(X),
        "MiniBatchKMeans.fit": lambda: segmint.MiniBatchKMeans(n_clusters=1, random_state=0).fit(X),
        "partial_fit": lambda: segmint.MiniBatchKMeans(n_clusters=1, random_state=0).partial_fit(X),
        "transform": lambda: fitted.transform(X),
    }
    for name, call in calls.items():
        with pytest.raises(FeatureError, match=message):
            call()
    # predict and score assign without a pass of their own over the values: beyond the limit they
    # are exact (the arithmetic did not overflow) or refused with the same message, never wrong
    centers = rng.normal(size=(3, d)).astype(dtype)
    model = segmint.KMeans(n_clusters=3, init=centers, n_init=1, max_iter=1).fit(centers)
    model.cluster_centers_ = centers
    exact = exact_squared_distances(X, centers)
    for name, call, twin in (("predict", model.predict, lambda: exact.argmin(axis=1)),
                             ("score", model.score, lambda: -exact.min(axis=1).sum())):
        try:
            got = call(X)
        except FeatureError as e:
            assert re.search(message, str(e)), (name, str(e))
            continue
        if name == "predict":
            assert (got == twin()).all() or _ties(exact, got)
        else:
            assert np.isfinite(got) and got == pytest.approx(float(twin()), rel=1e-3)  # rounding only


def exact_squared_distances(X, centers):
    """Squared distances in exact rational arithmetic (no overflow, no rounding), as an object
    array of Fractions: argmin and sums of it are exact."""
    from fractions import Fraction
    Xf = [[Fraction(float(v)) for v in row] for row in np.asarray(X)]
    Cf = [[Fraction(float(v)) for v in row] for row in np.asarray(centers)]
    out = np.empty((len(Xf), len(Cf)), dtype=object)
    for i, row in enumerate(Xf):
        for c, center in enumerate(Cf):
            out[i, c] = sum(((a - b) ** 2 for a, b in zip(row, center)), Fraction(0))
    return out


def test_a_table_column_beyond_the_limit_is_named_by_its_column_name():
    t = pa.table({"spend": np.r_[np.ones(9), 3e150], "visits": np.ones(10)})
    with pytest.raises(FeatureError, match=r"'spend' holds 3e\+150 \(row 9\)"):
        segmint.KMeans(n_clusters=2).fit(t)
    model = segmint.KMeans(n_clusters=2, random_state=0).fit(t.slice(0, 9))
    # predict computes -2 x.c without overflow here: the far row goes to its exact nearest center
    labels = model.predict(t)
    X = np.column_stack([t.column(c).to_numpy() for c in ("spend", "visits")])
    exact = exact_squared_distances(X, model.cluster_centers_)
    assert (labels == exact.argmin(axis=1)).all() or _ties(exact, labels)
    assert model.score(t) == pytest.approx(-float(exact.min(axis=1).sum()), rel=1e-9)  # 9e300: no overflow
    far = t.set_column(0, "spend", pa.array(np.r_[np.ones(9), 3e160]))
    with pytest.raises(FeatureError, match=r"'spend' holds 3e\+160"):  # 9e320: its squared distance overflows
        model.score(far)


def test_nan_and_huge_values_are_told_apart_in_one_message():
    X = np.ones((10, 2))
    X[3, 0], X[5, 1] = np.nan, -1e200
    with pytest.raises(FeatureError, match=r"'x0' has 1; impute.*'x1' holds -1e\+200 \(row 5\); rescale"):
        segmint.KMeans(n_clusters=2).fit(X)


@pytest.mark.parametrize("bad", [1e200, np.inf, np.nan])
def test_given_and_loaded_centers_beyond_the_limit_are_refused(bad):
    X = np.random.default_rng(0).random((20, 2))
    init = np.array([[0.0, 0.0], [bad, 1.0]])
    with pytest.raises(ParameterError, match="init: center 1, feature 0 holds"):
        segmint.KMeans(n_clusters=2, init=init).fit(X)
    model = segmint.KMeans(n_clusters=2, random_state=0).fit(X)
    model.cluster_centers_ = init  # as a model loaded from a file would hold them
    for call in (model.predict, model.transform, model.score):
        with pytest.raises(FeatureError, match="cluster_centers_: center 1, feature 0 holds"):
            call(X)


def test_segmenter_names_the_spec_feature_beyond_the_limit_in_fit_and_score():
    rng = np.random.default_rng(0)
    good = pa.table({"a": rng.random(100), "b": rng.random(100)})
    bad = good.set_column(1, "b", pa.array(np.r_[rng.random(99), 1e30]))
    spec = [{"column": "a", "scale": None}, {"column": "b", "scale": None}]
    for dtype in (np.float32, np.float64):
        model = segmint.Segmenter(spec, clusterer=segmint.KMeans(n_clusters=2, random_state=0), dtype=dtype)
        if dtype == np.float32:  # 1e30 is beyond the float32 limit; float64 clusters it
            with pytest.raises(FeatureError, match=r"features to cluster: .*'b' holds 1e\+30 \(row 99\)"):
                model.fit(bad)
        model.fit(good)
        if dtype == np.float32:
            with pytest.raises(FeatureError, match=r"features of rows 0..99: .*'b' holds 1e\+30"):
                model.score(bad)
    huge = good.set_column(1, "b", pa.array(np.r_[rng.random(99), 1e200]))
    with pytest.raises(FeatureError, match=r"'b' holds 1e\+200"):
        model.score(huge)


# -- item 10: the kernels against their slow twins ------------------------------------------------

@FAST
@given(st.sampled_from([np.float32, np.float64]), st.integers(1, 9), st.integers(0, 700), st.integers(0, 2**32))
def test_count_beyond_and_assign_rows_flag_exactly_the_values_the_twin_flags(dtype, d, n, seed):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)).astype(dtype)
    limit = value_limit(dtype, d)
    specials = np.array([np.nan, np.inf, -np.inf, limit * 1.5, -limit * 1.5, limit * 0.999, 1e3], dtype)
    if n:
        hits = rng.integers(0, n * d, rng.integers(0, 6))
        X.flat[hits] = specials[rng.integers(0, len(specials), hits.size)]
    beyond = ~(np.abs(X.astype(np.float64)) <= limit)  # the twin: NaN, infinities, beyond the limit
    counts = np.zeros(d, np.int64)
    count_beyond(*kernel_layout(X), 0, n, limit, counts)
    assert counts.tolist() == beyond.sum(axis=0).tolist()
    centers = rng.normal(size=(3, d)).astype(dtype)
    C2, cn = prepare(centers)
    labels, dist = np.empty(n, np.int32), np.empty(n, dtype)
    nonfinite = (~np.isfinite(X)).any(axis=1)
    ok = ~nonfinite
    exact = exact_squared_distances(X[ok], centers)
    for with_dist in (True, False):
        bad = assign_rows(*kernel_layout(X), 0, n, C2, cn, labels, 0, dist, 0, with_dist, *no_sums(X))
        # NaN and infinities always count; a finite row counts only when its arithmetic
        # overflowed, and every row not counted gets its exact nearest center
        assert bad >= int(nonfinite.sum())
        if bad == int(nonfinite.sum()) and ok.any():
            assert (labels[ok] == exact.argmin(axis=1)).all() or _ties(exact, labels[ok])


def _ties(exact, labels):
    """True when every label differs from the exact argmin only within rounding of the values
    (the kernel works in the data's dtype, the twin exactly)."""
    best = exact.min(axis=1)
    mine = exact[np.arange(len(labels)), labels]
    return all(float(m) <= float(b) * (1 + 1e-4) + 1e-4 for m, b in zip(mine, best))


# -- item 11: hostile parameters ------------------------------------------------------------------

X20 = np.random.default_rng(0).random((20, 3))


@pytest.mark.parametrize("make, message", [
    (lambda: segmint.KMeans(n_clusters=2, random_state=-1).fit(X20), r"'random_state' .*non-negative.*Got -1"),
    (lambda: segmint.MiniBatchKMeans(n_clusters=2, random_state=-1).fit(X20), "Got -1 instead"),
    (lambda: segmint.KMeans(n_clusters=2, random_state="seed").fit(X20), "Got 'seed' \\(str\\)"),
    (lambda: segmint.KMeans(n_clusters=10**9).fit(X20), "n_samples=20 should be >= n_clusters=1000000000"),
    (lambda: segmint.KMeans(n_clusters=21).fit(X20), "fewer rows than clusters"),
    (lambda: segmint.KMeans(n_clusters=2.5).fit(X20), "n_clusters must be an integer"),
    (lambda: segmint.KMeans(n_clusters=2, n_init=10**9).fit(X20), "n_init must be an integer >= 1 and <= 1,000"),
    (lambda: segmint.KMeans(n_clusters=2, tol=float("nan")).fit(X20), "tol must be a finite"),
    (lambda: segmint.KMeans(n_clusters=2, tol=float("inf")).fit(X20), "tol must be a finite"),
    (lambda: segmint.KMeans(n_clusters=2, init_size=-5).fit(X20), "init_size must be an integer >= 1"),
    (lambda: segmint.KMeans(n_clusters=2, init="kmeans").fit(X20), "init must be 'k-means\\+\\+'"),
    (lambda: segmint.KMeans(n_clusters=2, init=[["a", 1, 2], [0, 1, 2]]).fit(X20), "init centers must be an array"),
    (lambda: segmint.MiniBatchKMeans(n_clusters=2, reassignment_ratio=float("nan")).fit(X20), "reassignment_ratio"),
    (lambda: segmint.MiniBatchKMeans(n_clusters=2, batch_size=0).fit(X20), "batch_size must be an integer >= 1"),
    (lambda: segmint.KMeans(n_clusters=2).fit(X20, sample_weight=np.full(20, 1e300)), "sample_weight sums to 2e\\+301"),
    (lambda: segmint.KMeans(n_clusters=2).fit(X20, sample_weight=["w"] * 20), "sample_weight must be numbers"),
    (lambda: segmint.KMeans(n_clusters=2).fit(X20, sample_weight=np.full(20, -1.0)), "non-negative"),
    (lambda: segmint.KMeans(n_clusters=2).fit(pa.table({"a": X20[:, 0]}), columns=[]), "columns=\\[\\] names no column"),
    (lambda: segmint.KMeans(n_clusters=2).fit(pa.table({"a": X20[:, 0]}), columns="a"), "list of column names"),
    (lambda: segmint.KMeans().set_params(n_clusterz=3), "did you mean 'n_clusters'"),
    (lambda: segmint.Segmenter(["a"], clusterer=segmint.KMeans(n_clusters=2), random_state=-1).fit(
        pa.table({"a": X20[:, 0]})), "Got -1 instead"),
    (lambda: segmint.Segmenter(["a"], clusterer=segmint.KMeans(n_clusters=2), fit_rows="all").fit(
        pa.table({"a": X20[:, 0]})), "fit_rows"),
    (lambda: segmint.Segmenter(["a"], clusterer=segmint.KMeans(n_clusters=2), dtype="float16").fit(
        pa.table({"a": X20[:, 0]})), "dtype must be float32 or float64"),
    (lambda: segmint.Segmenter(["a"], clusterer=segmint.KMeans(n_clusters=2)).fit(
        pa.table({"a": X20[:, 0]}), batch_size=-3), "batch_size must be an integer >= 1"),
    (lambda: segmint.lifecycle_stages(pa.table({"recency_days": [1.0], "tenure_days": [2.0]}),
                                      lapsed_days=10**400), "lapsed_days must be a non-negative number"),
    (lambda: segmint.lifecycle_stages(pa.table({"recency_days": [1.0], "tenure_days": [2.0]}),
                                      adaptive=True, gap_multiples=[1, 2, 10**400]), "gap_multiples"),
])
def test_hostile_parameters_end_in_a_segmint_error_naming_the_parameter(make, message):
    with pytest.raises(SegmintError, match=message) as info:
        make()
    # and the builtin a Python user expects (scikit-learn's contract: ValueError)
    assert isinstance(info.value, (ValueError, KeyError, TypeError))


def test_degenerate_but_valid_inputs_work():
    model = segmint.KMeans(n_clusters=2, random_state=0, max_iter=10**18).fit(X20)  # stops on convergence
    assert model.predict(np.empty((0, 3))).shape == (0,)
    assert model.transform(np.empty((0, 3))).shape == (0, 2)
    with pytest.raises(FeatureError, match="cannot cluster 0 rows"):
        segmint.KMeans(n_clusters=2).fit(np.empty((0, 3)))
    mb = segmint.MiniBatchKMeans(n_clusters=2, batch_size=10**12, random_state=0).fit(X20)
    assert mb._batch == 20  # a batch never holds more rows than the data
    assert segmint.aggregate(time_log([], "us"), as_of=AS_OF).table.num_rows == 0


def test_renaming_unknown_segments_is_a_segmint_key_error():
    model = segmint.Segmenter(["a"], clusterer=segmint.KMeans(n_clusters=2, random_state=0)).fit(
        pa.table({"a": X20[:, 0]}))
    with pytest.raises(KeyError, match="no segment id 7") as info:
        model.rename({7: "x"})
    assert isinstance(info.value, SegmintError) and "'" not in str(info.value)[:2]
    with pytest.raises(ParameterError, match="non-empty string"):
        model.rename({0: " "})


BOUNDED_RUNNER = textwrap.dedent("""
    import resource, sys
    # 8 GiB of address space (importing numba alone takes ~1.6 GiB of it): any buffer sized by
    # batch_size=10**12 (rows of 8+ bytes: terabytes) fails, a correct run does not come close
    resource.setrlimit(resource.RLIMIT_AS, (8 << 30,) * 2)
    import numpy as np, pyarrow as pa, pyarrow.parquet as pq, segmint
    X = np.random.default_rng(0).random((3000, 3))
    mb = segmint.MiniBatchKMeans(n_clusters=3, batch_size=10**12, random_state=0).fit(X)
    segmint.MiniBatchKMeans(n_clusters=3, batch_size=10**12, random_state=0).partial_fit(X)
    table = pa.table({"a": X[:, 0], "b": X[:, 1], "customer_id": np.arange(3000) % 70,
                      "ts": pa.array(np.arange(3000), pa.timestamp("s"))})
    pq.write_table(table, sys.argv[1], row_group_size=1000)
    for source in (table, sys.argv[1]):
        seg = segmint.Segmenter(["a", "b"], clusterer=segmint.KMeans(n_clusters=3, random_state=0))
        seg.fit(source, batch_size=10**12)
        assert seg.score(source, batch_size=10**12).num_rows == 3000
        assert seg.transform(source, batch_size=10**12).shape == (3000, 2)
        segmint.MiniBatchKMeans(n_clusters=3, batch_size=10**12, random_state=0).fit(source, columns=["a", "b"])
        assert segmint.aggregate(source, as_of="2026-01-01", batch_size=10**12).table.num_rows == 70
        assert segmint.btyd_summary(source, as_of="2026-01-01", batch_size=10**12).table.num_rows == 70
    print("done", mb._batch)
""")


def test_batch_sizes_of_10_to_the_12_never_size_a_buffer(tmp_path):
    proc = subprocess.run([sys.executable, "-c", BOUNDED_RUNNER, str(tmp_path / "t.parquet")],
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    assert proc.stdout.split() == ["done", "3000"]
