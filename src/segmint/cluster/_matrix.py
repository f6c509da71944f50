"""The feature matrix a clustering estimator reads, whatever the input.

:class:`Features` wraps a 2-D numpy array (used as is, no copy when its dtype is float32 or
float64) or the named numeric columns of any source :func:`segmint.open` accepts. Columns
stay columnar: blocks of rows are copied into a small feature-major buffer as kernels need
them; no row-major copy of the whole table is ever made.

Access patterns:

- :meth:`Features.blocks` streams ``(start, X_block)`` with ``X_block`` of shape (m, d);
- :meth:`Features.take` returns rows by index; it gathers directly where the data allow
  random access (arrays, in-memory tables, uncompressed memory-mapped IPC files) and with
  one streaming pass otherwise (Parquet, compressed IPC), with identical results.
"""
import numpy as np

import math

from .._lazy import lazy_import
from ..errors import DataError, ParameterError, SegmintError, UnsupportedTypeError, unknown_column
from ..io import open as open_source
from ..io.columns import BOOLEAN, NUMERIC, column_kind

ka = lazy_import("segmint.kernels.assign")  # on first use: see segmint._lazy
kg = lazy_import("segmint.kernels.gather")

BLOCK_ROWS = 131_072
# Total sample weight at most 2^64 (the unit weights of fewer than 2^64 rows): with
# value_limit, a weighted sum of squared distances (inertia, k-means++ potentials) stays finite.
MAX_TOTAL_WEIGHT = 2.0 ** 64


def value_limit(dtype, n_features):
    """The largest absolute feature value segmint clusters, for ``n_features`` features of ``dtype``.

    With every value of a row and of a center within ``L``, a squared distance is at most
    ``n_features * (2 L) ** 2`` (and so is each term of the expanded form the kernels use);
    ``L = sqrt(max / (8 * n_features))`` keeps it within half the largest finite value ``max``
    of the dtype distances are computed in (the half is a margin for rounding). float64
    divides by a further 2^32, so a weighted sum of such distances (inertia, k-means++
    potentials; total weight at most ``MAX_TOTAL_WEIGHT`` = 2^64) stays finite too; float32
    distances are summed in float64 anyway. Beyond it, results would be infinite or wrong
    without a warning: such values are refused.

    Parameters
    ----------
    dtype : float32 or float64
    n_features : int

    Returns
    -------
    float : about 6.5e18 / sqrt(d) for float32, 1.1e144 / sqrt(d) for float64; a value of
        ``dtype`` itself, so comparisons in either precision agree
    """
    dtype = np.dtype(dtype)
    limit = math.sqrt(float(np.finfo(dtype).max) / (8 * max(1, int(n_features))))
    if dtype == np.float64:
        return limit / 2.0 ** 32
    # a float32 value (rounded down): compared in float32 or float64, every check agrees
    limit32 = np.float32(limit)
    if float(limit32) > limit:
        limit32 = np.nextafter(limit32, np.float32(0))
    return float(limit32)


def kernel_layout(X):
    """``(array, fm)`` as the kernels take a 2-D array X: X itself and False when its rows are
    C-ordered; its C-ordered transpose ``X.T`` (shape (d, n), feature-major) and True when X is
    Fortran-ordered (a column-major frame's values, a block streamed from columnar sources).

    The kernels then compile once per dtype for one layout (``C``) instead of once per layout;
    other strided views are passed as they are (a kernel of their own, compiled when first met).
    """
    if not X.flags.c_contiguous and X.flags.f_contiguous:
        return X.T, True
    return X, False


def check_centers(centers, what="cluster_centers_", error=None):
    """Raise ``error`` (default :class:`FeatureError`) when centers hold NaN, infinities or values
    beyond :func:`value_limit` (centers given by ``init=``, set by hand or loaded from a file)."""
    centers = np.asarray(centers)
    limit = value_limit(centers.dtype, centers.shape[1] if centers.ndim == 2 else 1)
    bad = ~(np.abs(centers) <= limit)
    if bad.any():
        c, j = (int(v) for v in np.argwhere(bad)[0])
        value = centers[c, j]
        why = "which is not a finite number" if not np.isfinite(value) else (
            f"beyond \u00b1{limit:.3g}, the largest value segmint clusters for {centers.shape[1]} "
            f"{centers.dtype} features (squared distances would overflow)")
        raise (error or FeatureError)(f"{what}: center {c}, feature {j} holds {value}, {why}")


class FeatureError(SegmintError, ValueError):
    """Feature columns that cannot be clustered: nulls, NaN or infinities, wrong types."""


class Features:
    """Rows x features for clustering.

    Parameters
    ----------
    X : 2-D array-like or any source accepted by :func:`segmint.open`
    columns : list of str, optional
        Columns to use (sources only); default all numeric and boolean columns.
    dtype : numpy dtype, optional
        float32 or float64; default float32 when every feature is float32, else float64.
    batch_size : int, optional
        Rows per block when streaming a source (default ``BLOCK_ROWS``): with one block and
        the chunk partials, it bounds the memory a pass needs.
    """

    def __init__(self, X, columns=None, dtype=None, batch_size=None):
        self.batch_size = int(batch_size or BLOCK_ROWS)
        self.array = None
        self.source = None
        if _is_sparse(X):
            raise UnsupportedTypeError("sparse input is not supported: segmint's k-means needs dense data; "
                            "convert with X.toarray() if it fits in memory")
        if _is_array_like(X):
            arr = np.asarray(X)
            if arr.dtype.kind == "c":
                raise FeatureError("Complex data not supported: k-means needs real numbers")
            if arr.dtype.kind == "O":
                try:
                    arr = arr.astype(np.float64)  # numbers stored as objects
                except TypeError as e:  # a TypeError still, as scikit-learn's checks expect
                    raise UnsupportedTypeError(f"expected numbers, got objects that are not: {e}") from None
                except (ValueError, OverflowError) as e:
                    raise FeatureError(f"expected numbers, got objects that are not: {e}") from None
            if arr.ndim != 2:
                raise FeatureError(
                    f"expected a 2-D array (rows x features), got shape {arr.shape}. Reshape your "
                    "data either using X.reshape(-1, 1) if your data has a single feature or "
                    "X.reshape(1, -1) if it contains a single sample.")
            if arr.shape[1] == 0:
                raise FeatureError(f"0 feature(s) (shape={arr.shape}) while a minimum of 1 is required.")
            if columns is not None:
                raise FeatureError("columns= names columns of a table or file; a numpy array has none "
                                "(select columns with X[:, [...]] instead)")
            if arr.dtype.kind not in "fiub":
                raise FeatureError(f"expected a numeric array, got dtype {arr.dtype}")
            target = np.dtype(dtype) if dtype is not None else (
                arr.dtype if arr.dtype in (np.float32, np.float64) else np.dtype(np.float64))
            _check_float_dtype(target)
            self.array = arr if arr.dtype == target else arr.astype(target)
            self.n_rows, self.n_features = self.array.shape
            self.names = None
            self.dtype = target
            self.random_access = True
            return
        source = open_source(X)
        if columns is not None and (isinstance(columns, str) or not all(isinstance(f, str) for f in columns)):
            raise ParameterError(f"columns= must be a list of column names, got {columns!r:.80}")
        if columns is not None and len(columns) == 0:
            raise ParameterError("columns=[] names no column: name at least one, or leave columns= out "
                                 "to use every numeric column")
        names = list(columns) if columns is not None else [
            f.name for f in source.schema if column_kind(f.type) in (NUMERIC, BOOLEAN)]
        if not names:
            raise DataError(f"{source.label} has no numeric columns to cluster; name them with columns=[...]")
        for name in names:
            if name not in source.column_names:
                raise unknown_column(name, source.column_names, source.label)
            kind = column_kind(source.schema.field(name).type)
            if kind not in (NUMERIC, BOOLEAN):
                t = source.schema.field(name).type
                raise FeatureError(
                    f"feature column {name!r} has type {t} ({kind or 'unsupported'}); clustering needs "
                    "numbers: encode strings (e.g. one-hot) or turn dates into day counts first")
        self.source = source.select(names)
        self.names = names
        types = [self.source.schema.field(n).type for n in names]
        if dtype is None:
            dtype = np.float32 if all(str(t) == "float" for t in types) else np.float64
        self.dtype = np.dtype(dtype)
        _check_float_dtype(self.dtype)
        self.n_features = len(names)
        self.n_rows = self.source.num_rows
        if self.n_rows is None:
            raise DataError(f"{source.label} is read once only and its size is unknown; clustering "
                            "reads its data several times: pass a file, a Table or a DataFrame")
        self.random_access = self.source.kind == "table" or (
            self.source.kind == "ipc" and self.source.zero_copy)
        self._chunks = None

    # -- streaming -----------------------------------------------------------------------
    def blocks(self, batch_size=None):
        """Yield ``(start, X_block)`` over all rows in order; X_block is (m, d) of ``dtype``."""
        if self.array is not None:
            step = batch_size or max(self.batch_size, 1 << 20)
            for lo in range(0, self.n_rows, step):
                yield lo, self.array[lo:lo + step]
            return
        buf = None
        d = self.n_features
        for batch in self.source.batches(batch_size=batch_size or self.batch_size):
            m = batch.num_rows
            if buf is None or buf.size < d * m:
                buf = np.empty(d * m, dtype=self.dtype)
            # feature-major and contiguous even when shorter than the buffer: its transpose is
            # Fortran-ordered, so kernels take it as C-ordered (d, m) (see kernel_layout), the
            # one layout they are compiled for
            block = buf[:d * m].reshape(d, m)
            for j, name in enumerate(self.names):
                view = batch[name]
                if view.null_count:
                    raise self._null_error()
                block[j] = view.to_numpy()
            yield batch.start, block.T

    def _null_error(self):
        counts = {n: self.source.column(n).null_count for n in self.names}
        bad = {n: c for n, c in counts.items() if c}
        detail = ", ".join(f"{n!r} has {c:,} null{'s' if c != 1 else ''}" for n, c in bad.items())
        return FeatureError(f"feature columns hold nulls: {detail}; impute them first "
                            "(e.g. fill with the median) or leave those rows out")

    # -- validation ----------------------------------------------------------------------
    @property
    def limit(self):
        """The largest absolute value a feature may hold (:func:`value_limit`)."""
        return value_limit(self.dtype, self.n_features)

    def check_finite(self):
        """Raise :class:`FeatureError` naming every column with nulls, NaN, infinities or values
        beyond :attr:`limit`, with their counts."""
        self.raise_nonfinite(self.nonfinite_counts())

    def nonfinite_counts(self):
        """Per-feature counts of NaN, infinite and too large values (one pass; nulls raise on the way)."""
        counts = np.zeros(self.n_features, dtype=np.int64)
        limit = self.limit
        if self.array is not None:
            from .._parallel import chunk_bounds, run_chunks
            for part in run_chunks(lambda b: _count(self.array, *b, limit),
                                   chunk_bounds(self.n_rows, 1 << 18)):
                counts += part
            return counts
        for _, block in self.blocks():
            counts += _count(block, 0, block.shape[0], limit)
        return counts

    def raise_nonfinite(self, counts):
        """Raise :class:`FeatureError` when ``counts`` (from :meth:`nonfinite_counts`) are not all 0.

        The message tells NaN and infinities (impute) from finite values beyond the limit
        (rescale), naming the first such value; finding them reads the data again, on this
        error path only.
        """
        if not counts.any():
            return
        nonfinite, first_big = self._describe(np.flatnonzero(counts))
        raise nonfinite_error(self.names, self.n_features, self.dtype, nonfinite, first_big)

    def raise_overflow(self):
        """Raise :class:`FeatureError` for data within :attr:`limit` whose distances still
        overflowed (values close to the limit with many large centers; or an inertia summed
        over very many such rows)."""
        what = "the features" if self.names else "the feature columns of the array"
        raise FeatureError(f"{what}: the squared distances to the centers overflow {self.dtype}; values "
                           f"close to ±{self.limit:.3g} are too large to cluster: rescale them first "
                           "(e.g. standardise or log)")

    def _describe(self, columns):
        """Per-feature NaN/inf counts and, per feature, (row, value) of its first finite value
        beyond the limit, for the given feature indices (error path: one more pass)."""
        limit = self.limit
        nonfinite = np.zeros(self.n_features, dtype=np.int64)
        first_big = {}
        for start, block in self.blocks():
            for j in columns:
                col = np.asarray(block[:, j])
                finite = np.isfinite(col)
                nonfinite[j] += int((~finite).sum())
                if j not in first_big:
                    rows = np.flatnonzero(finite & (np.abs(col) > limit))
                    if rows.size:
                        # str of the dtype's scalar: the shortest text (1e+30, not 1.0000000150474662e+30)
                        first_big[int(j)] = (start + int(rows[0]), str(col[rows[0]]))
        return nonfinite, first_big

    # -- random rows ---------------------------------------------------------------------
    def take(self, indices, out=None):
        """Rows at ``indices`` (any order, repeats allowed) as a C-ordered (len, d) array.

        ``out``, when given, is a C-ordered buffer of at least that many rows to fill (callers
        that gather repeatedly reuse it: fresh large arrays cost page faults).
        """
        indices = np.ascontiguousarray(indices, dtype=np.int64)
        if out is not None:
            out = out[:indices.size]
        if self.array is not None:
            from .._parallel import chunk_bounds, run_chunks
            if out is None:
                out = np.empty((indices.size, self.n_features), dtype=self.dtype)
            X, fm = kernel_layout(self.array)
            run_chunks(lambda b: kg.gather_rows(X, fm, indices, b[0], b[1], out),
                       chunk_bounds(indices.size, 1 << 16))
            return out
        if out is None:
            out = np.empty((indices.size, self.n_features), dtype=self.dtype)
        if indices.size == 0:
            return out
        if self.random_access:
            starts, views = self._column_chunks()
            which = np.searchsorted(starts, indices, side="right") - 1
            for c in np.unique(which):
                sel = which == c
                local = indices[sel] - starts[c]
                for j, name in enumerate(self.names):
                    view = views[c][j]
                    if view.null_count:
                        raise self._null_error()
                    out[sel, j] = view.to_numpy()[local]
            return out
        order = np.argsort(indices, kind="stable")
        ordered = indices[order]
        for start, block in self.blocks():
            lo, hi = np.searchsorted(ordered, [start, start + block.shape[0]])
            if hi > lo:
                out[order[lo:hi]] = block[ordered[lo:hi] - start]
        return out

    def _column_chunks(self):
        """Per source chunk: (start row, [ColumnView per feature]); zero-copy views, built once."""
        if self._chunks is None:
            starts, views = [], []
            for batch in self.source.batches(batch_size=1 << 62):
                starts.append(batch.start)
                views.append([batch[n] for n in self.names])
            self._chunks = (np.asarray(starts, dtype=np.int64), views)
        return self._chunks


def nonfinite_error(names, n_features, dtype, nonfinite, first_big):
    """The :class:`FeatureError` for features holding NaN, infinities or values beyond the limit.

    ``names``: feature names or None (an array); ``nonfinite``: per-feature NaN/inf counts;
    ``first_big``: {feature: (row, value text)} of the first finite value beyond the limit.
    Shared by :meth:`Features.raise_nonfinite` and the distributed checks of :mod:`segmint.dask`.
    """
    what = "feature columns" if names else "feature columns of the array"
    names = names or [f"x{j}" for j in range(n_features)]
    parts = []
    if nonfinite.any():
        detail = ", ".join(f"{names[j]!r} has {c:,}" for j, c in enumerate(nonfinite) if c)
        parts.append(f"{what} hold NaN or infinite values: {detail}; impute or drop them first")
    if first_big:
        limit = value_limit(dtype, n_features)
        big = ", ".join(f"{names[j]!r} holds {v} (row {r:,})" for j, (r, v) in sorted(first_big.items()))
        parts.append(f"{what} hold values beyond \u00b1{limit:.3g}, the largest segmint clusters for "
                     f"{n_features} {dtype} feature{'s' if n_features != 1 else ''} "
                     f"(squared distances would overflow): {big}; rescale them first (e.g. "
                     "standardise or log)")
    if not parts:  # counted before but not found now: the data changed under us
        parts.append(f"{what} hold NaN, infinite or too large values")
    return FeatureError("; ".join(parts))


def _count(X, lo, hi, limit):
    counts = np.zeros(X.shape[1], dtype=np.int64)
    ka.count_beyond(*kernel_layout(X), lo, hi, limit, counts)
    return counts


def _check_float_dtype(dtype):
    if np.dtype(dtype) not in (np.float32, np.float64):
        raise FeatureError(f"dtype must be float32 or float64, got {np.dtype(dtype)}")


def _is_array_like(X):
    """Arrays, nested lists and objects exposing ``__array__`` (not tables: they have column names)."""
    if isinstance(X, (np.ndarray, list, tuple)):
        return True
    module = type(X).__module__.split(".")[0]
    return hasattr(X, "__array__") and module not in ("pandas", "polars", "pyarrow")


def _is_sparse(X):
    try:
        import scipy.sparse
    except ImportError:  # pragma: no cover - scipy is a dependency
        return False
    return scipy.sparse.issparse(X)
