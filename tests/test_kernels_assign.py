"""The register-blocked assignment kernel (:func:`segmint.kernels.assign._tile_argmin`) and the
assignment pass that splits large-k work across threads, against slow twins.

Exact checks use small integer values: every product and partial sum is then exact in float32
and float64, so the kernel's distances must equal the reference's bit for bit and its labels
must be numpy's ``argmin`` (lowest index on ties) whatever the order of the arithmetic.
"""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import naive_kmeans as naive
import segmint
from segmint.cluster import _passes
from segmint.cluster._matrix import Features, kernel_layout
from segmint.cluster._passes import assign_pass, no_sums, prepare
from segmint.kernels.assign import TILE, assign_rows
from segmint.kernels.simd import NATIVE_VECTOR_BYTES

DTYPES = [np.float32, np.float64]


def _exact_reference(X, C):
    """Labels (lowest index on ties) and squared distances, in float64: exact for small integers."""
    D = naive.sq_distances(X, C)
    labels = np.argmin(D, axis=1) if len(X) else np.zeros(0, np.int64)
    return labels, D[np.arange(len(X)), labels]


def _assign(X, C, with_dist=True):
    C2, cn = prepare(C)
    labels = np.full(len(X), -1, np.int32)
    dist = np.full(len(X), -1, X.dtype)
    # the callers' entry: any layout, float64 at large k screened
    bad = _passes.assign_rows(X, 0, len(X), C2, cn, labels, 0, dist if with_dist else np.empty(0, X.dtype), 0,
                              with_dist)
    return labels, dist, bad


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n,d,k", [(1, 1, 1), (1, 16, 8), (3, 5, 2), (TILE - 1, 3, 7), (TILE, 16, 8),
                                   (TILE + 1, 17, 13), (2 * TILE + 5, 4, 64), (333, 9, 257),
                                   (700, 16, 1024), (130, 2, 4099)])
def test_integer_data_gives_the_exact_argmin_and_distance(dtype, n, d, k):
    """Odd n, d and k (padding of both), many ties: labels and distances equal the exact ones."""
    rng = np.random.default_rng(n + 10 * d + 100 * k)
    X = rng.integers(-4, 5, size=(n, d)).astype(dtype)
    C = rng.integers(-4, 5, size=(k, d)).astype(dtype)
    ref_labels, ref_dist = _exact_reference(X, C)
    labels, dist, bad = _assign(X, C)
    assert bad == 0
    np.testing.assert_array_equal(labels, ref_labels)
    np.testing.assert_array_equal(dist, ref_dist.astype(dtype))
    only, _, _ = _assign(X, C, with_dist=False)
    np.testing.assert_array_equal(only, ref_labels)


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_exact_argmin_on_structured_inputs(data):
    """Duplicated centers, rows on centers, rows equidistant from several centers: ties keep the
    lowest index, in every position of a tile and every register block of centers."""
    dtype = data.draw(st.sampled_from(DTYPES))
    d = data.draw(st.integers(1, 20))
    k = data.draw(st.integers(1, 40))
    n = data.draw(st.integers(1, 2 * TILE + 3))
    rng = np.random.default_rng(data.draw(st.integers(0, 2 ** 32 - 1)))
    C = rng.integers(-3, 4, size=(k, d)).astype(dtype)
    dup = data.draw(st.lists(st.tuples(st.integers(0, k - 1), st.integers(0, k - 1)), max_size=5))
    for a, b in dup:
        C[b] = C[a]
    X = rng.integers(-3, 4, size=(n, d)).astype(dtype)
    on_center = rng.random(n) < 0.3
    X[on_center] = C[rng.integers(0, k, on_center.sum())]
    ref_labels, ref_dist = _exact_reference(X, C)
    labels, dist, bad = _assign(X, C)
    assert bad == 0
    np.testing.assert_array_equal(labels, ref_labels)
    np.testing.assert_array_equal(dist, ref_dist.astype(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_ties_between_register_blocks_and_lanes_keep_the_lowest_index(dtype):
    """A row equidistant from centers 3, 4 and 9 (three register blocks of four centers, one of
    them shared) goes to 3, in every lane of every register of rows."""
    d, k = 6, 12
    C = np.full((k, d), 50, dtype)
    C[3], C[4], C[9] = 1, -1, 1
    C[9, 0] = -1  # same distance from the origin as centers 3 and 4
    X = np.zeros((TILE + 3, d), dtype)
    labels, dist, _ = _assign(X, C)
    assert labels.tolist() == [3] * len(X)
    assert np.all(dist == d)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("k", [2, 9, 300])
def test_one_row_alone_gets_the_bits_of_the_batch(dtype, k):
    """Each row assigned alone (a tile of one row) gets the label and distance bits it gets in a
    full tile, at every position of the tile: the scorer relies on it."""
    rng = np.random.default_rng(k)
    X = rng.normal(size=(TILE + 9, 11)).astype(dtype) * 3
    C = rng.normal(size=(k, 11)).astype(dtype)
    labels, dist, _ = _assign(X, C)
    C2, cn = prepare(C)
    for i in range(len(X)):
        one_l = np.empty(1, np.int32)
        one_d = np.empty(1, dtype)
        assign_rows(*kernel_layout(X), i, i + 1, C2, cn, one_l, i, one_d, i, True, *no_sums(X))
        assert one_l[0] == labels[i]
        assert one_d.view(np.uint8).tobytes() == dist[i:i + 1].view(np.uint8).tobytes()


@pytest.mark.parametrize("dtype", DTYPES)
def test_random_data_is_assigned_to_the_nearest_center_up_to_rounding(dtype):
    rng = np.random.default_rng(5)
    X = (rng.normal(size=(1000, 13)) * 10 + 3).astype(dtype)
    C = (rng.normal(size=(97, 13)) * 10).astype(dtype)
    labels, dist, _ = _assign(X, C)
    D = naive.sq_distances(X, C)
    scale = 1 + (X.astype(np.float64) ** 2).sum(1) + (C.astype(np.float64) ** 2).sum(1).max()
    tol = {np.float32: 1e-5, np.float64: 1e-13}[dtype] * scale
    chosen = D[np.arange(len(X)), labels]
    assert np.all(chosen <= D.min(1) + tol)
    assert np.all(np.abs(dist - chosen) <= tol)


@pytest.mark.parametrize("dtype", DTYPES)
def test_lloyd_labels_equal_predict_labels(dtype):
    """Keeping Lloyd's sums changes nothing else: the labels Lloyd uses are predict's."""
    rng = np.random.default_rng(2)
    X = rng.normal(size=(3 * TILE + 17, 7)).astype(dtype)
    C = rng.normal(size=(37, 7)).astype(dtype)
    labels, dist, _ = _assign(X, C)
    C2, cn = prepare(C)
    l2 = np.empty(len(X), np.int32)
    d2 = np.empty(len(X), dtype)
    bad = assign_rows(*kernel_layout(X), 0, len(X), C2, cn, l2, 0, d2, 0, True, np.empty(0, dtype), np.zeros((37, 7)), np.zeros(37))
    assert bad == 0
    np.testing.assert_array_equal(l2, labels)
    np.testing.assert_array_equal(d2, dist)


# -- the pass: large k splits chunks into tasks; nothing may depend on the split or threads --------
@pytest.mark.parametrize("dtype", DTYPES)
def test_split_tasks_give_the_bits_of_whole_chunks(dtype, monkeypatch):
    rng = np.random.default_rng(3)
    n = _passes.CHUNK + 3 * TILE + 11  # two chunks, the second short
    X = rng.normal(size=(n, 5)).astype(dtype)
    C = rng.normal(size=(21, 5)).astype(dtype)
    w = rng.random(n) + 0.5
    results = {}
    for name, rows in [("whole", _passes.CHUNK), ("tiles", TILE), ("odd", 5 * TILE)]:
        monkeypatch.setattr(_passes, "_task_rows", lambda shape, rows=rows: rows)
        for threads in (1, 2, 3):
            with segmint.threads(threads):
                labels, dist, inertia, bad = assign_pass(Features(X), C, w, want_distances=True)
                no_labels = assign_pass(Features(X), C, w, want_labels=False)
            assert not bad and no_labels[0] is None and no_labels[2] == inertia
            results[name, threads] = (labels, dist, inertia)
    first = results["whole", 1]
    for key, (labels, dist, inertia) in results.items():
        np.testing.assert_array_equal(labels, first[0], err_msg=str(key))
        assert dist.tobytes() == first[1].tobytes(), key
        assert inertia == first[2], key
    np.testing.assert_array_equal(first[0], naive.assign(X, C)[0])


def test_large_k_uses_tasks_smaller_than_a_chunk():
    assert _passes._task_rows((8, 16)) == _passes.CHUNK
    rows = _passes._task_rows((1024, 16))
    assert TILE <= rows < _passes.CHUNK and rows % TILE == 0
    assert _passes._task_rows((1 << 20, 64)) == TILE


def test_a_bad_row_in_one_task_is_reported():
    X = np.random.default_rng(0).normal(size=(5000, 4))
    X[100, 2] = np.nan  # in the first of the chunk's tasks: later tasks must not clear it
    C = np.random.default_rng(1).normal(size=(2048, 4))
    labels, _, _, bad = assign_pass(Features(X), C, want_inertia=False)
    assert bad and labels.shape == (5000,)
    assert not assign_pass(Features(np.delete(X, 100, axis=0)), C, want_inertia=False)[3]


def test_predict_at_large_k_is_the_same_on_one_and_two_threads():
    rng = np.random.default_rng(4)
    X = rng.normal(size=(20_000, 16)).astype(np.float32)
    C = X[rng.choice(len(X), 1024, replace=False)]
    model = segmint.KMeans(n_clusters=1024, init=C, max_iter=1)
    model.cluster_centers_, model.n_features_in_ = C, 16
    with segmint.threads(1):
        one = model.predict(X), model.score(X)
    with segmint.threads(2):
        two = model.predict(X), model.score(X)
    np.testing.assert_array_equal(one[0], two[0])
    assert one[1] == two[1]
    assert np.mean(one[0][:2000] == naive.assign(X[:2000], C)[0]) > 0.999  # float32 rounding near ties


def test_lanes_follow_the_native_register():
    from segmint.kernels.simd import _lanes_for
    from numba import types
    assert _lanes_for(types.float32) == NATIVE_VECTOR_BYTES // 4
    assert _lanes_for(types.float64) == NATIVE_VECTOR_BYTES // 8
    # the kernel's register block of rows divides the tile for every width
    for width in (16, 32, 64):
        assert TILE % (4 * (width // 4)) == 0


# -- float64 screened in float32: a row gets the float64 kernel's bits either way -----------------
def _direct(X, lo, hi, C2, cn, labels, labels_lo, dist, dist_lo, with_dist):
    """The float64 kernel alone: a strided view (neither C- nor Fortran-ordered) is never
    screened (and a copy between layouts moves values exactly)."""
    wide = np.zeros((X.shape[0], 2 * X.shape[1]), X.dtype)
    wide[:, ::2] = X
    return assign_rows(wide[:, ::2], False, lo, hi, C2, cn, labels, labels_lo, dist, dist_lo, with_dist, *no_sums(X))


def _screened_and_direct(X, C, with_dist=True):
    """Results of the screened path and of the float64 kernel alone; the screened path declines
    (-1, nothing written) only when a center is beyond float32's comfortable range."""
    from segmint.kernels.assign import assign_rows_screened, prepare_screen
    X = np.ascontiguousarray(X)
    C2, cn = prepare(C)
    kp, dp = C2.shape
    screen = (np.empty((kp, dp), np.float32), np.empty(kp, np.float32), np.empty(dp))
    cmax = prepare_screen(C2, cn, *screen)
    out = []
    for f in (assign_rows_screened, _direct):
        labels = np.full(len(X), -9, np.int32)
        dist = np.full(len(X), -9.0)
        if f is assign_rows_screened:
            args = (X, False, 0, len(X), C2, cn, *screen, cmax)
        else:
            args = (X, 0, len(X), C2, cn)
        bad = f(*args, labels, 0, dist if with_dist else np.empty(0), 0, with_dist)
        if bad == -1:
            real = np.isfinite(cn)
            assert max(np.abs(C2).max(), np.abs(cn[real]).max()) >= 2.0 ** 100 or C2.shape[1] >= 1024
            assert (labels == -9).all()
            bad = assign_rows(*kernel_layout(X), 0, len(X), C2, cn, labels, 0, dist if with_dist else np.empty(0), 0, with_dist, *no_sums(X))
        out.append((labels, dist, bad))
    return out


def _assert_same(screened, direct):
    assert screened[2] == direct[2]
    np.testing.assert_array_equal(screened[0], direct[0])
    assert screened[1].tobytes() == direct[1].tobytes()


@pytest.mark.parametrize("n,d,k", [(1, 1, 1), (5, 3, 130), (TILE + 3, 16, 256), (3 * TILE + 1, 17, 97),
                                   (700, 40, 300)])
def test_screened_float64_gives_the_float64_kernel_bits(n, d, k):
    rng = np.random.default_rng(n + d + k)
    X = rng.normal(size=(n, d)) * rng.choice([1e-3, 1, 1e3], size=(n, 1)) + 5
    C = rng.normal(size=(k, d)) + 5
    for with_dist in (True, False):
        _assert_same(*_screened_and_direct(X, C, with_dist))


def test_screened_float64_hands_near_ties_and_extremes_to_float64():
    """Exact ties, differences below float32's resolution, values float32 cannot hold, tiny values
    that underflow in float32, NaN and infinities: every row still gets the float64 bits."""
    rng = np.random.default_rng(7)
    d, k = 9, 140
    C = rng.normal(size=(k, d))
    C[5] = C[77]  # duplicate centers: exact ties
    C[6] = C[8] + 1e-12  # closer than float32 can tell
    X = np.concatenate([rng.normal(size=(300, d)), C[[5, 6, 8, 77]] + 1e-13, rng.normal(size=(200, d)) * 1e-42,
                        rng.normal(size=(50, d)) * 1e45, rng.normal(size=(50, d)) * 1e150])
    X[3, 2], X[4, 0], X[310, 1] = np.nan, np.inf, -np.inf
    labels, dist, bad = _screened_and_direct(X, C)[0]
    _assert_same(*_screened_and_direct(X, C))
    assert bad >= 3
    tiny = rng.normal(size=(k, d)) * 1e-40  # centers too small for float32's normal range
    _assert_same(*_screened_and_direct(rng.normal(size=(400, d)) * 1e-40, tiny))
    _assert_same(*_screened_and_direct(rng.normal(size=(400, d)), tiny))  # subnormal in float32
    _assert_same(*_screened_and_direct(rng.normal(size=(400, d)) * 1e-41, C))
    _assert_same(*_screened_and_direct(rng.normal(size=(400, d)), C * 1e40))  # centers beyond float32: declined


@pytest.mark.parametrize("spread", [1, 3, 7, 40])
def test_screened_float64_few_or_many_undecided_rows(spread):
    """Undecided rows one at a time (each alone through the float64 arithmetic) and in numbers
    (through the float64 blocks): ties, NaN, infinities and overflow among them, every row the
    float64 kernel's bits."""
    rng = np.random.default_rng(spread)
    d, k = 5, 131
    C = rng.normal(size=(k, d))
    C[9] = C[70]  # an exact tie: always undecided
    X = rng.normal(size=(3 * TILE + 17, d)) * 0.1 + 3
    hard = rng.choice(len(X), size=spread, replace=False)
    specials = [C[9], np.full(d, np.nan), np.full(d, np.inf), np.full(d, -np.inf), np.full(d, 1e200),
                C[9] * (1 + 1e-13)]
    for n, i in enumerate(hard):
        X[i] = specials[n % len(specials)]
    for with_dist in (True, False):
        _assert_same(*_screened_and_direct(X, C, with_dist))


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_screened_float64_on_structured_inputs(data):
    d = data.draw(st.integers(1, 24))
    k = data.draw(st.integers(1, 200))
    n = data.draw(st.integers(1, 2 * TILE + 5))
    rng = np.random.default_rng(data.draw(st.integers(0, 2 ** 32 - 1)))
    scale = data.draw(st.sampled_from([1e-30, 1e-3, 1.0, 1e6, 1e30]))
    offset = data.draw(st.sampled_from([0.0, 1.0, 1e4]))
    C = rng.integers(-3, 4, size=(k, d)) * scale + offset
    X = rng.integers(-3, 4, size=(n, d)) * scale + offset
    X[rng.random(n) < 0.2] = C[0]
    X = X + rng.normal(size=X.shape) * scale * data.draw(st.sampled_from([0.0, 1e-9, 1e-3]))
    _assert_same(*_screened_and_direct(X, C))


def test_float64_assign_rows_screens_from_the_threshold_on():
    """The callers' entry (``_passes.assign_rows``) around the threshold, in every layout, gives
    the float64 kernel's bits (Fortran-ordered data screened too, as their feature-major transpose)."""
    from segmint.kernels import assign as ka
    rng = np.random.default_rng(8)
    X = rng.normal(size=(TILE * 2 + 3, 6))
    for k in (ka.SCREEN_CENTERS - 4, ka.SCREEN_CENTERS, ka.SCREEN_CENTERS + 1):
        C = rng.normal(size=(k, 6))
        screened, direct = _screened_and_direct(X, C)
        _assert_same(_assign(X, C), direct)
        _assert_same(_assign(np.asfortranarray(X), C), direct)
        _assert_same(screened, direct)
        big = np.zeros((len(X), 9))
        big[:, 2:8] = X  # strided rows: not screened either
        _assert_same(_assign(big[:, 2:8], C), direct)


@pytest.mark.parametrize("kernel", ["_tile_argmin4", "_tile_argmin2"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("rows", [1, 5, 31, 32, 33, 64, 65, 127, TILE])
def test_tile_argmin_on_the_first_rows_gives_the_whole_tiles_bits(kernel, dtype, rows):
    """Both blocks of rows (four registers for AVX-512, two for 16-register CPUs) run here,
    whichever this CPU's callers use."""
    from segmint.kernels import assign as ka
    _tile_argmin = getattr(ka, kernel)
    rng = np.random.default_rng(rows)
    d, k = 7, 23
    C2, cn = prepare(rng.normal(size=(k, d)).astype(dtype))
    tile = np.zeros((C2.shape[1], TILE), dtype)
    tile[:d] = rng.normal(size=(d, TILE))
    whole = (np.zeros(TILE, dtype), np.zeros(TILE, np.int32), np.zeros(TILE, dtype))
    _tile_argmin(tile, C2, cn, TILE, *whole)
    part = (np.full(TILE, -1, dtype), np.full(TILE, -1, np.int32), np.full(TILE, -1, dtype))
    _tile_argmin(tile, C2, cn, rows, *part)
    for a, b in zip(whole, part):
        assert a[:rows].tobytes() == b[:rows].tobytes()
    # only the blocks holding the wanted rows are written
    assert (part[1] >= 0).sum() < TILE or rows > TILE // 2
    # against the slow twin: the nearest center of each wanted row
    X = tile[:d, :rows].T.astype(np.float64)
    C = -C2[:k, :d].astype(np.float64) / 2
    expected = ((X[:, None, :] - C[None]) ** 2).sum(-1).argmin(1)
    assert (part[1][:rows] == expected).mean() > 0.99


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("d,k", [(1, 1), (3, 5), (16, 8), (17, 64), (5, 130), (33, 257)])
def test_both_row_blocks_give_the_same_bits(dtype, d, k):
    """The two-register kernels (AVX2's) and the four-register ones (AVX-512's) are the same
    arithmetic per row: equal bits on real-valued data, NaN rows and ties included, for the
    argmin and for the float32 screen; and this CPU's choice is one of them."""
    from segmint.kernels import assign as ka
    rng = np.random.default_rng(d * 1000 + k)
    C = rng.normal(size=(k, d)).astype(dtype)
    C[k // 2] = C[0]  # a tie between two centers
    C2, cn = prepare(C)
    tile = np.zeros((C2.shape[1], TILE), dtype)
    tile[:d] = rng.normal(size=(d, TILE)) * 3
    tile[:d, 7] = C[0]  # on the tied centers
    tile[0, 11] = np.nan
    outs = []
    for kern in (ka._tile_argmin4, ka._tile_argmin2):
        out = (np.full(TILE, -1, dtype), np.full(TILE, -1, np.int32), np.full(TILE, -1, dtype))
        kern(tile, C2, cn, TILE, *out)
        outs.append([a.tobytes() for a in out])
    assert outs[0] == outs[1]
    labels = np.frombuffer(outs[0][1], np.int32)
    assert labels[7] == 0
    X = tile[:d].T.astype(np.float64)
    ok = np.isfinite(X).all(1)
    expected = ((X[:, None, :] - C[None].astype(np.float64)) ** 2).sum(-1).argmin(1)
    assert (labels[ok] == expected[ok]).mean() > 0.98
    assert np.isnan(np.frombuffer(outs[0][2], dtype)[11])  # the check marks the NaN row
    if dtype == np.float32:  # the screen's kernels work on float32 tiles
        screens = []
        for kern in (ka._tile_screen4, ka._tile_screen2):
            out = (np.full(TILE, -1, dtype), np.full(TILE, -1, dtype), np.full(TILE, -1, np.int32))
            kern(tile, C2, cn, *out)
            screens.append([a.tobytes() for a in out])
        assert screens[0] == screens[1]
        best, second, lab = (np.frombuffer(b, t) for b, t in zip(screens[0], (dtype, dtype, np.int32)))
        assert np.array_equal(lab, labels) and np.all(second[ok] >= best[ok])
        if k > 1:
            assert best[7] == second[7]  # the tie: equal best and second best
    assert ka._tile_argmin in (ka._tile_argmin4, ka._tile_argmin2)
    assert (ka._tile_argmin is ka._tile_argmin4) == (ka.ROW_REGISTERS == 4) == (ka._tile_screen is ka._tile_screen4)


# -- few centers, row-major rows: assign_labels_narrow ---------------------------------------------

def _labels_both_ways(X, C, lo, hi, scratch=False):
    """The tile kernel's and the row-major kernel's labels and failure counts for rows lo..hi of
    X, into full-size labels or (``scratch``) a scratch of hi - lo rows."""
    from segmint.kernels import assign as ka
    C2, cn = prepare(C)
    size, labels_lo = (hi - lo, lo) if scratch else (len(X), 0)
    tile, narrow = np.full(size, -1, np.int32), np.full(size, -1, np.int32)
    bad_tile = assign_rows(X, False, lo, hi, C2, cn, tile, labels_lo, np.empty(0, X.dtype), 0, False, *no_sums(X))
    bad_narrow = ka.assign_labels_narrow(X, lo, hi, C2, cn, narrow, labels_lo)
    return (bad_tile, tile), (bad_narrow, narrow)


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_row_major_kernel_gives_the_tile_kernels_labels_and_failures(data):
    """Up to two registers of centers (its whole domain), odd sizes, one and zero rows, row
    ranges, ties, rows on centers, zero centers (values of -0), NaN, infinities and values whose
    arithmetic overflows: the same labels and the same count of failed rows as the tile kernel,
    and for small integers the exact argmin (the slow twin)."""
    dtype = data.draw(st.sampled_from(DTYPES))
    lanes = NATIVE_VECTOR_BYTES // np.dtype(dtype).itemsize
    d = data.draw(st.integers(1, 19))
    k = data.draw(st.integers(1, 2 * lanes))
    n = data.draw(st.integers(0, 2 * TILE + 3))
    rng = np.random.default_rng(data.draw(st.integers(0, 2 ** 32 - 1)))
    integer = data.draw(st.booleans())
    if integer:
        C = rng.integers(-3, 4, size=(k, d)).astype(dtype)
        X = rng.integers(-3, 4, size=(n, d)).astype(dtype)
    else:
        C = rng.normal(size=(k, d)).astype(dtype)
        X = (rng.normal(size=(n, d)) * 3).astype(dtype)
    if data.draw(st.booleans()):
        C[rng.integers(0, k)] = 0
    if n and k > 1:
        C[rng.integers(0, k)] = C[0]
        on = rng.random(n) < 0.2
        X[on] = C[rng.integers(0, k, on.sum())]
    specials = data.draw(st.lists(st.sampled_from([np.nan, np.inf, -np.inf, -0.0, "huge"]), max_size=4))
    if n and not integer:
        huge = np.finfo(dtype).max / 4
        for s in specials:
            X[rng.integers(0, n), rng.integers(0, d)] = huge if s == "huge" else s
    lo = data.draw(st.integers(0, n))
    hi = data.draw(st.integers(lo, n))
    for scratch in (False, True):
        (bad_tile, tile), (bad_narrow, narrow) = _labels_both_ways(X, C, lo, hi, scratch)
        assert bad_narrow == bad_tile
        np.testing.assert_array_equal(narrow, tile)
    if integer:
        ref, _ = _exact_reference(X[lo:hi], C)
        assert bad_narrow == 0
        np.testing.assert_array_equal(narrow, ref)


def test_a_row_whose_values_are_finite_but_sum_beyond_the_range_does_not_fail():
    """Four centers at x-distance values of +8e307 and four at -8e307: all finite, the nearest
    is clear; their sum overflows to both infinities (the old check, a sum of the values, made
    it NaN and failed the row in one order of the sum and not in another). Every kernel labels
    it and counts no failure without distances; with them |x|^2 overflows and it fails."""
    from segmint.kernels import assign as ka
    X = np.array([[4e307]])
    C = np.array([[-1.0]] * 4 + [[1.0]] * 4)
    for scratch in (False, True):
        for bad, labels in _labels_both_ways(X, C, 0, 1, scratch):
            assert (bad, labels.tolist()) == (0, [4])
    labels, dist, bad = _assign(X, C, with_dist=True)
    assert bad == 1
    # 128 centers: the float64 screen leaves the row to the float64 kernel for one row alone
    C = np.array([[-1.0]] * 64 + [[1.0]] * 64)
    assert C.shape[0] >= ka.SCREEN_CENTERS
    labels, _, bad = _assign(X, C, with_dist=False)
    assert (bad, labels.tolist()) == (0, [64])


def test_float64_labels_at_small_k_come_from_the_row_major_kernel(monkeypatch):
    """``assigner`` takes the row-major kernel for C-ordered float64 labels with few centers, the
    tile kernel otherwise (distances, Fortran order, float32, more centers), whatever this CPU's
    choice of ``NARROW_CENTERS``; predictions are the same either way."""
    from segmint.kernels import assign as ka
    calls = []
    real = ka.assign_labels_narrow
    monkeypatch.setattr(ka, "assign_labels_narrow", lambda *a: calls.append(1) or real(*a))
    monkeypatch.setattr(ka, "NARROW_CENTERS", 8)
    rng = np.random.default_rng(3)
    X = rng.normal(size=(TILE * 3 + 5, 16))
    for k, data, with_dist, narrow in [(8, X, False, True), (5, X, False, True), (8, X, True, False),
                                       (8, np.asfortranarray(X), False, False),
                                       (8, X.astype(np.float32), False, False), (9, X, False, False)]:
        calls.clear()
        C = rng.normal(size=(k, 16)).astype(data.dtype)
        labels, _, bad = _assign(data, C, with_dist)
        assert bool(calls) == narrow, (k, data.dtype, with_dist)
        tile = np.full(len(X), -1, np.int32)
        C2, cn = prepare(C)
        assign_rows(*kernel_layout(data), 0, len(X), C2, cn, tile, 0, np.empty(len(X), data.dtype), 0, True,
                    *no_sums(data))
        np.testing.assert_array_equal(labels, tile)
    model = segmint.KMeans(n_clusters=8, random_state=0, n_init=1, max_iter=5).fit(X)
    calls.clear()
    model.predict(X)
    assert calls


def _fold_twin(values, best, lab, nan, c0):
    """The sequential fold: a value strictly below the best takes its place and index."""
    for lane, v in enumerate(values):
        if v < best:
            best, lab = v, c0 + lane
        nan = nan or bool(np.isnan(v))
    return best, lab, nan


@pytest.fixture(scope="module")
def fold_kernel():
    import numba

    from segmint.kernels.simd import vfold_first, vload

    @numba.njit(cache=False)
    def fold(a, best, lab, nan, c0):
        return vfold_first(best, lab, nan, vload(a, 0), c0)

    return fold


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(DTYPES), st.data())
def test_vfold_first_folds_the_lanes_in_order(fold_kernel, dtype, data):
    """The register fold of the row-major kernel against its twin: NaN, infinities, -0 and +0,
    ties, any running best (NaN and +inf included) and any first index."""
    lanes = NATIVE_VECTOR_BYTES // np.dtype(dtype).itemsize
    pool = st.sampled_from([0.0, -0.0, 1.0, -1.0, 2.5, np.inf, -np.inf, np.nan])
    a = np.array(data.draw(st.lists(pool, min_size=lanes, max_size=lanes)), dtype)
    best = dtype(data.draw(pool))
    lab, c0 = data.draw(st.integers(0, 50)), data.draw(st.integers(0, 50))
    nan = data.draw(st.booleans())
    got = fold_kernel(a, best, lab, nan, c0)
    want = _fold_twin(a, best, lab, nan, c0)
    assert got[1:] == want[1:]
    assert np.asarray(got[0], dtype).tobytes() == np.asarray(want[0], dtype).tobytes()
