"""Rules on every numeric column type, NaN values and NaN/infinite constants, sliced and chunked
tables, nanosecond timestamps and durations, and the words past the last row: the batch engine
against plain Python per row and against the one-record path (``RuleSet.matches``, separate code).
"""
import json
import math
import operator
import os
import subprocess
import sys
import textwrap

import numpy as np
import pyarrow as pa
import pytest

import segmint
from segmint.rules import RuleSet

AS_OF = "2026-10-01T15:30:00+00:00"
AS_OF_US = 1_790_868_600_000_000  # AS_OF in microseconds since the epoch
DAY_US = 86_400_000_000

# per type: values around the constants, and the ends of the type
POOLS = {
    "i8": (pa.int8(), [-128, -3, -1, 0, 1, 2, 3, 127]),
    "i16": (pa.int16(), [-32768, -1, 0, 2, 3, 255, 256, 32767]),
    "i32": (pa.int32(), [-2**31, -3, 0, 2, 3, 255, 2**31 - 1]),
    "u8": (pa.uint8(), [0, 1, 2, 3, 127, 128, 255]),
    "u16": (pa.uint16(), [0, 2, 3, 255, 256, 65535]),
    "u32": (pa.uint32(), [0, 2, 3, 2**31, 2**32 - 1]),
    "f32": (pa.float32(), [math.nan, math.inf, -math.inf, -0.0, 0.0, 2.5, -2.5, 3.0, 16777216.0, 1e-45]),
    "f64": (pa.float64(), [math.nan, math.inf, -math.inf, -0.0, 0.0, 2.5, -2.5, 3.0, 2.0 ** 53, 5e-324]),
}
# (rule text, value): NaN and the infinities are written as constant expressions the generator folds
CONSTANTS = [("0", 0.0), ("-0.0", -0.0), ("2.5", 2.5), ("3", 3.0), ("-2.5", -2.5), ("255", 255.0),
             ("256", 256.0), ("127.5", 127.5), ("-128", -128.0), ("4294967295", 4294967295.0),
             ("2147483648", 2147483648.0), ("1e300", 1e300),
             ("(1e308 * 10)", math.inf), ("(-1e308 * 10)", -math.inf), ("(1e308 * 10 - 1e308 * 10)", math.nan)]
OPS = {"=": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le, ">": operator.gt,
       ">=": operator.ge}


def _table(n, seed, offset=13, chunked=True):
    """Every type of POOLS with 25% nulls, sliced at ``offset``; re-chunked at odd boundaries
    (each chunk a slice with its own offset) when ``chunked``."""
    rng = np.random.default_rng(seed)
    total = n + offset
    cols = {}
    for name, (arrow_type, pool) in POOLS.items():
        picks = rng.integers(0, len(pool), total)
        values = [pool[i] for i in picks]
        mask = rng.random(total) < 0.25
        cols[name] = pa.array([None if m else v for v, m in zip(values, mask)], arrow_type)
    table = pa.table(cols).slice(offset, n)
    if chunked and n > 70:
        cuts = [0, 61, 64 + 5, n // 2 + 3, n]
        table = pa.concat_tables([table.slice(a, b - a) for a, b in zip(cuts[:-1], cuts[1:])])
    return table


def _python_truth(x, op, k):
    """SQL three-valued: None for a null value; a number compares as float64 (NaN is a value:
    only != is true)."""
    return None if x is None else OPS[op](float(x), k)


def _rules():
    return [(f"{c}_{i}_{j}", f"{c} {op} {text}", c, op, k)
            for c in POOLS for i, (text, k) in enumerate(CONSTANTS) for j, op in enumerate(OPS)]


@pytest.mark.parametrize("n, chunked", [(0, False), (1, False), (64, False), (203, True), (1000, True)])
def test_every_numeric_type_against_python_per_row(n, chunked):
    table = _table(n, seed=n + 1, chunked=chunked)
    rules = _rules()
    rs = RuleSet({name: text for name, text, *_ in rules}, mode="multi")
    got = rs.evaluate(table, as_of=AS_OF, batch_size=97)
    counts = {r["segment"]: r for r in rs.counts(table, as_of=AS_OF, batch_size=131).to_pylist()}
    cols = {c: table.column(c).to_pylist() for c in POOLS}
    for name, text, c, op, k in rules:
        truth = [_python_truth(x, op, k) for x in cols[c]]
        assert got.table.column(name).to_pylist() == [t is True for t in truth], text
        assert counts[name]["matched"] == sum(t is True for t in truth), text
        assert counts[name]["unknown"] == sum(t is None for t in truth), text


def test_nan_is_a_value_not_a_null():
    table = pa.table({"f": pa.array([math.nan, None, 1.0, math.nan], pa.float64()),
                      "g": pa.array([math.nan, None, 1.0, 2.0], pa.float32())})
    rules = {"null": "f is null", "not_null": "f is not null", "self_ne": "f != f", "self_eq": "f = f",
             "g_ne": "g != g", "mixed": "f = g", "nan_k": "f != (1e308 * 10 - 1e308 * 10)",
             "coalesce": "coalesce(f, 5) != coalesce(f, 5)"}
    rs = RuleSet(rules, mode="multi")
    cols = rs.evaluate(table, as_of=AS_OF).table
    expected = {"null": [False, True, False, False], "not_null": [True, False, True, True],
                "self_ne": [True, False, False, True], "self_eq": [False, False, True, False],
                "g_ne": [True, False, False, False], "mixed": [False, False, True, False],
                "nan_k": [True, False, True, True], "coalesce": [True, False, False, True]}
    for name, rows in expected.items():
        assert cols.column(name).to_pylist() == rows, name
    records = table.to_pylist()
    for r, record in enumerate(records):
        assert sorted(rs.matches(record, as_of=AS_OF, schema=table.schema)) == \
            sorted(name for name in rules if expected[name][r])


@pytest.mark.parametrize("mode", ["multi", "waterfall"])
def test_batch_engine_equals_the_record_path_on_sliced_chunked_tables(mode):
    table = _table(333, seed=7)
    picked = _rules()[::7]  # every type, constant and operator appears
    extra = [("x1", "f32 + i8 > 2 or u16 < 3", None, None, None),
             ("x2", "not (f64 >= 2.5 and u32 != 3)", None, None, None),
             ("x3", "coalesce(i16, u8) between 2 and 255 and f64 is not null", None, None, None),
             ("x4", "abs(f32) = abs(f64) or f64 != f64", None, None, None)]
    rs = RuleSet({name: text for name, text, *_ in picked + extra}, mode=mode)
    result = rs.evaluate(table, as_of=AS_OF, batch_size=100).table
    records = table.to_pylist()
    if mode == "multi":
        cols = {name: result.column(name).to_pylist() for name in rs.names}
        for r, record in enumerate(records):
            assert rs.matches(record, as_of=AS_OF, schema=table.schema) == \
                [name for name in rs.names if cols[name][r]], r
    else:
        labels = result.column("segment").to_pylist()
        for r, record in enumerate(records):
            assert rs.matches(record, as_of=AS_OF, schema=table.schema) == labels[r], r


# -- nanoseconds ------------------------------------------------------------------------------------
def _ns_table():
    as_of_ns = AS_OF_US * 1000
    day_ns = DAY_US * 1000
    # instants on and around whole microseconds and the constants below, before and after 1970
    t = [as_of_ns, as_of_ns - 1, as_of_ns + 1, as_of_ns + 999, as_of_ns - 1000, as_of_ns - 1001,
         as_of_ns - 30 * day_ns, as_of_ns - 30 * day_ns - 1, as_of_ns - 30 * day_ns + 500,
         -1, 0, 1, -1000, -1001, 1500, None, as_of_ns - 90 * day_ns + 1]
    d = [0, -1, 1, 999, 1000, 1001, -999, -1000, -1001, day_ns, day_ns + 1, day_ns - 1, 5 * 10**9,
         None, 2 * day_ns, -day_ns, 7]
    return pa.table({"t": pa.array(t, pa.timestamp("ns", tz="UTC")), "d": pa.array(d, pa.duration("ns")),
                     "tu": pa.array([None if v is None else v // 1000 for v in t], pa.timestamp("us", tz="UTC"))})


NS_RULES = {
    "eq_asof": "t = timestamp '2026-10-01 15:30:00'", "gt_asof": "t > timestamp '2026-10-01 15:30:00'",
    "ge_asof": "t >= timestamp '2026-10-01 15:30:00'", "lt_asof": "t < timestamp '2026-10-01 15:30:00'",
    "le_asof": "t <= timestamp '2026-10-01 15:30:00'", "ne_asof": "t != timestamp '2026-10-01 15:30:00'",
    "gt_1us": "t > timestamp '1970-01-01 00:00:00.000001'", "lt_epoch": "t < timestamp '1970-01-01 00:00:00'",
    "le_date": "t <= date '1970-01-01'", "days": "days_since(t) >= 30", "days_exact": "days_since(t) = 30",
    "within": "within_last(t, 90d)", "d_gt": "d > 1s", "d_neg": "d < 0s", "d_day": "d >= 1d",
    "sum": "t + d > timestamp '1970-01-01 00:00:00.000001'", "same_us": "t = tu", "not_null": "t is not null",
}


def _floor_us(ns):
    return None if ns is None else ns // 1000  # Python's // floors, before 1970 too


def _ns_truth(row):
    """The rules of NS_RULES in plain Python: a [ns] value is the microsecond it falls in."""
    t, d = _floor_us(row["t"]), _floor_us(row["d"])

    def cmp(x, op, k):
        return None if x is None else OPS[op](x, k)
    days = None if t is None else (AS_OF_US - t) / DAY_US
    return {
        "eq_asof": cmp(t, "=", AS_OF_US), "gt_asof": cmp(t, ">", AS_OF_US), "ge_asof": cmp(t, ">=", AS_OF_US),
        "lt_asof": cmp(t, "<", AS_OF_US), "le_asof": cmp(t, "<=", AS_OF_US), "ne_asof": cmp(t, "!=", AS_OF_US),
        "gt_1us": cmp(t, ">", 1), "lt_epoch": cmp(t, "<", 0), "le_date": cmp(t, "<=", 0),
        "days": cmp(days, ">=", 30), "days_exact": cmp(days, "=", 30),
        "within": None if t is None else (AS_OF_US - t <= 90 * DAY_US),
        "d_gt": cmp(d, ">", 1_000_000), "d_neg": cmp(d, "<", 0), "d_day": cmp(d, ">=", DAY_US),
        "sum": None if t is None or d is None else t + d > 1, "same_us": cmp(t, "=", _floor_us(row["tu_ns"])),
        "not_null": t is not None,
    }


def test_nanosecond_timestamps_and_durations_read_as_floored_microseconds():
    table = _ns_table()
    raw = [{"t": t, "d": d, "tu_ns": None if u is None else u * 1000}
           for t, d, u in zip(table.column("t").cast(pa.int64()).to_pylist(),
                              table.column("d").cast(pa.int64()).to_pylist(),
                              table.column("tu").cast(pa.int64()).to_pylist())]
    rs = RuleSet(NS_RULES, mode="multi")
    truths = [_ns_truth(row) for row in raw]
    for source in (table, table.slice(3), pa.concat_tables([table.slice(0, 5), table.slice(5)])):
        first = len(table) - source.num_rows
        got = rs.evaluate(source, as_of=AS_OF, batch_size=4).table
        counts = {r["segment"]: r for r in rs.counts(source, as_of=AS_OF).to_pylist()}
        for name in NS_RULES:
            expected = [truth[name] for truth in truths[first:]]
            assert got.column(name).to_pylist() == [e is True for e in expected], name
            assert counts[name]["unknown"] == sum(e is None for e in expected), name
    # the one-record path, with the values as pyarrow gives them (pandas.Timestamp and
    # Timedelta, nanoseconds included) and as numpy's datetime64[ns] / timedelta64[ns]
    records = table.to_pylist()
    for r, record in enumerate(records):
        expected = [name for name in NS_RULES if truths[r][name] is True]
        assert rs.matches(record, as_of=AS_OF, schema=table.schema) == expected, (r, record)
        if raw[r]["t"] is not None and raw[r]["d"] is not None:
            as_numpy = dict(record, t=np.datetime64(raw[r]["t"], "ns"), d=np.timedelta64(raw[r]["d"], "ns"))
            assert rs.matches(as_numpy, as_of=AS_OF, schema=table.schema) == expected, (r, as_numpy)


def test_nanosecond_timestamps_are_the_microsecond_they_fall_in_in_waterfall_too():
    # waterfall, in its own type path (integer planes of the floored values)
    table = _ns_table()
    rs = RuleSet([("late", "t > timestamp '2026-10-01 15:30:00'"), ("on", "t = timestamp '2026-10-01 15:30:00'"),
                  ("recent", "within_last(t, 30d)")], mode="waterfall")
    labels = rs.evaluate(table, as_of=AS_OF).table.column("segment").to_pylist()
    t_us = [_floor_us(v) for v in table.column("t").cast(pa.int64()).to_pylist()]
    expected = ["late" if u is not None and u > AS_OF_US else "on" if u == AS_OF_US else
                "recent" if u is not None and AS_OF_US - u <= 30 * DAY_US else rs.default for u in t_us]
    assert labels == expected


def test_nanosecond_timestamps_beyond_2_pow_53_microseconds_are_refused_in_both_paths():
    from segmint.errors import DataError
    late = pa.table({"t": pa.array([(2**53 + 1) * 1000], pa.timestamp("ns"))})  # the year 2255
    rs = RuleSet({"a": "t > timestamp '2026-01-01 00:00:00'"}, mode="multi")
    with pytest.raises(DataError):
        rs.evaluate(late, as_of=AS_OF)
    with pytest.raises(DataError):
        rs.matches(late.to_pylist()[0], as_of=AS_OF, schema=late.schema)
    ok = pa.table({"t": pa.array([2**53 * 1000 + 999], pa.timestamp("ns"))})  # floors to 2**53: kept
    assert rs.evaluate(ok, as_of=AS_OF).table.column("a").to_pylist() == [True]


# -- words past the last row ------------------------------------------------------------------------
@pytest.mark.parametrize("n", [1, 63, 65, 130, 4097])
def test_member_words_are_zero_past_the_last_row(n):
    # every row in every segment, by a plane, a negation, an 'or', a constant and a null test
    every = RuleSet({"all": "x >= 0", "not": "not (x < 0)", "nulls": "x is null or x >= 0", "konst": "1 = 1",
                     "valid": "x is not null"}, mode="multi")
    big = pa.table({"x": pa.array(np.arange(8192, dtype=np.int32))})
    for _ in every.stream(big, as_of=AS_OF):  # leave set bits in the recycled memory
        pass
    table = pa.table({"x": pa.array(np.arange(n + 5, dtype=np.int32))}).slice(5)
    seen = 0
    for part in every.stream(table, as_of=AS_OF, batch_size=n if n < 100 else 1000):
        rows = part.batch.num_rows
        words = part.members
        assert words.shape == (5, (rows + 63) // 64)
        for s in range(5):
            assert all(int(w) == 2**64 - 1 for w in words[s, :rows // 64])
            if rows % 64:
                assert int(words[s, -1]) == (1 << (rows % 64)) - 1  # the rows, and nothing past them
        seen += rows
    assert seen == n
    mask = every.evaluate(table, as_of=AS_OF, memberships="bitmask").table.column("segments")
    assert mask.to_pylist() == [0b11111] * n


def test_without_the_jit_the_engine_gives_the_compiled_answers():
    """NUMBA_DISABLE_JIT=1 runs the kernels (and the intrinsics' Python twins) as Python."""
    script = textwrap.dedent("""
        import json, math, numpy as np, pyarrow as pa
        from segmint.rules import RuleSet
        n = 150
        rng = np.random.default_rng(3)
        f = rng.integers(-4, 5, n) / 2
        f[::7] = math.nan
        table = pa.table({
            "i8": pa.array(rng.integers(-3, 4, n).astype(np.int8), mask=rng.random(n) < 0.2),
            "i32": pa.array(rng.integers(-3, 4, n).astype(np.int32), mask=rng.random(n) < 0.2),
            "f": pa.array(f, mask=rng.random(n) < 0.2),
            "t": pa.array(rng.integers(0, 10**12, n), pa.timestamp("ns", tz="UTC"), mask=rng.random(n) < 0.2),
            "s": pa.array(rng.choice(["a", "b", "c"], n).tolist()).dictionary_encode()}).slice(9)
        rules = {"a": "i8 > 0.5 and f != f", "b": "i32 <= 1 or f >= -1", "c": "not (f < 0) and s in ('a', 'b')",
                 "d": "t > timestamp '1970-01-01 00:00:00.5' or i8 + i32 = 0", "e": "coalesce(f, i32) / 2 < 0"}
        out = {}
        for mode in ("multi", "waterfall"):
            rs = RuleSet(rules, mode=mode)
            out[mode] = {c: rs.evaluate(table, as_of="2026-01-01", batch_size=64).table.column(c).to_pylist()
                         for c in (rs.names if mode == "multi" else ["segment"])}
            out[mode + "_counts"] = rs.counts(table, as_of="2026-01-01").to_pylist()
    """)
    compiled = {}
    exec(script, compiled)  # here, compiled
    env = dict(os.environ, NUMBA_DISABLE_JIT="1")
    proc = subprocess.run([sys.executable, "-c", script + "print(json.dumps(out))"], env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout) == json.loads(json.dumps(compiled["out"]))


def test_evaluate_and_counts_pick_larger_batches_on_large_sources_with_the_same_results():
    from segmint.io import DEFAULT_BATCH_SIZE
    from segmint.rules.ruleset import MAX_AUTO_BATCH, auto_batch_size

    class Known:
        def __init__(self, rows):
            self.num_rows = rows

    with segmint.threads(2):
        assert auto_batch_size(Known(10_000_000)) == MAX_AUTO_BATCH  # 1.25M a quarter-thread: capped
        assert auto_batch_size(Known(4_000_000)) == 500_000
        assert auto_batch_size(Known(1_000_000)) == DEFAULT_BATCH_SIZE  # never below the default
        assert auto_batch_size(Known(None)) == DEFAULT_BATCH_SIZE  # a one-shot stream
        assert auto_batch_size(Known(10_000_000), 997) == 997  # the caller's word wins
    with segmint.threads(1):
        assert auto_batch_size(Known(2_000_000)) == 500_000
    rng = np.random.default_rng(3)
    n = 1_200_000
    table = pa.table({"x": rng.normal(size=n), "y": pa.array(rng.integers(0, 9, n), mask=rng.random(n) < 0.1)})
    rules = {"a": "x > 0.5 and y < 4", "b": "y >= 4 or x < -1", "c": "not (x between -0.1 and 0.1)"}
    for mode in ("waterfall", "multi"):
        rs = segmint.RuleSet(rules, mode=mode)
        with segmint.threads(1):
            auto = rs.evaluate(table)  # one thread: 300,000-row batches
            assert auto.table.column(0).num_chunks == 4
        small = rs.evaluate(table, batch_size=65_537)
        assert auto.table.equals(small.table) and auto.counts.equals(small.counts)
        if mode == "multi":
            assert auto.overlaps.equals(small.overlaps)
        assert rs.counts(table).equals(rs.counts(table, batch_size=65_537))
