"""Nearest-center assignment: labels and squared distances, blocked for cache and SIMD.

Distances use the expanded form ``|x|^2 + |c|^2 - 2 x.c``. Rows are processed in tiles of
``TILE`` rows copied feature-major into a small buffer (so any input layout works and the
inner loops run over contiguous rows, which the compiler vectorises; the copy itself uses the
block transposes of :mod:`.simd`), and centers four at a
time with features four at a time, so every load of the tile feeds sixteen multiply-adds.
Ties go to the lowest center index, like ``numpy.argmin``.

Centers are given prepared by :func:`prepare_centers`: ``C2 = -2 * centers`` zero-padded to a
multiple of four features and four centers, and ``cn = |c|^2`` with ``+inf`` on padding rows,
so padding never wins.
"""
import numpy as np

from .settings import kernel
from .simd import NATIVE_VECTOR_BYTES, transpose_16B, transpose_32B, transpose_64B

TILE = 128


@kernel
def prepare_centers(centers, C2, cn):
    """Fill the padded center arrays the assignment kernels read.

    Parameters
    ----------
    centers : (k, d) float32/float64, IN
    C2 : (kp, dp) same dtype, OUT, ``kp = ceil(k/4)*4``, ``dp = ceil(d/4)*4``: ``-2 * centers``, zero-padded
    cn : (kp,) same dtype, OUT: squared norms of the centers, ``+inf`` for padding rows
    """
    k, d = centers.shape
    C2[:, :] = 0
    cn[:] = np.inf
    for c in range(k):
        s = 0.0
        for j in range(d):
            v = centers[c, j]
            C2[c, j] = -2 * v
            s += v * v
        cn[c] = s


@kernel
def _transpose_columns(X, lo, tile, j, vector_bytes):
    """Copy columns ``j..`` of the TILE rows from ``lo`` into ``tile`` in whole ``w x w`` blocks,
    ``w = vector_bytes // itemsize``, while a block fits; return the first column not copied."""
    d = X.shape[1]
    w = vector_bytes // X.itemsize
    while j + w <= d:
        for i in range(0, TILE, w):
            if vector_bytes == 64:
                transpose_64B(X, lo + i, j, tile, j, i)
            elif vector_bytes == 32:
                transpose_32B(X, lo + i, j, tile, j, i)
            else:
                transpose_16B(X, lo + i, j, tile, j, i)
        j += w
    return j


@kernel
def _fill_tile(X, lo, m, tile):
    """Copy rows ``lo..lo+m`` of X feature-major into ``tile[:d, :m]`` (other entries untouched).

    Full tiles of row-major data go through whole-vector block transposes; column-major data
    (blocks streamed from columnar sources) is a contiguous copy per feature.
    """
    d = X.shape[1]
    size = X.itemsize
    if m == TILE and X.strides[1] == size:
        j = 0
        if NATIVE_VECTOR_BYTES >= 64:
            j = _transpose_columns(X, lo, tile, j, 64)
        if NATIVE_VECTOR_BYTES >= 32:
            j = _transpose_columns(X, lo, tile, j, 32)
        j = _transpose_columns(X, lo, tile, j, 16)
        if j < d:
            for i in range(TILE):
                for jj in range(j, d):
                    tile[jj, i] = X[lo + i, jj]
    elif X.strides[0] == size:
        for j in range(d):
            for i in range(m):
                tile[j, i] = X[lo + i, j]
    else:
        for i in range(m):
            for j in range(d):
                tile[j, i] = X[lo + i, j]


@kernel
def _tile_argmin(tile, C2, cn, a0, a1, a2, a3, best_d, best_l):
    """For the TILE rows in ``tile``: OUT best_l (nearest center), best_d (|c|^2 - 2 x.c of it).

    Centers go four at a time, features four at a time. The first block of features starts
    the four accumulators from ``cn`` and the last one finishes them in registers and keeps
    the best center, so no pass over the tile only initialises or only compares. Each loop is
    free of branches on its block's position (measured: branches in the loop cost 1.5x with
    AVX2).
    """
    kp, dp = C2.shape
    for i in range(TILE):
        best_d[i] = np.inf
        best_l[i] = 0
    for c in range(0, kp, 4):
        k0, k1, k2, k3 = cn[c], cn[c + 1], cn[c + 2], cn[c + 3]
        for g in range(0, dp, 4):
            x0 = tile[g]
            x1 = tile[g + 1]
            x2 = tile[g + 2]
            x3 = tile[g + 3]
            p0, p1, p2, p3 = C2[c, g], C2[c, g + 1], C2[c, g + 2], C2[c, g + 3]
            q0, q1, q2, q3 = C2[c + 1, g], C2[c + 1, g + 1], C2[c + 1, g + 2], C2[c + 1, g + 3]
            r0, r1, r2, r3 = C2[c + 2, g], C2[c + 2, g + 1], C2[c + 2, g + 2], C2[c + 2, g + 3]
            s0, s1, s2, s3 = C2[c + 3, g], C2[c + 3, g + 1], C2[c + 3, g + 2], C2[c + 3, g + 3]
            last = g + 4 >= dp
            if g == 0 and not last:
                for i in range(TILE):
                    v0 = x0[i]
                    v1 = x1[i]
                    v2 = x2[i]
                    v3 = x3[i]
                    a0[i] = k0 + (p0 * v0 + p1 * v1 + p2 * v2 + p3 * v3)
                    a1[i] = k1 + (q0 * v0 + q1 * v1 + q2 * v2 + q3 * v3)
                    a2[i] = k2 + (r0 * v0 + r1 * v1 + r2 * v2 + r3 * v3)
                    a3[i] = k3 + (s0 * v0 + s1 * v1 + s2 * v2 + s3 * v3)
                continue
            if not last:
                for i in range(TILE):
                    v0 = x0[i]
                    v1 = x1[i]
                    v2 = x2[i]
                    v3 = x3[i]
                    a0[i] += p0 * v0 + p1 * v1 + p2 * v2 + p3 * v3
                    a1[i] += q0 * v0 + q1 * v1 + q2 * v2 + q3 * v3
                    a2[i] += r0 * v0 + r1 * v1 + r2 * v2 + r3 * v3
                    a3[i] += s0 * v0 + s1 * v1 + s2 * v2 + s3 * v3
                continue
            if g == 0:  # at most four features: one block both starts and finishes
                for i in range(TILE):
                    a0[i] = k0
                    a1[i] = k1
                    a2[i] = k2
                    a3[i] = k3
            for i in range(TILE):
                v0 = x0[i]
                v1 = x1[i]
                v2 = x2[i]
                v3 = x3[i]
                t0 = a0[i] + (p0 * v0 + p1 * v1 + p2 * v2 + p3 * v3)
                t1 = a1[i] + (q0 * v0 + q1 * v1 + q2 * v2 + q3 * v3)
                t2 = a2[i] + (r0 * v0 + r1 * v1 + r2 * v2 + r3 * v3)
                t3 = a3[i] + (s0 * v0 + s1 * v1 + s2 * v2 + s3 * v3)
                v = t0
                lab = c
                if t1 < v:
                    v = t1
                    lab = c + 1
                if t2 < v:
                    v = t2
                    lab = c + 2
                if t3 < v:
                    v = t3
                    lab = c + 3
                # ties keep the lower index; a row holding NaN never improves on +inf
                better = v < best_d[i]
                best_d[i] = v if better else best_d[i]
                best_l[i] = lab if better else best_l[i]


@kernel
def _add_row_norms(tile, d, best_d):
    """best_d[i] += |x_i|^2 over the first d features of the tile (INOUT best_d)."""
    for j in range(d):
        t = tile[j]
        for i in range(TILE):
            best_d[i] += t[i] * t[i]


@kernel
def _add_row_norms_sum(tile, d, best_d):
    """:func:`_add_row_norms` that also returns the sum of the squares it added (the tile's
    :func:`_tile_sum_squares`, at the cost of one add per value: the loads are shared)."""
    s = tile[0, 0] * 0
    for j in range(d):
        t = tile[j]
        for i in range(TILE):
            q = t[i] * t[i]
            best_d[i] += q
            s += q
    return s


@kernel
def _tile_buffers(dp, like):
    """Scratch of one tile: the feature-major rows, four accumulators, best distance and label.

    ``like`` is any array of the data's dtype (only its dtype is used).
    """
    dtype = like.dtype
    return (np.zeros((dp, TILE), dtype), np.empty(TILE, dtype), np.empty(TILE, dtype),
            np.empty(TILE, dtype), np.empty(TILE, dtype), np.empty(TILE, dtype),
            np.empty(TILE, np.int32))


@kernel
def _tile_sum_squares(tile, d):
    """Sum of the squares of the first d features of the tile: above ``limit ** 2`` whenever
    some value is beyond ``limit`` (or NaN or infinite). A max would say it exactly, but a
    NaN-safe max does not vectorise; this sum does (about one instruction per vector of values
    already in cache)."""
    s = tile[0, 0] * 0
    for j in range(d):
        t = tile[j]
        for i in range(TILE):
            s += t[i] * t[i]
    return s


@kernel
def _row_beyond(tile, d, i, limit):
    """Whether row ``i`` of the tile holds a value beyond ``limit`` in absolute value."""
    for j in range(d):
        if abs(tile[j, i]) > limit:
            return True
    return False


@kernel
def _limit_of(like, limit):
    """``limit`` in the dtype of array ``like`` (None: its largest finite value, so only NaN
    and infinities are beyond it)."""
    out = np.empty(1, like.dtype)
    if limit is None:
        out[0] = np.finfo(like.dtype).max
    else:
        out[0] = limit
    return out[0]


@kernel
def count_beyond(X, lo, hi, limit, counts):
    """Count, per feature, the values of rows ``lo..hi`` that are NaN or beyond ``limit`` in
    absolute value (infinities included): the values the distance kernels cannot take.

    Parameters
    ----------
    X : (n, d) float32/float64, any layout, IN
    lo, hi : int
    limit : float, the largest absolute value allowed (see ``segmint.cluster._features.value_limit``)
    counts : (d,) int64, INOUT: the counts are added
    """
    d = X.shape[1]
    for i in range(lo, hi):
        for j in range(d):
            counts[j] += not (abs(X[i, j]) <= limit)


@kernel
def assign_rows(X, lo, hi, C2, cn, labels, labels_lo, dist, dist_lo, with_dist, limit=None):
    """Nearest center of rows ``lo..hi`` of X.

    Parameters
    ----------
    X : (n, d) float32/float64, any memory layout, IN
    lo, hi : int, the rows to assign (``0 <= lo <= hi <= n``)
    C2, cn : prepared centers from :func:`prepare_centers` (same dtype as X), IN
    labels : int32 array, OUT: row ``i`` goes to ``labels[i - labels_lo]``: its nearest center
    labels_lo : int, 0 when ``labels`` covers all rows of X, ``lo`` for a scratch of ``hi - lo`` rows
    dist : float array of X's dtype, OUT: row ``i`` goes to ``dist[i - dist_lo]``: squared distance
        to it (clipped at 0)
    dist_lo : int, as ``labels_lo`` for ``dist``
    with_dist : bool, False to skip distances (``dist`` is then not touched; labels need no
        row norms, since ``|x|^2`` is the same for every center)
    limit : float, optional
        The largest absolute value a row may hold (default: the dtype's largest finite value).
        Beyond it squared distances may overflow (see ``segmint.cluster._features.value_limit``).

    Returns
    -------
    int
        Rows holding NaN, an infinity or a value beyond ``limit`` (their label and distance are
        meaningless).
    """
    d = X.shape[1]
    dp = C2.shape[1]
    tile, a0, a1, a2, a3, best_d, best_l = _tile_buffers(dp, X[lo:lo + 1, :1])
    lim = _limit_of(tile, limit)
    lim2 = lim * lim  # inf for the default limit: only NaN and infinities are flagged then
    bad = 0
    for start in range(lo, hi, TILE):
        m = min(TILE, hi - start)
        _fill_tile(X, start, m, tile)
        _tile_argmin(tile, C2, cn, a0, a1, a2, a3, best_d, best_l)
        # values beyond the limit: one sum of squares over the tile in cache (no extra pass
        # over the data; with distances, shared with the row norms); rows are looked at one
        # by one only in a tile whose sum is large
        if with_dist:
            beyond = not (_add_row_norms_sum(tile, d, best_d) <= lim2)
        else:
            beyond = not (_tile_sum_squares(tile, d) <= lim2)
        ol = start - labels_lo
        for i in range(m):
            labels[ol + i] = best_l[i]
            v = best_d[i]  # a NaN or infinity in a row leaves its best value (or distance) non-finite
            bad += not (v > -np.inf and v < np.inf) or (beyond and _row_beyond(tile, d, i, lim))
        if with_dist:
            od = start - dist_lo
            for i in range(m):
                v = best_d[i]
                if v < 0:  # rounding of the expanded form; NaN stays NaN so bad input is seen
                    v = 0
                dist[od + i] = v
    return bad


@kernel
def assign_rows_sums(X, lo, hi, weights, C2, cn, labels, dist, sums, wsums):
    """Assign rows ``lo..hi`` and add them to per-center weighted sums (one Lloyd pass, one chunk).

    Parameters
    ----------
    X : (n, d) float32/float64, any layout, IN
    lo, hi : int
    weights : (n,) same dtype as X, or empty for unit weights, IN
    C2, cn : prepared centers, IN
    labels : (n,) int32, OUT at ``lo..hi``
    dist : (n,) X's dtype, OUT at ``lo..hi``
    sums : (k, d) float64, INOUT: weighted sums of the rows of each center are added, in row order
    wsums : (k,) float64, INOUT: total weight of each center is added, in row order
    """
    d = X.shape[1]
    dp = C2.shape[1]
    unit = weights.shape[0] == 0
    tile, a0, a1, a2, a3, best_d, best_l = _tile_buffers(dp, X[lo:lo + 1, :1])
    for start in range(lo, hi, TILE):
        m = min(TILE, hi - start)
        _fill_tile(X, start, m, tile)
        _tile_argmin(tile, C2, cn, a0, a1, a2, a3, best_d, best_l)
        _add_row_norms(tile, d, best_d)
        for i in range(m):
            lab = best_l[i]
            v = best_d[i]
            if v < 0:
                v = 0
            labels[start + i] = lab
            dist[start + i] = v
            w = 1.0 if unit else weights[start + i]
            wsums[lab] += w
            for j in range(d):
                sums[lab, j] += w * tile[j, i]
