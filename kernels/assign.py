"""Nearest-center assignment: labels and squared distances, blocked for cache and SIMD.

Distances use the expanded form ``|x|^2 + |c|^2 - 2 x.c``. Rows are processed in tiles of
``TILE`` rows copied feature-major into a small buffer (so rows sit side by side in SIMD
registers; the copy of row-major data uses the block transposes of :mod:`.simd`).

Data come as a C-ordered 2-D array and a flag ``fm``: ``fm=False``, X is (n, d) row-major;
``fm=True``, X is (d, n) feature-major (``X[j, i]`` is row i's feature j: a Fortran-ordered
array or a block streamed from columnar sources, passed as its C-ordered transpose ``X.T``;
see ``segmint.cluster._matrix.kernel_layout``). One layout, so each kernel compiles once per
dtype (a Fortran-ordered signature of every kernel and helper cost ~6 s of a cold warm-up).

:func:`_tile_argmin` is a GEMM-shaped micro-kernel fused with the argmin: a block of
``ROW_REGISTERS`` registers of rows by four centers stays in registers while the loop runs over
features (written with the explicit vector values of :mod:`.simd`: LLVM's own vectoriser
targets 256-bit vectors on AVX-512 CPUs and keeps accumulators in memory; measured ~2-4x
the GFLOP/s of the previous loop kernel at k >= 64, ~160 GFLOP/s a core for float32).
Ties go to the lowest center index, like ``numpy.argmin``. float64 data at large k are
screened in float32 first (:func:`assign_rows_screened`, chosen by the caller), with the
float64 kernel's results.

Centers are given prepared by :func:`prepare_centers`: ``C2 = -2 * centers`` zero-padded to a
multiple of four features and four centers, and ``cn = |c|^2`` with ``+inf`` on padding rows,
so padding never wins.
"""
import numpy as np

from .scratch import empty, zeros
from .settings import kernel, subroutine
from .simd import (NATIVE_VECTOR_BYTES, fmadd, lanes_of, transpose_16B, transpose_32B, transpose_64B, vadd, vany,
                   vfill, vfill_labels, vfma, vfold_first, vless, vload, vmax, vmin, vselect, vstore, vunordered)

TILE = 128

# Registers of rows in a block of the micro-kernels (:func:`_tile_argmin`, :func:`_tile_screen`).
# A block of R registers of rows by four centers keeps 4R accumulators, R rows and a broadcast
# center value live in the loop over features: 21 registers with R = 4, which AVX-512's 32 hold
# but AVX2's (and SSE's) 16 do not. Spilled to the stack there, the 4 x 4 block ran at half the
# speed of a 2 x 4 block giving the same bits (measured on Zen 3, one core, d=16: float32 25.5
# against 46.7 GFLOP/s at k=1024, float64 13.8 against 26.6). Both kernels exist (so each is
# tested on any CPU); the callers use the one for this CPU. TILE is a multiple of either block.
ROW_REGISTERS = 4 if NATIVE_VECTOR_BYTES >= 64 else 2


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
def _fill_tile(X, lo, m, tile):
    """Copy rows ``lo..lo+m`` of X feature-major into ``tile[:d, :m]`` (other entries untouched).

    Full tiles of row-major data go through whole-vector block transposes (the widest the CPU
    has first, then narrower ones for the remaining columns, then single values); column-major
    data is a contiguous copy per feature. The block widths are branches on a module constant
    (folded away when compiled), written in this one function: a helper taking the width as an
    argument was compiled once per constant width it was called with (18 signatures, ~2.7 s).
    """
    d = X.shape[1]
    size = X.itemsize
    if m == TILE and X.strides[1] == size:
        j = 0
        if NATIVE_VECTOR_BYTES >= 64:
            w = 64 // size
            while j + w <= d:
                for i in range(0, TILE, w):
                    transpose_64B(X, lo + i, j, tile, j, i)
                j += w
        if NATIVE_VECTOR_BYTES >= 32:
            w = 32 // size
            while j + w <= d:
                for i in range(0, TILE, w):
                    transpose_32B(X, lo + i, j, tile, j, i)
                j += w
        w = 16 // size
        while j + w <= d:
            for i in range(0, TILE, w):
                transpose_16B(X, lo + i, j, tile, j, i)
            j += w
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


@subroutine
def _load_tile(X, fm, d, start, m, tile):
    """Rows ``start..start+m`` into ``tile[:d, :m]``, feature-major: from X (n, d), or, when ``fm``,
    from the C-ordered transpose (d, n) of a Fortran-ordered block, a contiguous copy per feature.
    A subroutine: compiled into each assignment kernel, no signature of its own."""
    if fm:
        for j in range(d):
            src = X[j]
            t = tile[j]
            for i in range(m):
                t[i] = src[start + i]
    else:
        _fill_tile(X, start, m, tile)


@kernel
def _tile_argmin4(tile, C2, cn, rows, best_d, best_l, chk):
    """For the first ``rows`` rows in ``tile``: OUT best_l (nearest center), best_d (|c|^2 - 2 x.c
    of it), chk (NaN when some center's value is NaN, else 0: see :func:`assign_rows`). Blocks
    of four registers of rows: the kernel for AVX-512 CPUs (``_tile_argmin`` is this one or
    :func:`_tile_argmin2`, see ``ROW_REGISTERS``).

    Parameters
    ----------
    tile : (dp, TILE) float32/float64, IN: rows feature-major, features beyond d zero
    C2, cn : prepared centers (:func:`prepare_centers`), IN
    rows : int, 1 to TILE: the rows wanted. Rows go by blocks of four registers (32 float64 or
        64 float32 rows with AVX-512), so the outputs are written up to the end of the last
        block (the columns of ``tile`` there are read, whatever they hold). A row's bits do not
        depend on ``rows``: a real-time row or a few rows the float32 screen left undecided
        cost one block, not a tile.
    best_d : (TILE,) tile's dtype, OUT
    best_l : (TILE,) int32, OUT
    chk : (TILE,) tile's dtype, OUT

    A GEMM-shaped micro-kernel: a block of four registers of rows (64 float32 rows with
    AVX-512) by four centers keeps its sixteen accumulators in registers while the loop runs
    over the features, each row load feeding four multiply-adds and each broadcast center value
    four; then the block folds into the rows' running best, kept in registers too while the
    centers go by. Every center's value is ``cn[c]`` plus the products ``C2[c, j] * x[j]`` added
    one feature at a time in feature order (fused where the CPU has FMA): the same arithmetic
    for every row, whatever the tile, so one row scored alone gets the batch's bits.
    """
    kp, dp = C2.shape
    w = lanes_of(tile)
    for r in range(0, min(rows, TILE), 4 * w):
        inf = vfill(np.inf, tile)
        zero = vfill(0.0, tile)
        b0, b1, b2, b3 = inf, inf, inf, inf
        lab0 = vfill_labels(0, tile)
        l0, l1, l2, l3 = lab0, lab0, lab0, lab0
        h0 = vless(zero, zero)  # no NaN yet
        h1, h2, h3 = h0, h0, h0
        for c in range(0, kp, 4):
            (s00, s01, s02, s03, s10, s11, s12, s13,
             s20, s21, s22, s23, s30, s31, s32, s33) = _block_values4(tile, C2, cn, r, c, w)
            # the comparisons skip a NaN: the rows where a value is NaN are marked (see assign_rows)
            h0 = vany(h0, vany(vunordered(s00, s01), vunordered(s02, s03)))
            h1 = vany(h1, vany(vunordered(s10, s11), vunordered(s12, s13)))
            h2 = vany(h2, vany(vunordered(s20, s21), vunordered(s22, s23)))
            h3 = vany(h3, vany(vunordered(s30, s31), vunordered(s32, s33)))
            # centers in increasing order with a strict <: ties keep the lower index
            b0, l0 = _fold4(b0, l0, s00, s01, s02, s03, c)
            b1, l1 = _fold4(b1, l1, s10, s11, s12, s13, c)
            b2, l2 = _fold4(b2, l2, s20, s21, s22, s23, c)
            b3, l3 = _fold4(b3, l3, s30, s31, s32, s33, c)
        vstore(best_d, r, b0)
        vstore(best_d, r + w, b1)
        vstore(best_d, r + 2 * w, b2)
        vstore(best_d, r + 3 * w, b3)
        vstore(best_l, r, l0)
        vstore(best_l, r + w, l1)
        vstore(best_l, r + 2 * w, l2)
        vstore(best_l, r + 3 * w, l3)
        nan = vfill(np.nan, tile)
        vstore(chk, r, vselect(h0, nan, zero))
        vstore(chk, r + w, vselect(h1, nan, zero))
        vstore(chk, r + 2 * w, vselect(h2, nan, zero))
        vstore(chk, r + 3 * w, vselect(h3, nan, zero))


@kernel
def _tile_argmin2(tile, C2, cn, rows, best_d, best_l, chk):
    """:func:`_tile_argmin4` with blocks of two registers of rows (16 float32 or 8 float64 rows
    with AVX2): the same arguments, outputs and bits (every row's values are the same
    multiply-adds in the same order, folded in the same center order); the kernel for CPUs with
    16 vector registers, where the four-register block's accumulators do not fit.
    """
    kp, dp = C2.shape
    w = lanes_of(tile)
    for r in range(0, min(rows, TILE), 2 * w):
        inf = vfill(np.inf, tile)
        zero = vfill(0.0, tile)
        b0, b1 = inf, inf
        lab0 = vfill_labels(0, tile)
        l0, l1 = lab0, lab0
        h0 = vless(zero, zero)
        h1 = h0
        for c in range(0, kp, 4):
            s00, s01, s02, s03, s10, s11, s12, s13 = _block_values2(tile, C2, cn, r, c, w)
            h0 = vany(h0, vany(vunordered(s00, s01), vunordered(s02, s03)))
            h1 = vany(h1, vany(vunordered(s10, s11), vunordered(s12, s13)))
            b0, l0 = _fold4(b0, l0, s00, s01, s02, s03, c)
            b1, l1 = _fold4(b1, l1, s10, s11, s12, s13, c)
        vstore(best_d, r, b0)
        vstore(best_d, r + w, b1)
        vstore(best_l, r, l0)
        vstore(best_l, r + w, l1)
        nan = vfill(np.nan, tile)
        vstore(chk, r, vselect(h0, nan, zero))
        vstore(chk, r + w, vselect(h1, nan, zero))


_tile_argmin = _tile_argmin4 if ROW_REGISTERS == 4 else _tile_argmin2


@kernel(inline="always")
def _block_values4(tile, C2, cn, r, c, w):
    """The values ``|c|^2 - 2 x.c`` of four registers of rows (``r``, ``r + w``, ...) for
    centers ``c..c+3``, as sixteen registers (rows-major): ``cn[c]`` plus ``C2[c, j] * x[j]``
    added one feature at a time in feature order, each a multiply-add of :func:`.simd.vfma`.

    Inlined where it is called, so the sixteen accumulators stay in registers while the loop
    runs over features: each row load feeds four multiply-adds, each broadcast center value four.
    """
    dp = C2.shape[1]
    e0 = vfill(cn[c], tile)
    e1 = vfill(cn[c + 1], tile)
    e2 = vfill(cn[c + 2], tile)
    e3 = vfill(cn[c + 3], tile)
    s00, s01, s02, s03 = e0, e1, e2, e3
    s10, s11, s12, s13 = e0, e1, e2, e3
    s20, s21, s22, s23 = e0, e1, e2, e3
    s30, s31, s32, s33 = e0, e1, e2, e3
    for j in range(dp):
        row = tile[j]
        x0 = vload(row, r)
        x1 = vload(row, r + w)
        x2 = vload(row, r + 2 * w)
        x3 = vload(row, r + 3 * w)
        p0 = vfill(C2[c, j], tile)
        p1 = vfill(C2[c + 1, j], tile)
        p2 = vfill(C2[c + 2, j], tile)
        p3 = vfill(C2[c + 3, j], tile)
        s00 = vfma(x0, p0, s00)
        s01 = vfma(x0, p1, s01)
        s02 = vfma(x0, p2, s02)
        s03 = vfma(x0, p3, s03)
        s10 = vfma(x1, p0, s10)
        s11 = vfma(x1, p1, s11)
        s12 = vfma(x1, p2, s12)
        s13 = vfma(x1, p3, s13)
        s20 = vfma(x2, p0, s20)
        s21 = vfma(x2, p1, s21)
        s22 = vfma(x2, p2, s22)
        s23 = vfma(x2, p3, s23)
        s30 = vfma(x3, p0, s30)
        s31 = vfma(x3, p1, s31)
        s32 = vfma(x3, p2, s32)
        s33 = vfma(x3, p3, s33)
    return (s00, s01, s02, s03, s10, s11, s12, s13, s20, s21, s22, s23, s30, s31, s32, s33)


@kernel(inline="always")
def _block_values2(tile, C2, cn, r, c, w):
    """:func:`_block_values4` for two registers of rows (``r``, ``r + w``): eight registers, the
    same arithmetic per row. Each broadcast center value is used at once, so a block needs
    eleven vector registers at most."""
    dp = C2.shape[1]
    e0 = vfill(cn[c], tile)
    e1 = vfill(cn[c + 1], tile)
    e2 = vfill(cn[c + 2], tile)
    e3 = vfill(cn[c + 3], tile)
    s00, s01, s02, s03 = e0, e1, e2, e3
    s10, s11, s12, s13 = e0, e1, e2, e3
    for j in range(dp):
        row = tile[j]
        x0 = vload(row, r)
        x1 = vload(row, r + w)
        p = vfill(C2[c, j], tile)
        s00 = vfma(x0, p, s00)
        s10 = vfma(x1, p, s10)
        p = vfill(C2[c + 1, j], tile)
        s01 = vfma(x0, p, s01)
        s11 = vfma(x1, p, s11)
        p = vfill(C2[c + 2, j], tile)
        s02 = vfma(x0, p, s02)
        s12 = vfma(x1, p, s12)
        p = vfill(C2[c + 3, j], tile)
        s03 = vfma(x0, p, s03)
        s13 = vfma(x1, p, s13)
    return (s00, s01, s02, s03, s10, s11, s12, s13)


@kernel(inline="always")
def _fold4(best, lab, t0, t1, t2, t3, c):
    """Fold the values of centers ``c..c+3`` into one register of rows' best value and label."""
    m = vless(t0, best)
    best = vselect(m, t0, best)
    lab = vselect(m, vfill_labels(c, lab), lab)
    m = vless(t1, best)
    best = vselect(m, t1, best)
    lab = vselect(m, vfill_labels(c + 1, lab), lab)
    m = vless(t2, best)
    best = vselect(m, t2, best)
    lab = vselect(m, vfill_labels(c + 2, lab), lab)
    m = vless(t3, best)
    best = vselect(m, t3, best)
    lab = vselect(m, vfill_labels(c + 3, lab), lab)
    return best, lab


@kernel
def _add_row_norms(tile, d, best_d):
    """best_d[i] += |x_i|^2 over the first d features of the tile (INOUT best_d)."""
    for j in range(d):
        t = tile[j]
        for i in range(TILE):
            best_d[i] += t[i] * t[i]


@kernel
def count_beyond(X, fm, lo, hi, limit, counts):
    """Count, per feature, the values of rows ``lo..hi`` that are NaN or beyond ``limit`` in
    absolute value (infinities included): the values the distance kernels cannot take.

    Parameters
    ----------
    X : (n, d) float32/float64, or (d, n) when ``fm`` (see the module), IN
    fm : bool, X feature-major
    lo, hi : int
    limit : float, the largest absolute value allowed (see ``segmint.cluster._matrix.value_limit``)
    counts : (d,) int64, INOUT: the counts are added
    """
    if fm:  # rows in the outer loop, as for row-major data (a loop per feature measured 2x slower)
        d = X.shape[0]
        for i in range(lo, hi):
            for j in range(d):
                counts[j] += not (abs(X[j, i]) <= limit)
    else:
        d = X.shape[1]
        for i in range(lo, hi):
            for j in range(d):
                counts[j] += not (abs(X[i, j]) <= limit)


@kernel
def assign_rows(X, fm, lo, hi, C2, cn, labels, labels_lo, dist, dist_lo, with_dist, weights, sums, wsums):
    """Nearest center of rows ``lo..hi`` of X.

    Parameters
    ----------
    X : (n, d) float32/float64, or (d, n) when ``fm`` (see the module), IN
    fm : bool, X feature-major
    lo, hi : int, the rows to assign (``0 <= lo <= hi <= n``)
    C2, cn : prepared centers from :func:`prepare_centers` (same dtype as X), IN
    labels : int32 array, OUT: row ``i`` goes to ``labels[i - labels_lo]``: its nearest center
    labels_lo : int, 0 when ``labels`` covers all rows of X, ``lo`` for a scratch of ``hi - lo`` rows
    dist : float array of X's dtype, OUT: row ``i`` goes to ``dist[i - dist_lo]``: squared distance
        to it (clipped at 0)
    dist_lo : int, as ``labels_lo`` for ``dist``
    with_dist : bool, False to skip distances (``dist`` is then not touched; labels need no
        row norms, since ``|x|^2`` is the same for every center)
    weights : (n,) X's dtype, or empty for unit weights, IN (read only with sums)
    sums : (k, d) float64, INOUT: the (weighted) rows of each center are added, in row order (one
        Lloyd pass, one chunk); a (0, 0) array for none (``predict``)
    wsums : (k,) float64, INOUT: the total weight of each center is added, in row order (empty
        with no sums)

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
    :func:`_tile_argmin` marks the rows where some center's value is NaN (an unordered compare
    and an or per value in registers; a check of every value against a limit cost 20% at k=8).
    It marked them by the sum of all values, until the row-major kernel at small k
    (:func:`assign_labels_narrow`, which callers run for float64 labels at k <= 8 on AVX2) had
    to give the same count: a sum of finite values can overflow to both infinities in one order
    and not in another, so the count depended on the order of the sum.

    For float64 data with at least ``SCREEN_CENTERS`` (padded) centers, callers run
    :func:`assign_rows_screened` first, which gives the same labels, distances and count bit
    for bit in about half the time (``segmint.cluster._passes.assign_rows`` chooses).
    """
    d = X.shape[0] if fm else X.shape[1]
    dp = C2.shape[1]
    with_sums = sums.shape[0] > 0
    unit = weights.shape[0] == 0
    # one scratch block (the tile, then rows of best values and NaN checks, views of it) and the
    # labels: two allocations, no helper to compile
    scratch = zeros((dp + 2, TILE), C2.dtype)
    tile = scratch[:dp]
    best_d, chk = scratch[dp], scratch[dp + 1]
    best_l = empty(TILE, np.int32)
    bad = 0
    for start in range(lo, hi, TILE):
        m = min(TILE, hi - start)
        _load_tile(X, fm, d, start, m, tile)
        _tile_argmin(tile, C2, cn, m, best_d, best_l, chk)
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
        if with_sums:  # Lloyd's partials (one kernel for both: a second cost as much to compile)
            for i in range(m):
                lab = best_l[i]
                w = 1.0 if unit else weights[start + i]
                wsums[lab] += w
                for j in range(d):
                    sums[lab, j] += w * tile[j, i]
    return bad


# -- few centers, row-major rows: vectorised across centers -------------------------------------
#
# At small k the tile kernel's arithmetic is a few multiply-adds a row, and copying rows into
# the feature-major tile (a store and a reload of every value) costs about as much: float64 at
# k=8 on AVX2 ran at 1.7-2.1x the time of one read of the data on two threads. With every
# center in one or two registers, a row is read once from X, each feature broadcast against the
# centers' column of that feature, and its values folded in the register (:func:`.simd.
# vfold_first`): reading and computing overlap. Measured on AVX2 (Zen 3), two threads, d=16,
# labels only, float64 k=8: 1.2-1.4x faster at 1M, 2M and 10M rows (1.3-1.7x the read). Not
# taken where it lost: float32 (one thread, 1M rows, k=8: 15-18 against 12-13 ms: eight lanes
# make the tile's arithmetic cheap, and the fold is per row here, per register of rows there),
# distances (a row's norm alone is a chain of dependent multiply-adds), and AVX-512 (not
# measured; its four-register tile kernel ran k=8 float64 at 2.65x scikit-learn). Tried, slower:
# a tree fold (halvings, then the first lane equal to the minimum), 38 against 25 ms.
NARROW_CENTERS = 8 if NATIVE_VECTOR_BYTES == 32 else 0


@kernel(inline="always")
def _row_values1(X, i, CT, cnp):
    """Row ``i``'s values ``|c|^2 - 2 x.c`` for one register of centers (of
    :func:`assign_labels_narrow`): ``cnp`` plus ``x[j] * CT[j]`` multiply-added one feature at a
    time in feature order."""
    d = X.shape[1]
    a = vload(cnp, 0)
    for j in range(d):
        a = vfma(vfill(X[i, j], cnp), vload(CT[j], 0), a)
    zero = vfill(0.0, cnp)
    for j in range(d, CT.shape[0]):  # the tile's zero features: + (0 * 0) turns a -0 into +0
        a = vfma(zero, vload(CT[j], 0), a)
    return a


@kernel(inline="always")
def _row_values2(X, i, CT, cnp, w):
    """:func:`_row_values1` for two registers of centers."""
    d = X.shape[1]
    a0 = vload(cnp, 0)
    a1 = vload(cnp, w)
    for j in range(d):
        x = vfill(X[i, j], cnp)
        row = CT[j]
        a0 = vfma(x, vload(row, 0), a0)
        a1 = vfma(x, vload(row, w), a1)
    zero = vfill(0.0, cnp)
    for j in range(d, CT.shape[0]):
        row = CT[j]
        a0 = vfma(zero, vload(row, 0), a0)
        a1 = vfma(zero, vload(row, w), a1)
    return a0, a1


@kernel
def assign_labels_narrow(X, lo, hi, C2, cn, labels, labels_lo):
    """:func:`assign_rows` without distances or sums, for row-major X and at most two registers
    of padded centers: the same labels and failure count, bit for bit (callers choose it:
    ``segmint.cluster._passes.assigner``).

    Parameters
    ----------
    X : (n, d) float64 (float32 works too, see the section's comment), row-major, IN
    lo, hi : int, the rows to assign
    C2, cn : prepared centers (:func:`prepare_centers`), ``kp <= 2 * lanes_of(C2)``, IN
    labels : int32 array, OUT: row ``i`` goes to ``labels[i - labels_lo]``
    labels_lo : int

    Returns
    -------
    int, the rows whose arithmetic failed (see :func:`assign_rows`)

    Each center's value is ``cn[c]`` plus ``C2[c, j] * x[j]`` multiply-added one feature at a
    time in feature order, padded features (``x[j] = 0``) included, as in :func:`_tile_argmin`;
    the label is the first smallest value in center order (NaN never wins, ``+inf`` everywhere
    gives 0), and the row fails when the best value is not finite or some value is NaN.
    """
    kp, dp = C2.shape
    w = lanes_of(C2)
    # the centers feature-major (CT[j, c] = C2[c, j]), padded to two registers with centers
    # that never win (+inf, zero): a vector load of CT[j] is every center's feature j
    CT = zeros((dp, 2 * w), C2.dtype)
    cnp = empty(2 * w + 1, C2.dtype)  # then +inf of the data's dtype: the fold's start
    cnp[:] = np.inf
    for c in range(kp):
        cnp[c] = cn[c]
        for j in range(dp):
            CT[j, c] = C2[c, j]
    two = kp > w
    inf = cnp[2 * w]
    bad = 0
    for i in range(lo, hi):
        # every lane folds, padding included: a padding center's value is +inf (never below the
        # best) or NaN only for a row holding an infinity or NaN, which fails either way
        if two:
            a0, a1 = _row_values2(X, i, CT, cnp, w)
            best, lab, nan = vfold_first(inf, 0, False, a0, 0)
            best, lab, nan = vfold_first(best, lab, nan, a1, w)
        else:
            best, lab, nan = vfold_first(inf, 0, False, _row_values1(X, i, CT, cnp), 0)
        labels[i - labels_lo] = lab
        bad += not (best > -np.inf and best < np.inf) or nan
    return bad


# -- float64 screened in float32 -----------------------------------------------------------------
#
# float64 has half the lanes of float32, so its kernel runs at half the speed. Most rows'
# nearest center is clear by far more than float32's rounding: :func:`_tile_screen` computes
# every center's value in float32 keeping the best and the second best, and a row whose gap
# between them exceeds twice a rigorous bound on the float32 error takes the best's label, its
# float64 value recomputed exactly as :func:`_tile_argmin` would (the same multiply-adds in the
# same order). Other rows (near-ties, values beyond float32's comfortable range, NaN) are
# gathered into a tile of their own and go through the float64 kernel itself. Either way a row
# gets the bits the float64 kernel gives it: the screen changes the time, never the result.
#
# A kernel of its own, which the Python caller chooses (``segmint.cluster._passes.assign_rows``):
# chosen inside :func:`assign_rows` (through an overload on the data's type), it made the float64
# build of that kernel hold the screen, re-optimised in its module, plus a wrapper: ~0.7 s more
# of a cold warm-up.

SCREEN_FLOAT64 = True  # False: callers never screen float64 (and the screen is not compiled)
SCREEN_CENTERS = 128  # padded centers from which float64 data are screened (measured, one thread,
# d=16: 1.7x faster at k=256, 2.2x at k=1024, even at k=64, slower at k=32: the conversions and
# the second-best tracking cost about what the float64 arithmetic saves)
_U32 = 2.0 ** -24  # float32's unit roundoff
_SAFE = 2.0 ** 100  # bound on the row's sum |x| and on the error bound's scale: far from float32's overflow


@kernel
def prepare_screen(C2, cn, C2f, cnf, M):
    """float32 copies of float64 prepared centers, and what the screen's error bound needs.

    Parameters
    ----------
    C2, cn : prepared float64 centers (:func:`prepare_centers`), IN
    C2f : (kp, dp) float32, OUT: ``C2`` rounded to float32
    cnf : (kp,) float32, OUT: ``cn`` rounded to float32 (padding stays +inf)
    M : (dp,) float64, OUT: per feature, the largest ``|C2[c, j]|``

    Returns
    -------
    float
        ``cmax`` for :func:`assign_rows_screened`: the largest ``|cn[c]|`` of real centers, or
        -1 when nothing can be screened (a center value at or beyond ``_SAFE``, or 1024 features
        or more: the caller runs :func:`assign_rows` instead).

    Called once per set of centers, not per task: at k=4096 a task is 512 rows, and preparing
    the 4096 x 16 copies in every task cost about a quarter of the assignment's time.
    """
    kp, dp = C2.shape
    M[:] = 0
    cmax = 0.0
    for c in range(kp):
        v = cn[c]
        cnf[c] = np.float32(v)
        if v < np.inf:  # padding rows (+inf) never win, in float32 either
            cmax = max(cmax, abs(v))
        for j in range(dp):
            a = C2[c, j]
            C2f[c, j] = np.float32(a)
            M[j] = max(M[j], abs(a))
    big = cmax
    for j in range(dp):
        big = max(big, M[j])
    if not big < _SAFE or dp >= 1024:  # (the error bound assumes fewer than 2^10 features)
        return -1.0
    return cmax


@kernel
def _tile_screen4(tile, C2, cn, best_d, second_d, best_l):
    """float32 screen of a tile: per row the best value, the second best and the best's label.
    Blocks of four registers of rows (``_tile_screen`` is this one or :func:`_tile_screen2`, as
    for :func:`_tile_argmin4`).

    Parameters
    ----------
    tile : (dp, TILE) float32, IN: rows feature-major (the float64 tile rounded)
    C2, cn : float32 copies of the prepared centers (:func:`prepare_screen`), IN
    best_d, second_d : (TILE,) float32, OUT: smallest and second smallest ``|c|^2 - 2 x.c``
        (equal when two centers tie)
    best_l : (TILE,) int32, OUT: the center of the smallest (lowest index on ties)

    The values are those of :func:`_block_values4` (the float64 kernel's loop, in float32).
    """
    kp = C2.shape[0]
    w = lanes_of(tile)
    for r in range(0, TILE, 4 * w):
        inf = vfill(np.inf, tile)
        b0, b1, b2, b3 = inf, inf, inf, inf
        u0, u1, u2, u3 = inf, inf, inf, inf
        lab0 = vfill_labels(0, tile)
        l0, l1, l2, l3 = lab0, lab0, lab0, lab0
        for c in range(0, kp, 4):
            (s00, s01, s02, s03, s10, s11, s12, s13,
             s20, s21, s22, s23, s30, s31, s32, s33) = _block_values4(tile, C2, cn, r, c, w)
            b0, u0, l0 = _fold4_second(b0, u0, l0, s00, s01, s02, s03, c)
            b1, u1, l1 = _fold4_second(b1, u1, l1, s10, s11, s12, s13, c)
            b2, u2, l2 = _fold4_second(b2, u2, l2, s20, s21, s22, s23, c)
            b3, u3, l3 = _fold4_second(b3, u3, l3, s30, s31, s32, s33, c)
        vstore(best_d, r, b0)
        vstore(best_d, r + w, b1)
        vstore(best_d, r + 2 * w, b2)
        vstore(best_d, r + 3 * w, b3)
        vstore(second_d, r, u0)
        vstore(second_d, r + w, u1)
        vstore(second_d, r + 2 * w, u2)
        vstore(second_d, r + 3 * w, u3)
        vstore(best_l, r, l0)
        vstore(best_l, r + w, l1)
        vstore(best_l, r + 2 * w, l2)
        vstore(best_l, r + 3 * w, l3)


@kernel
def _tile_screen2(tile, C2, cn, best_d, second_d, best_l):
    """:func:`_tile_screen4` with blocks of two registers of rows: the same outputs (see
    :func:`_tile_argmin2`)."""
    kp = C2.shape[0]
    w = lanes_of(tile)
    for r in range(0, TILE, 2 * w):
        inf = vfill(np.inf, tile)
        b0, b1 = inf, inf
        u0, u1 = inf, inf
        lab0 = vfill_labels(0, tile)
        l0, l1 = lab0, lab0
        for c in range(0, kp, 4):
            s00, s01, s02, s03, s10, s11, s12, s13 = _block_values2(tile, C2, cn, r, c, w)
            b0, u0, l0 = _fold4_second(b0, u0, l0, s00, s01, s02, s03, c)
            b1, u1, l1 = _fold4_second(b1, u1, l1, s10, s11, s12, s13, c)
        vstore(best_d, r, b0)
        vstore(best_d, r + w, b1)
        vstore(second_d, r, u0)
        vstore(second_d, r + w, u1)
        vstore(best_l, r, l0)
        vstore(best_l, r + w, l1)


_tile_screen = _tile_screen4 if ROW_REGISTERS == 4 else _tile_screen2


@kernel(inline="always")
def _fold4_second(best, second, lab, t0, t1, t2, t3, c):
    """:func:`_fold4` keeping the second smallest value too (``min(second, max(best, t))``)."""
    second = vmin(second, vmax(best, t0))
    m = vless(t0, best)
    best = vselect(m, t0, best)
    lab = vselect(m, vfill_labels(c, lab), lab)
    second = vmin(second, vmax(best, t1))
    m = vless(t1, best)
    best = vselect(m, t1, best)
    lab = vselect(m, vfill_labels(c + 1, lab), lab)
    second = vmin(second, vmax(best, t2))
    m = vless(t2, best)
    best = vselect(m, t2, best)
    lab = vselect(m, vfill_labels(c + 2, lab), lab)
    second = vmin(second, vmax(best, t3))
    m = vless(t3, best)
    best = vselect(m, t3, best)
    lab = vselect(m, vfill_labels(c + 3, lab), lab)
    return best, second, lab


@kernel
def assign_rows_screened(X, fm, lo, hi, C2, cn, C2f, cnf, M, cmax, labels, labels_lo, dist, dist_lo,
                         with_dist):
    """:func:`assign_rows` for float64 data, screened in float32 (see above); -1 when the centers
    are too large for float32 (``cmax < 0``; nothing done: the caller runs :func:`assign_rows`).
    The arguments of :func:`assign_rows`, X float64 and C-ordered (either ``fm``), plus the
    screen's ``C2f, cnf, M`` and ``cmax`` from :func:`prepare_screen` (IN).

    The bound: with inputs rounded to float32 (relative error ``u = 2^-24`` each) and a chain
    of ``dp`` float32 multiply-adds, a center's float32 value differs from the exact
    ``|c|^2 - 2 x.c`` by at most ``(dp + 3) u (1 + 2^-14) A``, ``A = |cn[c]| + sum_j |C2[c, j]|
    |x_j|`` (the textbook bound for recursive summation, ``dp < 2^10``); the float64 value by
    ``(dp + 1) 2^-53 A``. ``delta = (dp + 5) u A_row`` with ``A_row = max|cn| + sum_j M_j |x_j|
    >= A`` covers both; underflow in float32 adds at most ``2^-150`` per rounding times the other
    factor of a product, covered by ``2^-140 (dp + 1 + sum_j M_j + sum_j |x_j|)``. When the float32
    gap between the best and the second best exceeds ``2 delta``, the float64 values keep the
    best strictly smallest, so the float64 kernel picks it too. Rows whose ``A_row`` or ``sum
    |x_j|`` reach ``2^100`` (or are NaN) are not screened: float32 could overflow.
    """
    dp = C2.shape[1]
    d = X.shape[0] if fm else X.shape[1]
    if not cmax >= 0:
        return -1
    slack = (dp + 5) * _U32
    # absolute error of float32 underflow: at most 2^-150 per rounding of a value or a product,
    # times the other factor (|x| <= size, |C2| <= M)
    tiny = dp + 1.0
    for j in range(dp):
        tiny += M[j]
    tiny *= 2.0 ** -140
    # one scratch block (the tile, then rows of best values, the float64 kernel's outputs for
    # the waiting rows and the screened best's exact values, views of it)
    scratch = zeros((dp + 4, TILE), C2.dtype)
    tile = scratch[:dp]
    best_d, flush_d, flush_chk, exact = scratch[dp], scratch[dp + 1], scratch[dp + 2], scratch[dp + 3]
    best_l = empty(TILE, np.int32)
    tile32 = zeros((dp, TILE), np.float32)
    b32 = empty(TILE, np.float32)
    u32 = empty(TILE, np.float32)
    l32 = empty(TILE, np.int32)
    scale = empty(TILE, np.float64)
    size = empty(TILE, np.float64)
    # rows the screen cannot settle wait in a float64 tile of their own
    pend = zeros((dp, TILE), np.float64)
    pend_row = empty(TILE, np.int64)
    n_pend = 0
    bad = 0
    for start in range(lo, hi, TILE):
        m = min(TILE, hi - start)
        _load_tile(X, fm, d, start, m, tile)
        for j in range(dp):
            t = tile[j]
            t32 = tile32[j]
            for i in range(TILE):
                t32[i] = np.float32(t[i])
        _tile_screen(tile32, C2f, cnf, b32, u32, l32)
        for i in range(TILE):
            scale[i] = cmax
            size[i] = 0.0
        for j in range(d):
            t = tile[j]
            mj = M[j]
            for i in range(TILE):
                a = abs(t[i])
                scale[i] += a * mj
                size[i] += a
        # every row's float64 value of its screened best: _block_values4's multiply-adds for that
        # center in its order, rows side by side (a dependent chain per row took ~8% of the time)
        for i in range(TILE):
            exact[i] = cn[l32[i]]  # l32 is always a center (0 when every value was NaN)
        for j in range(dp):
            t = tile[j]
            for i in range(TILE):
                exact[i] = fmadd(t[i], C2[l32[i], j], exact[i])
        for i in range(m):
            delta = slack * scale[i] + tiny + 2.0 ** -140 * size[i]
            gap = np.float64(u32[i]) - np.float64(b32[i])  # exact: two float32 values
            settled = scale[i] < _SAFE and size[i] < _SAFE and gap > 2 * delta
            if settled:
                best_l[i] = l32[i]
                best_d[i] = exact[i]
            else:
                best_l[i] = -1
                for j in range(dp):
                    pend[j, n_pend] = tile[j, i]
                pend_row[n_pend] = start + i
                n_pend += 1
                if n_pend == TILE:
                    bad += _flush_pending(pend, pend_row[:n_pend], d, C2, cn, flush_d, flush_chk, labels, labels_lo,
                                          dist, dist_lo, with_dist)
                    n_pend = 0
        if with_dist:
            _add_row_norms(tile, d, best_d)
        for i in range(m):
            lab = best_l[i]
            if lab < 0:
                continue
            labels[start + i - labels_lo] = lab
            v = best_d[i]
            bad += not (v > -np.inf and v < np.inf)
            if with_dist:
                dist[start + i - dist_lo] = v if v >= 0 else 0.0
    if n_pend > 0:
        bad += _flush_pending(pend, pend_row[:n_pend], d, C2, cn, flush_d, flush_chk, labels, labels_lo, dist, dist_lo,
                              with_dist)
    return bad


# waiting rows assigned one by one: a row alone is about a fifth of a 32-row float64 block of
# AVX-512 by operation count (scalar multiply-adds against 8-lane ones), so six are about one
# block; half of an 8-row AVX2 block (two registers of 4 lanes)
_ROWS_ALONE = 6 if ROW_REGISTERS == 4 else 2


@subroutine
def _row_argmin(tile, i, C2, cn):
    """:func:`_tile_argmin` for column ``i`` of ``tile`` alone: ``(best value, label, check)``.

    The same value for every center (``cn[c]`` plus the multiply-adds in feature order), the
    same label (the first smallest value in center order; NaN never wins), the same check (NaN
    when some value is NaN, else 0).
    """
    kp, dp = C2.shape
    best = np.inf
    lab = 0
    nan = False
    for c in range(kp):
        v = cn[c]
        for j in range(dp):
            v = fmadd(tile[j, i], C2[c, j], v)
        nan |= v != v
        if v < best:
            best = v
            lab = c
    return best, lab, np.nan if nan else 0.0


@kernel
def _flush_pending(pend, pend_row, d, C2, cn, best_d, chk, labels, labels_lo, dist, dist_lo, with_dist):
    """Assign the rows waiting in ``pend`` (feature-major, their rows of X in ``pend_row``, one
    per waiting row: its length is their count) with the float64 kernel, as :func:`assign_rows`
    would, writing their labels and distances; return how many failed (NaN, infinities, overflow).

    ``best_d``, ``chk`` are (TILE,) float64 scratch. A few waiting rows (the usual case: 0.05% of
    rows at k=4096, most tasks holding none or one) go one by one through :func:`_row_argmin`;
    more through :func:`_tile_argmin`'s blocks of rows. A whole float64 tile for one undecided
    row had cost about 10% of the screened assignment's time.
    """
    n_pend = pend_row.shape[0]
    best_l = empty(TILE, np.int32)
    if n_pend <= _ROWS_ALONE:
        for p in range(n_pend):
            best_d[p], best_l[p], chk[p] = _row_argmin(pend, p, C2, cn)
    else:
        _tile_argmin(pend, C2, cn, n_pend, best_d, best_l, chk)
    if with_dist:
        _add_row_norms(pend, d, best_d)
    bad = 0
    for p in range(n_pend):
        row = pend_row[p]
        labels[row - labels_lo] = best_l[p]
        v = best_d[p]
        bad += not (v > -np.inf and v < np.inf) or chk[p] != chk[p]
        if with_dist:
            if v < 0:
                v = 0
            dist[row - dist_lo] = v
    return bad
