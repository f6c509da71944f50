"""Full passes over the data: assignment (predict, inertia) and Lloyd's sums.

Rows are split into global chunks of ``CHUNK`` rows. Each chunk owns its partial results
(inertia, per-center sums), accumulated in row order; partials are combined in chunk order.
A streamed source whose batches do not line up with the chunks continues a chunk's
accumulators across batches, so the bits are the same for an array, an in-memory table or
a Parquet dataset read in tiny batches, and for any number of threads.
"""
import numpy as np

from .._lazy import lazy_import
from .._memory import pool_array
from .._parallel import run_chunks
from ._matrix import kernel_layout

ka = lazy_import("segmint.kernels.assign")  # on first use: see segmint._lazy
kr = lazy_import("segmint.kernels.reduce")

CHUNK = 65_536
_EMPTY = {np.dtype(np.float32): np.empty(0, np.float32), np.dtype(np.float64): np.empty(0, np.float64)}
_NO_SUMS = (np.empty((0, 0), np.float64), np.empty(0, np.float64))


def no_sums(X):
    """:func:`segmint.kernels.assign.assign_rows`' last arguments (weights, sums, wsums) for a
    pass keeping no Lloyd partials: ``predict``."""
    return (np.empty(0, X.dtype), *_NO_SUMS)


def prepare(centers):
    """Padded center arrays for the assignment kernels."""
    k, d = centers.shape
    kp, dp = (k + 3) // 4 * 4, (d + 3) // 4 * 4
    C2 = np.empty((kp, dp), dtype=centers.dtype)
    cn = np.empty(kp, dtype=centers.dtype)
    ka.prepare_centers(centers, C2, cn)
    return C2, cn


def assigner(X, C2, cn):
    """The assignment kernel for rows of X (any layout, see :func:`kernel_layout`) and prepared
    centers ``C2``, chosen once (callers running many tasks over one block pay the choice once):
    ``f(lo, hi, C2, cn, labels, labels_lo, dist, dist_lo, with_dist)`` runs
    :func:`segmint.kernels.assign.assign_rows` on rows ``lo..hi`` and returns its result; float64
    data at large k are screened in float32 first (the same bits in about half the time:
    :func:`segmint.kernels.assign.assign_rows_screened`); row-major float64 labels at small k
    come from :func:`segmint.kernels.assign.assign_labels_narrow` (the same bits, without the
    tile: ~1.2x faster at k=8 on AVX2).
    """
    X, fm = kernel_layout(X)
    direct = ka.assign_rows
    rest_none = no_sums(X)
    if not fm and X.dtype == np.float64 and X.flags.c_contiguous and C2.shape[0] <= ka.NARROW_CENTERS:
        narrow = ka.assign_labels_narrow

        def assign(lo, hi, C2, cn, labels, labels_lo, dist, dist_lo, with_dist):
            if with_dist:
                return direct(X, fm, lo, hi, C2, cn, labels, labels_lo, dist, dist_lo, True, *rest_none)
            return narrow(X, lo, hi, C2, cn, labels, labels_lo)

        return assign
    if not (ka.SCREEN_FLOAT64 and C2.shape[0] >= ka.SCREEN_CENTERS and X.dtype == np.float64
            and X.flags.c_contiguous):
        return lambda lo, hi, *rest: direct(X, fm, lo, hi, *rest, *rest_none)
    screen = prepare_screen(C2, cn)
    if screen is None:  # centers beyond float32's comfortable range
        return lambda lo, hi, *rest: direct(X, fm, lo, hi, *rest, *rest_none)
    screened = ka.assign_rows_screened

    def assign(lo, hi, C2, cn, *rest):
        return screened(X, fm, lo, hi, C2, cn, *screen, *rest)

    return assign


def prepare_screen(C2, cn):
    """The float32 screen of prepared float64 centers (once per pass, shared by its tasks):
    ``(C2f, cnf, M, cmax)`` for :func:`segmint.kernels.assign.assign_rows_screened`, or None
    when the centers cannot be screened."""
    kp, dp = C2.shape
    C2f, cnf, M = np.empty((kp, dp), np.float32), np.empty(kp, np.float32), np.empty(dp, np.float64)
    cmax = ka.prepare_screen(C2, cn, C2f, cnf, M)
    return (C2f, cnf, M, cmax) if cmax >= 0 else None


def assign_rows(X, lo, hi, C2, cn, labels, labels_lo, dist, dist_lo, with_dist):
    """:func:`segmint.kernels.assign.assign_rows`'s arguments and result, for X of any layout,
    float64 at large k screened (see :func:`assigner`)."""
    return assigner(X, C2, cn)(lo, hi, C2, cn, labels, labels_lo, dist, dist_lo, with_dist)


def _pieces(start, m):
    """Split rows ``start..start+m`` at global chunk bounds: [(local lo, local hi, chunk index)]."""
    out = []
    lo = start
    end = start + m
    while lo < end:
        chunk = lo // CHUNK
        hi = min(end, (chunk + 1) * CHUNK)
        out.append((lo - start, hi - start, chunk))
        lo = hi
    return out


def _task_rows(shape):
    """Rows per task of an assignment pass for prepared centers of ``shape`` (kp, dp): a whole
    chunk at small k; at large k fewer rows (a multiple of the kernel's tile, about 2^25
    multiply-adds: ~0.2 ms), since a chunk would keep one thread busy while others idle (at
    k=1024, 78k rows are a chunk of 65,536 rows and one of 12,464: one thread did 84% of the work)."""
    kp, dp = shape
    rows = (1 << 25) // max(1, kp * dp)
    return max(ka.TILE, min(CHUNK, rows // ka.TILE * ka.TILE))


def _blocks(features):
    """The blocks a pass runs over: an in-memory array whole (its chunks then run without a
    barrier between blocks), a source in its bounded streamed blocks."""
    if features.array is not None:
        return [(0, features.array)]
    return features.blocks()


def _weights_for(sample_weight, dtype):
    if sample_weight is None:
        return None
    return np.ascontiguousarray(sample_weight, dtype=dtype)


def assign_pass(features, centers, sample_weight=None, want_labels=True, want_distances=False,
                want_inertia=True):
    """Nearest center of every row.

    Data not checked before (as in predict) may hold huge values: a row whose arithmetic
    overflows (or holds NaN or an infinity) makes ``nonfinite`` true, and so does an inertia
    that overflows; every other result is computed exactly as for checked data.

    Returns
    -------
    labels : (n,) int32 or None
    distances : (n,) squared distances or None
    inertia : float (the weighted sum of squared distances) or None
    nonfinite : bool, True when some row's arithmetic failed (NaN, an infinity, an overflow) or
        the inertia overflowed (results then meaningless)
    """
    n = features.n_rows
    dtype = features.dtype
    C2, cn = prepare(centers.astype(dtype, copy=False))
    labels = pool_array(n, np.int32) if want_labels else None
    dist = np.empty(n, dtype=dtype) if want_distances else None
    w_all = _weights_for(sample_weight, dtype)
    n_chunks = (n + CHUNK - 1) // CHUNK
    partial = np.zeros((n_chunks, 1), dtype=np.float64)
    bad = np.zeros(n_chunks, dtype=bool)
    need_dist = want_inertia or dist is not None
    task_rows = _task_rows(C2.shape)
    for start, X in _blocks(features):
        m = X.shape[0]
        w = w_all[start:start + m] if w_all is not None else _EMPTY[dtype]

        def piece(p, assign=assigner(X, C2, cn), start=start, w=w):
            lo, hi, chunk = p
            # distances go to a per-piece scratch unless kept; labels straight to the output
            dis = np.empty(hi - lo if need_dist else 0, dtype=dtype)
            if labels is not None:
                lab, lab_lo = labels[start:start + m], 0
            else:
                lab, lab_lo = np.empty(hi - lo, dtype=np.int32), lo
            bad[chunk] = assign(lo, hi, C2, cn, lab, lab_lo, dis, lo, need_dist) > 0
            if dist is not None:
                dist[start + lo:start + hi] = dis
            if want_inertia:
                kr.weighted_sum(dis, w[lo:hi] if w.size else w, 0, hi - lo, partial[chunk])

        if task_rows >= CHUNK:
            run_chunks(piece, _pieces(start, m))
        else:
            _split_pieces(X, start, C2, cn, task_rows, labels, dist, need_dist, want_inertia, w, bad, partial)
    inertia = ordered_total(partial[:, 0]) if want_inertia else None
    overflow = inertia is not None and not np.isfinite(inertia)
    return labels, dist, inertia, bool(bad.any()) or overflow


def _split_pieces(X, start, C2, cn, task_rows, labels, dist, need_dist, want_inertia, w, bad, partial):
    """:func:`assign_pass`'s work on one block at large k: each piece's rows go to several tasks
    of ``task_rows`` rows, so that all threads stay busy; then each piece's distances are copied
    out and summed into its chunk's partial as one piece is (the same bits: a row's label and
    distance do not depend on which task computed it)."""
    m = X.shape[0]
    pieces = _pieces(start, m)
    dis_of = [np.empty(hi - lo if need_dist else 0, dtype=X.dtype) for lo, hi, _ in pieces]
    lab_of = [labels[start:start + m] if labels is not None else np.empty(hi - lo, dtype=np.int32)
              for lo, hi, _ in pieces]
    tasks = [(i, a, min(a + task_rows, hi)) for i, (lo, hi, _) in enumerate(pieces)
             for a in range(lo, hi, task_rows)]
    assign = assigner(X, C2, cn)

    def task(t):
        i, a, b = t
        lo = pieces[i][0]
        return assign(a, b, C2, cn, lab_of[i], 0 if labels is not None else lo, dis_of[i], lo, need_dist) > 0

    for (i, _, _), failed in zip(tasks, run_chunks(task, tasks)):
        bad[pieces[i][2]] |= failed
    for (lo, hi, chunk), dis in zip(pieces, dis_of):
        if dist is not None:
            dist[start + lo:start + hi] = dis
        if want_inertia:
            kr.weighted_sum(dis, w[lo:hi] if w.size else w, 0, hi - lo, partial[chunk])


def lloyd_pass(features, centers, sample_weight=None, labels=None, dist=None):
    """One Lloyd iteration's data pass: assign every row and sum the rows of each center.

    Returns
    -------
    sums : (k, d) float64, weighted sums of the rows assigned to each center
    wsums : (k,) float64, their weights
    inertia : float, weighted sum of squared distances to ``centers``
    labels : (n,) int32, written into ``labels`` when given
    dist : (n,) squared distances, written into ``dist`` when given (callers iterating reuse
        both arrays: fresh large arrays cost page faults)
    """
    n = features.n_rows
    dtype = features.dtype
    k, d = centers.shape
    C2, cn = prepare(centers.astype(dtype, copy=False))
    if labels is None:
        labels = np.empty(n, dtype=np.int32)
    if dist is None:
        dist = np.empty(n, dtype=dtype)
    w_all = _weights_for(sample_weight, dtype)
    n_chunks = (n + CHUNK - 1) // CHUNK
    sums = np.zeros((n_chunks, k, d), dtype=np.float64)
    wsums = np.zeros((n_chunks, k), dtype=np.float64)
    partial = np.zeros((n_chunks, 1), dtype=np.float64)
    for start, X in _blocks(features):
        m = X.shape[0]
        lab = labels[start:start + m]
        dis = dist[start:start + m]
        w = w_all[start:start + m] if w_all is not None else _EMPTY[dtype]

        def piece(p, X=X, lab=lab, dis=dis, w=w):
            lo, hi, chunk = p
            lloyd_piece(X, lo, hi, w, C2, cn, lab, dis, sums[chunk], wsums[chunk], partial[chunk])

        run_chunks(piece, _pieces(start, m))
    total_sums, total_w, inertia = combine_lloyd(sums, wsums, partial[:, 0])
    return total_sums, total_w, inertia, labels, dist


def lloyd_piece(X, lo, hi, w, C2, cn, labels, dist, sums, wsums, partial):
    """Rows ``lo..hi`` of one chunk: labels and distances out, the chunk's partials added to.

    The one sequence of kernel calls a Lloyd pass runs per piece of a chunk, here and on a Dask
    worker (:mod:`segmint.dask.cluster`), so both give the same partials.

    Parameters
    ----------
    X : (n, d) float32/float64, IN
    lo, hi : int
    w : (n,) weights of X's dtype, or empty for unit weights, IN
    C2, cn : centers from :func:`prepare`, IN
    labels : (n,) int32, dist : (n,) X's dtype, OUT at ``lo..hi``
    sums : (k, d) float64, wsums : (k,) float64, partial : (1,) float64, INOUT
    """
    ka.assign_rows(*kernel_layout(X), lo, hi, C2, cn, labels, 0, dist, 0, True, w, sums, wsums)
    kr.weighted_sum(dist, w, lo, hi, partial)


def combine_lloyd(sums, wsums, partial):
    """Per-chunk Lloyd partials (chunks in global order) -> (sums, wsums, inertia).

    sums : (n_chunks, k, d), wsums : (n_chunks, k), partial : (n_chunks,), all float64.
    """
    k, d = sums.shape[1:]
    total_sums = np.zeros((k, d), dtype=np.float64)
    total_w = np.zeros(k, dtype=np.float64)
    for c in range(sums.shape[0]):  # fixed order: the same bits for any thread count
        total_sums += sums[c]
        total_w += wsums[c]
    return total_sums, total_w, ordered_total(partial)


def ordered_total(values):
    """Sum of per-chunk float64 partials, left to right (chunk order)."""
    total = 0.0
    for v in values.tolist():
        total += v
    return total
