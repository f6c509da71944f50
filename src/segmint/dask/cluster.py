"""KMeans and MiniBatchKMeans fits and predictions on a Dask cluster, bit-identical to local segmint.

The data are cut into blocks of fixed global rows (:mod:`.data`), a multiple of local
segmint's 65,536-row accumulation chunk. Every data pass maps one task per block; a task runs
the kernels of the local pass (:func:`segmint.cluster._passes.lloyd_piece`) on each 65,536-row
chunk of its block and returns that chunk's partials (sums, weights, inertia), never combined
across chunks; the client combines them in chunk order exactly as the local pass does
(:func:`segmint.cluster._passes.combine_lloyd`). The iteration loop, the seeding and the stops
are local segmint's own code (:meth:`segmint.KMeans._fit_matrix`, :func:`segmint.cluster.kmeans._lloyd`)
run on the client with the data passes below, so the fitted model has the same bits for any
number of workers, threads and input partitions, and equals a local fit on the same rows.

Seeding is k-means++ on a distributed sample: the client draws the same sample indices local
segmint draws (same generator, same calls, same order), gathers those rows from the blocks in
one task per block, and runs the local greedy k-means++ on them. The result is identical to the
local fit, costs one gathering pass, and sends the scheduler one small task per block, where
k-means|| (dask-ml) runs several full passes and can flood the scheduler with tasks.

Sample weights (a column of the input, or an array aligned with its rows) stay on the workers
with the blocks: the tasks weigh their partials with them as the local passes do, and the
client gathers only the weights of the rows it gathers (the seeding sample, the mini-batches).
"""
import numpy as np

from .._estimator import NotFittedError
from .._lazy import lazy_import
from ..cluster._matrix import FeatureError, check_centers, nonfinite_error, value_limit
from ..cluster._passes import CHUNK, _EMPTY, assign_rows, combine_lloyd, lloyd_piece, ordered_total, prepare
from ..errors import UnsupportedTypeError
from .data import _check_block, digest, feature_blocks, get_client, kernel_weights
from .chunks import CHUNK_ROWS

kr = lazy_import("segmint.kernels.reduce")
kre = lazy_import("segmint.kernels.reassign")
da = lazy_import("dask.array")

SUPPORTED = "segmint.KMeans and segmint.MiniBatchKMeans"
INLINE_BYTES = 1 << 20  # centers up to this size travel inside the tasks (see DaskPasses._scatter)


def _estimator_kind(estimator):
    from ..cluster.kmeans import KMeans
    from ..cluster.minibatch import MiniBatchKMeans
    if isinstance(estimator, MiniBatchKMeans):
        return "minibatch"
    if isinstance(estimator, KMeans):
        return "kmeans"
    raise UnsupportedTypeError(f"segmint.dask fits {SUPPORTED}, got {type(estimator).__name__}")


def fit(estimator, data, columns=None, *, client=None, rows_per_chunk=CHUNK_ROWS, persist=True,
        sample_weight=None):
    """Fit a segmint KMeans or MiniBatchKMeans on data spread over a Dask cluster.

    The fitted model (``cluster_centers_``, ``inertia_``, ``n_iter_``, ``n_features_in_``,
    ``feature_names_in_``; ``n_steps_`` for MiniBatchKMeans) has the bits of
    ``estimator.fit(...)`` run locally on the same rows with the same parameters and seed, for
    any number of workers, threads per worker and input partitions. ``labels_`` is not kept
    (it would gather one int32 per row on the client): use :func:`predict`.

    KMeans: each Lloyd iteration sends the centers with the tasks (broadcast once when
    larger than 1 MB) and maps one task per block; the
    tasks return per-chunk partial sums, weights and inertia and a digest of their labels (for
    the strict-convergence stop); an empty cluster takes the farthest rows by one more
    distributed pass, as locally. MiniBatchKMeans: the mini-batch rows are drawn on the client
    as locally and gathered in one distributed take per round of draws; the center updates are
    sequential and run on the client (only the gathering is distributed); then one distributed
    pass for the inertia (and ``refine_iter`` Lloyd passes when set).

    Parameters
    ----------
    estimator : segmint.KMeans or segmint.MiniBatchKMeans
        Fitted in place and returned.
    data : str, Path, list of them, dask DataFrame, dask array, numpy array, pyarrow Table or pandas DataFrame
        A Parquet file, folder or list of files (each task reads its own chunk), a dask
        DataFrame, a 2-D dask array, or in-memory data scattered to the workers: a numpy
        array, a pyarrow Table or a pandas DataFrame (columns selected by name and converted
        as ``estimator.fit`` converts them).
    columns : list of str, optional
        Feature columns (default: every numeric and boolean column but the ``sample_weight``
        column).
    client : distributed.Client, optional
        Default: the current client.
    rows_per_chunk : int, default 1,048,576
        Rows per block (a multiple of 65,536); the result does not depend on it.
    persist : bool, default True
        Keep the feature blocks in the workers' memory during the fit (``n_rows x n_features x
        itemsize`` bytes over the cluster), released at the end; False reads the Parquet files
        (or computes the dask collection) again in every pass, for data larger than the
        cluster's memory.
    sample_weight : str, array-like, dask array or dask Series, optional
        The name of a column of ``data`` (a Parquet dataset, a dask DataFrame or an in-memory
        table: read with the features, never a feature unless named in ``columns``), or one
        weight per row: a numpy array (or a list...), a 1-D dask array or dask Series (any
        chunking). The model equals ``estimator.fit(X, sample_weight=w)`` with the same weights,
        bit for bit; negative, NaN, infinite, all-zero weights or a wrong length raise local
        segmint's ParameterError.

    Returns
    -------
    estimator
    """
    kind = _estimator_kind(estimator)
    client = get_client(client)
    from ..cluster.kmeans import _check_size
    if kind == "kmeans":
        k, n_init, max_iter, tol, verbose = estimator._check_fit_params()
    else:
        estimator._check_params()
        k = estimator._k
    blocks = feature_blocks(data, columns, client=client, rows_per_chunk=rows_per_chunk, persist=persist,
                            sample_weight=sample_weight)
    try:
        estimator.n_features_in_ = blocks.n_features
        if blocks.names is not None:
            estimator.feature_names_in_ = np.asarray(blocks.names, dtype=object)
        elif hasattr(estimator, "feature_names_in_"):
            del estimator.feature_names_in_
        _check_size(blocks, k)
        passes = DaskPasses(blocks, k)
        # the local order: the features' check, then the weights'
        if kind == "kmeans" or estimator._own_passes:
            blocks.check_finite()
        blocks.check_weights()
        w = blocks.weights()
        if kind == "kmeans":
            estimator._fit_matrix(blocks, w, k, n_init, max_iter, tol, verbose, passes)
        else:
            estimator._fit_matrix(blocks, w, passes)
        if hasattr(estimator, "labels_"):
            del estimator.labels_
        if kind == "kmeans":
            _warn_distinct(passes.counts_of(estimator.inertia_), k)
    finally:
        blocks.release()
    return estimator


def _warn_distinct(counts, k):
    from .._estimator import ConvergenceWarning
    import warnings
    distinct = int(np.count_nonzero(counts))
    if distinct < k:  # local fit's warning (segmint.cluster._base.warn_distinct)
        warnings.warn(f"Number of distinct clusters ({distinct}) found smaller than n_clusters "
                      f"({k}). Possibly due to duplicate points in X.", ConvergenceWarning, stacklevel=3)


class DaskPasses:
    """The data passes of a Lloyd run over :class:`~.data.Blocks` (the local fit's loop calls
    them as it calls :class:`segmint.cluster.kmeans.LocalPasses`)."""

    def __init__(self, blocks, k):
        self.blocks, self.k = blocks, k
        self.digests = self.previous = None
        self.prepared = None
        self.finals = []  # (inertia, label counts) of each run's final pass

    def _scatter(self, centers):
        """The prepared centers as the pass's tasks receive them.

        Segmentation centers are small (k x d floats: 16 x 16 float32 is 1 KB), so they travel
        inside each task, which is cheaper than a scatter round trip and survives a lost worker
        (scattered data cannot be recomputed, and a broadcast to a worker that just died fails).
        Above ``INLINE_BYTES`` they are broadcast to every worker once per pass instead.
        """
        prepared = prepare(np.asarray(centers).astype(self.blocks.dtype, copy=False))
        if prepared[0].nbytes <= INLINE_BYTES:
            return prepared
        [future] = self.blocks.client.scatter([prepared], broadcast=True, hash=False)
        return future

    def lloyd(self, centers):
        self.prepared = self._scatter(centers)
        results = self.blocks.map(_lloyd_block, self.prepared, self.k, with_weights=True)
        sums = np.concatenate([r[0] for r in results])
        wsums = np.concatenate([r[1] for r in results])
        partial = np.concatenate([r[2] for r in results])
        # Strict convergence compares each block's labels with the previous pass's through a
        # 16-byte digest (kernels.hashing.labels_digest) instead of shipping n labels: equal
        # labels give equal digests, one changed label always changes it, and more changes
        # collide only by chance (~2^-64 per hash), so the stop is the local one in practice.
        self.digests = [r[3] for r in results]
        return combine_lloyd(sums, wsums, partial)

    def relocate(self, empty, sums, wsums):
        """Local ``_relocate``: the farthest rows of the pass (ties to the lowest row) fill the
        empty centers; each block sends its own top ``m``, which hold the global top ``m``."""
        from ..cluster.kmeans import farthest
        m = empty.size
        results = self.blocks.map(_far_block, self.prepared, self.k, m, with_weights=True)
        dist = np.concatenate([r[0] for r in results])
        rows_idx = np.concatenate([start + r[1] for start, r in zip(self.blocks.starts.tolist(), results)])
        labels = np.concatenate([r[2] for r in results])
        rows = np.concatenate([r[3] for r in results])
        order = np.argsort(rows_idx, kind="stable")  # positions in row order: farthest breaks ties by them
        pick = order[farthest(dist[order], m)]
        # local _relocate's weights: ones, or the rows' weights (in the features' dtype) as float64
        weights = np.concatenate([r[4] for r in results])[pick].astype(np.float64) if self.blocks.weighted \
            else np.ones(m)
        kre.relocate_empty(np.ascontiguousarray(rows[pick]), weights, labels[pick].astype(np.int32),
                           empty.astype(np.int64), sums, wsums)

    def labels_unchanged(self):
        return self.previous is not None and self.previous == self.digests

    def remember_labels(self):
        self.previous = self.digests

    def final(self, centers, want_labels=True):
        """(None, inertia) of ``centers``: labels stay on the workers (see :func:`predict`)."""
        prepared = self._scatter(centers)
        results = self.blocks.map(_assign_block, prepared, self.k, with_weights=True)
        inertia = ordered_total(np.concatenate([r[0] for r in results]))
        self.finals.append((inertia, sum(r[1] for r in results)))
        return None, inertia

    def counts_of(self, inertia):
        """Label counts of the run the fit kept: the first with the lowest inertia, as the fit
        keeps it."""
        return next(counts for value, counts in self.finals if value == inertia)


# -- tasks (run on workers) ------------------------------------------------------------------
def _chunk_bounds(m):
    return [(lo, min(m, lo + CHUNK)) for lo in range(0, m, CHUNK)]


def _lloyd_block(X, prepared, k, w=None):
    """Per 65,536-row chunk of the block: Lloyd sums, weights, inertia; and a labels digest
    (``w``: the block's float64 sample weights, or None)."""
    C2, cn = prepared
    m, d = X.shape
    bounds = _chunk_bounds(m)
    sums = np.zeros((len(bounds), k, d), dtype=np.float64)
    wsums = np.zeros((len(bounds), k), dtype=np.float64)
    partial = np.zeros((len(bounds), 1), dtype=np.float64)
    labels = np.empty(m, dtype=np.int32)
    dist = np.empty(m, dtype=X.dtype)
    w = kernel_weights(w, X.dtype)
    for c, (lo, hi) in enumerate(bounds):
        lloyd_piece(X, lo, hi, w, C2, cn, labels, dist, sums[c], wsums[c], partial[c])
    return sums, wsums, partial[:, 0], digest(labels)


def _far_block(X, prepared, k, m, w=None):
    """The block's ``m`` farthest rows of the pass (distances as the Lloyd pass computed them):
    (distances, block row indices, labels, rows, their weights in X's dtype or None)."""
    from ..cluster.kmeans import farthest
    C2, cn = prepared
    n, d = X.shape
    labels = np.empty(n, dtype=np.int32)
    dist = np.empty(n, dtype=X.dtype)
    sums = np.zeros((k, d), dtype=np.float64)
    wsums = np.zeros(k, dtype=np.float64)
    partial = np.zeros(1, dtype=np.float64)
    for lo, hi in _chunk_bounds(n):
        lloyd_piece(X, lo, hi, _EMPTY[X.dtype], C2, cn, labels, dist, sums, wsums, partial)
    far = np.sort(farthest(dist, m))
    return dist[far], far, labels[far], np.ascontiguousarray(X[far]), \
        None if w is None else kernel_weights(w, X.dtype)[far]


def _assign_block(X, prepared, k, w=None):
    """Per chunk: the inertia partial of local ``assign_pass``; and the block's label counts."""
    C2, cn = prepared
    n = X.shape[0]
    bounds = _chunk_bounds(n)
    partial = np.zeros((len(bounds), 1), dtype=np.float64)
    labels = np.empty(n, dtype=np.int32)
    w = kernel_weights(w, X.dtype)
    for c, (lo, hi) in enumerate(bounds):
        dis = np.empty(hi - lo, dtype=X.dtype)  # the calls of local assign_pass, piece by piece
        assign_rows(X, lo, hi, C2, cn, labels, 0, dis, lo, True)
        kr.weighted_sum(dis, w[lo:hi] if w.size else w, 0, hi - lo, partial[c])
    return partial[:, 0], np.bincount(labels, minlength=k)


def _predict_block(X, prepared, start, names):
    """Labels of a block as local ``predict`` computes them; NaN, infinities or values beyond the
    limit raise local predict's error (rows counted globally)."""
    C2, cn = prepared
    n = X.shape[0]
    labels = np.empty(n, dtype=np.int32)
    nodist = np.empty(0, dtype=X.dtype)
    bad = False
    for lo, hi in _chunk_bounds(n):
        bad |= assign_rows(X, lo, hi, C2, cn, labels, 0, nodist, lo, False) > 0
    if bad:
        d = X.shape[1]
        counts, nonfinite, first_big = _check_block(X, value_limit(X.dtype, d))
        if counts.any():
            raise nonfinite_error(names, d, X.dtype, nonfinite,
                                  {j: (start + r, v) for j, (r, v) in first_big.items()})
        raise FeatureError(f"the features: the squared distances to the centers overflow {X.dtype}; values "
                           f"close to ±{value_limit(X.dtype, d):.3g} are too large to cluster: rescale them "
                           "first (e.g. standardise or log)")
    return labels


def predict(estimator, data, columns=None, *, client=None, rows_per_chunk=CHUNK_ROWS):
    """Labels of every row as a lazy dask array (int32), one chunk per block of rows.

    Equal bit for bit to ``estimator.predict(...)`` locally on the same rows: each block runs
    local predict's assignment kernel with the model's centers.

    Parameters
    ----------
    estimator : fitted segmint.KMeans or segmint.MiniBatchKMeans
    data : str, Path, list of them, dask DataFrame, dask array, numpy array, pyarrow Table or pandas DataFrame
        As in :func:`fit` (a table's columns selected by name).
    columns : list of str, optional
        Default: the columns the model was fitted on (every numeric column if it was fitted on
        an array).
    client : distributed.Client, optional
    rows_per_chunk : int, default 1,048,576

    Returns
    -------
    dask.array.Array
        (n_rows,) int32, chunks of ``rows_per_chunk`` rows; nothing runs until computed (a dask
        DataFrame's partition lengths are computed first, to cut the chunks).
    """
    _estimator_kind(estimator)
    if not hasattr(estimator, "cluster_centers_"):
        raise NotFittedError(f"This {type(estimator).__name__} instance is not fitted yet. Call "
                             "segmint.dask.fit (or fit) before predict.")
    centers = np.asarray(estimator.cluster_centers_)
    check_centers(centers)
    client = get_client(client)
    names = getattr(estimator, "feature_names_in_", None)
    if columns is None and names is not None and not _is_arrayish(data):
        columns = list(names)
    blocks = feature_blocks(data, columns, client=client, rows_per_chunk=rows_per_chunk, persist=False,
                            dtype=centers.dtype)
    if blocks.n_features != estimator.n_features_in_:
        raise FeatureError(f"X has {blocks.n_features} features, but {type(estimator).__name__} is "
                           f"expecting {estimator.n_features_in_} features as input")
    prepared = prepare(centers)
    if not blocks.n_rows:
        return da.zeros((0,), dtype=np.int32)
    sizes = np.diff(np.append(blocks.starts, blocks.n_rows)).tolist()
    parts = [da.from_delayed(task, shape=(rows,), dtype=np.int32)
             for task, rows in zip(blocks.delayed(_predict_block_at, prepared, blocks.names), sizes)]
    return da.concatenate(parts) if len(parts) > 1 else parts[0]


def _predict_block_at(X, prepared, names, *, start=0):
    return _predict_block(X, prepared, start, names)


def _is_arrayish(data):
    """Data without column names (a numpy or dask array): not a frame, not paths (a dask
    DataFrame has ``__array__`` too, and a list of files is array-like)."""
    from ..cluster._matrix import _is_array_like
    from .data import _is_dask_dataframe, _is_paths
    if _is_dask_dataframe(data) or _is_paths(data):
        return False
    return _is_array_like(data) or (type(data).__module__.split(".")[0] == "dask" and not hasattr(data, "columns"))
