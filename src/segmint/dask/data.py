"""Clustering input as chunk-aligned feature blocks on a Dask cluster.

(Scoring and warm-up cut their table input in :mod:`segmint.dask._inputs`; this module builds
the float feature matrices clustering iterates over.) :func:`feature_blocks` turns a Parquet file,
folder or list of files, a dask DataFrame, a dask array, a numpy array or an in-memory table (a
pyarrow Table or a pandas DataFrame) into :class:`Blocks`: one (rows, d) float matrix per chunk of
fixed global rows (every block but the last holds ``rows_per_chunk`` rows, a multiple of local
segmint's 65,536-row accumulation chunk), built on the workers exactly as local
:class:`segmint.cluster._matrix.Features` builds it from the same columns (same dtype rule, same
errors naming the column). A task over a block therefore sees the rows a local pass sees, in
the same chunks, and its per-chunk partials combine into local segmint's bits.

Memory: with ``persist=True`` (the default) the blocks stay on the workers for the whole fit,
``n_rows x n_features x itemsize`` bytes spread over the cluster (10M x 16 float32: 640 MB), so
Lloyd iterations do not read the files again. ``persist=False`` keeps nothing: every pass reads
(Parquet) or computes (dask collections) the blocks again, for data larger than the cluster's
memory. A numpy array or an in-memory table is always scattered (it is in memory already); its
blocks, unlike the others, cannot be recomputed if a worker is lost.

Sample weights travel with the blocks: a weight column is read with the features (the block is
then the pair ``(matrix, weights)``), a weight array (numpy or dask) is cut into blocks of the
same rows (:attr:`Blocks.wrefs`). Weights are kept in float64, as local segmint checks them, and
cast to the features' dtype where a kernel reads them, as local segmint casts them.
"""
import os
from typing import NamedTuple

import numpy as np

from .._lazy import lazy_import
from ..cluster._base import check_sample_weight, check_weight_values, weight_shape_error, weights_float64
from ..cluster._matrix import Features, FeatureError, kernel_layout, nonfinite_error, value_limit, _is_array_like
from ..errors import DataError, ParameterError, UnsupportedTypeError, unknown_column
from ..io import open as open_source
from ..io.columns import BOOLEAN, NUMERIC, column_kind
from . import chunks as _chunks
from ._inputs import resolve_client as get_client  # one rule for client=, shared with scoring
from ..cluster._passes import _EMPTY

ka = lazy_import("segmint.kernels.assign")
_hashing = lazy_import("segmint.kernels.hashing")
dask = lazy_import("dask")
distributed = lazy_import("distributed")


class Spec(NamedTuple):
    """How a task turns a block reference into its matrix (and weights): plain data, shipped
    with every task."""

    names: object  # feature column names, or None (an array's features have no names)
    dtype: object  # numpy float dtype of the matrix
    weight: object  # the sample weight column a Chunk's task reads with the features, or None


class Blocks:
    """Feature blocks of fixed global rows on a cluster, shaped like local Features for the fit.

    Attributes
    ----------
    n_rows, n_features : int
    dtype : numpy dtype (float32 or float64)
    names : list of str or None (an array's features have no names)
    starts : (n_blocks,) int64, the first global row of each block
    refs : list, one per block: a ``distributed.Future`` holding the matrix (or the pair
        ``(matrix, weights)``; persisted or scattered), a :class:`~segmint.dask.chunks.Chunk`
        (read again by every task) or a ``dask.delayed`` object (computed again by every pass)
    wrefs : list or None, one per block: the block's float64 weights (a future or a delayed
        object) when they come from an array; None otherwise
    weighted : bool, whether the fit has sample weights (a column or an array)
    array : None (the estimators' code reads rows through :meth:`take`)
    """

    array = None

    def __init__(self, client, refs, starts, n_rows, n_features, dtype, names, label, weight=None,
                 weighted=False):
        self.client = client
        self.refs = list(refs)
        self.wrefs = None
        self.starts = np.asarray(starts, dtype=np.int64)
        self.n_rows, self.n_features = int(n_rows), int(n_features)
        self.dtype = np.dtype(dtype)
        self.names = names
        self.label = label
        self.random_access = True
        self.spec = Spec(names, self.dtype, weight)
        self.weighted = bool(weighted)
        self.weights_checked = False

    # -- running tasks over the blocks ------------------------------------------------------
    def map(self, fn, *args, blocks=None, with_weights=False, **kwargs):
        """``fn(X, *args, **kwargs)`` on the matrix of each block (``blocks``: their indices,
        default all); results in block order. ``args`` may hold futures (scattered centers).
        ``with_weights``: ``fn`` also gets ``w=``, the block's float64 weights or None."""
        which = range(len(self.refs)) if blocks is None else blocks
        return self._run(_on_block, which, fn=fn, args=args, kwargs=kwargs, spec=self.spec,
                         with_weights=with_weights)

    def _run(self, task, which, *per_block, **kw):
        """``task(ref, wref, *per_block..., **kw)`` for the blocks ``which``, results in order."""
        refs = [self.refs[b] for b in which]
        if not refs:
            return []
        wrefs = [self.wrefs[b] for b in which] if self.wrefs is not None else [None] * len(refs)
        rows = list(zip(refs, wrefs, *per_block))
        if any(_is_delayed(x) for row in rows for x in row[:2]):  # blocks computed again by every task
            futures = self.client.compute([dask.delayed(task)(*row, **kw) for row in rows])
        else:
            futures = self.client.map(task, *zip(*rows), **kw, pure=False)
        return self.client.gather(futures)

    def delayed(self, fn, *args):
        """One ``dask.delayed`` call ``fn(X, *args, start=<the block's first row>)`` per block,
        in block order; nothing runs until computed."""
        return [dask.delayed(_on_block, pure=True)(r, None, fn=fn, args=args, kwargs={"start": int(s)},
                                                   spec=self.spec, with_weights=False)
                for r, s in zip(self.refs, self.starts.tolist())]

    def release(self):
        """Drop the persisted blocks (the workers free their memory)."""
        futures = [r for r in self.refs + (self.wrefs or []) if isinstance(r, distributed.Future)]
        if futures:
            self.client.cancel(futures)
        self.refs, self.wrefs = [], None

    # -- what the local fit code reads --------------------------------------------------------
    def take(self, indices, out=None):
        """Rows at ``indices`` (any order, repeats allowed) as a C-ordered (len, d) array: one
        task per block holding some of them (a distributed take)."""
        indices = np.ascontiguousarray(indices, dtype=np.int64)
        if out is None:
            out = np.empty((indices.size, self.n_features), dtype=self.dtype)
        else:
            out = out[:indices.size]
        return self._take(indices, out, _take_on_block)

    def take_weights(self, indices):
        """float64 weights of the rows at ``indices`` (a distributed take, as :meth:`take`)."""
        indices = np.ascontiguousarray(indices, dtype=np.int64)
        return self._take(indices, np.empty(indices.size, dtype=np.float64), _take_weights_on_block)

    def _take(self, indices, out, task):
        if indices.size == 0:
            return out
        which = np.searchsorted(self.starts, indices, side="right") - 1
        order = np.argsort(which, kind="stable")  # positions grouped by block, in one sort
        used, first = np.unique(which[order], return_index=True)
        sels = np.split(order, first[1:])
        locals_ = [indices[sel] - self.starts[b] for b, sel in zip(used, sels)]
        for sel, part in zip(sels, self._run(task, used.tolist(), locals_, spec=self.spec)):
            out[sel] = part
        return out

    def weights(self):
        """The fit's sample weights as the local fit code reads them (:class:`BlockWeights`),
        or None; call :meth:`check_weights` first."""
        return BlockWeights(self) if self.weighted else None

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

    def check_weights(self):
        """Raise local segmint's :class:`ParameterError` for negative, NaN, infinite, all-zero
        or too large weights (one distributed pass over the weights only; nothing to do for
        weights given as a numpy array, checked on the client when the blocks were cut).

        The sum compared with the 2^64 bound is folded from per-block sums in block order, not
        pairwise over all rows as locally: it may differ from the local sum in its last bits,
        which matters only for weights summing to 2^64 within rounding.
        """
        if not self.weighted or self.weights_checked:
            return
        stats = self._run(_weight_stats, range(len(self.refs)), spec=self.spec)
        total = 0.0
        for _, _, block_total in stats:
            total += block_total
        valid = all(s[0] for s in stats)
        check_weight_values(valid, self.n_rows == 0 or any(s[1] for s in stats), total if valid else 0.0)
        self.weights_checked = True


def _is_delayed(x):
    from dask.delayed import Delayed
    return isinstance(x, Delayed)


class BlockWeights:
    """The sample weights of a distributed fit, read by the local fit code as it reads its
    weight array: indexing gathers the rows asked for from the workers (as the features' rows
    are gathered), in the features' dtype, as local segmint casts its weights."""

    ndim = 1

    def __init__(self, blocks):
        self.blocks = blocks
        self.dtype = blocks.dtype
        self.shape = (blocks.n_rows,)

    def __len__(self):
        return self.blocks.n_rows

    def __getitem__(self, indices):
        indices = np.asarray(indices)
        if indices.dtype.kind not in "iu":
            raise TypeError("distributed sample weights are read by arrays of row indices only")
        return self.blocks.take_weights(indices).astype(self.dtype)

    def __array__(self, dtype=None, copy=None):
        w = self[np.arange(self.blocks.n_rows)]
        return w if dtype is None else w.astype(dtype)


# -- tasks (run on workers) ------------------------------------------------------------------
def _on_block(ref, wref, fn, args, kwargs, spec, with_weights):
    if with_weights:
        X, w = _payload(ref, wref, spec)
        return fn(X, *args, w=w, **kwargs)
    return fn(_payload(ref, wref, spec, weights=False)[0], *args, **kwargs)


def _take_on_block(ref, wref, local, spec):
    return np.ascontiguousarray(_payload(ref, wref, spec, weights=False)[0][local])


def _take_weights_on_block(ref, wref, local, spec):
    return _block_weights(ref, wref, spec)[local]


def _weight_stats(ref, wref, spec):
    """(finite and non-negative, some positive, float64 sum) of a block's weights."""
    w = _block_weights(ref, wref, spec)
    valid = bool(np.all(np.isfinite(w))) and not np.any(w < 0)
    return valid, bool(np.any(w > 0)), float(np.sum(w)) if valid else 0.0


def _payload(ref, wref, spec, weights=True):
    """``(matrix, float64 weights or None)`` of a block: as held, or read from its chunk's files
    (without the weight column when ``weights`` is false)."""
    if isinstance(ref, _chunks.Chunk):
        ref = load_chunk(ref, spec.names, spec.dtype, spec.weight if weights else None)
    if isinstance(ref, tuple):
        return ref
    return ref, wref


def _block_weights(ref, wref, spec):
    """A block's float64 weights (a chunk reads its weight column only)."""
    if isinstance(ref, _chunks.Chunk):
        table = _chunks.read_chunk(ref, [spec.weight])
        return column_weights(table.column(spec.weight), spec.weight, _chunk_where(ref))
    return _payload(ref, wref, spec)[1]


def kernel_weights(w, dtype):
    """Weights as the kernels read them: local segmint's cast (``np.ascontiguousarray(w,
    dtype)``), or the empty array that stands for unit weights."""
    return _EMPTY[np.dtype(dtype)] if w is None else np.ascontiguousarray(w, dtype=dtype)


def _chunk_where(chunk):
    return f"{chunk.label} (rows {chunk.start:,} to {chunk.start + chunk.rows - 1:,})"


def load_chunk(chunk, names, dtype, weight=None):
    """A Parquet chunk's (rows, d) feature matrix, built as local Features builds it; with
    ``weight`` (a column name), the pair (matrix, float64 weights of that column)."""
    read = names if weight is None or weight in names else list(names) + [weight]
    table = _chunks.read_chunk(chunk, read)
    X = table_matrix(table, names, dtype, _chunk_where(chunk))
    if weight is None:
        return X
    return X, column_weights(table.column(weight), weight, _chunk_where(chunk))


def column_weights(column, name, where):
    """A weight column (pyarrow) as float64 weights: its values as ``np.asarray(column.to_numpy(),
    float64)`` gives them (what local segmint does with ``sample_weight=table[name].to_numpy()``);
    nulls are refused."""
    if column.null_count:
        raise ParameterError(f"sample_weight must be finite and non-negative: the sample_weight column "
                             f"{name!r} has {column.null_count:,} null{'s' if column.null_count != 1 else ''} "
                             f"in {where}")
    return weights_float64(column.to_numpy())


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
    ka.count_beyond(*kernel_layout(X), 0, X.shape[0], limit, counts)
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


def _slices(parts, dtype):
    """One array from ``[(array, lo, hi), ...]`` pieces of consecutive partitions."""
    if len(parts) == 1:
        X, lo, hi = parts[0]
        return X[lo:hi]
    return np.concatenate([X[lo:hi] for X, lo, hi in parts]).astype(dtype, copy=False)


def _slices_matrix(parts, dtype):
    """One block from ``[(payload, lo, hi), ...]`` pieces of consecutive partitions; a payload
    is a matrix or a pair (matrix, float64 weights)."""
    if isinstance(parts[0][0], tuple):
        return (_slices([(p[0], lo, hi) for p, lo, hi in parts], dtype),
                _slices([(p[1], lo, hi) for p, lo, hi in parts], np.float64))
    return _slices(parts, dtype)


def _payload_rows(payload):
    return len(payload[0] if isinstance(payload, tuple) else payload)


def _frame_matrix(frame, names, dtype, index, weight=None):
    where = f"partition {index} of the dask DataFrame"
    X = table_matrix(frame, names, dtype, where)
    if weight is None:
        return X
    # the weights local segmint gets from sample_weight=frame[weight] (np.asarray in float64)
    return X, weights_float64(frame[weight])


def _array_matrix(block, dtype):
    return np.asarray(block).astype(dtype, copy=False)


def digest(labels):
    """A 16-byte digest of a block's labels (strict convergence without shipping them): see
    :func:`segmint.kernels.hashing.labels_digest` (blake2b cost ~4.4 ms a million labels on
    every block of every pass, the kernel ~0.7)."""
    out = np.empty(2, dtype=np.uint64)
    _hashing.labels_digest(np.ascontiguousarray(labels, dtype=np.int32), out)
    return out.tobytes()


# -- building the blocks ---------------------------------------------------------------------
def feature_blocks(data, columns=None, *, client=None, rows_per_chunk=_chunks.CHUNK_ROWS, persist=True,
                   dtype=None, sample_weight=None):
    """Cut clustering input into chunk-aligned feature blocks on the cluster.

    Parameters
    ----------
    data : str, Path, list of them, dask DataFrame, dask array, numpy array, pyarrow Table or pandas DataFrame
        A Parquet file, folder or list of files (chunks cut from the footers; each task reads
        its own rows); a dask DataFrame (``columns`` selected, each partition converted, rows
        regrouped into chunks); a 2-D dask or numpy array (a numpy array is scattered); an
        in-memory table (a pyarrow Table or RecordBatch, a pandas or polars DataFrame:
        converted on the client as local segmint converts it, then scattered).
    columns : list of str, optional
        Feature columns (default: every numeric and boolean column, as local segmint, but the
        sample weight column).
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
    sample_weight : str, array-like or dask array, optional
        A column of a table input (read with the features), or one weight per row: a numpy
        array (or what ``np.asarray`` takes; checked now), a 1-D dask array or dask Series
        (checked by :meth:`Blocks.check_weights`).

    Returns
    -------
    Blocks
    """
    client = get_client(client)
    if (isinstance(rows_per_chunk, bool) or not isinstance(rows_per_chunk, int)
            or rows_per_chunk <= 0 or rows_per_chunk % _chunks.ALIGN):
        raise ParameterError(f"rows_per_chunk must be a positive multiple of {_chunks.ALIGN:,}, "
                             f"got {rows_per_chunk!r}")
    weight = sample_weight if isinstance(sample_weight, str) else None
    if weight is not None and not (_is_dask_dataframe(data) or _is_paths(data) or _is_memory_table(data)):
        raise ParameterError(f"sample_weight={weight!r} names a column, but a {type(data).__name__} has no "
                             "named columns: pass one weight per row (a numpy or dask array)")
    if _is_dask_dataframe(data):
        blocks = _from_dask_frame(client, data, columns, rows_per_chunk, persist, dtype, weight)
    elif _is_dask_array(data):
        if columns is not None:
            raise FeatureError("columns= names columns of a table or file; a dask array has none")
        blocks = _from_dask_array(client, data, rows_per_chunk, persist, dtype)
    elif _is_paths(data):  # before array-likes: a list of file names is array-like too
        blocks = _from_parquet(client, data, columns, rows_per_chunk, persist, dtype, weight)
    elif _is_memory_table(data):
        blocks = _from_table(client, data, columns, rows_per_chunk, dtype, weight)
    elif _is_array_like(data):
        blocks = _from_numpy(client, data, columns, rows_per_chunk, dtype)
    else:
        raise UnsupportedTypeError(f"segmint.dask clusters a Parquet path, a dask DataFrame, a dask array, a "
                                   f"numpy array, a pyarrow Table or a pandas DataFrame, got {type(data).__name__}")
    if sample_weight is not None and weight is None:
        try:
            _weight_blocks(blocks, sample_weight, rows_per_chunk, persist)
        except BaseException:
            blocks.release()
            raise
    return blocks


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


def _is_dask_series(data):
    return type(data).__module__.split(".")[0] in ("dask", "dask_expr") and hasattr(data, "to_dask_array") \
        and not hasattr(data, "columns")


def _is_memory_table(data):
    """A pyarrow Table or RecordBatch, or a pandas or polars DataFrame (told by its module's
    name: pandas stays unimported)."""
    import pyarrow as pa
    if isinstance(data, (pa.Table, pa.RecordBatch)):
        return True
    return type(data).__module__.split(".")[0] in ("pandas", "polars") and hasattr(data, "columns")


def _starts(n, rows_per_chunk):
    return np.arange(0, max(n, 1), rows_per_chunk, dtype=np.int64)[:max(1, -(-n // rows_per_chunk))]


def _feature_names(schema, columns, label, weight=None):
    """Feature columns of a table's schema, checked as local Features checks them; by default
    every numeric and boolean column but the sample weight column ``weight``."""
    if columns is not None and (isinstance(columns, str) or not all(isinstance(c, str) for c in columns)):
        raise ParameterError(f"columns= must be a list of column names, got {columns!r:.80}")
    if columns is not None and len(columns) == 0:
        raise ParameterError("columns=[] names no column: name at least one, or leave columns= out "
                             "to use every numeric column")
    if weight is not None:
        _check_arrow_weight_column(weight, schema, label)
    if columns is not None:
        names = list(columns)
    else:
        names = [f.name for f in schema if column_kind(f.type) in (NUMERIC, BOOLEAN) and f.name != weight]
        if not names:
            but = " but the sample_weight column" if weight is not None else ""
            raise DataError(f"{label} has no numeric columns to cluster{but}; name them with columns=[...]")
    for name in names:
        if name not in schema.names:
            raise unknown_column(name, schema.names, label)
    return names


def _check_weight_column(weight, names, numeric, type_text, label):
    """Refuse a sample weight column that is missing (naming the nearest columns) or holds no
    numbers (``numeric``: whether its type holds numbers or booleans)."""
    if weight not in names:
        raise unknown_column(weight, names, label)
    if not numeric:
        raise ParameterError(f"sample_weight: column {weight!r} of {label} has type {type_text}; sample "
                             "weights must be numbers")


def _check_arrow_weight_column(weight, schema, label):
    t = schema.field(weight).type if weight in schema.names else None
    _check_weight_column(weight, schema.names, column_kind(t) in (NUMERIC, BOOLEAN) if t else False, t, label)


def _from_parquet(client, path, columns, rows_per_chunk, persist, dtype, weight):
    ds = _chunks.parquet_chunks(path, rows_per_chunk)
    names = _feature_names(ds.schema, columns, ds.label, weight)
    # the dtype rule and the type checks of local Features, on the dataset's (empty) schema
    shape = Features(ds.schema.empty_table(), columns=names, dtype=dtype)
    refs = list(ds.chunks)
    if persist:
        refs = client.map(load_chunk, refs, names=names, dtype=shape.dtype, weight=weight, pure=False)
    return Blocks(client, refs, [c.start for c in ds.chunks], ds.num_rows, len(names), shape.dtype,
                  names, ds.label, weight=weight, weighted=weight is not None)


def _from_numpy(client, data, columns, rows_per_chunk, dtype):
    f = Features(data, columns=columns, dtype=dtype)  # local checks and dtype conversion
    X = f.array
    starts = _starts(f.n_rows, rows_per_chunk)
    refs = client.scatter([X[s:s + rows_per_chunk] for s in starts.tolist()], hash=False)
    return Blocks(client, refs, starts, f.n_rows, f.n_features, f.dtype, None, "the array")


def _from_table(client, data, columns, rows_per_chunk, dtype, weight):
    """An in-memory table: opened as local segmint opens it (a pandas DataFrame converted to Arrow
    the same way), each block's matrix converted on the client as local Features converts it,
    then scattered."""
    source = open_source(data)
    table = source.table
    names = _feature_names(table.schema, columns, source.label, weight)
    shape = Features(source, columns=names, dtype=dtype)  # local checks and dtype rule
    starts = _starts(shape.n_rows, rows_per_chunk)
    payloads = []
    for s in starts.tolist():
        part = table.slice(s, rows_per_chunk)
        where = f"{source.label} (rows {s:,} to {s + part.num_rows - 1:,})"
        X = table_matrix(part, names, shape.dtype, where)
        payloads.append(X if weight is None else (X, column_weights(part.column(weight), weight, where)))
    refs = client.scatter(payloads, hash=False)
    return Blocks(client, refs, starts, shape.n_rows, len(names), shape.dtype, names, source.label,
                  weighted=weight is not None)


def _regroup(client, parts, lengths, rows_per_chunk, persist, dtype, empty):
    """Blocks of ``rows_per_chunk`` rows from partition payloads of the given lengths
    (``empty``: the payload of a block of no rows)."""
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
        refs = [client.submit(empty, pure=False)] if persist else [dask.delayed(empty)()]
    return refs, starts, n


def _from_dask_frame(client, frame, columns, rows_per_chunk, persist, dtype, weight):
    meta = frame._meta
    labels = [str(c) for c in meta.columns]
    if columns is not None and not isinstance(columns, str) and all(isinstance(c, str) for c in columns):
        for name in columns:
            if name not in meta.columns:
                raise unknown_column(name, labels, "the dask DataFrame")
    if weight is not None:
        kind = meta[weight].dtype if weight in labels else None
        _check_weight_column(weight, labels, kind is not None and kind.kind in "biuf", kind, "the dask DataFrame")
        if columns is None:  # every numeric column but the weights (local Features' rule)
            columns = [n for n in Features(meta).names if n != weight]
            if not columns:
                raise DataError("the dask DataFrame has no numeric columns to cluster but the sample_weight "
                                "column; name them with columns=[...]")
    shape = Features(meta, columns=columns, dtype=dtype)  # names, type checks, dtype rule
    names = shape.names
    read = names if weight is None or weight in names else names + [weight]
    parts = [dask.delayed(_frame_matrix)(p, names, shape.dtype, i, weight)
             for i, p in enumerate(frame[read].to_delayed())]
    return _from_parts(client, parts, len(names), shape.dtype, names, rows_per_chunk, persist,
                       "the dask DataFrame", weighted=weight is not None)


def _from_parts(client, parts, d, dtype, names, rows_per_chunk, persist, label, lengths=None, weighted=False):
    refs, starts, n = _regroup_parts(client, parts, lengths, rows_per_chunk, persist, dtype,
                                     _EmptyBlock(d, dtype, weighted))
    return Blocks(client, refs, starts, n, d, dtype, names, label, weighted=weighted)


def _regroup_parts(client, parts, lengths, rows_per_chunk, persist, dtype, empty):
    """Blocks (refs, starts, n) from delayed partition payloads (their lengths computed when
    not given)."""
    if persist:
        parts = client.compute(parts)
    if lengths is None:
        if persist:
            lengths = client.gather(client.map(_payload_rows, parts, pure=False))
        else:
            lengths = client.gather(client.compute([dask.delayed(_payload_rows)(p) for p in parts]))
    refs, starts, n = _regroup(client, parts, lengths, rows_per_chunk, persist, dtype, empty)
    if persist:
        distributed.wait(refs)
        del parts  # the blocks hold the rows now; the partitions' lineage stays for recomputation
    return refs, starts, n


class _EmptyBlock:
    """Makes the payload of a block of no rows (on a worker)."""

    def __init__(self, d, dtype, weighted):
        self.d, self.dtype, self.weighted = d, dtype, weighted

    def __call__(self):
        X = np.empty((0, self.d), self.dtype)
        return (X, np.empty(0)) if self.weighted else X


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


# -- sample weights from an array ----------------------------------------------------------
def _weight_blocks(blocks, sample_weight, rows_per_chunk, persist):
    """Set ``blocks.wrefs``: the weights of each block, from a numpy or dask array (or dask
    Series) aligned with the rows."""
    client, n = blocks.client, blocks.n_rows
    if _is_dask_series(sample_weight):
        sample_weight = sample_weight.to_dask_array()  # lengths unknown: counted below
    if _is_dask_array(sample_weight) and sample_weight.ndim != 0:
        if sample_weight.ndim != 1:
            raise weight_shape_error(n, sample_weight.shape)
        lengths = list(sample_weight.chunks[0])
        if not any(np.isnan(c) for c in lengths) and sum(lengths) != n:
            raise weight_shape_error(n, sample_weight.shape)
        if any(np.isnan(c) for c in lengths):
            lengths = None
        parts = [dask.delayed(weights_float64)(b) for b in sample_weight.to_delayed()]
        refs, _, got = _regroup_parts(client, parts, lengths, rows_per_chunk, persist, np.float64,
                                      _EmptyWeights())
        blocks.wrefs = refs  # released with the blocks, also on the error below
        if got != n:
            raise weight_shape_error(n, (got,))
    else:
        if _is_dask_array(sample_weight):  # one weight for every row, as a 0-d dask array
            sample_weight = sample_weight.compute()
        w = check_sample_weight(sample_weight, n, np.float64)  # local checks, local messages
        blocks.wrefs = client.scatter([w[s:s + rows_per_chunk] for s in blocks.starts.tolist()], hash=False)
        blocks.weights_checked = True
    blocks.weighted = True


class _EmptyWeights:
    """Makes the weights of a block of no rows (on a worker)."""

    def __call__(self):
        return np.empty(0)
