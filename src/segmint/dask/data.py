"""Clustering input as chunk-aligned feature blocks on a Dask cluster.

(Scoring and warm-up cut their table input in :mod:`segmint.dask._inputs`; this module builds
the float feature matrices clustering iterates over.) :func:`feature_blocks` turns a Parquet file,
folder or list of files, a dask DataFrame, a dask array or a numpy array into :class:`Blocks`:
one (rows, d) float matrix per chunk of fixed
global rows (every block but the last holds ``rows_per_chunk`` rows, a multiple of local
segmint's 65,536-row accumulation chunk), built on the workers exactly as local
:class:`segmint.cluster._matrix.Features` builds it from the same columns (same dtype rule, same
errors naming the column). A task over a block therefore sees the rows a local pass sees, in
the same chunks, and its per-chunk partials combine into local segmint's bits.

Memory: with ``persist=True`` (the default) the blocks stay on the workers for the whole fit,
``n_rows x n_features x itemsize`` bytes spread over the cluster (10M x 16 float32: 640 MB), so
Lloyd iterations do not read the files again. ``persist=False`` keeps nothing: every pass reads
(Parquet) or computes (dask collections) the blocks again, for data larger than the cluster's
memory. A numpy array is always scattered (it is in memory already); its blocks, unlike the
others, cannot be recomputed if a worker is lost.
"""
import hashlib
import os

import numpy as np

from .._lazy import lazy_import
from ..cluster._matrix import Features, FeatureError, nonfinite_error, value_limit, _is_array_like
from ..errors import ParameterError, UnsupportedTypeError, unknown_column
from ..io.columns import BOOLEAN, NUMERIC, column_kind
from . import chunks as _chunks
from ._inputs import resolve_client as get_client  # one rule for client=, shared with scoring

ka = lazy_import("segmint.kernels.assign")
dask = lazy_import("dask")
distributed = lazy_import("distributed")


class Blocks:
    """Feature blocks of fixed global rows on a cluster, shaped like local Features for the fit.

    Attributes
    ----------
    n_rows, n_features : int
    dtype : numpy dtype (float32 or float64)
    names : list of str or None (an array's features have no names)
    starts : (n_blocks,) int64, the first global row of each block
    refs : list, one per block: a ``distributed.Future`` holding the matrix (persisted or
        scattered), a :class:`~segmint.dask.chunks.Chunk` (read again by every task) or a
        ``dask.delayed`` object (computed again by every pass)
    array : None (the estimators' code reads rows through :meth:`take`)
    """

    array = None

    def __init__(self, client, refs, starts, n_rows, n_features, dtype, names, label):
        self.client = client
        self.refs = list(refs)
        self.starts = np.asarray(starts, dtype=np.int64)
        self.n_rows, self.n_features = int(n_rows), int(n_features)
        self.dtype = np.dtype(dtype)
        self.names = names
        self.label = label
        self.random_access = True

    # -- running tasks over the blocks ------------------------------------------------------
    def map(self, fn, *args, blocks=None, **kwargs):
        """``fn(X, *args, **kwargs)`` on the matrix of each block (``blocks``: their indices,
        default all); results in block order. ``args`` may hold futures (scattered centers)."""
        which = range(len(self.refs)) if blocks is None else blocks
        refs = [self.refs[b] for b in which]
        if not refs:
            return []
        if isinstance(refs[0], (distributed.Future, _chunks.Chunk)):
            futures = self.client.map(_on_block, refs, fn=fn, args=args, kwargs=kwargs, names=self.names,
                                      dtype=self.dtype, pure=False)
        else:
            futures = self.client.compute([dask.delayed(_on_block)(r, fn=fn, args=args, kwargs=kwargs,
                                                                   names=self.names, dtype=self.dtype)
                                           for r in refs])
        return self.client.gather(futures)

    def delayed(self, fn, *args):
        """One ``dask.delayed`` call ``fn(X, *args, start=<the block's first row>)`` per block,
        in block order; nothing runs until computed."""
        return [dask.delayed(_on_block, pure=True)(r, fn=fn, args=args, kwargs={"start": int(s)},
                                                   names=self.names, dtype=self.dtype)
                for r, s in zip(self.refs, self.starts.tolist())]

    def release(self):
        """Drop the persisted blocks (the workers free their memory)."""
        futures = [r for r in self.refs if isinstance(r, distributed.Future)]
        if futures:
            self.client.cancel(futures)
        self.refs = []

    # -- what the local fit code reads --------------------------------------------------------
    def take(self, indices, out=None):
        """Rows at ``indices`` (any order, repeats allowed) as a C-ordered (len, d) array: one
        task per block holding some of them (a distributed take)."""
        indices = np.ascontiguousarray(indices, dtype=np.int64)
        if out is None:
            out = np.empty((indices.size, self.n_features), dtype=self.dtype)
        else:
            out = out[:indices.size]
        if indices.size == 0:
            return out
        which = np.searchsorted(self.starts, indices, side="right") - 1
        order = np.argsort(which, kind="stable")  # positions grouped by block, in one sort
        used, first = np.unique(which[order], return_index=True)
        sels = np.split(order, first[1:])
        for sel, part in zip(sels, self._take(used, sels, indices)):
            out[sel] = part
        return out

    def _take(self, used, sels, indices):
        refs = [self.refs[b] for b in used]
        locals_ = [indices[sel] - self.starts[b] for b, sel in zip(used, sels)]
        if isinstance(refs[0], (distributed.Future, _chunks.Chunk)):
            futures = self.client.map(_take_on_block, refs, locals_, names=self.names, dtype=self.dtype,
                                      pure=False)
        else:
            futures = self.client.compute([dask.delayed(_take_on_block)(r, loc, names=self.names,
                                                                        dtype=self.dtype)
                                           for r, loc in zip(refs, locals_)])
        return self.client.gather(futures)

    @property
    def limit(self):
        return value_limit(self.dtype, self.n_features)

    def check_finite(self):
        """Raise :class:`FeatureError` naming every column with NaN, infinities or values beyond
        the limit (one distributed pass; the message local segmint gives)."""
        results = self.map(_check_block, self.limit)
        counts = sum(r[0] for r in results)
        if not counts.any():
            return
        nonfinite = np.zeros(self.n_features, dtype=np.int64)
        first_big = {}
        for start, (_, nf, big) in zip(self.starts.tolist(), results):
            nonfinite += nf
            for j, (row, text) in big.items():
                first_big.setdefault(j, (start + row, text))  # blocks in row order: the first
        raise nonfinite_error(self.names, self.n_features, self.dtype, nonfinite, first_big)


# -- tasks (run on workers) ------------------------------------------------------------------
def _on_block(ref, fn, args, kwargs, names, dtype):
    return fn(_matrix(ref, names, dtype), *args, **kwargs)


def _take_on_block(ref, local, names, dtype):
    return np.ascontiguousarray(_matrix(ref, names, dtype)[local])


def _matrix(ref, names, dtype):
    """The block's matrix: as is, or read from its chunk's files."""
    if isinstance(ref, _chunks.Chunk):
        return load_chunk(ref, names, dtype)
    return ref


def load_chunk(chunk, names, dtype):
    """A Parquet chunk's (rows, d) feature matrix, built as local Features builds it."""
    table = _chunks.read_chunk(chunk, names)
    return table_matrix(table, names, dtype, f"{chunk.label} (rows {chunk.start:,} to "
                                              f"{chunk.start + chunk.rows - 1:,})")


def table_matrix(table, names, dtype, where):
    """(rows, d) matrix of ``names`` of a pyarrow Table or pandas DataFrame, converted by local
    :class:`Features` (its columns read through the same views, cast the same way)."""
    f = Features(table, columns=names, dtype=dtype)
    nulls = {n: f.source.column(n).null_count for n in names}
    bad = {n: c for n, c in nulls.items() if c}
    if bad:
        detail = ", ".join(f"{n!r} has {c:,} null{'s' if c != 1 else ''}" for n, c in bad.items())
        raise FeatureError(f"feature columns hold nulls: {detail} in {where}; impute them first "
                           "(e.g. fill with the median) or leave those rows out")
    # feature-major, as local blocks are (the kernels copy each feature contiguously)
    buf = np.empty((len(names), f.n_rows), dtype=f.dtype)
    for start, block in f.blocks(batch_size=max(1, f.n_rows)):
        buf[:, start:start + block.shape[0]] = block.T
    return buf.T


def _check_block(X, limit):
    """(counts beyond the limit or not finite, NaN/inf counts, {feature: (row, text)} of the
    first finite value beyond the limit) of one block, per feature."""
    counts = np.zeros(X.shape[1], dtype=np.int64)
    ka.count_beyond(X, 0, X.shape[0], limit, counts)
    nonfinite = np.zeros(X.shape[1], dtype=np.int64)
    first_big = {}
    for j in np.flatnonzero(counts).tolist():
        col = np.asarray(X[:, j])
        finite = np.isfinite(col)
        nonfinite[j] = int((~finite).sum())
        rows = np.flatnonzero(finite & (np.abs(col) > limit))
        if rows.size:
            first_big[j] = (int(rows[0]), str(col[rows[0]]))
    return counts, nonfinite, first_big


def _slices_matrix(parts, dtype):
    """One block from ``[(matrix, lo, hi), ...]`` pieces of consecutive partitions."""
    if len(parts) == 1:
        X, lo, hi = parts[0]
        return X[lo:hi]
    return np.concatenate([X[lo:hi] for X, lo, hi in parts]).astype(dtype, copy=False)


def _frame_matrix(frame, names, dtype, index):
    return table_matrix(frame, names, dtype, f"partition {index} of the dask DataFrame")


def _array_matrix(block, dtype):
    return np.asarray(block).astype(dtype, copy=False)


def digest(labels):
    """A 16-byte blake2b digest of a block's labels (strict convergence without shipping them)."""
    return hashlib.blake2b(labels.tobytes(), digest_size=16).digest()


# -- building the blocks ---------------------------------------------------------------------
def feature_blocks(data, columns=None, *, client=None, rows_per_chunk=_chunks.CHUNK_ROWS, persist=True,
                   dtype=None):
    """Cut clustering input into chunk-aligned feature blocks on the cluster.

    Parameters
    ----------
    data : str, Path, list of them, dask DataFrame, dask array or numpy array
        A Parquet file, folder or list of files (chunks cut from the footers; each task reads
        its own rows); a dask DataFrame (``columns`` selected, each partition converted, rows
        regrouped into chunks); a 2-D dask or numpy array (a numpy array is scattered).
    columns : list of str, optional
        Feature columns (default: every numeric and boolean column, as local segmint).
    client : distributed.Client, optional
        Default: the current client.
    rows_per_chunk : int
        Rows per block, a positive multiple of 65,536.
    persist : bool, default True
        Keep the blocks in the workers' memory (``n_rows x n_features x itemsize`` bytes over
        the cluster) until :meth:`Blocks.release`; False reads or computes them again in every
        pass (data larger than the cluster's memory).
    dtype : float32 or float64, optional
        Default: local segmint's rule (float32 when every feature is float32, else float64).

    Returns
    -------
    Blocks
    """
    client = get_client(client)
    if (isinstance(rows_per_chunk, bool) or not isinstance(rows_per_chunk, int)
            or rows_per_chunk <= 0 or rows_per_chunk % _chunks.ALIGN):
        raise ParameterError(f"rows_per_chunk must be a positive multiple of {_chunks.ALIGN:,}, "
                             f"got {rows_per_chunk!r}")
    if _is_dask_dataframe(data):
        return _from_dask_frame(client, data, columns, rows_per_chunk, persist, dtype)
    if _is_dask_array(data):
        if columns is not None:
            raise FeatureError("columns= names columns of a table or file; a dask array has none")
        return _from_dask_array(client, data, rows_per_chunk, persist, dtype)
    if _is_paths(data):  # before array-likes: a list of file names is array-like too
        return _from_parquet(client, data, columns, rows_per_chunk, persist, dtype)
    if _is_array_like(data):
        return _from_numpy(client, data, columns, rows_per_chunk, dtype)
    raise UnsupportedTypeError(f"segmint.dask clusters a Parquet path, a dask DataFrame, a dask array or a "
                               f"numpy array, got {type(data).__name__}")


def _is_paths(data):
    """A path, or a non-empty list or tuple of paths (Parquet files)."""
    if isinstance(data, (str, os.PathLike)):
        return True
    return isinstance(data, (list, tuple)) and bool(data) and all(isinstance(p, (str, os.PathLike)) for p in data)


def _is_dask_dataframe(data):
    return type(data).__module__.split(".")[0] in ("dask", "dask_expr") and hasattr(data, "map_partitions") \
        and hasattr(data, "columns")


def _is_dask_array(data):
    return type(data).__module__.split(".")[0] == "dask" and hasattr(data, "blocks") and hasattr(data, "chunks") \
        and not hasattr(data, "columns")


def _starts(n, rows_per_chunk):
    return np.arange(0, max(n, 1), rows_per_chunk, dtype=np.int64)[:max(1, -(-n // rows_per_chunk))]


def _feature_names(schema, columns, label):
    """Feature columns of a Parquet dataset, checked as local Features checks them."""
    if columns is not None and (isinstance(columns, str) or not all(isinstance(c, str) for c in columns)):
        raise ParameterError(f"columns= must be a list of column names, got {columns!r:.80}")
    if columns is not None and len(columns) == 0:
        raise ParameterError("columns=[] names no column: name at least one, or leave columns= out "
                             "to use every numeric column")
    names = list(columns) if columns is not None else [
        f.name for f in schema if column_kind(f.type) in (NUMERIC, BOOLEAN)]
    for name in names:
        if name not in schema.names:
            raise unknown_column(name, schema.names, label)
    return names


def _from_parquet(client, path, columns, rows_per_chunk, persist, dtype):
    ds = _chunks.parquet_chunks(path, rows_per_chunk)
    names = _feature_names(ds.schema, columns, ds.label)
    # the dtype rule and the type checks of local Features, on the dataset's (empty) schema
    shape = Features(ds.schema.empty_table(), columns=names, dtype=dtype)
    refs = list(ds.chunks)
    if persist:
        refs = client.map(load_chunk, refs, names=names, dtype=shape.dtype, pure=False)
    return Blocks(client, refs, [c.start for c in ds.chunks], ds.num_rows, len(names), shape.dtype,
                  names, ds.label)


def _from_numpy(client, data, columns, rows_per_chunk, dtype):
    f = Features(data, columns=columns, dtype=dtype)  # local checks and dtype conversion
    X = f.array
    starts = _starts(f.n_rows, rows_per_chunk)
    refs = client.scatter([X[s:s + rows_per_chunk] for s in starts.tolist()], hash=False)
    return Blocks(client, refs, starts, f.n_rows, f.n_features, f.dtype, None, "the array")


def _regroup(client, parts, lengths, d, dtype, rows_per_chunk, persist):
    """Blocks of ``rows_per_chunk`` rows from partition matrices of the given lengths."""
    bounds = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    n = int(bounds[-1])
    starts = _starts(n, rows_per_chunk)
    refs = []
    for s in starts.tolist():
        e = min(s + rows_per_chunk, n)
        pieces = []
        for p in range(len(parts)):
            lo, hi = max(s, bounds[p]), min(e, bounds[p + 1])
            if hi > lo:
                pieces.append((parts[p], int(lo - bounds[p]), int(hi - bounds[p])))
        if persist:
            refs.append(client.submit(_slices_matrix, pieces, dtype, pure=False))
        else:
            refs.append(dask.delayed(_slices_matrix)(pieces, dtype))
    if n == 0:
        refs = [client.submit(np.empty, (0, d), dtype)] if persist else [dask.delayed(np.empty)((0, d), dtype)]
    return refs, starts, n


def _from_dask_frame(client, frame, columns, rows_per_chunk, persist, dtype):
    meta = frame._meta
    if columns is not None and not isinstance(columns, str) and all(isinstance(c, str) for c in columns):
        for name in columns:
            if name not in meta.columns:
                raise unknown_column(name, [str(c) for c in meta.columns], "the dask DataFrame")
    shape = Features(meta, columns=columns, dtype=dtype)  # names, type checks, dtype rule
    names = shape.names
    parts = [dask.delayed(_frame_matrix)(p, names, shape.dtype, i)
             for i, p in enumerate(frame[names].to_delayed())]
    return _from_parts(client, parts, len(names), shape.dtype, names, rows_per_chunk, persist,
                       "the dask DataFrame")


def _from_parts(client, parts, d, dtype, names, rows_per_chunk, persist, label, lengths=None):
    if persist:
        parts = client.compute(parts)
    if lengths is None:
        if persist:
            lengths = client.gather(client.map(len, parts, pure=False))
        else:
            lengths = client.gather(client.compute([dask.delayed(len)(p) for p in parts]))
    refs, starts, n = _regroup(client, parts, lengths, d, dtype, rows_per_chunk, persist)
    if persist:
        distributed.wait(refs)
        del parts  # the blocks hold the rows now; the partitions' lineage stays for recomputation
    return Blocks(client, refs, starts, n, d, dtype, names, label)


def _from_dask_array(client, arr, rows_per_chunk, persist, dtype):
    if arr.ndim != 2:
        raise FeatureError(f"expected a 2-D array (rows x features), got {arr.ndim} dimension(s)")
    if arr.shape[1] == 0:
        raise FeatureError(f"0 feature(s) (shape={arr.shape}) while a minimum of 1 is required.")
    if arr.dtype.kind not in "fiub":
        raise FeatureError(f"expected a numeric array, got dtype {arr.dtype}")
    target = np.dtype(dtype) if dtype is not None else (
        arr.dtype if arr.dtype in (np.float32, np.float64) else np.dtype(np.float64))
    if target not in (np.float32, np.float64):
        raise FeatureError(f"dtype must be float32 or float64, got {target}")
    arr = arr.rechunk({1: -1})
    lengths = None if any(np.isnan(c) for c in arr.chunks[0]) else list(arr.chunks[0])
    parts = [dask.delayed(_array_matrix)(b, target) for b in arr.to_delayed()[:, 0]]
    return _from_parts(client, parts, arr.shape[1], target, None, rows_per_chunk, persist, "the dask array",
                       lengths=lengths)
