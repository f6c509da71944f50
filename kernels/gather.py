"""Gathering rows by index (mini-batch sampling) into a contiguous buffer."""
from .settings import kernel


@kernel
def gather_rows(X, fm, indices, lo, hi, out):
    """``out[i] = X[indices[i]]`` for ``i`` in ``lo..hi`` (rows of X, whatever its layout).

    Parameters
    ----------
    X : (n, d) float32/float64, or (d, n) when ``fm``: feature-major, ``X[j, i]`` is row i's
        feature j (the one layout :mod:`.assign` takes too), IN
    fm : bool, X feature-major
    indices : (m,) int64, IN, each in ``0..n-1``
    lo, hi : int, the part of ``indices`` to gather
    out : (m, d) X's dtype, OUT at rows ``lo..hi``
    """
    d = out.shape[1]
    if fm:
        for i in range(lo, hi):
            r = indices[i]
            for j in range(d):
                out[i, j] = X[j, r]
    else:
        for i in range(lo, hi):
            r = indices[i]
            for j in range(d):
                out[i, j] = X[r, j]
