"""Euclidean distances from rows to centers computed directly, ``sqrt(sum((x - c)^2))``.

The assignment kernels use the expanded form ``|x|^2 + |c|^2 - 2 x.c``, which is fast but
cancels: a row equal to a center comes out at about 1e-7 instead of 0. ``transform`` returns
distances to users, so it computes each difference first (exact 0 for a row on a center) and
sums in float64.
"""
import numpy as np

from .scratch import empty
from .settings import kernel


@kernel
def center_distances(X, fm, lo, hi, centers, out, limit, counts):
    """Distances of rows ``lo..hi`` of X to every center, and a count of unusable values.

    Assumes ``0 <= lo <= hi <= n``, ``out`` of n rows and X, centers of the same width (no
    bounds checks); NaN and too large values are counted, their distances left meaningless.

    Parameters
    ----------
    X : (n, d) float32/float64, or (d, n) when ``fm``: feature-major, ``X[j, i]`` is row i's
        feature j (the one layout :mod:`.assign` takes too), IN
    fm : bool, X feature-major
    lo, hi : int, the rows to compute
    centers : (k, d) same dtype, IN
    out : (n, k) float32/float64, OUT: ``out[i, c]`` = distance of row i to center c, rows lo..hi
    limit : float, the largest absolute value allowed (``segmint.cluster._matrix.value_limit``)
    counts : (d,) int64, INOUT: per feature, values that are NaN or beyond ``limit`` are added
    """
    k, d = centers.shape
    diff = empty(d, np.float64)
    for i in range(lo, hi):
        for j in range(d):
            v = X[j, i] if fm else X[i, j]
            counts[j] += not (abs(v) <= limit)
            diff[j] = np.float64(v)
        for c in range(k):
            s = 0.0
            for j in range(d):
                t = diff[j] - np.float64(centers[c, j])
                s += t * t
            out[i, c] = np.sqrt(s)
