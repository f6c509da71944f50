"""The :class:`FeatureSpec` estimator: fit, transform, inverse and plain-data (de)serialisation."""
from collections.abc import Mapping

import numpy as np

from ...cluster import FeatureError, NotFittedError
from ...errors import ParameterError
from ...io import DEFAULT_BATCH_SIZE
from ...io import open as open_source
from ...io.source import Batch
from .checks import _check_dtype, _check_types, _problem_error
from .parse import DEFAULT_SAMPLE_SIZE, FORMAT, VERSION, FeatureSpecError, _check_sample_size, _parse_features
from .plans import _Fitted
from .state import _check_keys, _check_state, _copy_state, _get_count
from .stats import _CategoryCounts, _NumericStats

class FeatureSpec:
    """Columns to cluster on and their transforms; fitted in one streaming pass.

    Parameters
    ----------
    features : list of str or dict
        The feature spec: one entry per input column, in output order; see the package
        docstring for the keys. Kept as given (``FeatureSpec(spec.features)`` is an unfitted copy).
        Validated now: unknown keys, wrong types and incompatible options raise
        :class:`FeatureSpecError` naming the column.
    sample_size : int, default 100,000
        Values per column kept to compute quantiles (median imputation, clipping, robust
        scaling, moments of clipped values). Statistics are exact for columns with at most
        this many non-null values. Memory: up to 16 bytes times twice this per such column.

    Attributes
    ----------
    features : list
        The spec as given.
    entries : tuple of NumericFeature or OneHotFeature
        The validated spec, one entry per input column.
    input_columns : list of str
        The columns read, in spec order.
    feature_names_out_ : list of str
        Names of the output columns (fitted).
    n_features_out_ : int
    feature_slices_ : dict of str to slice
        The output columns of each input column.
    n_rows_ : int
        Rows read at fit.
    stats_ : dict of str to dict
        Per input column, the fitted statistics (as in :meth:`to_dict`): ``count`` (non-null
        values), ``nulls``; numeric: ``min``, ``max`` (raw), ``sampled`` (quantiles from a
        sample rather than all values), ``impute_value`` (raw units), ``clip_low``,
        ``clip_high``, ``center``, ``scale`` (after log1p); one-hot: ``categories``,
        ``category_counts``, ``other_count``.

    Notes
    -----
    A fitted spec is read-only: :meth:`transform_batch` may run on several threads at once.
    """

    def __init__(self, features, *, sample_size=DEFAULT_SAMPLE_SIZE):
        self.features = features
        self.sample_size = sample_size
        self.entries = _parse_features(features)
        _check_sample_size(sample_size)
        self._fitted = None

    @property
    def input_columns(self):
        return [f.column for f in self.entries]

    def __repr__(self):
        extra = "" if self.sample_size == DEFAULT_SAMPLE_SIZE else f", sample_size={self.sample_size!r}"
        return f"FeatureSpec({self.features!r}{extra})"

    # -- fitted state --------------------------------------------------------------------
    def _check_fitted(self):
        if self._fitted is None:
            raise NotFittedError("this FeatureSpec is not fitted yet; call fit(source) first")
        return self._fitted

    @property
    def feature_names_out_(self):
        return list(self._check_fitted().names)

    @property
    def n_features_out_(self):
        return len(self._check_fitted().names)

    @property
    def feature_slices_(self):
        fitted = self._check_fitted()
        return {p.column: slice(p.first, p.first + p.width) for p in fitted.plans}

    @property
    def n_rows_(self):
        return self._check_fitted().n_rows

    @property
    def stats_(self):
        fitted = self._check_fitted()
        return {f.column: _copy_state(s) for f, s in zip(self.entries, fitted.states)}

    # -- fit -----------------------------------------------------------------------------
    def fit(self, source, *, batch_size=DEFAULT_BATCH_SIZE):
        """Compute every statistic the transforms need, in one pass over ``source``.

        Parameters
        ----------
        source : any input :func:`segmint.open` accepts
        batch_size : int
            Rows per batch; the statistics do not depend on it.

        Returns
        -------
        self

        Raises
        ------
        UnknownColumnError
            A spec column is not in the source.
        FeatureError
            A column has the wrong type; nulls without imputation, NaN or infinite values,
            negative values under log1p, or nulls under ``"null": "error"`` (every column
            and count in one message, after the pass); no rows; an all-null column to impute
            with its median.
        """
        src = open_source(source)
        names = self.input_columns
        src = src.select(names)
        _check_types(self.entries, src.schema)
        accumulators = [_NumericStats(f, self.sample_size) if f.kind == "numeric" else _CategoryCounts(f)
                        for f in self.entries]
        n_rows = 0
        for batch in src.batches(columns=names, batch_size=batch_size):
            for acc in accumulators:
                acc.update(batch[acc.feature.column], batch.start)
            n_rows += batch.num_rows
        if n_rows == 0:
            raise FeatureError(f"cannot fit the feature spec on {src.label}: it has no rows")
        problems = [acc.fit_problems() for acc in accumulators]
        if any(p.any() for p in problems):
            raise _problem_error(self.entries, problems, f"cannot fit the feature spec on {src.label}: ")
        states = [acc.finish() for acc in accumulators]
        self._fitted = _Fitted(self.entries, states, n_rows)
        return self

    # -- transform -----------------------------------------------------------------------
    def transform(self, source, *, dtype=np.float64, batch_size=DEFAULT_BATCH_SIZE):
        """The feature matrix of ``source``.

        Parameters
        ----------
        source : any input :func:`segmint.open` accepts, or one :class:`~segmint.io.source.Batch`
        dtype : numpy.float32 or numpy.float64
        batch_size : int
            Rows per batch when streaming a source (does not change the result).

        Returns
        -------
        numpy.ndarray
            C-contiguous ``(n_rows, n_features_out_)`` of ``dtype``.

        Raises
        ------
        NotFittedError, UnknownColumnError
        FeatureError
            Wrong column types; nulls without imputation, NaN or infinite values, negative
            values under log1p, nulls under ``"null": "error"`` (every column and count, after
            the pass).
        """
        fitted = self._check_fitted()
        dtype = _check_dtype(dtype)
        if isinstance(source, Batch):
            return self.transform_batch(source, buffer=np.empty((source.num_rows, len(fitted.names)), dtype))
        src = open_source(source).select(self.input_columns)
        _check_types(self.entries, src.schema)
        d = len(fitted.names)
        n = src.num_rows
        pieces = [] if n is None else None
        out = np.empty((n, d), dtype=dtype) if n is not None else None
        totals = [np.zeros(p.n_problems, dtype=np.int64) for p in fitted.plans]
        for batch in src.batches(columns=self.input_columns, batch_size=batch_size):
            if out is not None:
                target = out[batch.start:batch.start + batch.num_rows]
            else:
                target = np.empty((batch.num_rows, d), dtype=dtype)
                pieces.append(target)
            for total, p in zip(totals, fitted.apply(batch, target)):
                total += p
        if any(t.any() for t in totals):
            raise _problem_error(self.entries, totals, f"cannot transform {src.label}: ")
        if out is None:
            out = np.concatenate(pieces) if pieces else np.empty((0, d), dtype=dtype)
        return out

    def transform_batch(self, batch, buffer=None, *, dtype=np.float64):
        """Transform one batch into a preallocated output (for scoring in bounded memory).

        Parameters
        ----------
        batch : Batch
            From ``source.batches(columns=spec.input_columns, ...)``; anything with
            ``num_rows`` and ``batch[column]`` giving a ColumnView works.
        buffer : numpy.ndarray, optional
            C-contiguous float32/float64 ``(m, n_features_out_)`` with ``m >= batch.num_rows``
            (e.g. a slice of a larger result); the first ``batch.num_rows`` rows are written.
            Allocated when None.
        dtype : numpy.float32 or numpy.float64
            Of the allocated output (ignored when ``buffer`` is given).

        Returns
        -------
        numpy.ndarray
            ``buffer[:batch.num_rows]``.

        Raises
        ------
        FeatureError
            As :meth:`transform`, counting this batch only.
        """
        fitted = self._check_fitted()
        m = batch.num_rows
        d = len(fitted.names)
        if buffer is None:
            buffer = np.empty((m, d), dtype=_check_dtype(dtype))
        elif not isinstance(buffer, np.ndarray) or buffer.ndim != 2 or buffer.shape[1] != d or buffer.shape[0] < m:
            shape = getattr(buffer, "shape", None)
            raise ParameterError(f"buffer must be a 2-D numpy array of at least {m} rows and exactly {d} "
                             f"columns, got {type(buffer).__name__} of shape {shape}")
        else:
            _check_dtype(buffer.dtype)
            if not buffer.flags.c_contiguous or not buffer.flags.writeable:
                raise ParameterError("buffer must be C-contiguous (row-major) and writeable")
        buffer = buffer[:m]
        problems = fitted.apply(batch, buffer)
        if any(p.any() for p in problems):
            start = getattr(batch, "start", 0)
            raise _problem_error(self.entries, problems,
                                 f"cannot transform rows {start}..{start + m - 1}: ")
        return buffer

    def fit_transform(self, source, *, dtype=np.float64, batch_size=DEFAULT_BATCH_SIZE):
        """:meth:`fit`, then :meth:`transform` (two passes over ``source``)."""
        return self.fit(source, batch_size=batch_size).transform(source, dtype=dtype, batch_size=batch_size)

    def inverse_transform(self, X):
        """Map numeric output columns back to input units (e.g. cluster centers, for reading).

        Undoes scaling and log1p (``expm1``); clipping and imputation cannot be undone.
        One-hot and indicator columns are returned as they are.

        Parameters
        ----------
        X : array-like, (n, n_features_out_)

        Returns
        -------
        numpy.ndarray
            float64, (n, n_features_out_).
        """
        fitted = self._check_fitted()
        try:
            X = np.array(X, dtype=np.float64, copy=True, ndmin=2)
        except (TypeError, ValueError) as e:
            raise ParameterError(f"expected an array of numbers: {e}") from None
        if X.ndim != 2 or X.shape[1] != len(fitted.names):
            raise ParameterError(f"expected shape (n, {len(fitted.names)}), got {X.shape}")
        for p in fitted.plans:
            if p.kind == "numeric":
                y = X[:, p.first] * p.scale + p.center
                X[:, p.first] = np.expm1(y) if p.feature.log1p else y
        return X

    # -- saving --------------------------------------------------------------------------
    def to_dict(self):
        """The spec and its fitted statistics as plain JSON-able data (no pickle).

        Floats are Python floats, which ``json`` writes with enough digits to read back the
        same bits, so a spec saved and loaded transforms bit-identically.

        Returns
        -------
        dict
            ``{"format": "segmint.FeatureSpec", "version": 1, "sample_size": int,
            "columns": [full per-column specs], "fitted": None or {"n_rows": int,
            "feature_names_out": [str], "columns": [per-column statistics, see stats_]}}``
        """
        fitted = None
        if self._fitted is not None:
            fitted = {"n_rows": self._fitted.n_rows, "feature_names_out": list(self._fitted.names),
                      "columns": [_copy_state(s) for s in self._fitted.states]}
        return {"format": FORMAT, "version": VERSION, "sample_size": int(self.sample_size),
                "columns": [f.to_dict() for f in self.entries], "fitted": fitted}

    @classmethod
    def from_dict(cls, data):
        """Rebuild a spec (fitted or not) from :meth:`to_dict`'s output, validating every field.

        Raises
        ------
        FeatureSpecError
            Missing or unknown keys, wrong types or shapes, statistics that do not match the
            spec, or a format or version this segmint does not read.
        """
        if not isinstance(data, Mapping):
            raise FeatureSpecError(f"a saved feature spec is a dict, got {type(data).__name__}")
        _check_keys(data, ("format", "version", "sample_size", "columns", "fitted"),
                    ("format", "version", "columns"), "saved feature spec")
        if data["format"] != FORMAT:
            raise FeatureSpecError(f"not a saved feature spec: 'format' is {data['format']!r}, "
                                   f"expected {FORMAT!r}")
        version = data["version"]
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise FeatureSpecError(f"saved feature spec: 'version' must be a positive integer, got {version!r}")
        if version > VERSION:
            raise FeatureSpecError(f"this feature spec was saved in format version {version}; this "
                                   f"segmint reads up to version {VERSION}: upgrade segmint")
        if not isinstance(data["columns"], list):
            raise FeatureSpecError("saved feature spec: 'columns' must be a list of column specs, got "
                                   f"{type(data['columns']).__name__}")
        spec = cls(data["columns"], sample_size=data.get("sample_size", DEFAULT_SAMPLE_SIZE))
        fitted = data.get("fitted")
        if fitted is None:
            return spec
        if not isinstance(fitted, Mapping):
            raise FeatureSpecError(f"saved feature spec: 'fitted' must be a dict or None, got "
                                   f"{type(fitted).__name__}")
        _check_keys(fitted, ("n_rows", "feature_names_out", "columns"),
                    ("n_rows", "feature_names_out", "columns"), "fitted")
        n_rows = _get_count(fitted, "n_rows", "fitted")
        states = fitted["columns"]
        if not isinstance(states, list) or len(states) != len(spec.entries):
            got = len(states) if isinstance(states, list) else type(states).__name__
            raise FeatureSpecError(f"fitted.columns: expected a list of {len(spec.entries)} entries "
                                   f"(one per column of the spec), got {got}")
        states = [_check_state(f, s, f"fitted.columns[{i}] (column {f.column!r})")
                  for i, (f, s) in enumerate(zip(spec.entries, states))]
        spec._fitted = _Fitted(spec.entries, states, n_rows)
        names = fitted["feature_names_out"]
        if names != spec._fitted.names:
            raise FeatureSpecError(f"fitted.feature_names_out {names!r} does not match the names the "
                                   f"spec and its statistics give, {spec._fitted.names!r}")
        return spec
