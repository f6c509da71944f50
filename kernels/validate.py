"""Input checks that must be as fast as the work they guard."""
import numpy as np

from .settings import kernel


@kernel
def count_nonfinite(X, lo, hi, counts):
    """Count NaN and infinite values per feature in rows ``lo..hi``.

    Parameters
    ----------
    X : (n, d) float32/float64, any layout, IN
    lo, hi : int
    counts : (d,) int64, INOUT: the counts are added
    """
    d = X.shape[1]
    for i in range(lo, hi):
        for j in range(d):
            v = X[i, j]
            if not np.isfinite(v):
                counts[j] += 1
