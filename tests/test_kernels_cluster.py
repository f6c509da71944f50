"""Every clustering kernel against its slow twin on random inputs."""
import os
import platform
import subprocess
import sys

import numba
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import naive_kmeans as naive
from segmint.kernels.assign import TILE, _fill_tile, assign_rows
from segmint.kernels.distance import center_distances
from segmint.kernels.kmeanspp import sq_dist_to_point, trial_potentials
from segmint.kernels.minibatch import minibatch_update
from segmint.kernels.reassign import relocate_empty
from segmint.kernels.reduce import weighted_sum
from segmint.kernels.simd import transpose_16B, transpose_32B, transpose_64B
from segmint.kernels.validate import count_nonfinite
from segmint.cluster._matrix import kernel_layout
from segmint.cluster._passes import no_sums, prepare

DTYPES = [np.float32, np.float64]
RTOL = {np.float32: 2e-4, np.float64: 1e-10}


def _layouts(X):
    yield "C", np.ascontiguousarray(X)
    yield "F", np.asfortranarray(X)
    big = np.zeros((X.shape[0] * 2, X.shape[1] + 3), dtype=X.dtype)
    big[::2, 1:X.shape[1] + 1] = X
    yield "strided", big[::2, 1:X.shape[1] + 1]


def _check_assignment(X, C, labels, dist, dtype):
    D = naive.sq_distances(X, C)
    best = D.min(axis=1) if len(X) else np.zeros(0)
    chosen = D[np.arange(len(X)), labels]
    scale = 1.0 + (X.astype(np.float64) ** 2).sum(axis=1) + (C.astype(np.float64) ** 2).sum(axis=1).max()
    tol = RTOL[dtype] * scale
    # the chosen center is nearest up to rounding, and its distance is right
    assert np.all(chosen <= best + tol)
    np.testing.assert_allclose(dist, chosen, rtol=0, atol=np.max(tol) if len(X) else 0)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [0, 1, 5, TILE - 1, TILE, TILE + 1, 1000])
@pytest.mark.parametrize("d,k", [(1, 1), (1, 3), (3, 2), (4, 4), (5, 7), (8, 5), (12, 4), (16, 8),
                                 (17, 33), (30, 3)])
def test_assign_rows_matches_naive(dtype, n, d, k):
    rng = np.random.default_rng(n * 100 + d * 10 + k)
    X = rng.normal(size=(n, d)).astype(dtype)
    C = rng.normal(size=(k, d)).astype(dtype)
    C2, cn = prepare(C)
    for _, Xl in _layouts(X):
        labels = np.full(n, -1, dtype=np.int32)
        dist = np.full(n, -1, dtype=dtype)
        assert assign_rows(*kernel_layout(Xl), 0, n, C2, cn, labels, 0, dist, 0, True, *no_sums(Xl)) == 0
        _check_assignment(X, C, labels, dist, dtype)
        assert np.all((labels >= 0) & (labels < k))
        only = np.full(n, -1, dtype=np.int32)
        assign_rows(*kernel_layout(Xl), 0, n, C2, cn, only, 0, np.empty(0, dtype), 0, False, *no_sums(Xl))
        assert np.array_equal(only, labels)  # labels without distances are the same labels


@pytest.mark.parametrize("dtype", DTYPES)
def test_assign_partial_range_and_ties(dtype):
    X = np.array([[0.0, 0.0], [1.0, 1.0], [2.0, 2.0], [5.0, 5.0]], dtype=dtype)
    C = np.array([[1.0, 1.0], [1.0, 1.0], [0.0, 0.0], [1.0, 1.0], [5.0, 5.0]], dtype=dtype)
    C2, cn = prepare(C)
    labels = np.full(4, -7, dtype=np.int32)
    dist = np.full(4, -7, dtype=dtype)
    assign_rows(*kernel_layout(X), 1, 3, C2, cn, labels, 0, dist, 0, True, *no_sums(X))
    assert labels.tolist() == [-7, 0, 0, -7]  # exact ties go to the lowest index; rows outside untouched
    assert dist.tolist() == [-7, 0, 2, -7]
    scratch_l = np.full(2, -7, dtype=np.int32)
    scratch_d = np.full(2, -7, dtype=dtype)
    assign_rows(*kernel_layout(X), 1, 3, C2, cn, scratch_l, 1, scratch_d, 1, True, *no_sums(X))  # outputs offset to scratches of 2 rows
    mixed = np.full(4, -7, dtype=np.int32)
    assign_rows(*kernel_layout(X), 1, 3, C2, cn, mixed, 0, scratch_d, 1, True, *no_sums(X))  # labels whole-data, distances scratch
    assert mixed.tolist() == [-7, 0, 0, -7]
    assert scratch_l.tolist() == [0, 0] and scratch_d.tolist() == [0, 2]


def test_nan_rows_give_nan_distances():
    X = np.array([[np.nan, 1.0], [1.0, 1.0], [np.inf, 0.0]])
    C2, cn = prepare(np.array([[0.0, 0.0], [1.0, 1.0]]))
    labels = np.empty(3, np.int32)
    dist = np.empty(3)
    assert assign_rows(*kernel_layout(X), 0, 3, C2, cn, labels, 0, dist, 0, True, *no_sums(X)) == 2
    assert np.isnan(dist[0]) and dist[1] == 0 and not np.isfinite(dist[2])
    assert assign_rows(*kernel_layout(X), 0, 3, C2, cn, labels, 0, np.empty(0), 0, False, *no_sums(X)) == 2


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("d", [2, 16, 19])
def test_nonfinite_rows_are_counted_in_full_tiles(dtype, d):
    rng = np.random.default_rng(d)
    X = rng.normal(size=(3 * TILE + 7, d)).astype(dtype)
    bad_rows = [0, 5, TILE + 1, 2 * TILE + 127, 3 * TILE + 6]
    for r, v in zip(bad_rows, [np.nan, np.inf, -np.inf, np.nan, np.nan]):
        X[r, r % d] = v
    C2, cn = prepare(rng.normal(size=(5, d)).astype(dtype))
    for _, Xl in _layouts(X):
        labels = np.empty(len(X), np.int32)
        dist = np.empty(len(X), dtype)
        assert assign_rows(*kernel_layout(Xl), 0, len(X), C2, cn, labels, 0, dist, 0, True, *no_sums(Xl)) == len(bad_rows)
        assert assign_rows(*kernel_layout(Xl), 0, len(X), C2, cn, labels, 0, np.empty(0, dtype), 0, False, *no_sums(Xl)) == len(bad_rows)
        assert not np.isfinite(dist[bad_rows]).any()
        assert np.isfinite(np.delete(dist, bad_rows)).all()


@numba.njit
def _call_transpose(which, X, row, col, tile, trow, tcol):
    if which == 64:
        transpose_64B(X, row, col, tile, trow, tcol)
    elif which == 32:
        transpose_32B(X, row, col, tile, trow, tcol)
    else:
        transpose_16B(X, row, col, tile, trow, tcol)


@pytest.mark.parametrize("dtype,bits", [(np.float32, np.uint32), (np.float64, np.uint64)])
@pytest.mark.parametrize("vector_bytes", [64, 32, 16])
def test_block_transposes_move_every_bit(dtype, bits, vector_bytes):
    """Random bit patterns (NaN payloads, negative zeros, subnormals) come out transposed, unchanged."""
    w = vector_bytes // np.dtype(dtype).itemsize
    rng = np.random.default_rng(vector_bytes)
    big = rng.integers(0, np.iinfo(bits).max, size=(w + 9, w + 7), dtype=bits, endpoint=True).view(dtype)
    X = big[2:, 3:]  # rows contiguous, row stride wider than the block
    for row, col, trow, tcol in [(0, 0, 0, 0), (3, 2, 1, 5), (7, 4, 6, 8)]:
        tile = np.zeros((w + 6, w + 8), dtype=dtype)
        before = tile.copy()
        _call_transpose(vector_bytes, X, row, col, tile, trow, tcol)
        block = X[row:row + w, col:col + w].view(bits)
        assert np.array_equal(tile[trow:trow + w, tcol:tcol + w].view(bits), block.T)
        outside = np.ones(tile.shape, bool)
        outside[trow:trow + w, tcol:tcol + w] = False
        assert np.array_equal(tile[outside].view(bits), before[outside].view(bits))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("d", list(range(1, 20)) + [24, 31, 32, 33, 40])
def test_fill_tile_is_a_transposed_copy(dtype, d):
    rng = np.random.default_rng(d)
    n = 3 * TILE + 5
    X = rng.normal(size=(n, d)).astype(dtype)
    dp = d + 3
    for _, Xl in _layouts(X):
        for lo, m in [(0, TILE), (TILE + 3, TILE), (2 * TILE + 5, TILE), (5, 17), (n - 1, 1)]:
            tile = np.full((dp, TILE), 7, dtype=dtype)
            _fill_tile(Xl, lo, m, tile)
            assert np.array_equal(tile[:d, :m], X[lo:lo + m].T)
            assert np.all(tile[d:] == 7) and np.all(tile[:, m:] == 7)  # nothing else written


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("weighted", [False, True])
def test_assign_rows_sums_match_naive(dtype, weighted):
    rng = np.random.default_rng(3)
    n, d, k = 777, 6, 9
    X = rng.normal(size=(n, d)).astype(dtype)
    C = rng.normal(size=(k, d)).astype(dtype)
    w = rng.random(n).astype(dtype) if weighted else np.empty(0, dtype=dtype)
    C2, cn = prepare(C)
    labels = np.empty(n, np.int32)
    dist = np.empty(n, dtype)
    sums = np.zeros((k, d))
    wsums = np.zeros(k)
    assert assign_rows(*kernel_layout(X), 0, 400, C2, cn, labels, 0, dist, 0, True, w, sums, wsums) == 0
    assert assign_rows(*kernel_layout(X), 400, n, C2, cn, labels, 0, dist, 0, True, w, sums, wsums) == 0  # continues the sums
    _check_assignment(X, C, labels, dist, dtype)
    ref_s, ref_w = naive.lloyd_sums(X, w if weighted else np.ones(n), labels, k)
    np.testing.assert_allclose(sums, ref_s, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(wsums, ref_w, rtol=1e-9)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("b,k", [(1, 1), (1, 5), (50, 3), (1023, 16)])
def test_minibatch_update_matches_naive(dtype, b, k):
    rng = np.random.default_rng(b + k)
    d = 5
    Xb = rng.normal(size=(b, d)).astype(dtype)
    w = rng.random(b).astype(dtype)
    labels = rng.integers(0, k, b).astype(np.int32)
    centers = rng.normal(size=(k, d)).astype(dtype)
    counts = rng.integers(0, 3, k).astype(np.float64)
    ref_c, ref_n, ref_moved = naive.minibatch_update(Xb, w.astype(np.float64), labels, centers, counts)
    moved = minibatch_update(Xb, w, labels, centers, counts)
    np.testing.assert_allclose(centers, ref_c, rtol=RTOL[dtype] * 10, atol=RTOL[dtype] * 10)
    np.testing.assert_allclose(counts, ref_n)
    assert moved == pytest.approx(ref_moved, rel=1e-3, abs=1e-6)
    # unit weights: an empty weight array
    c2 = rng.normal(size=(k, d)).astype(dtype)
    n2 = np.zeros(k)
    ref_c2, _, _ = naive.minibatch_update(Xb, np.ones(b), labels, c2, n2)
    minibatch_update(Xb, np.empty(0, dtype), labels, c2, n2)
    np.testing.assert_allclose(c2, ref_c2, rtol=RTOL[dtype] * 10, atol=RTOL[dtype] * 10)


@pytest.mark.parametrize("dtype", DTYPES)
def test_kmeanspp_kernels_match_naive(dtype):
    rng = np.random.default_rng(5)
    n, d = 301, 7
    X = rng.normal(size=(n, d)).astype(dtype)
    w = rng.random(n)
    closest = np.empty(n)
    sq_dist_to_point(X, X[3], closest)
    np.testing.assert_allclose(closest, naive.sq_distances(X, X[3:4])[:, 0], rtol=1e-6)
    cands = np.array([0, 17, 300, 17], dtype=np.int64)
    td = np.empty((4, n))
    pots = np.zeros(4)
    part = np.empty(4)
    for lo, hi in ((0, 100), (100, 101), (101, n)):  # in row chunks, partials added
        trial_potentials(X, w, closest, cands, lo, hi, td, part)
        pots += part
    ref_d, ref_p = naive.trial_potentials(X, w, closest, cands)
    np.testing.assert_allclose(td, ref_d, rtol=1e-6)
    np.testing.assert_allclose(pots, ref_p, rtol=1e-9 if dtype == np.float64 else 1e-6)


def test_relocate_empty_moves_weight():
    rows = np.array([[10.0, 10.0], [20.0, 20.0]])
    sums = np.array([[30.0, 30.0], [0.0, 0.0], [0.0, 0.0], [5.0, 5.0]])
    wsums = np.array([3.0, 0.0, 0.0, 1.0])
    relocate_empty(rows, np.array([1.0, 1.0]), np.array([0, 3], np.int32), np.array([1, 2]), sums, wsums)
    # center 1 takes the row from center 0; center 2 would empty center 3, so it is skipped
    np.testing.assert_array_equal(sums, [[20.0, 20.0], [10.0, 10.0], [0.0, 0.0], [5.0, 5.0]])
    np.testing.assert_array_equal(wsums, [2.0, 1.0, 0.0, 1.0])


@pytest.mark.parametrize("dtype", DTYPES)
def test_count_nonfinite(dtype):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(333, 5)).astype(dtype)
    X[rng.random(X.shape) < 0.05] = np.nan
    X[rng.random(X.shape) < 0.02] = np.inf
    X[0, 0] = -np.inf
    counts = np.zeros(5, dtype=np.int64)
    count_nonfinite(X, 0, 333, counts)
    np.testing.assert_array_equal(counts, (~np.isfinite(X)).sum(axis=0))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(-1e6, 1e6, width=32), min_size=0, max_size=300), st.data())
def test_weighted_sum_is_the_same_in_pieces(values, data):
    v = np.asarray(values, dtype=np.float32)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(v)), max_size=5)))
    whole = np.zeros(1)
    weighted_sum(v, np.empty(0, np.float32), 0, len(v), whole)
    pieces = np.zeros(1)
    bounds = [0, *cuts, len(v)]
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        weighted_sum(v, np.empty(0, np.float32), lo, hi, pieces)
    assert whole[0] == pieces[0]  # bit for bit
    assert whole[0] == pytest.approx(float(np.sum(v, dtype=np.float64)), rel=1e-9, abs=1e-6)


def test_native_vector_bytes_follows_numba_cpu_features(monkeypatch):
    from numba.core import config

    from segmint.kernels import simd
    for features, expected in [("+avx512f,+avx2,+sse2", 64), ("-avx512f,+avx2,+fma", 32),
                                ("+sse2,+sse4.2", 16), ("+neon", 16)]:
        monkeypatch.setattr(config, "CPU_FEATURES", features)
        assert simd._native_vector_bytes() == expected



@settings(max_examples=60, deadline=None)
@given(n=st.integers(0, 40), d=st.integers(1, 9), k=st.integers(1, 7), dtype=st.sampled_from(DTYPES),
       seed=st.integers(0, 2**32 - 1), layout=st.sampled_from(["C", "F", "strided"]),
       n_bad=st.integers(0, 3))
def test_center_distances_equal_the_direct_twin_and_are_zero_on_a_center(n, d, k, dtype, seed, layout, n_bad):
    rng = np.random.default_rng(seed)
    C = (rng.normal(size=(k, d)) * rng.choice([1e-3, 1.0, 1e4])).astype(dtype)
    X = rng.normal(size=(n, d)).astype(dtype) * dtype(rng.choice([1e-3, 1.0, 1e4]))
    if n:
        X[rng.integers(0, n, size=min(n, k))] = C[:min(n, k)]  # rows sitting on centers
    limit = 1e3
    for _ in range(n_bad if n else 0):
        X[rng.integers(0, n), rng.integers(0, d)] = rng.choice([np.nan, np.inf, -1e5])
    X = dict(_layouts(X))[layout]
    lo = int(rng.integers(0, n + 1))
    out = np.full((n, k), -1.0, dtype=dtype)
    counts = np.zeros(d, dtype=np.int64)
    center_distances(*kernel_layout(X), lo, n, C, out, limit, counts)
    assert np.all(out[:lo] == -1.0)  # rows before lo untouched
    np.testing.assert_array_equal(counts, naive.count_beyond(X[lo:], limit))
    ok = np.all(np.isfinite(X[lo:]), axis=1)
    expected = naive.distances(X[lo:][ok], C).astype(dtype)
    np.testing.assert_allclose(out[lo:][ok], expected, rtol=RTOL[dtype], atol=0)
    on_center = (X[lo:][ok][:, None, :] == C[None]).all(axis=2)
    assert np.all(out[lo:][ok][on_center] == 0)

_OTHER_TARGET_SCRIPT = """
import numpy as np
from segmint.kernels import simd
from segmint.kernels.assign import assign_rows
from segmint.cluster._passes import no_sums, prepare
print(simd.NATIVE_VECTOR_BYTES)
rng = np.random.default_rng(0)
for dtype in (np.float32, np.float64):
    for d, k in ((16, 8), (5, 3), (27, 9)):
        X = rng.normal(size=(1000, d)).astype(dtype)
        C = rng.normal(size=(k, d)).astype(dtype)
        C2, cn = prepare(C)
        labels = np.empty(len(X), np.int32)
        dist = np.empty(len(X), dtype)
        assert assign_rows(X, False, 0, len(X), C2, cn, labels, 0, dist, 0, True, *no_sums(X)) == 0
        D = ((X[:, None, :].astype(np.float64) - C[None].astype(np.float64)) ** 2).sum(-1)
        chosen = D[np.arange(len(X)), labels]
        assert np.all(chosen <= D.min(axis=1) * (1 + 1e-4) + 1e-4), (dtype, d, k)
        np.testing.assert_allclose(dist, chosen, rtol=1e-3, atol=1e-3)
print("ok")
"""


@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"), reason="x86 targets")
@pytest.mark.parametrize("cpu,features,expected", [
    ("haswell", "+64bit,+avx,+avx2,+fma,+sse,+sse2,+sse3,+ssse3,+sse4.1,+sse4.2,+popcnt,+cmov,+cx16,+fxsr,+xsave", "32"),
    ("x86-64", "+64bit,+sse,+sse2,+cx8,+fxsr,+mmx", "16"),
])
def test_assignment_compiled_for_narrower_vectors(tmp_path, cpu, features, expected):
    """The block transposes are chosen by register width: AVX2 and SSE2 builds give right answers."""
    env = dict(os.environ, NUMBA_CPU_NAME=cpu, NUMBA_CPU_FEATURES=features,
               NUMBA_CACHE_DIR=str(tmp_path))
    out = subprocess.run([sys.executable, "-c", _OTHER_TARGET_SCRIPT], env=env, capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.split() == [expected, "ok"]
