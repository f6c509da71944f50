"""The small aggregation kernels against obvious slow twins (the whole pipeline is compared
with pandas in test_events.py)."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from segmint.kernels import aggregate as agg


def _bits(mask):
    """Arrow validity bitmap (LSB first) of a boolean mask."""
    return np.packbits(mask.astype(np.uint8), bitorder="little") if mask.size else np.zeros(0, np.uint8)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(-2**62, 2**62), max_size=40), st.data())
def test_id_range_matches_python(values, data):
    ids = np.asarray(values, dtype=np.int64)
    valid = np.asarray(data.draw(st.lists(st.booleans(), min_size=len(values), max_size=len(values))), dtype=bool)
    out = np.zeros(3, dtype=np.int64)
    agg.id_range(ids, _bits(valid) if len(values) else np.zeros(0, np.uint8), 0, out)
    kept = [v for v, ok in zip(values, valid) if ok]
    assert list(out) == ([min(kept), max(kept), len(kept)] if kept else [0, 0, 0])


@pytest.mark.parametrize("n", [0, 1, 2, 7, 1000, 4099])
def test_merge_order_matches_argsort(n):
    rng = np.random.default_rng(n)
    keys = rng.permutation(n * 3)[:n].astype(np.int64)
    half = n // 2
    a = np.argsort(keys[:half]).astype(np.int64)
    b = half + np.argsort(keys[half:]).astype(np.int64)
    out = np.empty(n, dtype=np.int64)
    agg.merge_order(keys, a, b, out)
    assert np.array_equal(out, np.argsort(keys))


US_PER_DAY = 86_400_000_000


def _naive_columns(ist, fst, rows, day0, win_int, trend):
    """The result columns as the NumPy code before ``aggregate_columns`` built them: ``(ints,
    floats, masks)`` as lists of arrays, windows and trends in order; masks True where valid."""
    ist, fst = ist[rows].T, fst[rows].T
    count, amount_n, first_q, last_q = (ist[k] for k in (agg.I_COUNT, agg.I_AMOUNT_N, agg.I_FIRST_Q, agg.I_LAST_Q))
    total = fst[agg.F_AMOUNT]
    with np.errstate(all="ignore"):
        gap = np.divide((last_q - first_q) / US_PER_DAY, count - 1, out=np.zeros(count.size), where=count > 1)
        mean = np.divide(total, amount_n, out=np.zeros(count.size), where=amount_n > 0)
        ints = [count, day0 - np.floor_divide(last_q, US_PER_DAY), day0 - np.floor_divide(ist[agg.I_FIRST], US_PER_DAY),
                ist[agg.I_FIRST], ist[agg.I_LAST], last_q]
        floats, masks, trends, trend_masks = [total, mean, gap], [amount_n != 0, count > 0, count > 1], [], []
        for j in range(len(win_int)):
            values = fst[1 + j]
            (ints if win_int[j] else floats).append(values.astype(np.int64) if win_int[j] else values)
            if trend[j]:
                trends.append(np.divide(fst[j], values, out=np.zeros(values.size), where=values > 0))
                trend_masks.append(values != 0)
    return ints, floats + trends, masks + trend_masks


@pytest.mark.parametrize("n", [0, 1, 7, 8, 37, 1001])
@pytest.mark.parametrize("chunk", [8, 64, 4096])
def test_aggregate_columns_match_numpy(n, chunk):
    rng = np.random.default_rng(n + chunk)
    m = 60
    win_int = np.array([1, 0, 1, 1, 0, 0], np.uint8)   # count, sum, a count trend, a sum trend
    trend = np.array([0, 0, 0, 1, 0, 1], bool)        # the older window of each trend
    ist = np.empty((m, agg.N_ISTATE), np.int64)
    ist[:, agg.I_COUNT] = rng.integers(0, 4, m)       # none, one, several: null recency and gaps
    ist[:, agg.I_AMOUNT_N] = np.minimum(ist[:, agg.I_COUNT], rng.integers(0, 3, m))
    ist[:, agg.I_FIRST] = rng.integers(-10**16, 10**16, m)
    ist[:, agg.I_LAST] = ist[:, agg.I_FIRST] + rng.integers(0, 10**12, m)
    ist[:, agg.I_FIRST_Q] = np.where(ist[:, agg.I_COUNT] > 0, ist[:, agg.I_FIRST], agg.INT64_MAX)
    ist[:, agg.I_LAST_Q] = np.where(ist[:, agg.I_COUNT] > 0, ist[:, agg.I_LAST], agg.INT64_MIN)
    ist[:, agg.I_SEG] = -1
    fst = rng.normal(0, 50, (m, 1 + len(win_int) + 2))  # totals, windows, (unread) partials
    fst[:, 1 + np.flatnonzero(win_int)] = rng.integers(0, 3, (m, int(win_int.sum())))  # counts: zeros too
    fst[::7, 5] = 0.0                                   # an empty sum window under a trend
    fst[::11, 6] = np.nan
    rows = rng.integers(0, m, n).astype(np.int64)
    day0 = 20_000
    win_dst = np.empty(len(win_int), np.int64)
    win_dst[win_int == 1] = agg.C_LAST_Q + 1 + np.arange(int(win_int.sum()))
    win_dst[win_int == 0] = agg.C_GAP + 1 + np.arange(int((win_int == 0).sum()))
    n_f = agg.C_GAP + 1 + int((win_int == 0).sum())
    trend_dst = np.where(trend, n_f + np.cumsum(trend) - 1, -1).astype(np.int64)
    trend_valid = np.where(trend, agg.V_GAP + np.cumsum(trend), -1).astype(np.int64)
    out_i = np.full((agg.C_LAST_Q + 1 + int(win_int.sum()), n), 7, np.int64)
    out_f = np.full((n_f + int(trend.sum()), n), 7.0)
    valid = np.full((agg.V_GAP + 1 + int(trend.sum()), (n + 7) // 8), 0xFF, np.uint8)
    for lo in range(0, n, chunk):
        agg.aggregate_columns(ist, fst, rows, lo, min(n, lo + chunk), day0, win_dst, win_int,
                              trend_dst, trend_valid, out_i, out_f, valid)
    ints, floats, masks = _naive_columns(ist, fst, rows, day0, win_int, trend)
    assert len(ints) == out_i.shape[0] and len(floats) == out_f.shape[0] and len(masks) == valid.shape[0]
    for k, expected in enumerate(ints):
        assert np.array_equal(out_i[k], expected), k
    for k, expected in enumerate(floats):  # bit for bit, NaN included
        assert np.array_equal(out_f[k].view(np.int64), expected.view(np.int64)), k
    for k, expected in enumerate(masks):
        assert np.array_equal(np.unpackbits(valid[k], count=n, bitorder="little").astype(bool), expected), k


@pytest.mark.parametrize("dense,block_shift", [(False, 63), (True, 63), (True, agg.P_BITS + 1), (True, agg.P_BITS)])
def test_partition_count_and_scatter_keep_every_event_in_order(dense, block_shift):
    rng = np.random.default_rng(3)
    n = 5000
    ids = (rng.integers(0, 1200, n) + (1000 if dense else 10**15)).astype(np.int64)
    ts = rng.integers(0, 10**9, n).astype(np.int64)
    id_valid, ts_valid = rng.random(n) > 0.05, rng.random(n) > 0.05
    as_of = 9 * 10**8
    part = np.empty(n, np.int16)
    cap = -(-1200 // agg.N_PART)  # slots per partition
    n_parts = agg.N_PART * (1 if block_shift == 63 else -(-cap // (1 << (block_shift - agg.P_BITS))))
    counts = np.zeros(n_parts, np.int64)
    report = np.zeros(3, np.int64)
    ts[7], id_valid[7], ts_valid[7] = -10**12, True, True  # outside the valid times (below)
    ts_lo, ts_hi = 0, 10**9
    bad_row = np.full(1, -1, np.int64)
    agg.partition_count(ids, _bits(id_valid), 0, ts, _bits(ts_valid), 0, 1, 1, ts_lo, ts_hi, as_of, 0, n,
                        dense, 1000, block_shift, part, counts, report, bad_row)
    in_range = ts >= ts_lo
    assert bad_row[0] == np.flatnonzero(id_valid & ts_valid & ~in_range)[0] == 7
    # such a row is reported (the caller refuses the data) and neither counted nor kept
    kept = id_valid & ts_valid & in_range & (ts <= as_of)
    assert list(report) == [int((~id_valid).sum()), int((id_valid & ~ts_valid).sum()),
                            int((id_valid & ts_valid & in_range & (ts > as_of)).sum())]
    assert counts.sum() == kept.sum()
    if dense:  # slow twin of the partition (block) of an id
        k = ids[kept] - 1000
        expected = (k & (agg.N_PART - 1)) | ((k >> min(block_shift, 62)) << agg.P_BITS if block_shift < 63 else 0)
        assert np.array_equal(part[kept], expected) and np.array_equal(counts, np.bincount(expected, minlength=n_parts))
    starts = np.concatenate([[0], np.cumsum(counts)])
    pos = starts[:-1].copy()
    buf = np.empty((int(kept.sum()), 4), np.int64)
    slots = np.empty(int(kept.sum()), np.int32)
    code_bits = np.zeros(1, np.uint64)
    agg.partition_scatter(ids, ts, 1, 1, np.zeros(0), np.zeros(0, np.uint8), 0, np.zeros(0, np.int32),
                          np.zeros(0, np.uint8), 0, code_bits, as_of, np.zeros(0, np.int64),
                          np.zeros(0, np.int64), 0, n, part, pos, buf, buf.view(np.float64), dense, 1000, slots)
    # slow twin: a stable sort of the kept events by partition
    order = np.flatnonzero(kept)[np.argsort(part[kept], kind="stable")]
    assert np.array_equal(buf[:, agg.B_TS], ts[order])
    if dense:
        assert np.array_equal(slots, (ids[order] - 1000) >> agg.P_BITS)
    else:
        assert np.array_equal(buf[:, agg.B_ID], ids[order])


@pytest.mark.parametrize("cap", [0, 1, 3, 40])
def test_dense_seen_matches_numpy(cap):
    rng = np.random.default_rng(cap)
    ist = rng.integers(-99, 99, (agg.N_PART, cap, agg.N_ISTATE)).astype(np.int64)
    ist[rng.random((agg.N_PART, cap)) < 0.3, agg.I_FIRST] = agg.INT64_MAX  # slots never seen
    keys = np.arange(agg.N_PART * cap, dtype=np.int64)
    rows = (keys & (agg.N_PART - 1)) * cap + (keys >> agg.P_BITS)
    seen = ist.reshape(-1, agg.N_ISTATE)[rows, agg.I_FIRST] != agg.INT64_MAX
    out_k, out_r = np.empty(keys.size, np.int64), np.empty(keys.size, np.int64)
    n = agg.dense_seen(ist, out_k, out_r)
    assert np.array_equal(out_k[:n], keys[seen]) and np.array_equal(out_r[:n], rows[seen])
