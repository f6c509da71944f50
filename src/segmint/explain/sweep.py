"""Choosing k: fit k-means for each k over several seeds and score every fit.

:func:`sweep_k` transforms the features once into a float32 matrix held in memory (n x d x 4
bytes: 10M customers x 16 features is 640 MB), then for each k and seed fits the clusterer
(segmint's MiniBatchKMeans by default, on all rows or a ``fit_rows`` sample) and scores it:

- one pass over all rows (:func:`segmint.kernels.metrics.assign_scores`): labels, inertia,
  the per-cluster sums and counts, and the simplified silhouette (``a`` the distance to the
  row's center, ``b`` to the next nearest center, ``(b - a) / max(a, b)``);
- a second pass around the centroids recomputed from those labels (as scikit-learn does):
  Calinski-Harabasz and Davies-Bouldin, exact in float64 accumulators;
- the exact silhouette on a sample stratified by cluster (:func:`stratified_sample`), O(m^2 d)
  in a kernel without an m x m matrix, with a bootstrap 95% percentile interval over the
  sampled rows' values: a sample estimate of the whole data's silhouette;
- stability: the mean adjusted Rand index between the labelings of the seeds (all rows).

Then the elbow of the median inertia per k (:mod:`.elbow`). Work is split into chunks of fixed
size whose partial results are combined in chunk order: the same bits for any thread count.
The seeds of one k are fitted side by side, and each fit's silhouette (a job on one thread)
runs while the next k is fitted and scored.
"""
import json
import math
import numbers
import time

import numpy as np
import pyarrow as pa

from .._estimator import check_positive_int
from .._parallel import chunk_bounds, get_num_threads, ordered_map, run_chunks
from ..errors import DataError, ParameterError, SourceConsumedError
from ..io import DEFAULT_BATCH_SIZE
from ..io import open as open_source
from ..kernels.metrics import (assign_scores, centroid_spread, contingency, label_sums, silhouette_block,
                               silhouette_rows, take_ranks)
from .elbow import find_elbow
from .segments import RNG_SALT

CHUNK = 65_536  # rows per chunk of the full-data passes (partials per chunk: thread-count free)
SILHOUETTE_ROWS = 64  # sample rows per task of the row-by-row silhouette kernel
SILHOUETTE_BLOCK = 256  # sample rows per block of the symmetric silhouette kernel
LANES = 8  # fixed lanes of blocks, each with its own partial sums (not the thread count)
MAX_PARTIAL_BYTES = 64 << 20  # partial sums of the lanes at most, else row by row
CACHE_ROWS = 8_192  # rows scored for every fit in turn while they are in cache (512 KB at d=16 float32)
MIN_PER_CLUSTER = 10  # sampled rows per cluster at least (all of a smaller cluster's rows)
# Bounds on the work one call may ask for: the exact silhouette is quadratic in the sample
# (100,000 rows: about 100 times the default's work per fit), the per-chunk partials grow with k
# (a segmentation with more than 1,000 segments is not one), and bootstrap resamples cost m each.
MAX_SAMPLE_SIZE = 100_000
MAX_K = 1_000
MAX_BOOTSTRAP = 10_000
MAX_SEEDS = 100  # each seed is a fit per k and a labeling in memory (n x 4 bytes)
# Each mini-batch fit is polished by REFINE_ITER Lloyd passes over the fitted rows, at most
# POLISH_ROWS of them (a fixed random sample beyond: the centers' few degrees of freedom need
# far fewer rows than the data has). Measured on customer_features at 1M rows, k = 2/6/12,
# 3 seeds (ARI between seeds; inertia per row; scikit-learn KMeans n_init=1 beside):
#   no polish   ARI 0.60/0.71/0.65, inertia 13.07/8.50/6.89, fit 0.08-0.10 s
#   2 passes    ARI 0.67/0.72/0.67, inertia 12.98/8.49/6.86, fit 0.12-0.15 s
#   3 passes    ARI 0.73/0.72/0.68, inertia 12.91/8.49/6.85, fit 0.11-0.18 s
#   5 passes    ARI 0.84/0.72/0.70, inertia 12.84/8.47/6.80, fit 0.18-0.22 s
#   scikit-learn ARI 0.98/0.90/0.75, inertia 12.81/8.48/6.77, fit 0.8-2.5 s
# Three passes over 1M rows cost about 0.06 s per fit (2 s for 11 k x 3 seeds); five would
# cost 4 s of the 10M sweep's 30 s budget for the k = 2 stability alone.
# Polish sample, same 1M rows, k = 2..12 x 3 seeds, inertia of all rows vs a 1M-row polish:
#   256k rows: mean -0.003%, worst +0.009% (polish 0.48 s in all instead of 1.76 s)
#   128k rows: mean +0.001%, worst +0.022% (0.29 s);  64k rows: mean +0.008%, worst +0.053%
REFINE_ITER = 3
POLISH_ROWS = 256_000
REFERENCE_ROWS = 100_000  # rows of the data whose covariance shapes the no-structure reference
CLUSTERERS = ("minibatch", "kmeans")
METRICS = ("inertia", "calinski_harabasz", "davies_bouldin", "simplified_silhouette", "silhouette",
           "silhouette_low", "silhouette_high")
SILHOUETTE_NOTE = ("silhouette: exact on a sample stratified by cluster (about {sample_size:,} rows, each "
                   "weighted by its cluster's rows per sampled row): a sample estimate; the bootstrap 95% "
                   "interval ({n_bootstrap} draws of the seeds and of their sampled rows) covers "
                   "sampling and seed-to-seed variation")
SILHOUETTE_ALL = ("silhouette: exact on all {n_rows:,} rows; the bootstrap 95% "
                  "interval ({n_bootstrap} draws of the seeds and of their rows) covers seed-to-seed "
                  "variation and the rows' spread")
STABILITY_NOTE = ("stability: mean adjusted Rand index between the seeds' labelings of all rows ({fits}: "
                  "it includes the clusterer's run-to-run variation, not only the data's)")
FORMAT = "segmint-sweep"


# -- the metrics, each usable on its own ---------------------------------------------------------
def label_scores(X, centers, labels=None):
    """Labels and the figures of one pass over ``X`` with the given centers.

    Parameters
    ----------
    X : (n, d) float32/float64 array, finite
    centers : (k, d) array, ``k >= 2``
    labels : (n,) int32 array, optional, filled (default: a new one)

    Returns
    -------
    labels : (n,) int32, nearest center
    inertia : float, sum of squared distances to the nearest center
    sums : (k, d) float64, sum of the rows of each label
    counts : (k,) int64
    simplified : float, mean simplified silhouette (0 for rows alone in their cluster)
    """
    return label_scores_many(X, [centers], None if labels is None else [labels])[0]


def label_scores_many(X, centers_list, labels_list=None):
    """:func:`label_scores` of several fits in one pass over the data (a list of results).

    Each chunk of rows is scored for every fit in sub-blocks that stay in cache, so the data
    are read from memory once for all fits; every fit's accumulators still follow row order
    (the same bits as one fit at a time).
    """
    n = X.shape[0]
    bounds = chunk_bounds(n, CHUNK)
    fits = []
    for f, centers in enumerate(centers_list):
        k = centers.shape[0]
        fits.append(dict(
            centers=np.ascontiguousarray(centers, dtype=X.dtype),
            labels=np.empty(n, dtype=np.int32) if labels_list is None else labels_list[f],
            sums=np.zeros((len(bounds), k, X.shape[1])), counts=np.zeros((len(bounds), k), dtype=np.int64),
            inertia=np.zeros((len(bounds), 1)), simplified=np.zeros((len(bounds), k))))

    def chunk(c):
        lo, hi = bounds[c]
        for start in range(lo, hi, CACHE_ROWS):
            end = min(hi, start + CACHE_ROWS)
            for fit in fits:
                assign_scores(X, start, end, fit["centers"], fit["labels"], fit["sums"][c], fit["counts"][c],
                              fit["inertia"][c], fit["simplified"][c])

    run_chunks(chunk, range(len(bounds)))
    out = []
    for fit in fits:
        counts = fit["counts"].sum(axis=0)
        per_cluster = _in_order(fit["simplified"])
        per_cluster[counts == 1] = 0.0  # scikit-learn's convention for a cluster of one row
        simple = float(per_cluster.sum() / n) if n else float("nan")
        out.append((fit["labels"], float(_in_order(fit["inertia"])[0]), _in_order(fit["sums"]), counts, simple))
    return out


def _in_order(partials):
    """Sum of per-chunk partials, added in chunk order (the same bits for any thread count)."""
    total = np.zeros(partials.shape[1:], dtype=partials.dtype)
    for part in partials:
        total += part
    return total


def centroid_scores(X, labels, sums, counts):
    """Calinski-Harabasz and Davies-Bouldin of a labeling, as scikit-learn computes them.

    Clusters without rows are left out (scikit-learn only sees labels that occur). Both are
    NaN when fewer than two clusters have rows or every row is its own cluster (where
    scikit-learn raises).

    Parameters
    ----------
    X : (n, d) float32/float64 array
    labels : (n,) int32 in ``0..k``
    sums : (k, d) float64, sum of the rows of each label
    counts : (k,) int64, rows of each label

    Returns
    -------
    (float, float) : Calinski-Harabasz, Davies-Bouldin
    """
    return centroid_scores_many(X, [(labels, sums, counts)])[0]


def centroid_scores_many(X, fits):
    """:func:`centroid_scores` of several labelings ``[(labels, sums, counts), ...]`` in one
    pass over the data."""
    n = X.shape[0]
    bounds = chunk_bounds(n, CHUNK)
    work = []
    out = [None] * len(fits)
    for f, (labels, sums, counts) in enumerate(fits):
        present = counts > 0
        if not 1 < int(present.sum()) < n:
            out[f] = (float("nan"), float("nan"))
            continue
        means = np.zeros_like(sums)
        means[present] = sums[present] / counts[present, None]
        k = counts.shape[0]
        work.append(dict(f=f, labels=labels, sums=sums, counts=counts, means=means,
                         squares=np.zeros((len(bounds), k)), distances=np.zeros((len(bounds), k))))

    def chunk(c):
        lo, hi = bounds[c]
        for start in range(lo, hi, CACHE_ROWS):
            end = min(hi, start + CACHE_ROWS)
            for w in work:
                centroid_spread(X, start, end, w["labels"], w["means"], w["squares"][c], w["distances"][c])

    if work:
        run_chunks(chunk, range(len(bounds)))
    for w in work:
        out[w["f"]] = _ch_db(n, w["sums"], w["counts"], w["means"], _in_order(w["squares"]),
                             _in_order(w["distances"]))
    return out


def _ch_db(n, sums, counts, means, squares, distances):
    """Calinski-Harabasz and Davies-Bouldin from per-cluster figures, step by step as
    scikit-learn's ``calinski_harabasz_score`` and ``davies_bouldin_score``."""
    present = counts > 0
    n_labels = int(present.sum())
    centroids = means[present]
    n_k = counts[present].astype(np.float64)
    mean = sums[present].sum(axis=0) / n
    extra = float(np.sum(n_k * np.sum((centroids - mean) ** 2, axis=1)))
    intra = float(squares[present].sum())
    ch = 1.0 if intra == 0.0 else extra * (n - n_labels) / (intra * (n_labels - 1.0))
    spread = distances[present] / n_k
    gaps = np.sqrt(((centroids[:, None, :] - centroids[None, :, :]) ** 2).sum(axis=2))
    if np.allclose(spread, 0) or np.allclose(gaps, 0):
        return ch, 0.0
    gaps[gaps == 0] = np.inf
    combined = spread[:, None] + spread
    db = float(np.mean(np.max(combined / gaps, axis=1)))
    return ch, db


def labeled_sums(X, labels, k):
    """Per-label sums (float64) and counts of the rows of ``X``: ``(sums (k, d), counts (k,))``."""
    n = X.shape[0]
    bounds = chunk_bounds(n, CHUNK)
    sums = np.zeros((len(bounds), k, X.shape[1]))
    counts = np.zeros((len(bounds), k), dtype=np.int64)

    def chunk(c):
        lo, hi = bounds[c]
        label_sums(X, lo, hi, labels, sums[c], counts[c])

    run_chunks(chunk, range(len(bounds)))
    return _in_order(sums), counts.sum(axis=0)


def _codes(labels, what="labels"):
    """Any labels (e.g. -1 for noise, 0, 3) as int32 codes 0..k-1 in the order of their sorted
    values, as scikit-learn's ``LabelEncoder`` reads them, and the number of distinct labels."""
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ParameterError(f"{what} must be one-dimensional, got shape {labels.shape}")
    if labels.size and labels.dtype.kind not in "biu":
        raise ParameterError(f"{what} must be whole numbers (cluster codes), got dtype {labels.dtype}")
    values, codes = np.unique(labels, return_inverse=True)
    return np.ascontiguousarray(codes.reshape(-1), dtype=np.int32), values.size


def _scores(X, labels):
    codes, k = _codes(labels)
    if codes.size != np.shape(X)[0]:
        raise ParameterError(f"labels has {codes.size:,} values for the {np.shape(X)[0]:,} rows of X")
    sums, counts = labeled_sums(X, codes, k)
    return centroid_scores(X, codes, sums, counts)


def calinski_harabasz(X, labels):
    """Calinski-Harabasz index of ``labels`` (any whole numbers, e.g. -1, 0, 3) on ``X``; equals
    scikit-learn's (NaN where it raises: fewer than two labels, or one per row)."""
    return _scores(X, labels)[0]


def davies_bouldin(X, labels):
    """Davies-Bouldin index of ``labels`` (any whole numbers, e.g. -1, 0, 3) on ``X``; equals
    scikit-learn's (NaN where it raises: fewer than two labels, or one per row)."""
    return _scores(X, labels)[1]


def stratified_sample(labels, counts, sample_size, rng):
    """Rows drawn within each cluster, in proportion to its size, grouped by cluster.

    Each cluster gets ``sample_size * count / n`` rows (rounded down, the rows left over go to
    the largest remainders), at least ``MIN_PER_CLUSTER`` (or all its rows when it has
    fewer), so the sample holds ``sample_size`` rows plus at most ``k * MIN_PER_CLUSTER``.
    With ``sample_size >= n`` every row is taken.

    Parameters
    ----------
    labels : (n,) int32
    counts : (k,) int64, rows per label
    sample_size : int
    rng : numpy Generator

    Returns
    -------
    rows : (m,) int64, increasing within each cluster
    bounds : (k + 1,) int64, cluster ``c`` holds ``rows[bounds[c]:bounds[c + 1]]``
    """
    counts = np.asarray(counts, dtype=np.int64)
    n = int(counts.sum())
    if sample_size >= n:
        take = counts.copy()
    else:
        target = sample_size * counts / n
        take = np.floor(target).astype(np.int64)
        left = sample_size - int(take.sum())
        order = np.argsort(-(target - take), kind="stable")
        take[order[:left]] += 1
        take = np.minimum(np.maximum(take, np.minimum(counts, MIN_PER_CLUSTER)), counts)
    bounds = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(take, out=bounds[1:])
    ranks = np.empty(int(bounds[-1]), dtype=np.int64)
    for c, (size, t) in enumerate(zip(counts.tolist(), take.tolist())):
        picked = np.arange(size) if t == size else np.sort(rng.choice(size, size=t, replace=False))
        ranks[bounds[c]:bounds[c + 1]] = picked
    rows = np.empty_like(ranks)
    take_ranks(labels, ranks, bounds, rows)
    return rows, bounds


def silhouette_values(X, rows, bounds):
    """Exact silhouette of each sampled row among the sampled rows (scikit-learn's definition).

    Each pair's distance is computed once (:func:`~segmint.kernels.metrics.silhouette_block`):
    blocks of ``SILHOUETTE_BLOCK`` rows meet every later block, spread over ``LANES`` fixed
    lanes of blocks, each with its own partial sums, added in lane order (the same bits for
    any thread count). When those partials would pass ``MAX_PARTIAL_BYTES`` (many clusters
    and a large sample) every row is computed on its own instead
    (:func:`~segmint.kernels.metrics.silhouette_rows`, twice the arithmetic).

    Parameters
    ----------
    X : (n, d) array
    rows : (m,) int, the sample grouped by cluster
    bounds : (k + 1,) int64, the groups (see :func:`stratified_sample`)

    Returns
    -------
    (m,) float64, in the order of ``rows``
    """
    XT = np.ascontiguousarray(np.asarray(X[rows], dtype=np.float64).T)
    m = XT.shape[1]
    k = len(bounds) - 1
    out = np.empty(m)
    n_blocks = -(-m // SILHOUETTE_BLOCK)
    lanes = min(LANES, n_blocks)
    if (lanes + 2) * k * m * 8 > MAX_PARTIAL_BYTES:  # the lanes' partials, the sums and the means
        run_chunks(lambda b: silhouette_rows(XT, bounds, b[0], b[1], out), chunk_bounds(m, SILHOUETTE_ROWS))
        return out
    counts = np.diff(bounds)
    clusters = np.repeat(np.arange(k, dtype=np.int64), counts)
    sums = np.zeros((m, k))
    partial = np.zeros((lanes, k, m))

    def lane(L):
        for block in range(L, n_blocks, lanes):
            silhouette_block(XT, bounds, clusters, SILHOUETTE_BLOCK, block, sums, partial[L])

    run_chunks(lane, range(lanes))
    for L in range(lanes):
        sums += partial[L].T
    # a: mean distance to the other rows of the own cluster; b: the nearest other cluster's mean
    with np.errstate(divide="ignore", invalid="ignore"):
        n_own = counts[clusters]
        a = np.where(n_own > 1, sums[np.arange(m), clusters] / np.maximum(n_own - 1, 1), 0.0)
        means = sums / np.where(counts > 0, counts, 1)
        means[:, counts == 0] = np.inf
        means[np.arange(m), clusters] = np.inf
        b = means.min(axis=1) if k else np.full(m, np.inf)
        top = np.maximum(a, b)
        keep = (n_own > 1) & (top > 0) & np.isfinite(b)
        out[:] = np.where(keep, (b - a) / np.where(keep, top, 1.0), 0.0)
    return out


def silhouette(X, labels):
    """Exact mean silhouette of all rows of ``X`` (labels any whole numbers, e.g. -1, 0, 3);
    equals scikit-learn's ``silhouette_score(X, labels)``. NaN when fewer than two labels occur
    or every row has its own (where scikit-learn raises). O(n^2 d): for samples."""
    labels, k = _codes(labels)
    if labels.size != np.shape(X)[0]:
        raise ParameterError(f"labels has {labels.size:,} values for the {np.shape(X)[0]:,} rows of X")
    counts = np.bincount(labels, minlength=k)
    rows, bounds = stratified_sample(labels, counts, labels.size, np.random.default_rng(0))
    values = silhouette_values(np.asarray(X), rows, bounds)
    return _mean_silhouette(values, counts)


def _mean_silhouette(values, counts, weights=None):
    """The (weighted) mean of the silhouette values; NaN where scikit-learn raises."""
    n_labels = int(np.count_nonzero(counts))
    if not 1 < n_labels < values.size:
        return float("nan")
    if weights is None:
        return float(np.mean(values))
    return float(np.sum(weights * values) / np.sum(weights))


def sample_weights(counts, bounds):
    """Per sampled row, its cluster's rows per sampled row (``count_c / take_c``).

    The stratified sample gives each cluster at least ``MIN_PER_CLUSTER`` rows, so small
    clusters are over-represented; weighting each row by how many rows of the data it stands
    for makes the weighted mean an estimate of the mean over all rows (1 everywhere when every
    row is taken)."""
    take = np.diff(bounds)
    per_row = np.asarray(counts, dtype=np.float64) / np.where(take > 0, take, 1)
    return np.repeat(per_row, take)


def bootstrap_interval(values, n_bootstrap, rng, weights=None, bounds=None, block=50):
    """95% percentile interval of the (weighted) mean of ``values`` over ``n_bootstrap``
    resamples of the rows (within each cluster when ``bounds`` are given; see
    :func:`resampled_sums`); NaN, NaN when ``n_bootstrap`` is 0 or there are no values."""
    if n_bootstrap == 0 or np.size(values) == 0:
        return float("nan"), float("nan")
    return _interval(*resampled_sums(values, n_bootstrap, rng, weights, bounds, block))


def resampled_sums(values, n_bootstrap, rng, weights=None, bounds=None, block=50):
    """Per bootstrap resample of the rows, the sums of ``weights * values`` and of ``weights``
    (their ratio is the resample's weighted mean): ``(tops, bottoms)``, each (n_bootstrap,).

    With ``bounds`` (the clusters of a stratified sample, :func:`stratified_sample`) each
    cluster's rows are resampled among themselves, as the sample was drawn: every resample
    then holds as many rows of each cluster, and with weights constant within a cluster
    (:func:`sample_weights`) the sum of the weights is the same for all."""
    values = np.asarray(values, dtype=np.float64)
    m = values.size
    weighted = values if weights is None else np.asarray(weights, dtype=np.float64) * values
    tops = np.empty(n_bootstrap)
    if bounds is None:
        bottoms = np.full(n_bootstrap, float(m) if weights is None else np.nan)
    else:
        bottoms = np.full(n_bootstrap, float(m) if weights is None else float(np.sum(weights)))
        groups = [(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]
    for lo in range(0, n_bootstrap, block):  # bounded memory: block x m draws at a time
        size = min(block, n_bootstrap - lo)
        if bounds is None:
            draws = rng.integers(0, m, size=(size, m))
            if weights is not None:
                bottoms[lo:lo + size] = weights[draws].sum(axis=1)
        else:  # the positions of a cluster draw among that cluster's rows
            draws = np.empty((size, m), dtype=np.int64)
            for a, b in groups:
                draws[:, a:b] = rng.integers(a, b, size=(size, b - a))
        tops[lo:lo + size] = weighted[draws].sum(axis=1)
    return tops, bottoms


def _interval(tops, bottoms):
    low, high = np.percentile(tops / bottoms, [2.5, 97.5])
    return float(low), float(high)


def pooled_interval(values, n_bootstrap, rng, weights=None, block=50):
    """95% percentile interval of the weighted mean silhouette over a two-level bootstrap:
    each resample draws the fits (seeds) with replacement, then each drawn fit's sampled rows
    with replacement, and takes the weighted mean of all drawn rows. The interval so covers
    the spread between seeds as well as the sampling of rows (with one fit: rows only).

    Parameters
    ----------
    values : list of (m_s,) float64 arrays, one per fit
    n_bootstrap : int
    rng : numpy Generator
    weights : list of (m_s,) float64 arrays, optional (default: 1 for every row)

    Returns
    -------
    (float, float), NaN, NaN when ``n_bootstrap`` is 0 or there are no values
    """
    if n_bootstrap == 0 or not len(values) or any(np.size(v) == 0 for v in values):
        return float("nan"), float("nan")
    sums = [resampled_sums(v, n_bootstrap, rng, None if weights is None else weights[f], block=block)
            for f, v in enumerate(values)]
    return pooled_from_sums(sums, rng)


def pooled_from_sums(sums, rng):
    """:func:`pooled_interval` from each fit's row resamples (:func:`resampled_sums`): a
    resample draws the fits with replacement and, for each drawn fit, one of its row resamples
    at random (cheap: the rows are not drawn again)."""
    if not sums or sums[0][0].size == 0:
        return float("nan"), float("nan")
    tops = np.stack([t for t, _ in sums])
    bottoms = np.stack([b for _, b in sums])
    fits, n_bootstrap = tops.shape
    picks = rng.integers(0, fits, size=(n_bootstrap, fits))
    which = rng.integers(0, n_bootstrap, size=(n_bootstrap, fits))
    return _interval(tops[picks, which].sum(axis=1), bottoms[picks, which].sum(axis=1))


def contingency_table(a, b, ka, kb):
    """(ka, kb) int64 counts of the label pairs ``(a[i], b[i])`` (labels int32 in 0..ka, 0..kb)."""
    a = np.ascontiguousarray(a, dtype=np.int32)
    b = np.ascontiguousarray(b, dtype=np.int32)
    # counts add exactly in any order: fewer, longer chunks when the tables are large
    parts = max(1, min(-(-a.size // CHUNK), MAX_PARTIAL_BYTES // (8 * max(1, ka * kb))))
    bounds = chunk_bounds(a.size, max(1, -(-a.size // parts)))
    tables = np.zeros((len(bounds), ka, kb), dtype=np.int64)
    run_chunks(lambda c: contingency(a, b, bounds[c][0], bounds[c][1], tables[c]), range(len(bounds)))
    return tables.sum(axis=0)


def adjusted_rand(a, b):
    """Adjusted Rand index of two labelings (any whole numbers, e.g. -1, 0, 3); equals
    scikit-learn's ``adjusted_rand_score``, computed from the pair counts in exact integers."""
    a, ka = _codes(a, "labels_true")
    b, kb = _codes(b, "labels_pred")
    if a.size != b.size:
        raise ParameterError(f"the two labelings differ in length: {a.size:,} and {b.size:,}")
    if a.size == 0:
        return 1.0
    table = contingency_table(a, b, ka, kb)
    return ari_from_table(table)


def ari_from_table(table):
    """Adjusted Rand index from a contingency table, by scikit-learn's pair confusion matrix."""
    n = int(table.sum())
    sum_squares = int((table.astype(object) ** 2).sum())
    rows = [int(v) for v in table.sum(axis=1)]
    cols = [int(v) for v in table.sum(axis=0)]
    t = table.astype(object)
    tp = sum_squares - n
    fp = int((t.dot(np.array(cols, dtype=object))).sum()) - sum_squares
    fn = int((t.T.dot(np.array(rows, dtype=object))).sum()) - sum_squares
    tn = n * n - fp - fn - sum_squares
    if fn == 0 and fp == 0:
        return 1.0
    return 2.0 * (tp * tn - fn * fp) / ((tp + fn) * (fn + tn) + (tp + fp) * (fp + tn))


# -- the sweep -------------------------------------------------------------------------------
def _check_ks(ks):
    if isinstance(ks, (str, bytes)) or not hasattr(ks, "__iter__"):
        raise ParameterError(f"ks= must be a list or range of whole numbers of clusters, got {ks!r:.80}")
    out = []
    for k in ks:
        if isinstance(k, bool) or not isinstance(k, (numbers.Integral, np.integer)):
            raise ParameterError(f"ks= must hold whole numbers of clusters, got {k!r:.80}")
        if k < 2:
            raise ParameterError(f"ks= holds {int(k)}: choosing k needs at least 2 clusters")
        if k > MAX_K:
            raise ParameterError(f"ks= holds {int(k)}: at most {MAX_K:,} clusters are swept")
        out.append(int(k))
    if not out:
        raise ParameterError("ks= is empty: give the numbers of clusters to try, e.g. range(2, 13)")
    return sorted(set(out))


def _feature_matrix(source, features, batch_size):
    """The float32 feature matrix (fitted and transformed once), its column names and the
    files the source reads."""
    from ..cluster._matrix import FeatureError, Features
    from ..pipeline.features import FeatureSpec
    if features is None:
        raise ParameterError("sweep_k needs features=: the columns (and transforms) to cluster on, "
                             "e.g. features=['recency_days', 'frequency', 'monetary']")
    spec = FeatureSpec(features.features, sample_size=features.sample_size) \
        if isinstance(features, FeatureSpec) else FeatureSpec(features)  # a copy: the caller's stays as is
    src = open_source(source)
    if src.one_shot:
        raise SourceConsumedError(f"{src.label} can be read only once, but a sweep reads it twice (feature "
                                  "statistics, then the features); pass a Table, a DataFrame or a file")
    spec.fit(src, batch_size=batch_size)
    X = spec.transform(src, dtype=np.float32, batch_size=batch_size)
    names = list(spec.feature_names_out_)
    # every row is scored, also those a fit_rows sample leaves out: refuse values beyond the
    # clustering limit here, naming the spec's columns (the clusterer would say x0, x1, ...)
    data = Features(X)
    data.names = names
    try:
        data.check_finite()
    except FeatureError as e:
        raise FeatureError(f"the transformed features of {src.label}: {e}") from None
    return X, names, tuple(str(p) for p in src.paths)


def sweep_k(source, *, features, ks=range(2, 13), n_seeds=3, random_state=0, clusterer="minibatch",
            sample_size=10_000, n_bootstrap=200, fit_rows=None, batch_size=DEFAULT_BATCH_SIZE):
    """Fit k-means for each k over several seeds and score every fit, to choose k.

    Parameters
    ----------
    source : any input :func:`segmint.open` accepts that can be read twice
    features : FeatureSpec or list
        The feature spec, as ``Segmenter(features=)`` takes it; fitted on a copy, once, and
        the matrix transformed once (float32, held in memory: 640 MB for 10M rows x 16).
    ks : iterable of int, default range(2, 13)
        The numbers of clusters to try, each from 2 to the number of rows (and at most 1,000).
    n_seeds : int, default 3
        Fits per k (1 to 100), with seeds ``random_state + s`` for ``s`` in ``0..n_seeds``.
    random_state : int, default 0
    clusterer : {"minibatch", "kmeans"}, default "minibatch"
        segmint's MiniBatchKMeans polished by ``REFINE_ITER`` (3) Lloyd passes over the fitted
        rows (at most ``POLISH_ROWS``, 256,000, drawn at random), or KMeans (Lloyd, one
        initialisation), otherwise default parameters. Without the polish the mini-batch
        centers' run-to-run noise weighs more in the stability and the inertia curve (the
        measured figures are beside :data:`REFINE_ITER` in the source).
    sample_size : int, default 10,000
        Rows of the stratified sample of the exact silhouette (plus at most 10 per cluster),
        from 2 to 100,000 (its time grows with the square: 10,000 rows cost about 0.1 s of
        one core per fit).
    n_bootstrap : int, default 200
        Resamples (of the seeds, then of their sampled rows) for the 95% interval of the
        silhouette (0: no interval; at most 10,000).
    fit_rows : int, optional
        Fit the clusterers on this many rows drawn at random (``random_state``); default all.
        Every metric is computed on all rows either way.
    batch_size : int, default ``segmint.io.DEFAULT_BATCH_SIZE``
        Rows per batch read from the source.

    Returns
    -------
    Sweep
        ``.table`` (one row per k and seed), ``.summary`` (one row per k: medians over seeds
        and the stability), ``.suggested_k`` (None: no clear elbow), ``.elbow`` and
        ``.inputs`` (the files read: ``to_json`` never writes over them).

    Raises
    ------
    ParameterError
        A k below 2 or above the number of rows, or another argument out of range.
    UnknownColumnError, FeatureError, FeatureSpecError
        A feature missing from the source, of the wrong type, with nulls to impute or values
        too large to cluster.

    Notes
    -----
    The suggested k is the elbow of the median inertia (:func:`~segmint.explain.elbow.find_elbow`)
    only when the inertia falls faster up to it than on structureless data of the same spread:
    the same k are fitted (Lloyd, one seed) on a reference sample drawn uniformly along the
    data's principal axes with the data's variances (see :func:`reference_inertia`).
    """
    ks = _check_ks(ks)
    n_seeds = check_positive_int("n_seeds", n_seeds, maximum=MAX_SEEDS)
    random_state = check_positive_int("random_state (a seed, a whole number >= 0)", random_state, minimum=0)
    if clusterer not in CLUSTERERS:
        raise ParameterError(f"clusterer= must be one of {', '.join(map(repr, CLUSTERERS))}, got {clusterer!r:.80}")
    sample_size = check_positive_int("sample_size (rows of the exact silhouette, quadratic in time)",
                                     sample_size, minimum=2, maximum=MAX_SAMPLE_SIZE)
    n_bootstrap = check_positive_int("n_bootstrap", n_bootstrap, minimum=0, maximum=MAX_BOOTSTRAP)
    if fit_rows is not None:
        fit_rows = check_positive_int("fit_rows (a positive number of rows)", fit_rows)
    batch_size = check_positive_int("batch_size", batch_size)
    timings = dict.fromkeys(("features", "fit", "metrics", "silhouette", "stability", "reference"), 0.0)
    t0 = time.perf_counter()
    X, names, inputs = _feature_matrix(source, features, batch_size)
    n = X.shape[0]
    if ks[-1] > n:
        raise ParameterError(f"ks= holds {ks[-1]}, more clusters than the {n:,} rows of the data")
    X_fit = X
    if fit_rows is not None and fit_rows < n:
        if ks[-1] > fit_rows:
            raise ParameterError(f"fit_rows={fit_rows:,} is fewer than the largest k ({ks[-1]})")
        picked = np.sort(np.random.default_rng([random_state, RNG_SALT, 3]).choice(n, size=fit_rows, replace=False))
        X_fit = np.ascontiguousarray(X[picked])
    X_polish = X_fit
    if clusterer == "minibatch" and X_fit.shape[0] > POLISH_ROWS:
        rng = np.random.default_rng([random_state, RNG_SALT, 5])
        X_polish = np.ascontiguousarray(X_fit[np.sort(rng.choice(X_fit.shape[0], POLISH_ROWS, replace=False))])
    timings["features"] = time.perf_counter() - t0
    rows = []
    stability = {}
    labelings = [np.empty(n, dtype=np.int32) for _ in range(n_seeds)]  # reused for every k

    def fitted():
        """Per k: the fits and their full-data scores, then per seed the silhouette's job (its
        stratified sample is drawn here: the next k writes over the labels)."""
        for k in ks:
            seeds = [random_state + s for s in range(n_seeds)]
            t = time.perf_counter()
            # the seeds' fits side by side on the threads: a fit's serial steps (Python between
            # small kernels) then overlap another fit's passes; each fit is the same either way
            centers = run_chunks(lambda seed: _fit(clusterer, k, seed, X_fit, X_polish), seeds)
            timings["fit"] += time.perf_counter() - t
            t = time.perf_counter()
            scored = label_scores_many(X, centers, labelings)
            spreads = centroid_scores_many(X, [(labels, sums, counts) for labels, _, sums, counts, _ in scored])
            timings["metrics"] += time.perf_counter() - t
            for seed, (labels, inertia, _, counts, simple), (ch, db) in zip(seeds, scored, spreads):
                t = time.perf_counter()
                rng = np.random.default_rng([seed, RNG_SALT, k])
                sample, bounds = stratified_sample(labels, counts, sample_size, rng)
                timings["silhouette"] += time.perf_counter() - t
                row = dict(k=k, seed=seed, inertia=inertia, calinski_harabasz=ch, davies_bouldin=db,
                           simplified_silhouette=simple)
                rows.append(row)
                yield row, sample, bounds, counts, rng
            t = time.perf_counter()
            pairs = [ari_from_table(contingency_table(labelings[i], labelings[j], k, k))
                     for i in range(n_seeds) for j in range(i + 1, n_seeds)]
            stability[k] = float(np.mean(pairs)) if pairs else math.nan
            timings["stability"] += time.perf_counter() - t

    def silhouette_job(job):
        """One fit's sampled silhouette and its bootstrap (one thread: jobs run side by side)."""
        row, sample, bounds, counts, rng = job
        t = time.perf_counter()
        values = silhouette_values(X, sample, bounds)
        weights = sample_weights(counts, bounds)
        sil = _mean_silhouette(values, np.diff(bounds), weights)
        low, high, sums = math.nan, math.nan, None
        if math.isfinite(sil) and n_bootstrap:
            sums = resampled_sums(values, n_bootstrap, rng, weights, bounds)
            low, high = _interval(*sums)
        row.update(silhouette=sil, silhouette_low=low, silhouette_high=high)
        return row["k"], sums, time.perf_counter() - t

    # The silhouettes run on the threads while the next k is fitted and scored: their serial
    # parts (sample gather, bootstrap) fill the gaps of the fits' and the other way round.
    # Every job is computed whole on one thread (the same bits as on several), in_flight bounds
    # the samples held; results come back in order.
    pooled = {k: [] for k in ks}  # per k, each seed's row resamples
    threads = get_num_threads()
    job_seconds = 0.0
    for k, sums, seconds in ordered_map(silhouette_job, fitted(), in_flight=n_seeds + threads):
        job_seconds += seconds
        if sums is not None:
            pooled[k].append(sums)
    timings["silhouette"] += job_seconds / threads  # thread-seconds shared by the threads
    # the summary's interval: the seeds and their rows resampled together
    intervals = {k: pooled_from_sums(pooled[k], np.random.default_rng([random_state, RNG_SALT, k, 1])) for k in ks}
    t = time.perf_counter()
    reference = reference_inertia(X, ks, max(sample_size, 20 * ks[-1]), random_state)
    timings["reference"] = time.perf_counter() - t
    data = _document(rows, stability, intervals, ks, reference, n_rows=n, names=names, n_seeds=n_seeds,
                     random_state=random_state, clusterer=clusterer, sample_size=sample_size,
                     n_bootstrap=n_bootstrap, fit_rows=X_fit.shape[0])
    result = Sweep(data)
    result.inputs = tuple(str(p) for p in inputs)
    result.timings = dict(timings or {})
    return result


def reference_inertia(X, ks, rows, random_state):
    """Inertia per row of k-means on structureless data shaped like ``X``, for each k.

    The reference is the gap statistic's (Tibshirani, Walther and Hastie, 2001) made cheap:
    ``min(rows, n)`` rows drawn uniformly in the box along the principal axes of ``X`` (from
    the covariance of at most ``REFERENCE_ROWS`` of its rows), each axis with the data's
    variance along it, then fitted for every k by Lloyd's k-means (one seed, ``random_state``).
    Uniform rather than Gaussian: among structureless shapes of a given covariance the uniform
    box's inertia falls fastest with k (``k^(-2/d)`` at large k; a Gaussian's falls more
    slowly), so a data curve that falls faster than this one is not explained by the spread
    alone. The principal axes keep correlated or unequally scaled features from looking like
    structure (their inertia falls as fast as their few wide directions allow).

    Returns
    -------
    (len(ks),) float64, inertia divided by the reference's rows
    """
    from ..cluster import KMeans
    n, d = X.shape
    rng = np.random.default_rng([random_state, RNG_SALT, 14])
    some = X if n <= REFERENCE_ROWS else X[np.sort(rng.choice(n, REFERENCE_ROWS, replace=False))]
    some = np.asarray(some, dtype=np.float64)
    mean = some.mean(axis=0)
    cov = np.atleast_2d(np.cov(some, rowvar=False)) if some.shape[0] > 1 else np.zeros((d, d))
    variances, axes = np.linalg.eigh(cov)
    half = np.sqrt(3.0 * np.clip(variances, 0.0, None))  # uniform on [-h, h] has variance h^2 / 3
    m = min(rows, n)
    Z = rng.uniform(-1.0, 1.0, size=(m, d)) * half
    R = np.ascontiguousarray((mean + Z @ axes.T).astype(X.dtype))
    out = []
    import warnings
    for k in ks:
        with warnings.catch_warnings():  # fewer distinct rows than k: the inertia is still defined
            warnings.simplefilter("ignore")
            model = KMeans(n_clusters=k, n_init=1, max_iter=100, random_state=random_state)  # bounded: ks up to 1,000
            out.append(float(model.fit(R).inertia_) / m)
    return np.array(out)


def _fit(clusterer, k, seed, X, X_polish):
    """Centers of one fit: Lloyd's, or mini-batch polished by ``REFINE_ITER`` Lloyd passes over
    ``X_polish`` (the fitted rows, at most ``POLISH_ROWS``)."""
    from ..cluster import KMeans, MiniBatchKMeans
    if clusterer == "kmeans":
        return KMeans(n_clusters=k, n_init=1, random_state=seed).fit(X).cluster_centers_
    model = MiniBatchKMeans(n_clusters=k, random_state=seed, compute_labels=False)
    model._own_passes = False  # X is checked (_feature_matrix) and every fit is labelled and scored after
    centers = model.fit(X).cluster_centers_
    return _polish(X_polish, np.asarray(centers, dtype=X_polish.dtype), REFINE_ITER)


def _polish(X, centers, n_iter):
    """``n_iter`` Lloyd passes from ``centers`` over the rows of ``X``: the centers of
    ``segmint.cluster.kmeans._lloyd`` (same passes, same empty-cluster relocation, same bits)
    without its final labelling pass, whose labels and inertia the scoring pass recomputes."""
    from ..cluster._matrix import Features
    from ..cluster._passes import lloyd_pass
    from ..cluster.kmeans import _relocate
    data = Features(X)
    labels = np.empty(data.n_rows, dtype=np.int32)
    dist = np.empty(data.n_rows, dtype=data.dtype)
    previous = np.empty_like(labels)
    for it in range(n_iter):
        sums, wsums, _, labels, dist = lloyd_pass(data, centers, None, labels, dist)
        empty = np.flatnonzero(wsums == 0)
        if empty.size:
            _relocate(data, empty, labels, dist, None, sums, wsums)
        new = centers.copy()
        filled = wsums > 0
        new[filled] = (sums[filled] / wsums[filled, None]).astype(centers.dtype)
        unchanged = it > 0 and np.array_equal(labels, previous)
        moved = float(np.sum((new.astype(np.float64) - centers) ** 2))
        centers = new
        if unchanged or moved <= 0.0:  # _lloyd's stops (tolerance 0): later passes change nothing
            break
        np.copyto(previous, labels)
    return centers


def _clean(value):
    """JSON-able: NaN as None, numpy scalars as Python numbers."""
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


def _document(rows, stability, intervals, ks, reference, *, n_rows, names, n_seeds, random_state, clusterer,
              sample_size, n_bootstrap, fit_rows):
    summary = []
    for k in ks:
        mine = [r for r in rows if r["k"] == k]
        entry = {"k": k}
        for name in METRICS:
            values = np.array([r[name] for r in mine], dtype=np.float64)
            values = values[np.isfinite(values)]
            entry[name] = float(np.median(values)) if values.size else None
        entry["silhouette_low"], entry["silhouette_high"] = intervals[k]
        entry["stability"] = stability[k]
        summary.append(entry)
    inertia = [s["inertia"] if s["inertia"] is not None else math.nan for s in summary]
    suggested, elbow = find_elbow(ks, inertia, reference=reference)
    sampled = sample_size < n_rows
    if clusterer == "minibatch":
        fits = f"mini-batch fits polished by {REFINE_ITER} Lloyd passes over at most {POLISH_ROWS:,} rows"
    else:
        fits = "Lloyd fits, one initialisation each"
    return {
        "format": FORMAT, "version": 1, "ks": list(ks), "suggested_k": suggested, "elbow": elbow,
        "n_rows": n_rows, "features": list(names), "n_seeds": n_seeds, "random_state": random_state,
        "clusterer": clusterer, "fit_rows": fit_rows, "sample_size": sample_size, "n_bootstrap": n_bootstrap,
        "silhouette_sampled": sampled,
        "silhouette_note": (SILHOUETTE_NOTE if sampled else SILHOUETTE_ALL).format(
            sample_size=sample_size, n_bootstrap=n_bootstrap, n_rows=n_rows),
        "stability_note": STABILITY_NOTE.format(fits=fits),
        "reference_inertia": [_clean(v) for v in np.asarray(reference, dtype=np.float64) * n_rows],
        "table": [{key: _clean(v) for key, v in r.items()} for r in rows],
        "summary": [{key: _clean(v) for key, v in s.items()} for s in summary],
    }


_TABLE_SCHEMA = pa.schema([("k", pa.int64()), ("seed", pa.int64())] + [(m, pa.float64()) for m in METRICS])
_SUMMARY_SCHEMA = pa.schema([("k", pa.int64())] + [(m, pa.float64()) for m in METRICS]
                            + [("stability", pa.float64())])


class Sweep:
    """The scores of a k sweep (:func:`sweep_k`): plain data.

    Parameters
    ----------
    data : dict
        The document :meth:`to_dict` returns (``sweep_k`` builds it).

    Attributes
    ----------
    table : pyarrow.Table
        One row per (k, seed): ``k``, ``seed``, ``inertia``, ``calinski_harabasz``,
        ``davies_bouldin``, ``simplified_silhouette``, ``silhouette``, ``silhouette_low``,
        ``silhouette_high`` (bootstrap 95% interval of that fit's sampled silhouette). Null
        where a figure is undefined (fewer than two clusters with rows).
    summary : pyarrow.Table
        One row per k: the medians over seeds of the above, but ``silhouette_low`` and
        ``silhouette_high`` from a bootstrap over the seeds and their sampled rows (it covers
        the seeds' spread), and ``stability``, the mean adjusted Rand index between the
        seeds' labelings (null with one seed).
    ks : list of int
    suggested_k : int or None
        None means no clear elbow.
    elbow : dict
        ``kneedle`` (k or None), ``chord`` (k or None) and ``message`` (plain words).
    n_rows : int
    features : list of str, the feature matrix's columns
    silhouette_sampled : bool
        True when the exact silhouette was computed on a sample smaller than the data (the
        word "sampled" in notes and plots only then); also in :meth:`to_dict`.
    inputs : tuple of str
        The files the sweep read (the source's paths; the CLI adds a feature spec file): to_json
        and write_report never write over these. Empty for in-memory data; not in the document.
    timings : dict
        Seconds spent on features, fits, metrics, silhouette, stability and the reference;
        not in the document (it would differ between identical runs). The silhouettes run on
        the threads beside the other work: ``silhouette`` is their thread-seconds divided by
        the threads, and the others' wall-clock seconds include waiting for those threads, so
        the figures add up to more than the sweep's time.
    """

    def __init__(self, data):
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise DataError(f"not a sweep document (expected a dict with \"format\": \"{FORMAT}\")")
        self._data = data
        self.ks = list(data["ks"])
        self.suggested_k = data["suggested_k"]
        self.elbow = dict(data["elbow"])
        self.n_rows = data["n_rows"]
        self.features = list(data["features"])
        self.silhouette_sampled = bool(data["sample_size"] < data["n_rows"])  # as sweep_k sets the flag
        self.inputs = ()  # set by sweep_k: the files it read (a loaded document read none)
        self.timings = {}
        self.table = pa.Table.from_pylist(data["table"], schema=_TABLE_SCHEMA)
        self.summary = pa.Table.from_pylist(data["summary"], schema=_SUMMARY_SCHEMA)

    def __repr__(self):
        return f"<Sweep ks={self.ks[0]}..{self.ks[-1]} suggested_k={self.suggested_k}>"

    def to_dict(self):
        """The sweep as JSON-able plain data (``Sweep(sweep.to_dict())`` is a copy); the same
        for identical runs. ``silhouette_sampled`` says whether the silhouette is a sample's."""
        return json.loads(json.dumps(self._data))

    def to_json(self, path=None):
        """The sweep as JSON text; written atomically to ``path`` when given (then returns the text).

        Raises
        ------
        OutputError
            ``path`` is (or lies inside) one of :attr:`inputs`, or cannot be written.
        """
        text = json.dumps(self._data, indent=2) + "\n"
        if path is not None:
            from ..io.writers import write_text
            write_text(path, text, inputs=self.inputs)
        return text

    def _rows(self):
        """Per k, the cells of the printed tables (strings)."""
        out = []
        for s in self._data["summary"]:
            low, high = s["silhouette_low"], s["silhouette_high"]
            out.append([str(s["k"]), _num(s["inertia"], "{:.4g}"), _num(s["calinski_harabasz"], "{:,.1f}"),
                        _num(s["davies_bouldin"], "{:.3f}"), _num(s["simplified_silhouette"], "{:.3f}"),
                        _num(s["silhouette"], "{:.3f}"),
                        f"[{_num(low, '{:.3f}')}, {_num(high, '{:.3f}')}]",
                        _num(s["stability"], "{:.3f}")])
        return out

    _HEADER = ["k", "inertia", "Calinski-Harabasz", "Davies-Bouldin", "simplified silhouette", "silhouette",
               "95% interval", "stability (ARI)"]

    def _notes(self):
        d = self._data
        fit = "all rows" if d["fit_rows"] == d["n_rows"] else f"{d['fit_rows']:,} sampled rows"
        stability = d.get("stability_note", "stability: mean adjusted Rand index between the seeds' labelings")
        return [f"{d['n_rows']:,} rows x {len(d['features'])} features; {d['n_seeds']} seed(s) per k "
                f"(random_state {d['random_state']}); {d['clusterer']} fitted on {fit}; medians over seeds",
                d["silhouette_note"], stability,
                f"suggested k: {self.suggested_k if self.suggested_k is not None else 'none'} "
                f"({self.elbow['message']})"]

    def to_markdown(self):
        """The summary as a Markdown table with its notes."""
        lines = ["| " + " | ".join(self._HEADER) + " |", "|" + "---:|" * len(self._HEADER)]
        lines += ["| " + " | ".join(r) + " |" for r in self._rows()]
        return "\n".join(lines) + "\n\n" + "\n".join(f"- {note}" for note in self._notes()) + "\n"

    def __str__(self):
        rows = [self._HEADER] + self._rows()
        widths = [max(len(r[j]) for r in rows) for j in range(len(self._HEADER))]
        text = ["  ".join(cell.rjust(w) for cell, w in zip(r, widths)) for r in rows]
        return "\n".join(text) + "\n" + "\n".join(self._notes())


def _num(value, fmt):
    return "-" if value is None else fmt.format(value)
