"""The bit-sliced batch VM: its loaders and comparison planes against slow twins, and the
whole engine against the row-by-row twin (naive_rules) on inputs that span words, sub-blocks
and batches, at any thread count."""
import math

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import naive_rules as naive
import segmint
from segmint.kernels import rules as vm
from segmint.rules import RuleSet
from segmint.rules.peephole import hoist_comparisons
from segmint.io.columns import read_only
from segmint.rules.ruleset import _address, _integer_thresholds
from test_rules import random_table, rows_of

SIZES = [0, 1, 7, 63, 64, 65, 130, 4097]
OPS = {vm.EQ: lambda x, k: x == k, vm.NE: lambda x, k: x != k, vm.LT: lambda x, k: x < k,
       vm.LE: lambda x, k: x <= k, vm.GT: lambda x, k: x > k, vm.GE: lambda x, k: x >= k}


def naive_words(flags, n):
    """Row flags (bools) as 64-bit words, bit r % 64 of word r // 64, zero past n."""
    words = [0] * ((n + 63) // 64)
    for r in range(n):
        if flags[r]:
            words[r // 64] |= 1 << (r % 64)
    return words


def bits_of(array):
    """(validity bitmap as uint8, bit offset) of a pyarrow array, as the loaders get it."""
    buf = array.buffers()[0]
    if buf is None or array.null_count == 0:
        return np.zeros(0, np.uint8), 0
    return np.frombuffer(buf, dtype=np.uint8), array.offset


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("offset", [0, 3, 8, 13])
def test_bitmap_words_match_the_slow_twin(n, offset):
    rng = np.random.default_rng(n * 31 + offset)
    valid = rng.random(n + offset) < 0.7
    array = pa.array(np.arange(n + offset), mask=~valid).slice(offset, n)
    bits, bit_offset = bits_of(array)
    out = np.full(max((n + 63) // 64, 1), 12345, np.uint64)
    vm.bitmap_words(bits, bit_offset, n, out)
    expected = naive_words(array.is_valid().to_pylist() if n else [], n)
    assert out[:len(expected)].tolist() == expected
    # no bitmap: every row set, and nothing past n
    vm.bitmap_words(np.zeros(0, np.uint8), 0, n, out)
    assert out[:len(expected)].tolist() == naive_words([True] * n, n)


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("offset", [0, 5, 16])
def test_booleans_load_as_true_and_false_words(n, offset):
    rng = np.random.default_rng(n + 7 * offset)
    values = rng.random(n + offset) < 0.5
    mask = rng.random(n + offset) < 0.3
    for array in (pa.array(values, mask=mask).slice(offset, n), pa.array(values).slice(offset, n)):
        value_bits = np.frombuffer(array.buffers()[1], dtype=np.uint8)
        vbits, voff = bits_of(array)
        nw = max((n + 63) // 64, 1)
        out_t, out_f = np.zeros(nw, np.uint64), np.zeros(nw, np.uint64)
        vm.load_bool(value_bits, array.offset, vbits, voff, n, out_t, out_f)
        rows = array.to_pylist()
        assert out_t[:(n + 63) // 64].tolist() == naive_words([v is True for v in rows], n)
        assert out_f[:(n + 63) // 64].tolist() == naive_words([v is False for v in rows], n)


CONSTANTS = [0.0, -0.0, 3.0, 2.5, -7.5, 1e300, -1e300, -math.inf, math.inf, math.nan, 2.0 ** 31, -(2.0 ** 15),
             127.0, 127.5, -128.5, 255.0, 256.0, 2.0 ** 63]
DTYPES = [np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64, np.float32, np.float64]


def _column(dtype, n, seed):
    rng = np.random.default_rng(seed)
    kind = np.dtype(dtype).kind
    if kind == "f":
        values = (rng.integers(-12, 13, n) / 2).astype(dtype)
        if n:
            values[::5] = np.nan
            values[1::9] = -0.0
    else:
        info = np.iinfo(dtype)
        lo, hi = max(int(info.min), -(2 ** 53)), min(int(info.max), 2 ** 53)
        # small values around the constants, and the ends of the type
        values = rng.integers(-12, 13, n)
        values = np.clip(values, lo, hi).astype(dtype)
        if n > 3:
            values[:2] = [lo, hi]
    valid_rows = rng.random(n) < 0.8
    valid = np.zeros(max((n + 63) // 64, 1), np.uint64)
    valid[:(n + 63) // 64] = naive_words(valid_rows, n)
    values.flags.writeable = False
    return values, valid_rows, valid


def _check_planes(out, values, valid_rows, pairs, scale, n):
    x = [float(v) * scale for v in values.tolist()]  # float64, times the scale, as load_numeric
    for p, (k, c) in enumerate(pairs):
        truth = [bool(valid_rows[r]) and OPS[c](x[r], k) for r in range(n)]
        assert out[p, :(n + 63) // 64].tolist() == naive_words(truth, n), (k, c, scale)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", SIZES)
def test_column_planes_match_the_slow_twin(dtype, n):
    values, valid_rows, valid = _column(dtype, n, n + np.dtype(dtype).itemsize)
    pairs = [(k, c) for k in CONSTANTS for c in OPS]
    ks = np.array([k for k, _ in pairs], np.float64)
    codes = np.array([c for _, c in pairs], np.int64)
    for scale in (1.0, 86_400e6):
        out = np.full((len(pairs), valid.shape[0]), 99, np.uint64)
        vm.column_planes(_bytes(values), vm.KINDS[values.dtype], _bytes(_tail(values)), valid, scale, ks, codes,
                         out, n)
        _check_planes(out, values, valid_rows, pairs, scale, n)


@pytest.mark.parametrize("dtype", [np.int32, np.int64])
@pytest.mark.parametrize("n", SIZES)
def test_integer_planes_give_the_float64_answers(dtype, n):
    values, valid_rows, valid = _column(dtype, n, 3 * n + np.dtype(dtype).itemsize)
    pairs = [(k, c) for k in CONSTANTS for c in OPS]
    ks, codes = _integer_thresholds(np.array([k for k, _ in pairs], np.float64),
                                    np.array([c for _, c in pairs], np.int64), np.dtype(dtype))
    out = np.full((len(pairs), valid.shape[0]), 99, np.uint64)
    vm.integer_planes(_bytes(values), vm.KINDS[values.dtype], _bytes(_tail(values)), valid, ks.astype(np.int64), codes,
                      out, n)
    _check_planes(out, values, valid_rows, pairs, 1.0, n)


def _bytes(values):
    """A numeric column's values as read-only bytes, as the kernels take them."""
    return read_only(np.ascontiguousarray(values).view(np.uint8))


def _tail(values):
    """The last ``len(values) % 64`` values padded to 64 with zeros (the planes' tail argument)."""
    rest = len(values) % 64
    tail = np.zeros(64, dtype=values.dtype)
    tail[:rest] = values[len(values) - rest:]
    tail.flags.writeable = False
    return tail


@pytest.mark.parametrize("n", SIZES)
def test_load_batch_is_its_kernels_called_one_by_one(n):
    """load_batch against the kernels it stands for, called from Python one by one: every column
    type, sliced columns (offsets), nulls, integer and float64 planes, loaded values and
    boolean columns."""
    rng = np.random.default_rng(n + 11)
    columns, keep = [], []
    for j, dtype in enumerate(DTYPES):
        offset = j % 3
        values, valid_rows, _ = _column(dtype, n + offset, 7 * n + j)
        array = pa.array(values, mask=~valid_rows).slice(offset, n)
        view = segmint.io.columns.view_of(f"c{j}", array)
        columns.append((view, dtype in (np.int32, np.int64)))
    pairs = [(k, c) for k in CONSTANTS[:6] for c in OPS]
    cn, words, q = len(columns), (n + 63) // 64, len(pairs)
    ks = np.array([k for k, _ in pairs] * cn, np.float64)
    codes = np.array([c for _, c in pairs] * cn, np.int64)
    iks, icodes = np.zeros(q * cn, np.int64), np.zeros(q * cn, np.int64)
    num = np.zeros((cn, 10), np.int64)
    scales = np.array([1e6 if j % 4 == 0 else 1.0 for j in range(cn)])  # (integer columns: 1)
    expected_planes = np.zeros((q * cn, words), np.uint64)
    expected_valid = np.zeros((cn, words), np.uint64)
    expected_v = np.zeros((cn, n), np.float64)
    for j, (view, integer) in enumerate(columns):
        values = view.values
        lo, hi = j * q, (j + 1) * q
        validity = view.validity if view.validity is not None else np.zeros(0, np.uint8)
        keep.append(validity)
        vm.bitmap_words(validity, view.validity_offset, n, expected_valid[j])
        if integer:
            iks[lo:hi], icodes[lo:hi] = _integer_thresholds(ks[lo:hi], codes[lo:hi], values.dtype)
            vm.integer_planes(_bytes(values), vm.KINDS[values.dtype], _bytes(_tail(values)), expected_valid[j],
                              iks[lo:hi], icodes[lo:hi], expected_planes[lo:hi], n)
        else:
            vm.column_planes(_bytes(values), vm.KINDS[values.dtype], _bytes(_tail(values)), expected_valid[j],
                             scales[j], ks[lo:hi], codes[lo:hi], expected_planes[lo:hi], n)
        if j % 3 == 0:
            vm.load_numeric(_bytes(values), vm.KINDS[values.dtype], 0, n, scales[j], expected_v[j])
        num[j] = (_address(values), values.nbytes, vm.KINDS[values.dtype], _address(validity), validity.nbytes,
                  view.validity_offset, lo, hi, integer, j % 3 == 0)
    booleans = [pa.array(rng.random(n + 5) < 0.5, mask=rng.random(n + 5) < 0.3).slice(5, n),
                pa.array(rng.random(n + 2) < 0.5).slice(2, n)]
    bools = np.zeros((2, 6), np.int64)
    expected_t, expected_f = np.zeros((2, words), np.uint64), np.zeros((2, words), np.uint64)
    for j, array in enumerate(booleans):
        view = segmint.io.columns.view_of(f"b{j}", array)
        validity = view.validity if view.validity is not None else np.zeros(0, np.uint8)
        keep.append((view.values, validity))
        vm.load_bool(view.values, view.values_offset, validity, view.validity_offset, n, expected_t[j],
                     expected_f[j])
        bools[j] = (_address(view.values), view.values.nbytes, view.values_offset, _address(validity),
                    validity.nbytes, view.validity_offset)
    planes = np.full((q * cn, words), 99, np.uint64)
    col_valid, col_v = np.full((cn, words), 99, np.uint64), np.full((cn, n), -1.0)
    col_t, col_f = np.full((2, words), 99, np.uint64), np.full((2, words), 99, np.uint64)
    vm.load_batch(num, scales, np.full((cn, vm.TAIL_BYTES), 77, np.uint8), ks, codes, iks, icodes, bools, planes,
                  col_v, col_valid, col_t, col_f, n)
    assert planes.tolist() == expected_planes.tolist()
    assert col_valid.tolist() == expected_valid.tolist()
    loaded = [j for j in range(cn) if j % 3 == 0]
    np.testing.assert_array_equal(col_v[loaded], expected_v[loaded])  # (NaN where NaN)
    assert col_t.tolist() == expected_t.tolist() and col_f.tolist() == expected_f.tolist()


@pytest.mark.parametrize("n", SIZES)
def test_run_program_counts_overlaps_as_pair_by_pair(n):
    rng = np.random.default_rng(n + 5)
    words, k = (n + 63) // 64, 5
    member = rng.integers(0, 2 ** 63, (k, words), dtype=np.uint64)
    if n % 64:
        member[:, -1] &= np.uint64((1 << (n % 64)) - 1)
    overlaps = np.zeros((k, k), np.int64)
    matched, unknown = np.zeros(k, np.int64), np.zeros(k, np.int64)
    empty = np.zeros((1, 5), np.int64)[:0]  # a program of no instructions: memberships as given
    vm.run_program(empty, np.zeros(1), np.zeros(1, np.uint8), np.zeros(2, np.uint64), np.zeros((0, words), np.uint64),
                   np.zeros((0, 0)), np.zeros((0, words), np.uint64), np.zeros((0, words), np.uint64),
                   np.zeros((0, words), np.uint64), np.zeros((0, n), np.int32), n, 0, 0, np.zeros(0, np.uint8), 1, k,
                   member, matched, unknown, overlaps)
    rows = [[bool((int(member[s, r // 64]) >> (r % 64)) & 1) for r in range(n)] for s in range(k)]
    assert overlaps.tolist() == [[sum(a and b for a, b in zip(rows[i], rows[j])) for j in range(k)]
                                 for i in range(k)]
    assert matched.tolist() == unknown.tolist() == [0] * k


def test_comparisons_of_columns_with_constants_become_planes_one_per_distinct_comparison():
    rs = RuleSet({"a": "x >= 3 and y < 2", "b": "x >= 3 or y < 2 or x + y > 1", "c": "y < 2"}, mode="multi")
    program = rs.prepare(pa.schema([("x", pa.int32()), ("y", pa.float64())]))
    assert program.batch_code.shape == program.code.shape  # rows keep their places
    planes = program.planes.tolist()
    assert len(planes) == 2 and [p[0] for p in planes] == sorted(p[0] for p in planes)
    code = program.batch_code
    hoisted = np.isin(code[:, 0], [vm.CMPK, vm.CMPK_AND]) & (code[:, 2] < 0)
    assert not hoisted.any()  # no comparison of a column with a constant is left in the program
    assert np.isin(code[:, 0], [vm.CMP_PLANE, vm.CMP_PLANE_AND]).sum() == 5
    # arithmetic reads x and y as float64; a column only compared with constants is not copied
    assert program.value_columns == {0, 1}
    assert rs.prepare(pa.schema([("x", pa.int32()), ("y", pa.float64())])).value_columns == {0, 1}
    only = RuleSet({"a": "x >= 3 and y < 2"}).prepare(pa.schema([("x", pa.int32()), ("y", pa.float64())]))
    assert only.value_columns == set()
    # the one-record VM runs the program as generated
    assert vm.CMP_PLANE not in program.code[:, 0].tolist()


def test_hoisting_keeps_rows_and_shares_one_plane_per_distinct_comparison():
    code = np.array([(vm.CMPK, 0, -1, 3, vm.GE),           # x >= k3
                     (vm.CMPK_AND, 1, -2, 4 * 8 + vm.LT, 0),  # y < k4 and r0
                     (vm.SINK_MULTI, 0, 1, 0, 0),
                     (vm.CMPK, 0, -1, 3, vm.GE),           # x >= k3 again: the same plane
                     (vm.CMPK, 1, 2, 3, vm.GE),            # a register: stays in the program
                     (vm.B_OR, 0, 0, 1, 0),
                     (vm.SINK_MULTI, 1, 0, 0, 0)], dtype=np.int64)
    batch_code, planes = hoist_comparisons(code)
    assert planes.tolist() == [[0, 3, vm.GE], [1, 4, vm.LT]]
    assert batch_code.tolist() == [[vm.CMP_PLANE, 0, 0, 0, 0], [vm.CMP_PLANE_AND, 1, 1, 1, 0],
                                   [vm.SINK_MULTI, 0, 1, 0, 0], [vm.CMP_PLANE, 0, 0, 0, 0],
                                   [vm.CMPK, 1, 2, 3, vm.GE], [vm.B_OR, 0, 0, 1, 0], [vm.SINK_MULTI, 1, 0, 0, 0]]
    assert code[0, 0] == vm.CMPK  # the input is left as it was (the one-record VM runs it)


def _waterfall_truth(trees, rows):
    labels, matched, unknown = [], [0] * len(trees), [0] * len(trees)
    for row in rows:
        label = len(trees)
        for i, t in enumerate(trees):
            v = naive.value(t, row)
            if v is True:
                label = i
                matched[i] += 1
                break
            if v is None:
                unknown[i] += 1
        labels.append(label)
    return labels, matched, unknown


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(naive.bool_terms(), min_size=1, max_size=4), st.integers(0, 1000),
       st.sampled_from([4096 * 2 + 77, 5000]), st.sampled_from([1000, 4097, 131_072]))
def test_rules_over_several_sub_blocks_and_batches_match_the_slow_twin(trees, seed, n, batch_size):
    table = random_table(n, seed)
    rows = rows_of(table)
    rules = [(f"s{i}", naive.render(t)) for i, t in enumerate(trees)]
    labels, matched, unknown = _waterfall_truth(trees, rows)
    names = [f"s{i}" for i in range(len(trees))] + ["rest"]
    result = RuleSet(rules, default="rest").evaluate(table, as_of=naive.AS_OF, batch_size=batch_size)
    assert result.table.column("segment").to_pylist() == [names[i] for i in labels]
    counts = result.counts.to_pydict()
    assert counts["matched"][:-1] == matched and counts["unknown"][:-1] == unknown
    multi = RuleSet(rules, mode="multi").evaluate(table, as_of=naive.AS_OF, batch_size=batch_size)
    for i, t in enumerate(trees):
        values = [naive.value(t, r) for r in rows]
        column = multi.table.column(f"s{i}")
        assert column.null_count == 0 and column.to_pylist() == [v is True for v in values]
        assert multi.counts.column("unknown")[i].as_py() == sum(v is None for v in values)


def test_results_do_not_depend_on_the_thread_count():
    table = segmint.make_customers(300_000, random_state=4)
    rules = {"vip": "frequency >= 8 and monetary >= 500", "ny": "region in ('NY', 'CA') and recency_days <= 90",
             "old": "age >= 60 or email_opt_in", "none": "frequency < 0"}
    out = []
    for threads in (1, 2, 3):
        with segmint.threads(threads):
            wf = RuleSet(rules, default="rest").evaluate(table, as_of="2026-10-01")
            multi = RuleSet(rules, mode="multi").evaluate(table, as_of="2026-10-01")
        out.append((wf.table, wf.counts, multi.table, multi.counts, multi.overlaps))
    for other in out[1:]:
        assert all(a.equals(b) for a, b in zip(out[0], other))


def test_a_waterfall_that_takes_every_row_early_and_wide_labels():
    n = 9000
    x = np.arange(n, dtype=np.int64)
    table = pa.table({"x": pa.array(x, mask=x % 11 == 0)})
    # the first segment takes every valid row: later segments see only the null ones
    rs = RuleSet([("all", "x >= 0"), ("never", "x < 0"), ("nulls", "x is null")], default="rest")
    result = rs.evaluate(table)
    expected = ["nulls" if v % 11 == 0 else "all" for v in x.tolist()]
    assert result.table.column("segment").to_pylist() == expected
    assert result.counts.column("matched").to_pylist() == [n - (n + 10) // 11, 0, (n + 10) // 11, 0]
    assert result.counts.column("unknown").to_pylist() == [(n + 10) // 11, (n + 10) // 11, 0, 0]
    # 300 segments: int16 labels; 140 multi segments: membership words of many segments
    wide = RuleSet([(f"s{i}", f"x >= {i * 30} and x < {i * 30 + 30}") for i in range(300)],
                   default="rest")
    labels = wide.evaluate(table).table.column("segment")
    assert labels.type.index_type == pa.int16()
    assert labels.to_pylist() == ["rest" if v % 11 == 0 else f"s{v // 30}" for v in x.tolist()]
    multi = RuleSet([(f"m{i}", f"x >= {i * 60}") for i in range(140)], mode="multi").evaluate(table)
    for i in (0, 1, 63, 64, 139):
        assert multi.table.column(f"m{i}").to_pylist() == [v % 11 != 0 and v >= i * 60 for v in x.tolist()]


@pytest.mark.parametrize("dtype", [np.int8, np.uint8, np.int16, np.int32, np.int64, np.uint64])
def test_integer_thresholds_give_the_float64_answers_at_the_ends_of_each_type(dtype):
    info = np.iinfo(dtype)
    xs = sorted(x for x in {int(info.min), int(info.min) + 1, -3, -1, 0, 1, 2, 3, 100, int(info.max) - 1,
                            int(info.max)} if info.min <= x <= info.max and abs(x) <= 2 ** 53)
    ks = np.array(CONSTANTS + [-128.0, -129.0, 255.5, 2.0 ** 64, -(2.0 ** 63)], np.float64)
    as_int = {vm.EQ: lambda x, t: x == t, vm.NE: lambda x, t: x != t, vm.LE: lambda x, t: x <= t,
              vm.GE: lambda x, t: x >= t, vm.ALL: lambda x, t: True, vm.NONE: lambda x, t: False}
    for c, op in OPS.items():
        thresholds, codes = _integer_thresholds(ks, np.full(len(ks), c, np.int64), np.dtype(dtype))
        assert thresholds.dtype == dtype
        for k, t, code in zip(ks.tolist(), thresholds.tolist(), codes.tolist()):
            for x in xs:
                assert op(float(x), k) == as_int[code](x, t), (x, c, k)


@pytest.mark.parametrize("dtype", DTYPES)
def test_load_numeric_widens_every_column_type_as_float64_does(dtype):
    # one compiled variant reads every type from the column's bytes (vm.KINDS)
    values, _, _ = _column(dtype, 300, 7 + np.dtype(dtype).itemsize)
    for start, stop in ((0, 300), (5, 133), (64, 64), (299, 300)):
        for scale in (1.0, 86_400e6, 1e-3):
            out = np.full(300, 99.0)
            vm.load_numeric(_bytes(values), vm.KINDS[values.dtype], start, stop, scale, out)
            expected = [float(v) * scale for v in values[start:stop].tolist()]  # the slow twin
            got = out[:stop - start]
            assert np.array_equal(got, np.array(expected), equal_nan=True), (start, stop, scale)
            assert np.array_equal(np.signbit(got), np.signbit(np.array(expected)))
            assert (out[stop - start:] == 99.0).all()


def test_string_lookup_tables_larger_than_a_word_read_each_sub_block_s_own_rows():
    # a dictionary of more than 64 strings goes through the byte table (LUT), not LUT64: its
    # rows must be each sub-block's (several sub-blocks of vm.SUB rows, a partial last one)
    n = 3 * vm.SUB + 100
    rng = np.random.default_rng(5)
    values = [f"v{i}" for i in rng.integers(0, 150, n)]
    mask = rng.random(n) < 0.1
    table = pa.table({"s": pa.array(values, mask=mask).dictionary_encode(),
                      "x": pa.array(rng.integers(0, 10, n))})
    picked = {"v1", "v50", "v99", "v149"}
    rs = RuleSet({"in": "s in ('v1', 'v50', 'v99', 'v149')", "out": "not (s in ('v1', 'v50', 'v99', 'v149'))",
                  "and": "x > 3 and s in ('v1', 'v50', 'v99', 'v149')"}, mode="multi")
    for batch_size in (None, 5000):
        result = rs.evaluate(table, batch_size=batch_size).table
        known = ~mask
        hit = np.array([v in picked for v in values])
        assert result.column("in").to_pylist() == (known & hit).tolist()
        assert result.column("out").to_pylist() == (known & ~hit).tolist()
        x = table.column("x").to_numpy()
        assert result.column("and").to_pylist() == (known & hit & (x > 3)).tolist()


@pytest.mark.parametrize("batch_size", [50, 130, 1000])
def test_small_chunks_grouped_per_thread_give_the_one_chunk_results(batch_size):
    """Consecutive chunks smaller than the batch go to a thread together (see RuleSet._stream):
    results, counts and overlaps equal those of the same rows in one chunk, at any thread count."""
    table = random_table(1500, seed=4)
    cuts = [0, 1, 64, 65, 200, 203, 700, 701, 1499, 1500]
    chunked = pa.concat_tables([table.slice(a, b - a) for a, b in zip(cuts[:-1], cuts[1:])])
    rules = [("pos", "i > 0 and b"), ("ny", "s = 'NY' or f < -3"), ("old", "days_since(d) > 100")]
    for threads in (1, 2):
        with segmint.threads(threads):
            for mode in ("waterfall", "multi"):
                rs = RuleSet(rules, mode=mode)
                one = rs.evaluate(table.combine_chunks(), as_of=naive.AS_OF)
                many = rs.evaluate(chunked, as_of=naive.AS_OF, batch_size=batch_size)
                assert many.table.combine_chunks().equals(one.table.combine_chunks())
                assert many.counts.equals(one.counts)
                assert (many.overlaps is None) == (mode == "waterfall")
                if many.overlaps is not None:
                    assert many.overlaps.equals(one.overlaps)
