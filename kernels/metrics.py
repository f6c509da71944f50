"""Cluster quality metrics for choosing k: one pass for labels and their scores, one for the
spread around the recomputed centroids, an exact silhouette on a sample, and the contingency
table of two labelings (for the adjusted Rand index).

The full-data kernels work on one chunk of rows and add to that chunk's own partial results
(float64 or integer accumulators); callers combine partials in chunk order, so totals are the
same bits for any thread count. Data are assumed finite and within the clustering value limit
(checked by the caller).
"""
import numpy as np

from .assign import TILE, _fill_tile
from .scratch import empty, zeros
from .settings import kernel


@kernel
def assign_scores(X, lo, hi, centers, labels, sums, counts, inertia, simplified):
    """Nearest center of rows ``lo..hi`` with the figures that need it, in one pass.

    Per row: the two nearest centers by direct squared differences (computed in X's dtype,
    rows in feature-major tiles of ``TILE`` so the loops run over contiguous rows), the label
    (ties to the lowest index), the squared distance to the nearest center (inertia) and the
    simplified silhouette ``(b - a) / max(a, b)``, ``a`` the distance to the nearest center and
    ``b`` to the second nearest (0 when both are 0).

    Parameters
    ----------
    X : (n, d) float32/float64, any layout, IN
    lo, hi : int, the rows of this chunk
    centers : (k, d) same dtype as X, ``k >= 2``, IN
    labels : (n,) int32, OUT at ``lo..hi``
    sums : (k, d) float64, INOUT: the rows of each label are added, in row order
    counts : (k,) int64, INOUT: rows per label are added
    inertia : (1,) float64, INOUT: squared distances to the nearest center are added
    simplified : (k,) float64, INOUT: simplified silhouette values are added per label
    """
    d = X.shape[1]
    k = centers.shape[0]
    tile = zeros((d, TILE), X.dtype)
    acc = empty(TILE, X.dtype)
    best = empty(TILE, X.dtype)
    second = empty(TILE, X.dtype)
    lab = empty(TILE, np.int32)
    score = empty(TILE, np.float64)
    for start in range(lo, hi, TILE):
        m = min(TILE, hi - start)
        _fill_tile(X, start, m, tile)
        for i in range(TILE):
            best[i] = np.inf
            second[i] = np.inf
            lab[i] = 0
        for c in range(k):
            acc[:] = 0
            for j in range(d):
                cj = centers[c, j]
                t = tile[j]
                for i in range(TILE):
                    diff = t[i] - cj
                    acc[i] += diff * diff
            for i in range(TILE):  # selects, no branches: the loop vectorises
                v = acc[i]
                closer = v < best[i]
                second[i] = best[i] if closer else min(second[i], v)
                lab[i] = c if closer else lab[i]
                best[i] = v if closer else best[i]
        for i in range(TILE):  # apart from the scatter by label below: the loop vectorises
            a = np.sqrt(np.float64(best[i]))
            b = np.sqrt(np.float64(second[i]))
            top = max(a, b)
            score[i] = (b - a) / top if top > 0 else 0.0
        total = inertia[0]  # a register, not a memory round trip per row (same additions)
        for i in range(m):
            c = lab[i]
            labels[start + i] = c
            counts[c] += 1
            total += np.float64(best[i])
            simplified[c] += score[i]
            # the row itself, contiguous in a C-ordered X: the sums add as vectors
            row = X[start + i]
            into = sums[c]
            for j in range(d):
                into[j] += np.float64(row[j])
        inertia[0] = total


@kernel
def centroid_spread(X, lo, hi, labels, means, squares, distances):
    """Squared and plain Euclidean distances of rows ``lo..hi`` to their label's mean, in float64.

    The pieces of Calinski-Harabasz (within-cluster sum of squares) and Davies-Bouldin (mean
    distance to the centroid) around the centroids recomputed from the labels.

    Parameters
    ----------
    X : (n, d) float32/float64, IN
    lo, hi : int
    labels : (n,) int32, IN
    means : (k, d) float64, IN: the mean of the rows of each label
    squares : (k,) float64, INOUT: squared distances are added per label, in row order
    distances : (k,) float64, INOUT: distances are added per label, in row order
    """
    d = X.shape[1]
    for i in range(lo, hi):
        c = labels[i]
        s = 0.0
        for j in range(d):
            diff = np.float64(X[i, j]) - means[c, j]
            s += diff * diff
        squares[c] += s
        distances[c] += np.sqrt(s)


@kernel
def contingency(a, b, lo, hi, table):
    """Add the pairs ``(a[i], b[i])`` of rows ``lo..hi`` to a contingency table.

    Parameters
    ----------
    a, b : (n,) int32 labels in ``0..table.shape[0]`` and ``0..table.shape[1]``, IN
    lo, hi : int
    table : (ka, kb) int64, INOUT
    """
    for i in range(lo, hi):
        table[a[i], b[i]] += 1


@kernel
def take_ranks(labels, ranks, starts, out):
    """Rows chosen by their rank within their label, grouped by label (one pass, in row order).

    Parameters
    ----------
    labels : (n,) int32 in ``0..k``, IN
    ranks : (s,) int64, IN: for label ``c``, ``ranks[starts[c]:starts[c + 1]]`` are increasing
        ranks (0-based positions among the rows of label ``c``) to take
    starts : (k + 1,) int64, IN
    out : (s,) int64, OUT: ``out[starts[c] + t]`` is the row of rank ``ranks[starts[c] + t]``
    """
    k = starts.shape[0] - 1
    seen = zeros(k, np.int64)
    nxt = starts[:-1].copy()
    for i in range(labels.shape[0]):
        c = labels[i]
        p = nxt[c]
        if p < starts[c + 1] and ranks[p] == seen[c]:
            out[p] = i
            nxt[c] = p + 1
        seen[c] += 1


SILHOUETTE_TILE = 512  # sample columns per tile: four rows' buffers (16 KB) stay in L1


@kernel
def silhouette_rows(XT, bounds, lo, hi, out):
    """Exact silhouette of sample rows ``lo..hi`` (O(m d) per row; no m x m matrix).

    ``a`` is the mean distance to the other rows of the row's cluster, ``b`` the smallest mean
    distance to the rows of another cluster, ``s = (b - a) / max(a, b)``; as scikit-learn's
    ``silhouette_samples``, ``s = 0`` for a row alone in its cluster and when ``a = b = 0``.
    Distances are direct differences in float64 (identical rows are exactly 0 apart).

    Four rows at a time against tiles of ``SILHOUETTE_TILE`` columns: each column value loaded
    feeds four rows, and the squared distances of a tile stay in L1 until their square roots
    are summed per cluster. Every index runs from 0 (slices), so no negative-index handling
    keeps the loops from vectorising.

    Parameters
    ----------
    XT : (d, m) float64, C-ordered, IN: the sample feature-major, rows grouped by cluster
    bounds : (k + 1,) int64, IN: cluster ``c`` holds sample rows ``bounds[c]..bounds[c + 1]``
    lo, hi : int, the rows to compute
    out : (m,) float64, OUT at ``lo..hi``
    """
    d, m = XT.shape
    k = bounds.shape[0] - 1
    b0 = empty(SILHOUETTE_TILE, np.float64)
    b1 = empty(SILHOUETTE_TILE, np.float64)
    b2 = empty(SILHOUETTE_TILE, np.float64)
    b3 = empty(SILHOUETTE_TILE, np.float64)
    sums = empty((4, k), np.float64)
    for i0 in range(lo, hi, 4):
        # rows past hi repeat the last row: computed, never written
        i1 = min(i0 + 1, hi - 1)
        i2 = min(i0 + 2, hi - 1)
        i3 = min(i0 + 3, hi - 1)
        sums[:, :] = 0
        for jt in range(0, m, SILHOUETTE_TILE):
            jn = min(SILHOUETTE_TILE, m - jt)
            b0[:] = 0
            b1[:] = 0
            b2[:] = 0
            b3[:] = 0
            for f in range(d):
                r = XT[f][jt:]
                x0 = XT[f, i0]
                x1 = XT[f, i1]
                x2 = XT[f, i2]
                x3 = XT[f, i3]
                for j in range(jn):
                    v = r[j]
                    e0 = v - x0
                    e1 = v - x1
                    e2 = v - x2
                    e3 = v - x3
                    b0[j] += e0 * e0
                    b1[j] += e1 * e1
                    b2[j] += e2 * e2
                    b3[j] += e3 * e3
            for c in range(k):  # the clusters overlapping this tile
                s0 = max(bounds[c], jt) - jt
                s1 = min(bounds[c + 1], jt + jn) - jt
                if s1 <= s0:
                    continue
                c0 = b0[s0:s1]
                c1 = b1[s0:s1]
                c2 = b2[s0:s1]
                c3 = b3[s0:s1]
                t0 = 0.0
                t1 = 0.0
                t2 = 0.0
                t3 = 0.0
                for j in range(s1 - s0):
                    t0 += np.sqrt(c0[j])
                    t1 += np.sqrt(c1[j])
                    t2 += np.sqrt(c2[j])
                    t3 += np.sqrt(c3[j])
                sums[0, c] += t0
                sums[1, c] += t1
                sums[2, c] += t2
                sums[3, c] += t3
        for r in range(min(4, hi - i0)):
            i = i0 + r
            own = 0
            while bounds[own + 1] <= i:
                own += 1
            a = 0.0
            b = np.inf
            for c in range(k):
                size = bounds[c + 1] - bounds[c]
                if size == 0:
                    continue
                if c == own:
                    a = sums[r, c] / (size - 1) if size > 1 else 0.0
                else:
                    b = min(b, sums[r, c] / size)
            top = max(a, b)
            if bounds[own + 1] - bounds[own] == 1 or not top > 0 or b == np.inf:
                out[i] = 0.0
            else:
                out[i] = (b - a) / top


@kernel
def _four_rows_squares(XT, j0, jn, i0, i1, i2, i3, b0, b1, b2, b3):
    """Squared distances of rows ``i0..i3`` to columns ``j0..j0 + jn`` into ``b0..b3[:jn]``.

    Eight features at a time (then four, then one): each buffer value is loaded and stored
    once per group instead of once per feature (one at a time, that L1 traffic cost more than
    the arithmetic: 1.3x slower with groups of four, 1.4x with eight, at d = 16). The order of
    the additions is fixed, so results are the same bits on every call and thread count.
    """
    d = XT.shape[0]
    b0[:jn] = 0
    b1[:jn] = 0
    b2[:jn] = 0
    b3[:jn] = 0
    for f in range(0, d - 7, 8):
        ra = XT[f][j0:j0 + jn]
        rb = XT[f + 1][j0:j0 + jn]
        rc = XT[f + 2][j0:j0 + jn]
        rd = XT[f + 3][j0:j0 + jn]
        re = XT[f + 4][j0:j0 + jn]
        rf = XT[f + 5][j0:j0 + jn]
        rg = XT[f + 6][j0:j0 + jn]
        rh = XT[f + 7][j0:j0 + jn]
        a0, a1, a2, a3 = XT[f, i0], XT[f, i1], XT[f, i2], XT[f, i3]
        c0, c1, c2, c3 = XT[f + 1, i0], XT[f + 1, i1], XT[f + 1, i2], XT[f + 1, i3]
        e0, e1, e2, e3 = XT[f + 2, i0], XT[f + 2, i1], XT[f + 2, i2], XT[f + 2, i3]
        g0, g1, g2, g3 = XT[f + 3, i0], XT[f + 3, i1], XT[f + 3, i2], XT[f + 3, i3]
        p0, p1, p2, p3 = XT[f + 4, i0], XT[f + 4, i1], XT[f + 4, i2], XT[f + 4, i3]
        q0, q1, q2, q3 = XT[f + 5, i0], XT[f + 5, i1], XT[f + 5, i2], XT[f + 5, i3]
        u0, u1, u2, u3 = XT[f + 6, i0], XT[f + 6, i1], XT[f + 6, i2], XT[f + 6, i3]
        w0, w1, w2, w3 = XT[f + 7, i0], XT[f + 7, i1], XT[f + 7, i2], XT[f + 7, i3]
        for j in range(jn):
            va = ra[j]
            vb = rb[j]
            vc = rc[j]
            vd = rd[j]
            ve = re[j]
            vf = rf[j]
            vg = rg[j]
            vh = rh[j]
            b0[j] += (((va - a0) * (va - a0) + (vb - c0) * (vb - c0)) + ((vc - e0) * (vc - e0) + (vd - g0) * (vd - g0))
                      + (((ve - p0) * (ve - p0) + (vf - q0) * (vf - q0)) + ((vg - u0) * (vg - u0) + (vh - w0) * (vh - w0))))
            b1[j] += (((va - a1) * (va - a1) + (vb - c1) * (vb - c1)) + ((vc - e1) * (vc - e1) + (vd - g1) * (vd - g1))
                      + (((ve - p1) * (ve - p1) + (vf - q1) * (vf - q1)) + ((vg - u1) * (vg - u1) + (vh - w1) * (vh - w1))))
            b2[j] += (((va - a2) * (va - a2) + (vb - c2) * (vb - c2)) + ((vc - e2) * (vc - e2) + (vd - g2) * (vd - g2))
                      + (((ve - p2) * (ve - p2) + (vf - q2) * (vf - q2)) + ((vg - u2) * (vg - u2) + (vh - w2) * (vh - w2))))
            b3[j] += (((va - a3) * (va - a3) + (vb - c3) * (vb - c3)) + ((vc - e3) * (vc - e3) + (vd - g3) * (vd - g3))
                      + (((ve - p3) * (ve - p3) + (vf - q3) * (vf - q3)) + ((vg - u3) * (vg - u3) + (vh - w3) * (vh - w3))))
    for f in range(d - d % 8, d - 3, 4):
        ra = XT[f][j0:j0 + jn]
        rb = XT[f + 1][j0:j0 + jn]
        rc = XT[f + 2][j0:j0 + jn]
        rd = XT[f + 3][j0:j0 + jn]
        a0, a1, a2, a3 = XT[f, i0], XT[f, i1], XT[f, i2], XT[f, i3]
        c0, c1, c2, c3 = XT[f + 1, i0], XT[f + 1, i1], XT[f + 1, i2], XT[f + 1, i3]
        e0, e1, e2, e3 = XT[f + 2, i0], XT[f + 2, i1], XT[f + 2, i2], XT[f + 2, i3]
        g0, g1, g2, g3 = XT[f + 3, i0], XT[f + 3, i1], XT[f + 3, i2], XT[f + 3, i3]
        for j in range(jn):
            va = ra[j]
            vb = rb[j]
            vc = rc[j]
            vd = rd[j]
            b0[j] += ((va - a0) * (va - a0) + (vb - c0) * (vb - c0)) + ((vc - e0) * (vc - e0) + (vd - g0) * (vd - g0))
            b1[j] += ((va - a1) * (va - a1) + (vb - c1) * (vb - c1)) + ((vc - e1) * (vc - e1) + (vd - g1) * (vd - g1))
            b2[j] += ((va - a2) * (va - a2) + (vb - c2) * (vb - c2)) + ((vc - e2) * (vc - e2) + (vd - g2) * (vd - g2))
            b3[j] += ((va - a3) * (va - a3) + (vb - c3) * (vb - c3)) + ((vc - e3) * (vc - e3) + (vd - g3) * (vd - g3))
    for f in range(d - d % 4, d):  # the features left over
        r = XT[f][j0:j0 + jn]
        x0 = XT[f, i0]
        x1 = XT[f, i1]
        x2 = XT[f, i2]
        x3 = XT[f, i3]
        for j in range(jn):
            v = r[j]
            b0[j] += (v - x0) * (v - x0)
            b1[j] += (v - x1) * (v - x1)
            b2[j] += (v - x2) * (v - x2)
            b3[j] += (v - x3) * (v - x3)


@kernel
def silhouette_block(XT, bounds, clusters, block, I, rows_out, cols_out):
    """Distance sums of sample block ``I`` against blocks ``I, I+1, ...``: each pair once.

    The symmetric form of :func:`silhouette_rows`: block ``I`` (rows ``I*block..``) meets every
    later block; a pair's distance is added to the row's sum for the column's cluster
    (``rows_out``) and to the column's sum for the row's cluster (``cols_out``), so each
    distance and square root is computed once instead of twice. The diagonal block adds to
    ``rows_out`` only (it meets itself whole). Rows go four at a time against each block's
    columns, as in :func:`silhouette_rows`; four rows of one cluster add their four distances
    to a column's sum at once.

    Parameters
    ----------
    XT : (d, m) float64, C-ordered, IN: the sample feature-major, rows grouped by cluster
    bounds : (k + 1,) int64, IN: cluster ``c`` holds sample rows ``bounds[c]..bounds[c + 1]``
    clusters : (m,) int64, IN: the cluster of each sample row
    block : int, rows per block (a multiple of 4)
    I : int, the block of rows
    rows_out : (m, k) float64, INOUT: ``rows_out[i, c]`` += distances of row ``i`` (in block
        ``I``) to the rows of cluster ``c`` in blocks ``I..``; only block ``I``'s rows are written
    cols_out : (k, m) float64, INOUT: ``cols_out[c, j]`` += distances of row ``j`` (in blocks
        after ``I``) to the rows of cluster ``c`` in block ``I``
    """
    d, m = XT.shape
    k = bounds.shape[0] - 1
    lo = I * block
    hi = min(m, lo + block)
    n_blocks = (m + block - 1) // block
    b0 = empty(block, np.float64)
    b1 = empty(block, np.float64)
    b2 = empty(block, np.float64)
    b3 = empty(block, np.float64)
    for i0 in range(lo, hi, 4):
        nv = min(4, hi - i0)  # rows past hi repeat the last row: computed, never added
        i1 = min(i0 + 1, hi - 1)
        i2 = min(i0 + 2, hi - 1)
        i3 = min(i0 + 3, hi - 1)
        c0 = clusters[i0]
        c1 = clusters[i1]
        c2 = clusters[i2]
        c3 = clusters[i3]
        same = nv == 4 and c0 == c3  # rows are grouped by cluster: the four share it
        for J in range(I, n_blocks):
            j0 = J * block
            jn = min(block, m - j0)
            _four_rows_squares(XT, j0, jn, i0, i1, i2, i3, b0, b1, b2, b3)
            for j in range(jn):
                b0[j] = np.sqrt(b0[j])
                b1[j] = np.sqrt(b1[j])
                b2[j] = np.sqrt(b2[j])
                b3[j] = np.sqrt(b3[j])
            for c in range(k):  # the clusters overlapping this block of columns
                s0 = max(bounds[c], j0) - j0
                s1 = min(bounds[c + 1], j0 + jn) - j0
                if s1 <= s0:
                    continue
                r0 = b0[s0:s1]  # slices index from 0: no negative-index handling in the loop
                r1 = b1[s0:s1]
                r2 = b2[s0:s1]
                r3 = b3[s0:s1]
                t0 = 0.0
                t1 = 0.0
                t2 = 0.0
                t3 = 0.0
                for j in range(s1 - s0):
                    t0 += r0[j]
                    t1 += r1[j]
                    t2 += r2[j]
                    t3 += r3[j]
                rows_out[i0, c] += t0
                if nv > 1:
                    rows_out[i1, c] += t1
                if nv > 2:
                    rows_out[i2, c] += t2
                if nv > 3:
                    rows_out[i3, c] += t3
            if J == I:
                continue
            if same:
                col = cols_out[c0][j0:]
                for j in range(jn):
                    col[j] += (b0[j] + b1[j]) + (b2[j] + b3[j])
                continue
            col = cols_out[c0][j0:]
            for j in range(jn):
                col[j] += b0[j]
            if nv > 1:
                col = cols_out[c1][j0:]
                for j in range(jn):
                    col[j] += b1[j]
            if nv > 2:
                col = cols_out[c2][j0:]
                for j in range(jn):
                    col[j] += b2[j]
            if nv > 3:
                col = cols_out[c3][j0:]
                for j in range(jn):
                    col[j] += b3[j]


@kernel
def label_sums(X, lo, hi, labels, sums, counts):
    """Add rows ``lo..hi`` of X to the sums (float64, in row order) and counts of their labels.

    Parameters
    ----------
    X : (n, d) float32/float64, IN
    lo, hi : int
    labels : (n,) int32 in ``0..k``, IN
    sums : (k, d) float64, INOUT
    counts : (k,) int64, INOUT
    """
    d = X.shape[1]
    for i in range(lo, hi):
        c = labels[i]
        counts[c] += 1
        for j in range(d):
            sums[c, j] += np.float64(X[i, j])
