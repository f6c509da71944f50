"""Buckets of customer ids and the in-order fold of per-chunk partial aggregates.

Used by :mod:`segmint.dask.events`: every chunk of an event log gives one partial state per
customer and segment (see "Sums by segment" in ``segmint.events.aggregate``); each customer's
partials go to one bucket, chosen by a hash of the id that is the same in every process and on
every machine (never Python's salted ``hash()`` of a str), and one task per bucket folds them
in global segment order, as local segmint folds its segment partials.
"""
import numpy as np

from .settings import EXACT, kernel
from .hashing import mix64 as _mix

_FNV_OFFSET = np.uint64(0xCBF29CE484222325)
_FNV_PRIME = np.uint64(0x100000001B3)


@kernel
def int_buckets(keys, n_buckets, out):
    """Bucket of each int64 id: ``mix64(key) % n_buckets``.

    Parameters
    ----------
    keys : (n,) int64, IN
    n_buckets : int, at least 1
    out : (n,) int32, OUT
    """
    nb = np.uint64(n_buckets)
    for i in range(keys.shape[0]):
        out[i] = np.int32(_mix(np.uint64(keys[i])) % nb)


@kernel
def string_buckets(offsets, data, n_buckets, out):
    """Bucket of each string id: FNV-1a of its UTF-8 bytes, finished by ``mix64``.

    Parameters
    ----------
    offsets : (n + 1,) int32 or int64, IN: string ``i`` is ``data[offsets[i]:offsets[i + 1]]``
    data : (m,) uint8, IN
    n_buckets : int
    out : (n,) int32, OUT
    """
    nb = np.uint64(n_buckets)
    for i in range(out.shape[0]):
        h = _FNV_OFFSET
        for k in range(offsets[i], offsets[i + 1]):
            h = (h ^ np.uint64(data[k])) * _FNV_PRIME
        out[i] = np.int32(_mix(h) % nb)


@kernel(fastmath=set(EXACT))
def fold_partials(starts, ist, fst, out_i, out_f, i_count, i_amount_n, i_first, i_last,
                  i_first_q, i_last_q):
    """Fold the partial states of each customer, rows ``starts[g]..starts[g + 1]``, in order.

    Counts add, firsts take the minimum, lasts the maximum, float sums add from 0.0 one
    partial after the other in row order (the caller's rows are in global segment order): no
    reassociation (IEEE flags), so the result depends only on the partials and their order.

    Parameters
    ----------
    starts : (g + 1,) int64, IN
    ist : (m, k) int64, IN; fst : (m, f) float64, IN
    out_i : (g, k) int64, OUT; out_f : (g, f) float64, OUT
    i_count, ... i_last_q : int, the columns of ``ist`` (see :mod:`kernels.aggregate`)
    """
    for g in range(starts.shape[0] - 1):
        lo = starts[g]
        hi = starts[g + 1]
        for k in range(ist.shape[1]):
            out_i[g, k] = ist[lo, k]
        for k in range(fst.shape[1]):
            out_f[g, k] = 0.0 + fst[lo, k]
        for r in range(lo + 1, hi):
            out_i[g, i_count] += ist[r, i_count]
            out_i[g, i_amount_n] += ist[r, i_amount_n]
            out_i[g, i_first] = min(out_i[g, i_first], ist[r, i_first])
            out_i[g, i_first_q] = min(out_i[g, i_first_q], ist[r, i_first_q])
            out_i[g, i_last] = max(out_i[g, i_last], ist[r, i_last])
            out_i[g, i_last_q] = max(out_i[g, i_last_q], ist[r, i_last_q])
            for k in range(fst.shape[1]):
                out_f[g, k] += fst[r, k]


@kernel(fastmath=set(EXACT))
def fold_first_period(starts, first_period, first_amount, out_period, out_amount):
    """BTYD: each customer's earliest purchase period over its partials and the amount spent
    in it (the partials holding that period, added in row order).

    Parameters
    ----------
    starts : (g + 1,) int64, IN
    first_period : (m,) int64, IN; first_amount : (m,) float64, IN
    out_period : (g,) int64, OUT; out_amount : (g,) float64, OUT
    """
    for g in range(starts.shape[0] - 1):
        best = first_period[starts[g]]
        for r in range(starts[g] + 1, starts[g + 1]):
            best = min(best, first_period[r])
        total = 0.0
        seen = False
        for r in range(starts[g], starts[g + 1]):
            if first_period[r] == best:
                total = first_amount[r] if not seen else total + first_amount[r]
                seen = True
        out_period[g] = best
        out_amount[g] = total
