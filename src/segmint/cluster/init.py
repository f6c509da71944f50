"""Choosing the initial centers: greedy k-means++, random rows, or given centers.

Greedy k-means++ (Arthur & Vassilvitskii 2007, as in scikit-learn): each new center is the
best of ``2 + log(k)`` candidates drawn with probability proportional to the weighted squared
distance to the nearest chosen center, "best" meaning the one that lowers the potential most.

Scalable init: on tens of millions of rows, k-means++ runs on a uniform random sample of
``init_size`` rows (gathered without a full copy; one streaming pass for Parquet), which is
how scikit-learn's MiniBatchKMeans seeds too. A sample of a few thousand rows per center
places the seeds as well as the full data would for the cluster sizes segmentation uses.
"""
import numpy as np

from .._estimator import check_positive_int, check_random_state
from .._lazy import lazy_import
from .._parallel import chunk_bounds, run_chunks
from ..errors import ParameterError
from ._base import check_sample_weight
from ._matrix import FeatureError

kpp = lazy_import("segmint.kernels.kmeanspp")  # on first use: see segmint._lazy

CHUNK = 16_384


def kmeans_plusplus(X, n_clusters, random_state=None, *, sample_weight=None, n_local_trials=None):
    """Greedy k-means++ on the rows of X (already a sample).

    Parameters
    ----------
    X : (n, d) float32/float64 array, n >= n_clusters (other numbers become float64)
    n_clusters : int
    random_state : int, numpy Generator, RandomState or None
        A Generator is used as is (its stream continues), as the estimators pass theirs.
    sample_weight : (n,) array or None
    n_local_trials : int, default ``2 + int(log(k))``

    Returns
    -------
    centers : (k, d) array of X's dtype
    indices : (k,) int64, the rows of X chosen
    """
    X = np.asarray(X)
    if X.ndim != 2 or X.dtype.kind not in "fiub":
        raise FeatureError(f"X must be a 2-D array of numbers, got shape {X.shape} of dtype {X.dtype}")
    if X.dtype not in (np.float32, np.float64):
        X = X.astype(np.float64)
    n_clusters = check_positive_int("n_clusters", n_clusters)
    if X.shape[0] < n_clusters:
        raise ParameterError(f"n_samples={X.shape[0]} should be >= n_clusters={n_clusters}")
    if n_local_trials is not None:
        n_local_trials = check_positive_int("n_local_trials", n_local_trials)
    rng = check_random_state(random_state)
    sample_weight = check_sample_weight(sample_weight, X.shape[0], np.float64)
    n, d = X.shape
    w = np.ones(n) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    if n_local_trials is None:
        n_local_trials = 2 + int(np.log(n_clusters))
    centers = np.empty((n_clusters, d), dtype=X.dtype)
    indices = np.empty(n_clusters, dtype=np.int64)
    first = _weighted_choice(rng, w, 1)[0]
    centers[0] = X[first]
    indices[0] = first
    closest = np.empty(n, dtype=np.float64)
    kpp.sq_dist_to_point(X, centers[0], closest)
    trial_dist = np.empty((n_local_trials, n), dtype=np.float64)
    bounds = chunk_bounds(n, CHUNK)
    partial = np.empty((len(bounds), n_local_trials), dtype=np.float64)
    for c in range(1, n_clusters):
        weight = w * closest
        total = weight.sum()
        if total <= 0:  # every row sits on a chosen center: duplicates; take any remaining row
            candidates = rng.integers(0, n, size=n_local_trials)
        else:
            candidates = _weighted_choice(rng, weight, n_local_trials)
        run_chunks(lambda ch: kpp.trial_potentials(X, w, closest, candidates, bounds[ch][0], bounds[ch][1],
                                               trial_dist, partial[ch]), range(len(bounds)))
        potentials = partial[0].copy()
        for ch in range(1, len(bounds)):  # chunk order: the same bits for any thread count
            potentials += partial[ch]
        best = int(np.argmin(potentials))
        closest[:] = trial_dist[best]
        centers[c] = X[candidates[best]]
        indices[c] = candidates[best]
    return centers, indices


def _weighted_choice(rng, weights, size):
    """Row indices drawn with probability proportional to ``weights`` (with replacement)."""
    cumulative = np.cumsum(weights, dtype=np.float64)
    u = rng.random(size) * cumulative[-1]
    return np.minimum(np.searchsorted(cumulative, u, side="right"), weights.size - 1).astype(np.int64)
