"""Distances for greedy k-means++ seeding (Arthur & Vassilvitskii 2007, with local trials).

The seeding loop itself lives in ``segmint.cluster.init``: it draws candidates with numpy's
Generator and uses these kernels for the arithmetic, so the kernels need no random state.
"""

from .settings import kernel


@kernel
def sq_dist_to_point(X, point, out):
    """Squared Euclidean distance of every row of X to one point.

    Parameters
    ----------
    X : (n, d) float32/float64, any layout, IN
    point : (d,) same dtype, IN
    out : (n,) float64, OUT
    """
    n, d = X.shape
    for i in range(n):
        s = 0.0
        for j in range(d):
            diff = X[i, j] - point[j]
            s += diff * diff
        out[i] = s


@kernel
def trial_potentials(X, weights, closest, candidates, lo, hi, trial_dist, potentials):
    """For each candidate center: the weighted potential of rows ``lo..hi`` if it were added.

    Parameters
    ----------
    X : (n, d) float32/float64, any layout, IN
    weights : (n,) float64, IN
    closest : (n,) float64, IN: squared distance of each row to its nearest chosen center
    candidates : (t,) int64, IN: row indices of X proposed as the next center
    lo, hi : int, the rows this call covers (callers split rows into fixed chunks)
    trial_dist : (t, n) float64, OUT at columns ``lo..hi``: ``min(closest, |x - candidate|^2)``
    potentials : (t,) float64, OUT: ``sum(weights * trial_dist[t, lo:hi])``, in row order
    """
    d = X.shape[1]
    for t in range(candidates.shape[0]):
        cand = candidates[t]
        pot = 0.0
        for i in range(lo, hi):
            s = 0.0
            for j in range(d):
                diff = X[i, j] - X[cand, j]
                s += diff * diff
            v = min(s, closest[i])
            trial_dist[t, i] = v
            pot += weights[i] * v
        potentials[t] = pot
