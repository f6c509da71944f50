"""Gathering rows by index (mini-batch sampling) into a contiguous buffer."""
from .settings import kernel


@kernel
def gather_rows(X, indices, lo, hi, out):
    """``out[i] = X[indices[i]]`` for ``i`` in ``lo..hi``.

    Parameters
    ----------
    X : (n, d) float32/float64, any layout, IN
    indices : (m,) int64, IN, each in ``0..n-1``
    lo, hi : int, the part of ``indices`` to gather
    out : (m, d) X's dtype, OUT at rows ``lo..hi``
    """
    d = X.shape[1]
    for i in range(lo, hi):
        r = indices[i]
        for j in range(d):
            out[i, j] = X[r, j]
