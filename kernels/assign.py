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
def _tile_argmin(tile, C2, cn, a0, a1, a2, a3, best_d, best_l, chk):
    """For the TILE rows in ``tile``: OUT best_l (nearest center), best_d (|c|^2 - 2 x.c of it),
    chk (the sum of every center's value: NaN when one of them is NaN, see :func:`assign_rows`).

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
        chk[i] = 0
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
                chk[i] += (t0 + t1) + (t2 + t3)  # the comparisons below skip a NaN: this keeps it
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
def _tile_buffers(dp, like):
    """Scratch of one tile: the feature-major rows, four accumulators, best distance and label,
    and the NaN check of :func:`_tile_argmin`.

    ``like`` is any array of the data's dtype (only its dtype is used).
    """
    dtype = like.dtype
    return (np.zeros((dp, TILE), dtype), np.empty(TILE, dtype), np.empty(TILE, dtype),
            np.empty(TILE, dtype), np.empty(TILE, dtype), np.empty(TILE, dtype),
            np.empty(TILE, np.int32), np.empty(TILE, dtype))


@kernel
def count_beyond(X, lo, hi, limit, counts):
    """Count, per feature, the values of rows ``lo..hi`` that are NaN or beyond ``limit`` in
    absolute value (infinities included): the values the distance kernels cannot take.

    Parameters
    ----------
    X : (n, d) float32/float64, any layout, IN
    lo, hi : int
    limit : float, the largest absolute value allowed (see ``segmint.cluster._matrix.value_limit``)
    counts : (d,) int64, INOUT: the counts are added
    """
    d = X.shape[1]
    for i in range(lo, hi):
        for j in range(d):
            counts[j] += not (abs(X[i, j]) <= limit)


@kernel
def assign_rows(X, lo, hi, C2, cn, labels, labels_lo, dist, dist_lo, with_dist):
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

    Returns
    -------
    int
        Rows whose arithmetic failed: a NaN or infinity in the row, or a value so large that a
        center's ``|c|^2 - 2 x.c`` (or the squared distance) overflowed. Their label and distance
        are meaningless. Every other row's label is the exact argmin of the values computed
        (no overflow happened): huge but finite values are assigned correctly or counted here,
        never silently mislabelled.

    Notes
    -----
    Overflow to ``+inf`` in one center's value is harmless (that center is farther than any
    finite one; if every center overflows the best value is ``+inf`` and the row is counted);
    ``-inf`` wins and is counted; NaN (``inf - inf``) would be skipped by the comparisons, so
    :func:`_tile_argmin` keeps the sum of all centers' values, which is NaN exactly then. This
    costs one add per center in registers, about 2% at k=8 (a separate check of every value
    against a limit cost 20%).
    """
    d = X.shape[1]
    dp = C2.shape[1]
    tile, a0, a1, a2, a3, best_d, best_l, chk = _tile_buffers(dp, X[lo:lo + 1, :1])
    bad = 0
    for start in range(lo, hi, TILE):
        m = min(TILE, hi - start)
        _fill_tile(X, start, m, tile)
        _tile_argmin(tile, C2, cn, a0, a1, a2, a3, best_d, best_l, chk)
        if with_dist:
            _add_row_norms(tile, d, best_d)
        ol = start - labels_lo
        for i in range(m):
            labels[ol + i] = best_l[i]
            v = best_d[i]  # NaN, an infinity or an overflow leaves the best value non-finite
            bad += not (v > -np.inf and v < np.inf) or chk[i] != chk[i]
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
    tile, a0, a1, a2, a3, best_d, best_l, chk = _tile_buffers(dp, X[lo:lo + 1, :1])
    for start in range(lo, hi, TILE):
        m = min(TILE, hi - start)
        _fill_tile(X, start, m, tile)
        _tile_argmin(tile, C2, cn, a0, a1, a2, a3, best_d, best_l, chk)
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
