"""Full k-means (Lloyd's algorithm) over arrays or any segmint source."""
import numbers
import warnings

import numpy as np

from .._lazy import lazy_import
from ..errors import ParameterError
from .._estimator import check_positive_int, check_random_state
from ._base import KMeansBase, check_sample_weight, warn_distinct
from ._matrix import FeatureError, check_centers
from .init import kmeans_plusplus
from ._passes import assign_pass, lloyd_pass

kre = lazy_import("segmint.kernels.reassign")  # on first use: see segmint._lazy

DEFAULT_INIT_SAMPLE = 100_000
# Seedings tried at most: each is a whole fit; more is a typo (10**9 would run for years).
MAX_N_INIT = 1000


class KMeans(KMeansBase):
    """K-means clustering with Lloyd's algorithm.

    Each iteration is one pass over the data (parallel over fixed chunks, partial sums
    combined in a fixed order): results are bit-identical for any number of threads, and the
    same for an array, a table or a Parquet dataset streamed in batches.

    Parameters
    ----------
    n_clusters : int, default 8
    init : {'k-means++', 'random'}, callable or (n_clusters, n_features) array, default 'k-means++'
        'k-means++' is greedy k-means++ on a random sample of ``init_size`` rows; a callable is
        called as ``init(sample, n_clusters, random_state=RandomState)`` (as scikit-learn
        calls it) and returns the centers.
    n_init : int or 'auto', default 'auto'
        Runs from different seeds; the one with the lowest inertia is kept. 'auto' is 1 for
        'k-means++' and for given centers, 10 for 'random' and a callable (as scikit-learn).
    max_iter : int, default 300
    tol : float, default 1e-4
        Stop when the squared center shift is at most ``tol`` times the mean feature variance
        (estimated on the init sample); iterations also stop when no label changes.
    verbose : int, default 0
        Print progress (scikit-learn's messages) when > 0.
    random_state : int, numpy Generator or None
    copy_x : bool, default True
        scikit-learn's switch to let it center X in place; segmint never modifies or copies
        the data (distances need no centering), so both values give the same result.
    algorithm : {'lloyd', 'elkan'}, default 'lloyd'
        Both are exact and give the same clustering; segmint runs Lloyd for both.
    init_size : int, optional
        Rows sampled for seeding; default all rows up to 100,000 (segmint only: seeding on
        a sample keeps k-means++ fast on millions of rows).

    Attributes
    ----------
    cluster_centers_ : (n_clusters, n_features) array, float32 or float64 like the data
    labels_ : (n_samples,) int32
    inertia_ : float, weighted sum of squared distances to the nearest center
    n_iter_ : int, Lloyd iterations run
    n_features_in_ : int
    feature_names_in_ : (n_features,) array of str, when fitted on named columns

    Examples
    --------
    >>> import numpy as np, segmint
    >>> X = np.r_[np.zeros((5, 2)), np.ones((5, 2))].astype(np.float32)
    >>> km = segmint.KMeans(n_clusters=2, random_state=0).fit(X)
    >>> sorted(np.bincount(km.labels_).tolist())
    [5, 5]
    """

    def __init__(self, n_clusters=8, *, init="k-means++", n_init="auto", max_iter=300, tol=1e-4,
                 verbose=0, random_state=None, copy_x=True, algorithm="lloyd", init_size=None):
        self.n_clusters = n_clusters
        self.init = init
        self.n_init = n_init
        self.max_iter = max_iter
        self.tol = tol
        self.verbose = verbose
        self.random_state = random_state
        self.copy_x = copy_x
        self.algorithm = algorithm
        self.init_size = init_size

    def fit(self, X, y=None, sample_weight=None, columns=None):
        """Compute the clustering.

        Parameters
        ----------
        X : (n, d) array or any source :func:`segmint.open` accepts
        y : ignored
        sample_weight : (n,) array, optional
        columns : list of str, optional
            Columns of a source to cluster on (default: every numeric column).

        Returns
        -------
        self
        """
        k, n_init, max_iter, tol, verbose = self._check_fit_params()
        data = self._matrix(X, columns, reset=True)
        _check_size(data, k)
        data.check_finite()
        w = check_sample_weight(sample_weight, data.n_rows, data.dtype)
        self._fit_matrix(data, w, k, n_init, max_iter, tol, verbose, LocalPasses(data, w))
        warn_distinct(self.labels_, k)
        return self

    def _check_fit_params(self):
        """The checked (k, n_init, max_iter, tol, verbose) of a fit."""
        k = check_positive_int("n_clusters", self.n_clusters)
        max_iter = check_positive_int("max_iter", self.max_iter)
        n_init = _check_n_init(self.n_init, self.init, default_random=10, owner=type(self).__name__,
                               stacklevel=4)
        tol = _check_tol(self.tol)
        verbose = self._check_verbose()
        if self.algorithm not in ("lloyd", "elkan"):  # both exact: one Lloyd serves both
            raise ParameterError(f"The 'algorithm' parameter of {type(self).__name__} must be a str among "
                                 f"{{'lloyd', 'elkan'}}. Got {self.algorithm!r:.80} instead.")
        if self.algorithm == "elkan" and k == 1:  # scikit-learn's warning, kept for parity
            warnings.warn("algorithm='elkan' doesn't make sense for a single cluster. Using 'lloyd' "
                          "instead.", RuntimeWarning, stacklevel=3)
        if not isinstance(self.copy_x, (bool, np.bool_)):
            raise ParameterError(f"The 'copy_x' parameter of {type(self).__name__} must be an instance of "
                                 f"'bool'. Got {self.copy_x!r:.80} instead.")
        return k, n_init, max_iter, tol, verbose

    def _fit_matrix(self, data, w, k, n_init, max_iter, tol, verbose, passes):
        """Seed and run Lloyd ``n_init`` times on checked ``data``; keep the lowest inertia.

        ``data`` needs ``n_rows``, ``dtype``, ``array`` and ``take`` (local
        :class:`~._matrix.Features`, or the blocks of a Dask fit); ``passes`` runs the data passes
        (:class:`LocalPasses`, or the distributed ones of :mod:`segmint.dask.cluster`).
        """
        rng = check_random_state(self.random_state)
        init_size = check_positive_int("init_size", self.init_size) if self.init_size is not None \
            else DEFAULT_INIT_SAMPLE
        init_size = min(data.n_rows, max(init_size, k))  # k-means++ needs at least k rows
        best = None
        for _ in range(n_init):
            sample_idx, sample = _init_sample(data, init_size, rng)
            sample_w = None if w is None else (w if sample_idx is None else w[sample_idx])
            centers = initial_centers(self.init, sample, k, rng, sample_w, data.dtype)
            if verbose:
                print("Initialization complete")
            tol_abs = tol * float(np.mean(np.var(sample, axis=0, dtype=np.float64))) if tol > 0 else 0.0
            run = _lloyd(data, centers, w, max_iter, tol_abs, verbose, passes=passes)
            if best is None or run[2] < best[2]:
                best = run
        self.cluster_centers_, self.labels_, self.inertia_, self.n_iter_ = best
        return self


class LocalPasses:
    """The data passes of a Lloyd run over local :class:`~._matrix.Features`.

    A distributed fit (:mod:`segmint.dask.cluster`) brings its own object with the same four
    methods, so both run the one loop of :func:`_lloyd` and stop at the same iteration.
    """

    def __init__(self, data, w):
        self.data, self.w = data, w
        self.labels = np.empty(data.n_rows, dtype=np.int32)
        self.dist = np.empty(data.n_rows, dtype=data.dtype)
        self.previous = np.empty(data.n_rows, dtype=np.int32)

    def lloyd(self, centers):
        """One Lloyd pass: (sums, wsums, inertia); labels and distances kept for the rest."""
        sums, wsums, inertia, self.labels, self.dist = lloyd_pass(self.data, centers, self.w,
                                                                  self.labels, self.dist)
        return sums, wsums, inertia

    def relocate(self, empty, sums, wsums):
        _relocate(self.data, empty, self.labels, self.dist, self.w, sums, wsums)

    def labels_unchanged(self):
        """Whether the last pass's labels equal those remembered by :meth:`remember_labels`."""
        return np.array_equal(self.labels, self.previous)

    def remember_labels(self):
        np.copyto(self.previous, self.labels)

    def final(self, centers, want_labels=True):
        """(labels or None, inertia) of the final centers."""
        labels, _, inertia, _ = assign_pass(self.data, centers, self.w, want_labels=want_labels)
        return labels, inertia


def _lloyd(data, centers, w, max_iter, tol_abs, verbose=0, passes=None):
    """Lloyd iterations from ``centers``: (centers, labels, inertia, n_iter)."""
    if passes is None:
        passes = LocalPasses(data, w)
    have_previous = False
    n_iter = 0
    for n_iter in range(1, max_iter + 1):
        sums, wsums, inertia = passes.lloyd(centers)
        if verbose:  # scikit-learn's messages, iterations counted from 0
            print(f"Iteration {n_iter - 1}, inertia {inertia}.")
        empty = np.flatnonzero(wsums == 0)
        if empty.size:
            passes.relocate(empty, sums, wsums)
        new = centers.copy()
        filled = wsums > 0
        new[filled] = (sums[filled] / wsums[filled, None]).astype(centers.dtype)
        shift = float(np.sum((new.astype(np.float64) - centers) ** 2))
        centers = new
        if have_previous and passes.labels_unchanged():
            if verbose:
                print(f"Converged at iteration {n_iter - 1}: strict convergence.")
            break  # strict convergence: the assignment no longer changes
        if shift <= tol_abs:
            if verbose:
                print(f"Converged at iteration {n_iter - 1}: center shift {shift} within tolerance {tol_abs}.")
            break
        passes.remember_labels()
        have_previous = True
    labels, inertia = passes.final(centers)
    return centers, labels, inertia, n_iter


def farthest(dist, m):
    """Indices of the ``m`` largest ``dist``, farthest first, ties to the lowest index.

    Selecting the top ``m`` of per-chunk tops gives the same rows, so a distributed pass
    chooses the rows a local one does.
    """
    if m >= dist.size:
        far = np.arange(dist.size)
    else:
        # the m-th largest value; rows tied with it taken by index (argpartition alone would
        # pick among ties in an order of its own)
        cut = np.partition(dist, dist.size - m)[dist.size - m]
        above = np.flatnonzero(dist > cut)
        far = np.concatenate([above, np.flatnonzero(dist == cut)[:m - above.size]])
    return far[np.lexsort((far, -dist[far].astype(np.float64)))]


def _relocate(data, empty, labels, dist, w, sums, wsums):
    """Move empty centers onto the rows farthest from their centers (farthest first)."""
    m = empty.size
    far = farthest(dist, m)
    rows = data.take(far)
    weights = np.ones(m) if w is None else w[far].astype(np.float64)
    kre.relocate_empty(rows, weights, labels[far].astype(np.int32), empty.astype(np.int64), sums, wsums)


def initial_centers(init, sample, k, rng, sample_weight, dtype):
    """Centers from an init spec ('k-means++', 'random', callable or array) on a sample."""
    if isinstance(init, str):
        if init == "k-means++":
            centers, _ = kmeans_plusplus(sample, k, rng, sample_weight=sample_weight)
            return centers.astype(dtype, copy=False)
        if init == "random":
            idx = rng.choice(sample.shape[0], size=k, replace=False)
            return np.array(sample[np.sort(idx)], dtype=dtype)
        raise ParameterError(f"init must be 'k-means++', 'random', a callable or an array, got {init!r}")
    if callable(init):
        # scikit-learn's call: a legacy RandomState passed as random_state=, so callables written
        # for it (random_state.randint, ...) run unchanged; drawn from rng, so still seeded
        given = init(sample, k, random_state=np.random.RandomState(int(rng.integers(2**31 - 1))))
    else:
        given = init
    try:
        centers = np.array(given, dtype=dtype)
    except (TypeError, ValueError, OverflowError) as e:
        raise ParameterError(f"init centers must be an array of numbers: {e}") from None
    if centers.shape != (k, sample.shape[1]):
        raise ParameterError(f"init centers must have shape ({k}, {sample.shape[1]}), got {centers.shape}")
    check_centers(centers, "init", error=ParameterError)
    return centers


def _init_sample(data, size, rng):
    """(indices or None, rows): a uniform sample of ``size`` rows without replacement, in row order."""
    if size >= data.n_rows:
        if data.array is not None:
            return None, data.array
        return None, data.take(np.arange(data.n_rows))
    idx = np.sort(rng.choice(data.n_rows, size=size, replace=False))
    return idx, data.take(idx)


def _check_size(data, k):
    if data.n_rows == 0:
        raise FeatureError("cannot cluster 0 rows: the data are empty")
    if data.n_rows < k:
        raise ParameterError(f"n_samples={data.n_rows} should be >= n_clusters={k}: there are fewer "
                         "rows than clusters")


def _check_n_init(n_init, init, default_random, owner, stacklevel=3):
    """Seedings to run: 'auto' is 1 for 'k-means++' and given centers, ``default_random`` for
    'random' and callables (as scikit-learn); given centers run once, with its warning."""
    if isinstance(n_init, str):
        if n_init != "auto":
            raise ParameterError(f"n_init must be 'auto' or a positive integer, got {n_init!r}")
        return default_random if callable(init) or (isinstance(init, str) and init == "random") else 1
    n = check_positive_int("n_init", n_init, maximum=MAX_N_INIT)
    if not isinstance(init, str) and not callable(init):
        if n != 1:  # given centers: every run would be the same
            warnings.warn(f"Explicit initial center position passed: performing only one init in "
                          f"{owner} instead of n_init={n}.", RuntimeWarning, stacklevel=stacklevel)
        return 1
    return n


def _check_tol(tol):
    if isinstance(tol, bool) or not isinstance(tol, numbers.Real) or not 0 <= tol < np.inf:
        raise ParameterError(f"tol must be a finite non-negative number, got {tol!r}")
    return float(tol)

