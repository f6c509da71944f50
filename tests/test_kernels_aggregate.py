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


@pytest.mark.parametrize("n,f", [(0, 1), (1, 3), (37, 6)])
def test_gather_state_matches_fancy_indexing(n, f):
    rng = np.random.default_rng(f)
    ist = rng.integers(-99, 99, (50, agg.N_ISTATE)).astype(np.int64)
    fst = rng.random((50, f))
    rows = rng.integers(0, 50, n).astype(np.int64)
    out_i = np.empty((agg.N_ISTATE, n), np.int64)
    out_f = np.empty((f, n))
    agg.gather_state(ist, fst, rows, out_i, out_f)
    assert np.array_equal(out_i, ist[rows].T) and np.array_equal(out_f, fst[rows].T)


@pytest.mark.parametrize("dense", [False, True])
def test_partition_count_and_scatter_keep_every_event_in_order(dense):
    rng = np.random.default_rng(3)
    n = 5000
    ids = (rng.integers(0, 300, n) + (1000 if dense else 10**15)).astype(np.int64)
    ts = rng.integers(0, 10**9, n).astype(np.int64)
    id_valid, ts_valid = rng.random(n) > 0.05, rng.random(n) > 0.05
    as_of = 9 * 10**8
    part = np.empty(n, np.int16)
    counts = np.zeros(agg.N_PART, np.int64)
    report = np.zeros(3, np.int64)
    ts[7], id_valid[7], ts_valid[7] = -10**12, True, True  # outside the valid times (below)
    ts_lo, ts_hi = 0, 10**9
    bad_row = np.full(1, -1, np.int64)
    agg.partition_count(ids, _bits(id_valid), 0, ts, _bits(ts_valid), 0, 1, 1, ts_lo, ts_hi, as_of, 0, n,
                        dense, 1000, part, counts, report, bad_row)
    in_range = ts >= ts_lo
    assert bad_row[0] == np.flatnonzero(id_valid & ts_valid & ~in_range)[0] == 7
    # such a row is reported (the caller refuses the data) and neither counted nor kept
    kept = id_valid & ts_valid & in_range & (ts <= as_of)
    assert list(report) == [int((~id_valid).sum()), int((id_valid & ~ts_valid).sum()),
                            int((id_valid & ts_valid & in_range & (ts > as_of)).sum())]
    assert counts.sum() == kept.sum()
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
