"""Mini-batch k-means (Sculley 2010) over arrays or any segmint source, in bounded memory."""
import numbers

import numpy as np

from .._estimator import check_positive_int, check_random_state
from .._lazy import lazy_import
from .._parallel import run_chunks
from ..errors import ParameterError
from ._base import KMeansBase, check_sample_weight, warn_caller
from ._matrix import Features, check_centers
from ._passes import assign_rows, prepare
from .kmeans import _check_n_init, _check_size, _check_tol, _init_sample, _lloyd, initial_centers

kmb = lazy_import("segmint.kernels.minibatch")

# Rows of mini-batches drawn at once. A source without random access (Parquet, compressed
# IPC) gathers them in one streaming pass, so this bounds memory; the draws do not depend on
# the source, so every source gives the same model.
ROUND_ROWS = 1 << 20

# A source that reads rows at random (an array, a zero-copy table, Dask blocks) gathers a
# round's rows in pieces that double from FIRST_PIECE_ROWS: early stopping usually ends a fit
# within the first tens of thousands of rows (from the refined seeding, 12 to 200 steps of 1024
# rows on the benchmark customers), and gathering the whole round (64 MB at 16 float32
# features) cost ~50 ms of a 10M-row fit for rows never used. A streamed source reads its
# round in one pass. The draws are the same, so every source still gives the same model.
FIRST_PIECE_ROWS = 1 << 15

# scikit-learn smooths the batch inertia over about one epoch (alpha = 2 * batch / n), so on
# millions of rows early stopping needs thousands of steps. The floor bounds the smoothing
# window to about 2 / EWA_MIN_ALPHA steps, enough to average out batch noise.
EWA_MIN_ALPHA = 0.02
# From a seeding refined on the sample the smoothed inertia is flat from the start, so the
# no-improvement rule fired after ~12 steps, leaving the centers averaged over few rows (0.05%
# above the Lloyd optimum they lead to, in the median on the customers). Stopping for lack of
# improvement waits until this many rows (or all n, if fewer) went through the steps: ~0.02%.
MIN_ROWS_BEFORE_STOP = 1 << 17

# Seeding. One k-means++ seeding often puts two centers in one blob: a local minimum that
# the mini-batch steps never leave (on the benchmark customers, 2 seeds in 5 ended 7-8% above
# scikit-learn's KMeans). So n_init='auto' tries several k-means++ seedings (scikit-learn's
# MiniBatchKMeans: 1), runs Lloyd on the init sample from each (up to SAMPLE_LLOYD_ITER
# iterations, stopping at KMeans's default tolerance SAMPLE_TOL, relative to the sample's mean
# feature variance) and keeps the one with the lowest inertia on the sample. Each seeding and
# its Lloyd run cost about init_size * n_clusters distance evaluations times a few dozen, so
# 'auto' tries AUTO_KMEANSPP_SEEDINGS while init_size * n_clusters * seedings stays within
# SEEDING_BUDGET (five at k=8 with batch_size up to 8192), and fewer beyond, down to one: at
# large k the spread between local minima is small (k=64 on the customers: five seedings
# changed the inertia by 0.3%, and doubled the fit time with batch_size=8192).
AUTO_KMEANSPP_SEEDINGS = 5
SEEDING_BUDGET = 5 * 3 * 8192 * 8
SAMPLE_LLOYD_ITER = 100
SAMPLE_TOL = 1e-4


class MiniBatchKMeans(KMeansBase):
    """K-means on random mini-batches, then one pass for labels and inertia.

    Follows scikit-learn's ``MiniBatchKMeans`` (same parameters, the same per-center learning
    rate, early stopping on an exponentially weighted batch inertia, random reassignment of
    low-count centers), with these differences: each seeding is refined by Lloyd on the init
    sample and, with ``n_init='auto'``, five k-means++ seedings are tried at small k (on the
    benchmarks the default fit then matches the inertia of scikit-learn's ``KMeans`` on every
    seed, where one seeding ended in a bad local minimum on some); stopping for lack of
    improvement waits until ``2**17`` rows (or all, if fewer) went through the steps;
    mini-batch rows are drawn in rounds of ``2**20`` rows so a Parquet dataset needs one
    streaming pass per round and bounded memory; ``refine_iter`` full Lloyd passes may polish
    the centers at the end; results are bit-identical for any thread count.

    Parameters
    ----------
    n_clusters : int, default 8
    init : {'k-means++', 'random'}, callable or array, default 'k-means++'
        Seeding on a random sample of ``init_size`` rows; a seeding segmint draws (not given
        centers) is then refined by Lloyd's algorithm on that sample (up to 100 iterations).
    max_iter : int, default 100
        Upper bound on passes over the data (epochs), counted in mini-batch rows. It is
        only an upper bound: with ``max_no_improvement`` set (the default, as in scikit-learn)
        the fit usually stops long before, so a larger ``max_iter`` changes nothing; set
        ``max_no_improvement=None`` (or use ``refine_iter``) for more work to pay off.
    batch_size : int, default 1024
    verbose : int, default 0
        Print progress (scikit-learn's messages) when > 0.
    compute_labels : bool, default True
        Store ``labels_`` of every row after fitting (``inertia_`` is computed either way).
    random_state : int, numpy Generator or None
    tol : float, default 0.0
        Stop when the squared center shift of a step is at most ``tol`` times the mean feature
        variance (of the init sample); 0 disables it.
    max_no_improvement : int or None, default 10
        Stop after this many steps without improvement of the smoothed batch inertia, once
        ``2**17`` rows (or all rows, if fewer) went through the steps.
    init_size : int, optional
        Rows sampled for seeding; default ``3 * batch_size`` (``3 * n_clusters`` when that is
        fewer than ``n_clusters``), as scikit-learn; below ``n_clusters`` it warns and uses
        ``3 * n_clusters``.
    n_init : int or 'auto', default 'auto'
        Seedings tried on the init sample, each refined by Lloyd on it; the one with the lowest
        inertia on the sample is kept. 'auto' is, for 'k-means++', 5 while ``init_size *
        n_clusters`` is at most 196,608 (k=8 with batch_size up to 8192, k=64 with the default
        1024), fewer beyond (one above 491,520: k=64 with batch_size=8192, k=256), as a single
        seeding at small k often ends in a bad local minimum (several percent of inertia) while
        at large k local minima differ little and seedings cost more (scikit-learn: always 1);
        3 for 'random' and a callable; 1 for given centers.
    reassignment_ratio : float, default 0.01
        Centers whose weight falls below this fraction of the heaviest center's are moved to
        random batch rows (checked every ``10 * n_clusters`` rows and whenever one is empty).
    refine_iter : int, default 0
        Full Lloyd passes after the mini-batch phase (each is one pass over the data); a few
        bring the inertia to that of full k-means.

    Attributes
    ----------
    cluster_centers_, labels_, inertia_, n_features_in_, feature_names_in_ : as in :class:`KMeans`
    n_iter_ : int, passes over the data the mini-batch phase amounts to (rounded up)
    n_steps_ : int, mini-batch steps run
    """

    # explain.sweep checks the data once and labels and scores every fit itself: it turns off
    # the finite check and the final labels/inertia pass (inertia_ is then not set)
    _own_passes = True

    def __init__(self, n_clusters=8, *, init="k-means++", max_iter=100, batch_size=1024, verbose=0,
                 compute_labels=True, random_state=None, tol=0.0, max_no_improvement=10,
                 init_size=None, n_init="auto", reassignment_ratio=0.01, refine_iter=0):
        self.n_clusters = n_clusters
        self.init = init
        self.max_iter = max_iter
        self.batch_size = batch_size
        self.verbose = verbose
        self.compute_labels = compute_labels
        self.random_state = random_state
        self.tol = tol
        self.max_no_improvement = max_no_improvement
        self.init_size = init_size
        self.n_init = n_init
        self.reassignment_ratio = reassignment_ratio
        self.refine_iter = refine_iter

    # -- parameters -------------------------------------------------------------------------
    def _check_params(self):
        self._k = check_positive_int("n_clusters", self.n_clusters)
        self._max_iter = check_positive_int("max_iter", self.max_iter)
        self._batch = check_positive_int("batch_size", self.batch_size)
        self._n_init = _check_n_init(self.n_init, self.init, default_random=3, owner=type(self).__name__,
                                     stacklevel=4)  # _check_n_init < _check_params < fit < the caller
        # 'auto' with k-means++: as many seedings as the budget allows, known once init_size is
        self._auto_seedings = isinstance(self.n_init, str) and isinstance(self.init, str) \
            and self.init == "k-means++"
        self._verbose = self._check_verbose()
        self._tol = _check_tol(self.tol)
        if self.max_no_improvement is not None:
            check_positive_int("max_no_improvement", self.max_no_improvement, minimum=0)
        ratio = self.reassignment_ratio
        if isinstance(ratio, bool) or not isinstance(ratio, numbers.Real) or not 0 <= ratio < np.inf:
            raise ParameterError(f"reassignment_ratio must be a finite number >= 0, got {ratio!r}")
        check_positive_int("refine_iter", self.refine_iter, minimum=0)

    def _init_size(self, n):
        if self.init_size is None:
            size = 3 * self._batch if 3 * self._batch >= self._k else 3 * self._k
        else:
            size = check_positive_int("init_size", self.init_size)
            if size < self._k:  # scikit-learn's warning and fallback
                warn_caller(f"init_size={size} should be larger than n_clusters={self._k}. Setting it "
                            "to min(3*n_clusters, n_samples)", RuntimeWarning)
                size = 3 * self._k
        return min(n, max(size, self._k))

    # -- fit --------------------------------------------------------------------------------
    def fit(self, X, y=None, sample_weight=None, columns=None):
        """Compute the clustering from mini-batches of X.

        Parameters
        ----------
        X : (n, d) array or any source :func:`segmint.open` accepts (streamed, bounded memory)
        y : ignored
        sample_weight : (n,) array, optional
        columns : list of str, optional
            Columns of a source to cluster on (default: every numeric column).

        Returns
        -------
        self
        """
        self._check_params()
        data = self._matrix(X, columns, reset=True)
        _check_size(data, self._k)
        if self._own_passes:
            data.check_finite()
        w = check_sample_weight(sample_weight, data.n_rows, data.dtype)
        from .kmeans import LocalPasses
        return self._fit_matrix(data, w, LocalPasses(data, w))

    def _fit_matrix(self, data, w, passes):
        """The fit on checked ``data`` (``n_rows``, ``n_features``, ``dtype``, ``array``, ``take``:
        local Features or the blocks of a Dask fit), its full passes run by ``passes``
        (:class:`~.kmeans.LocalPasses` or the distributed ones of :mod:`segmint.dask.cluster`)."""
        n = data.n_rows
        # a batch never holds more rows than the data (as scikit-learn): batch_size=10**12
        # must not size a buffer of 10**12 rows
        self._batch = min(self._batch, n)
        rng = check_random_state(self.random_state)
        self._rng = rng  # partial_fit after fit continues the same random stream
        init_size = self._init_size(n)

        centers = self._best_seeding(data, w, rng, init_size)
        tol_abs = 0.0
        if self._tol > 0:
            _, sample = _init_sample(data, init_size, rng)
            tol_abs = self._tol * float(np.mean(np.var(sample, axis=0, dtype=np.float64)))

        self._counts = np.zeros(self._k, dtype=np.float64)
        self._n_since_last_reassign = 0
        n_steps = max(1, (self._max_iter * n) // self._batch)
        self._ewa, self._ewa_min, self._no_improvement = None, None, 0
        step = 0
        steps_per_round = max(1, ROUND_ROWS // self._batch)
        done = False
        round_buffer = None
        while step < n_steps and not done:
            todo = min(steps_per_round, n_steps - step)
            draws = rng.integers(0, n, size=(todo, self._batch))
            if round_buffer is None:
                round_buffer = np.empty((todo * self._batch, data.n_features), dtype=data.dtype)
            for lo, hi in _gather_pieces(todo, self._batch, getattr(data, "random_access", False)):
                picked = draws[lo:hi].ravel()
                rows = data.take(picked, out=round_buffer)
                # the piece's weights in one gather too (a Dask fit's weights stay on the workers)
                weights = w[picked] if w is not None else None
                for s in range(hi - lo):
                    Xb = rows[s * self._batch:(s + 1) * self._batch]
                    wb = weights[s * self._batch:(s + 1) * self._batch] if w is not None else None
                    inertia, moved = self._step(Xb, wb, centers, rng)
                    step += 1
                    if self._converged(step, n_steps, n, inertia, moved, tol_abs):
                        done = True
                        break
                if done:
                    break
        self.n_steps_ = step
        self.n_iter_ = int(np.ceil(step * self._batch / n))
        if self.refine_iter:
            from .kmeans import _lloyd
            centers, labels, inertia, _ = _lloyd(data, centers, w, self.refine_iter, 0.0, passes=passes)
            self.cluster_centers_, self.inertia_ = centers, inertia
            self.labels_ = labels if self.compute_labels else None
            if not self.compute_labels:
                del self.labels_
            return self
        self.cluster_centers_ = centers
        if not self._own_passes:
            return self
        labels, self.inertia_ = passes.final(centers, want_labels=self.compute_labels)
        if self.compute_labels:
            self.labels_ = labels
        return self

    def _converged(self, step, n_steps, n, inertia, moved, tol_abs):
        """Early stopping, as scikit-learn: on the center shift and on the smoothed batch inertia.

        ``step`` counts from 1; the first step's inertia is measured against the initial
        centers, so it is left out of the average (as scikit-learn does).
        """
        batch_inertia = inertia / self._batch  # comparable across batch sizes
        if step == 1:
            if self._verbose:
                print(f"Minibatch step {step}/{n_steps}: mean batch inertia: {batch_inertia}")
            return False
        if self._ewa is None:
            self._ewa = batch_inertia
        else:
            alpha = min(1.0, max(self._batch * 2.0 / (n + 1), EWA_MIN_ALPHA))
            self._ewa = self._ewa * (1 - alpha) + batch_inertia * alpha
        if self._verbose:
            print(f"Minibatch step {step}/{n_steps}: mean batch inertia: {batch_inertia}, "
                  f"ewa inertia: {self._ewa}")
        if self._tol > 0 and moved <= tol_abs:
            if self._verbose:
                print(f"Converged (small centers change) at step {step}/{n_steps}")
            return True
        if self._ewa_min is None or self._ewa < self._ewa_min:
            self._ewa_min, self._no_improvement = self._ewa, 0
        else:
            self._no_improvement += 1
        if self.max_no_improvement is not None and self._no_improvement >= self.max_no_improvement \
                and step * self._batch >= min(n, MIN_ROWS_BEFORE_STOP):
            if self._verbose:
                print(f"Converged (lack of improvement in inertia) at step {step}/{n_steps}")
            return True
        return False

    def _best_seeding(self, data, w, rng, init_size):
        """Seed ``n_init`` times on one sample of ``init_size`` rows; run Lloyd on the sample from
        each seeding; keep the centers with the lowest inertia on the sample.

        Given centers (an array) are used as they are. The seedings are drawn one after the
        other from ``rng``; their Lloyd runs are independent of each other and run in parallel,
        so the result is the same for any thread count.
        """
        n_init = auto_seedings(init_size, self._k) if self._auto_seedings else self._n_init
        idx, sample = _init_sample(data, init_size, rng)
        sw = None if w is None else (w if idx is None else w[idx])
        seedings = []
        for i in range(n_init):
            if self._verbose:
                print(f"Init {i + 1}/{n_init} with method {self.init}")
            seedings.append(initial_centers(self.init, sample, self._k, rng, sw, data.dtype))
        if not isinstance(self.init, str) and not callable(self.init):
            return seedings[0]  # given centers: the user's start, as scikit-learn
        rows = Features(sample)
        tol_abs = SAMPLE_TOL * float(np.mean(np.var(sample, axis=0, dtype=np.float64)))

        def refine(centers):
            centers, _, inertia, _ = _lloyd(rows, centers, sw, SAMPLE_LLOYD_ITER, tol_abs)
            return centers, inertia

        runs = run_chunks(refine, seedings)
        best, best_inertia = None, np.inf
        for i, (centers, inertia) in enumerate(runs):
            if self._verbose:
                print(f"Inertia for init {i + 1}/{n_init}: {inertia}")
            if best is None or inertia < best_inertia:  # the first of equals, in seeding order
                best, best_inertia = centers, inertia
        return np.ascontiguousarray(best)

    def _step(self, Xb, wb, centers, rng):
        """One mini-batch step on rows Xb: assign, update centers in place, maybe reassign."""
        labels, dist, inertia = _batch_assign(Xb, wb, centers)
        empty_w = np.empty(0, dtype=Xb.dtype)
        moved = kmb.minibatch_update(Xb, wb if wb is not None else empty_w, labels, centers, self._counts)
        if self.reassignment_ratio > 0 and self._random_reassign():
            self._reassign(Xb, centers, rng)
        return inertia, moved

    def _random_reassign(self):
        self._n_since_last_reassign += self._batch
        if (self._counts == 0).any() or self._n_since_last_reassign >= 10 * self._k:
            self._n_since_last_reassign = 0
            return True
        return False

    def _reassign(self, Xb, centers, rng):
        counts = self._counts
        to_reassign = counts < self.reassignment_ratio * counts.max()
        limit = int(0.5 * Xb.shape[0])
        if to_reassign.sum() > limit:  # never move more centers than half the batch
            keep = np.argsort(counts, kind="stable")[limit:]
            to_reassign[keep] = False
        n_moves = int(to_reassign.sum())
        if n_moves:
            if self._verbose:
                print(f"[MiniBatchKMeans] Reassigning {n_moves} cluster centers.")
            picked = rng.choice(Xb.shape[0], size=n_moves, replace=False)
            centers[to_reassign] = Xb[picked]
            rest = counts[~to_reassign]
            counts[to_reassign] = rest.min() if rest.size else 0.0

    # -- partial_fit ------------------------------------------------------------------------
    def partial_fit(self, X, y=None, sample_weight=None, columns=None):
        """Update the model with one mini-batch X (the first call also seeds it from X).

        The random state carries over between calls, so the same sequence of calls with the
        same seed gives the same model.
        """
        first = not hasattr(self, "cluster_centers_")
        # centers set without a fit (by hand, or loaded from a model file) have no step state yet
        fresh = first or not hasattr(self, "_counts")
        if fresh:
            self._check_params()
        data = self._matrix(X, columns, reset=first)
        data.check_finite()
        n = data.n_rows
        w = check_sample_weight(sample_weight, n, data.dtype)
        if first:
            _check_size(data, self._k)
        if fresh:
            self._rng = check_random_state(self.random_state)
        if first:
            self.cluster_centers_ = self._best_seeding(data, w, self._rng, self._init_size(n))
        elif fresh:
            check_centers(self.cluster_centers_)
            # a private, writable copy: the steps move the centers in place
            self.cluster_centers_ = np.array(self.cluster_centers_, dtype=data.dtype, order="C")
        if fresh:
            self._counts = np.zeros(self.cluster_centers_.shape[0], dtype=np.float64)
            self._n_since_last_reassign = 0
            self.n_steps_ = 0
        # C-ordered rows (a copy of a Fortran-ordered array): the mini-batch update is compiled
        # for that one layout
        Xb = np.ascontiguousarray(data.array) if data.array is not None else data.take(np.arange(n))
        self._batch = Xb.shape[0]
        self._step(Xb, w, self.cluster_centers_, self._rng)
        self.n_steps_ += 1
        if self.compute_labels:
            self.labels_, _, self.inertia_ = _batch_assign(Xb, w, self.cluster_centers_)
        return self


def auto_seedings(init_size, k):
    """k-means++ seedings ``n_init='auto'`` tries on ``init_size`` rows: AUTO_KMEANSPP_SEEDINGS
    while they fit in SEEDING_BUDGET distance evaluations, fewer beyond, at least one."""
    return int(max(1, min(AUTO_KMEANSPP_SEEDINGS, SEEDING_BUDGET // max(1, init_size * k))))


def _gather_pieces(steps, batch, random_access):
    """``[(first step, end step)]`` of a round of ``steps`` mini-batches, in the order they are
    gathered: one piece for a streamed source, else pieces doubling from FIRST_PIECE_ROWS rows."""
    if not random_access:
        return [(0, steps)]
    pieces, lo = [], 0
    size = max(1, FIRST_PIECE_ROWS // batch)
    while lo < steps:
        pieces.append((lo, min(steps, lo + size)))
        lo += size
        size *= 2
    return pieces


def _batch_assign(Xb, wb, centers):
    """Labels, squared distances and weighted inertia of an in-memory batch (one thread)."""
    C2, cn = prepare(centers)
    b = Xb.shape[0]
    labels = np.empty(b, dtype=np.int32)
    dist = np.empty(b, dtype=Xb.dtype)
    # rows were checked when the data came in; the largest finite value keeps one compiled kernel
    assign_rows(Xb, 0, b, C2, cn, labels, 0, dist, 0, True)
    inertia = float(np.dot(dist.astype(np.float64), wb)) if wb is not None else float(dist.sum(dtype=np.float64))
    return labels, dist, inertia
