"""Feature specs: which columns to cluster on, and how each becomes numbers.

A :class:`FeatureSpec` is a list of per-column specs, each a plain dict (so a spec is JSON):

``{"column": "monetary", "log1p": True, "clip": [0.01, 0.99], "scale": "robust", "impute": "median", "indicator": True}``
    A numeric column (integers, floats or booleans). Keys and defaults:

    - ``log1p`` (False): replace ``x`` by ``log1p(x)``; values must be >= 0.
    - ``clip`` (None): ``[low, high]`` quantiles, ``0 <= low < high <= 1``: values below the
      ``low`` quantile become that quantile, likewise above ``high``.
    - ``scale`` ("standard"): ``"standard"`` (subtract the mean, divide by the standard
      deviation, ddof 0), ``"robust"`` (subtract the median, divide by the interquartile
      range) or None (no scaling). A constant column (std or IQR 0) gets scale 1.
    - ``impute`` (None): ``"median"`` or a number to put in place of nulls; without it a
      null is an error.
    - ``indicator`` (False): add a column ``<column>__missing``, 1.0 where the value was null
      (needs ``impute``).

    A plain string ``"monetary"`` is short for ``{"column": "monetary"}`` (standard scaling).

``{"column": "region", "one_hot": True, "max_categories": 10, "null": "indicator"}``
    A string column, one output column per category. The ``max_categories`` most frequent
    categories at fit (ties broken by name, in Python's string order) get a column each;
    the others, and categories never seen at fit, go to ``<column>__other``. ``null``
    chooses what a null is: ``"indicator"`` (default) a column ``<column>__missing``;
    ``"other"`` counted as other; ``"error"`` an error. The ``__other`` column, and the
    ``__missing`` column under ``"indicator"``, are always present, so the output's columns
    depend on the spec and on the categories kept, never on whether a batch holds nulls or
    rare values.

Per numeric column the steps run in this order: impute, log1p, clip, scale; each step's
statistics are those of the previous step's output (as in a scikit-learn Pipeline), so clip
quantiles include imputed values and are in log1p units when ``log1p`` is on. NaN and
infinite values are errors, as nulls without ``impute`` are (Arrow keeps NaN apart from null:
make them nulls to impute them); every offending column and its count are reported at once.

Output columns follow the spec's order; a numeric column keeps its name (then
``<column>__missing`` when ``indicator``); a one-hot column gives ``<column>=<category>``
for the kept categories, most frequent first, then ``<column>__other``, then
``<column>__missing``.

Fitting reads the data once, batch by batch, in bounded memory:

- counts, nulls, min, max, and the mean and variance of the (log1p'd) values, merged over
  blocks of ``BLOCK_ROWS`` rows with Chan's update: exact up to rounding, and bit-identical
  for every batch size, since blocks follow the rows, not the batches;
- for columns that need quantiles (median imputation, clipping, robust scaling), a sample of
  at most ``sample_size`` values (default 100,000): the valid rows with the smallest
  pseudo-random priorities, a fixed function of the row's index. It is the whole column when
  the column has at most ``sample_size`` valid values, and then every statistic is exact;
  above that, quantiles have a rank error of about ``sqrt(q (1 - q) / sample_size)``
  (0.16 % of the rows at the median for the default). The same rows in the same order give
  the same sample, whatever the batch size or the format.
- Statistics that one pass cannot give exactly come from the sample: the median used for
  imputation, quantiles for clipping and robust scaling, and the mean and standard deviation
  of *clipped* values (the clip bounds are known only at the end of the pass). Nulls enter
  these as the imputed value, in proportion to their count. Given the clip bounds, the
  sample's standard deviation is off by about ``sqrt((kurtosis - 1) / (4 sample_size))``
  (relative): 0.8 % for clipped log-normal spend with sigma 2 at the default size, 0.2 %
  after log1p. Mean and standard deviation without clipping come from the exact streaming
  moments.
- Integers are read as float64 (exact up to 2**53).
- For one-hot columns, the count of every category (memory: one count per distinct string).

Transforming applies the fitted statistics with a Numba kernel in exact IEEE float64
arithmetic (no fast-math), rounded once to the output dtype: the same input gives the same
bits, also after :meth:`FeatureSpec.to_dict` / :meth:`FeatureSpec.from_dict`.
"""
import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..cluster import FeatureError, NotFittedError
from ..errors import ParameterError, SegmintError, closest_names
from ..io import open as open_source
from ..io.columns import BOOLEAN, DICTIONARY, NUMERIC, column_kind
from ..io.source import DEFAULT_BATCH_SIZE, Batch
from ..kernels import transform as kt

DEFAULT_SAMPLE_SIZE = 100_000
DEFAULT_MAX_CATEGORIES = 10
BLOCK_ROWS = 4096
FORMAT = "segmint.FeatureSpec"
VERSION = 1

NUMERIC_KEYS = ("column", "log1p", "clip", "scale", "impute", "indicator")
ONE_HOT_KEYS = ("column", "one_hot", "max_categories", "null")
_ALL_KEYS = tuple(dict.fromkeys(NUMERIC_KEYS + ONE_HOT_KEYS))
SCALES = ("standard", "robust")
NULL_MODES = ("indicator", "other", "error")

# Output rows per kernel call: a tile of the output this big stays in cache while every
# column is written into it (a whole batch, written column by column, would not).
_TILE_BYTES = 1 << 20

_NO_BITS = np.zeros(0, dtype=np.uint8)
_MAX_KEY = np.uint64(np.iinfo(np.uint64).max)


class FeatureSpecError(SegmintError, ValueError):
    """A feature spec, or a saved one, that cannot be used: unknown keys, wrong types,
    incompatible options, or fitted statistics of the wrong shape."""


# ------------------------------------------------------------------------- the spec itself
@dataclass(frozen=True)
class NumericFeature:
    """One numeric column and its transforms (see the module docstring for the keys)."""

    column: str
    log1p: bool = False
    clip: tuple | None = None
    scale: str | None = "standard"
    impute: str | float | None = None
    indicator: bool = False

    kind = "numeric"

    @property
    def needs_sample(self):
        """Whether fitting needs quantiles, hence the sample."""
        return self.impute == "median" or self.clip is not None or self.scale == "robust"

    def to_dict(self):
        return {"column": self.column, "log1p": self.log1p,
                "clip": list(self.clip) if self.clip is not None else None,
                "scale": self.scale, "impute": self.impute, "indicator": self.indicator}


@dataclass(frozen=True)
class OneHotFeature:
    """One string column, one-hot encoded (see the module docstring for the keys)."""

    column: str
    max_categories: int = DEFAULT_MAX_CATEGORIES
    null: str = "indicator"

    kind = "one_hot"

    def to_dict(self):
        return {"column": self.column, "one_hot": True, "max_categories": self.max_categories,
                "null": self.null}


def _is_number(x):
    return isinstance(x, numbers.Real) and not isinstance(x, (bool, np.bool_))


def _choice_hint(value, choices):
    near = closest_names(str(value), [str(c) for c in choices])
    if near:
        return f"did you mean {' or '.join(repr(n) for n in near)}?"
    return "expected " + " or ".join(repr(c) for c in choices)


def _parse_feature(entry, position):
    """A :class:`NumericFeature` or :class:`OneHotFeature` from a string or a dict."""
    where = f"feature spec entry {position}"
    if isinstance(entry, str):
        if not entry:
            raise FeatureSpecError(f"{where}: the column name is empty")
        return NumericFeature(entry)
    if not isinstance(entry, Mapping):
        raise FeatureSpecError(
            f"{where}: expected a column name or a dict like {{'column': 'monetary', 'log1p': True}}, "
            f"got {type(entry).__name__}")
    if "column" not in entry:
        raise FeatureSpecError(f"{where}: missing 'column' (the name of the column to read); it has "
                               f"keys {sorted(map(str, entry))}")
    column = entry["column"]
    if not isinstance(column, str) or not column:
        raise FeatureSpecError(f"{where}: 'column' must be a non-empty string, got {column!r}")
    where = f"the spec of column {column!r}"
    for key in entry:
        if key not in _ALL_KEYS:
            near = closest_names(str(key), _ALL_KEYS)
            hint = (f"did you mean {' or '.join(repr(n) for n in near)}?" if near
                    else f"valid keys are {', '.join(_ALL_KEYS)}")
            raise FeatureSpecError(f"{where}: unknown key {key!r}; {hint}")
    one_hot = _flag(entry, "one_hot", where)
    if one_hot:
        wrong = [k for k in entry if k in NUMERIC_KEYS and k != "column"]
        if wrong:
            raise FeatureSpecError(
                f"{where}: {', '.join(repr(k) for k in wrong)} appl{'y' if len(wrong) > 1 else 'ies'} "
                "to numeric columns, not to one-hot encoded ones; remove "
                f"{'them' if len(wrong) > 1 else 'it'} (nulls of a one-hot column are handled by 'null')")
        max_categories = entry.get("max_categories", DEFAULT_MAX_CATEGORIES)
        if not isinstance(max_categories, numbers.Integral) or isinstance(max_categories, (bool, np.bool_)) \
                or max_categories < 1:
            raise FeatureSpecError(f"{where}: 'max_categories' must be a positive integer, got {max_categories!r}")
        null = entry.get("null", "indicator")
        if null not in NULL_MODES:
            raise FeatureSpecError(f"{where}: 'null' must be one of {', '.join(map(repr, NULL_MODES))}, "
                                   f"got {null!r}; {_choice_hint(null, NULL_MODES)}")
        return OneHotFeature(column, int(max_categories), null)
    wrong = [k for k in ("max_categories", "null") if k in entry]
    if wrong:
        raise FeatureSpecError(
            f"{where}: {', '.join(repr(k) for k in wrong)} appl{'y' if len(wrong) > 1 else 'ies'} to "
            "one-hot encoded string columns; add \"one_hot\": True, or remove "
            f"{'them' if len(wrong) > 1 else 'it'} (nulls of a numeric column are handled by 'impute')")
    log1p = _flag(entry, "log1p", where)
    clip = entry.get("clip")
    if clip is not None:
        if isinstance(clip, (str, bytes)) or not hasattr(clip, "__len__") or len(clip) != 2 \
                or not all(_is_number(q) for q in clip):
            raise FeatureSpecError(f"{where}: 'clip' takes two quantiles [low, high], e.g. [0.01, 0.99]; "
                                   f"got {clip!r}")
        low, high = float(clip[0]), float(clip[1])
        if not (0.0 <= low < high <= 1.0):
            raise FeatureSpecError(
                f"{where}: 'clip' quantiles must satisfy 0 <= low < high <= 1 (they are quantiles, not "
                f"values), got [{clip[0]!r}, {clip[1]!r}]")
        clip = (low, high)
    scale = entry.get("scale", "standard")
    if scale == "none":
        scale = None
    if scale is not None and scale not in SCALES:
        raise FeatureSpecError(f"{where}: 'scale' must be 'standard', 'robust' or None, got {scale!r}; "
                               f"{_choice_hint(scale, SCALES)}")
    impute = entry.get("impute")
    if impute is not None and impute != "median":
        if not _is_number(impute):
            hint = f"; {_choice_hint(impute, ['median'])}" if isinstance(impute, str) else ""
            raise FeatureSpecError(f"{where}: 'impute' must be 'median', a number or None, got {impute!r}{hint}")
        impute = float(impute)
        if not math.isfinite(impute):
            raise FeatureSpecError(f"{where}: 'impute' must be a finite number, got {impute!r}")
        if log1p and impute < 0:
            raise FeatureSpecError(f"{where}: 'impute' is {impute!r} but log1p needs values >= 0; impute "
                                   "a value >= 0 or 'median'")
    indicator = _flag(entry, "indicator", where)
    if indicator and impute is None:
        raise FeatureSpecError(f"{where}: 'indicator' marks imputed nulls, so it needs 'impute' "
                               "('median' or a number)")
    return NumericFeature(column, log1p, clip, scale, impute, indicator)


def _flag(entry, key, where):
    value = entry.get(key, False)
    if not isinstance(value, (bool, np.bool_)):
        raise FeatureSpecError(f"{where}: {key!r} must be True or False, got {value!r}")
    return bool(value)


def _parse_columns(columns):
    if isinstance(columns, (str, Mapping)) or not hasattr(columns, "__iter__"):
        raise FeatureSpecError(
            "a feature spec is a list of column specs, e.g. ['recency_days', {'column': 'monetary', "
            f"'log1p': True}}]; got {type(columns).__name__}")
    features = tuple(_parse_feature(entry, i) for i, entry in enumerate(columns))
    if not features:
        raise FeatureSpecError("a feature spec needs at least one column")
    seen = set()
    for f in features:
        if f.column in seen:
            raise FeatureSpecError(f"column {f.column!r} appears more than once in the feature spec; "
                                   "give each column one entry")
        seen.add(f.column)
    return features


def _check_sample_size(sample_size):
    if not isinstance(sample_size, numbers.Integral) or isinstance(sample_size, (bool, np.bool_)) \
            or sample_size < 1:
        raise FeatureSpecError(f"sample_size must be a positive integer, got {sample_size!r}")
    return int(sample_size)


# ---------------------------------------------------------------------------- estimator
class FeatureSpec:
    """Columns to cluster on and their transforms; fitted in one streaming pass.

    Parameters
    ----------
    columns : list of str or dict
        One entry per input column, in output order; see the module docstring for the keys.
        Validated now: unknown keys, wrong types and incompatible options raise
        :class:`FeatureSpecError` naming the column.
    sample_size : int, default 100,000
        Values per column kept to compute quantiles (median imputation, clipping, robust
        scaling, moments of clipped values). Statistics are exact for columns with at most
        this many non-null values. Memory: up to 16 bytes times twice this per such column.

    Attributes
    ----------
    features : tuple of NumericFeature or OneHotFeature
        The validated spec.
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

    def __init__(self, columns, *, sample_size=DEFAULT_SAMPLE_SIZE):
        self.columns = columns
        self.sample_size = sample_size
        self.features = _parse_columns(columns)
        _check_sample_size(sample_size)
        self._fitted = None

    @property
    def input_columns(self):
        return [f.column for f in self.features]

    def __repr__(self):
        extra = "" if self.sample_size == DEFAULT_SAMPLE_SIZE else f", sample_size={self.sample_size!r}"
        return f"FeatureSpec({self.columns!r}{extra})"

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
        return {f.column: _copy_state(s) for f, s in zip(self.features, fitted.states)}

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
        _check_types(self.features, src.schema)
        accumulators = [_NumericStats(f, self.sample_size) if f.kind == "numeric" else _CategoryCounts(f)
                        for f in self.features]
        n_rows = 0
        for batch in src.batches(columns=names, batch_size=batch_size):
            for acc in accumulators:
                acc.update(batch[acc.feature.column], batch.start)
            n_rows += batch.num_rows
        if n_rows == 0:
            raise FeatureError(f"cannot fit the feature spec on {src.label}: it has no rows")
        problems = [acc.fit_problems() for acc in accumulators]
        if any(p.any() for p in problems):
            raise _problem_error(self.features, problems, f"cannot fit the feature spec on {src.label}: ")
        states = [acc.finish() for acc in accumulators]
        self._fitted = _Fitted(self.features, states, n_rows)
        return self

    # -- transform -----------------------------------------------------------------------
    def transform(self, data, *, dtype=np.float64, batch_size=DEFAULT_BATCH_SIZE):
        """The feature matrix of ``data``.

        Parameters
        ----------
        data : any input :func:`segmint.open` accepts, or one :class:`~segmint.io.source.Batch`
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
        if isinstance(data, Batch):
            return self.transform_batch(data, out=np.empty((data.num_rows, len(fitted.names)), dtype))
        src = open_source(data).select(self.input_columns)
        _check_types(self.features, src.schema)
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
            raise _problem_error(self.features, totals, f"cannot transform {src.label}: ")
        if out is None:
            out = np.concatenate(pieces) if pieces else np.empty((0, d), dtype=dtype)
        return out

    def transform_batch(self, batch, out=None, *, dtype=np.float64):
        """Transform one batch into a preallocated output (for scoring in bounded memory).

        Parameters
        ----------
        batch : Batch
            From ``source.batches(columns=spec.input_columns, ...)``; anything with
            ``num_rows`` and ``batch[column]`` giving a ColumnView works.
        out : numpy.ndarray, optional
            C-contiguous float32/float64 ``(m, n_features_out_)`` with ``m >= batch.num_rows``
            (e.g. a slice of a larger result); the first ``batch.num_rows`` rows are written.
            Allocated when None.
        dtype : numpy.float32 or numpy.float64
            Of the allocated output (ignored when ``out`` is given).

        Returns
        -------
        numpy.ndarray
            ``out[:batch.num_rows]``.

        Raises
        ------
        FeatureError
            As :meth:`transform`, counting this batch only.
        """
        fitted = self._check_fitted()
        m = batch.num_rows
        d = len(fitted.names)
        if out is None:
            out = np.empty((m, d), dtype=_check_dtype(dtype))
        elif not isinstance(out, np.ndarray) or out.ndim != 2 or out.shape[1] != d or out.shape[0] < m:
            shape = getattr(out, "shape", None)
            raise ParameterError(f"out must be a 2-D numpy array of at least {m} rows and exactly {d} "
                             f"columns, got {type(out).__name__} of shape {shape}")
        else:
            _check_dtype(out.dtype)
            if not out.flags.c_contiguous or not out.flags.writeable:
                raise ParameterError("out must be C-contiguous (row-major) and writeable")
        out = out[:m]
        problems = fitted.apply(batch, out)
        if any(p.any() for p in problems):
            start = getattr(batch, "start", 0)
            raise _problem_error(self.features, problems,
                                 f"cannot transform rows {start}..{start + m - 1}: ")
        return out

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
                "columns": [f.to_dict() for f in self.features], "fitted": fitted}

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
        if not isinstance(states, list) or len(states) != len(spec.features):
            got = len(states) if isinstance(states, list) else type(states).__name__
            raise FeatureSpecError(f"fitted.columns: expected a list of {len(spec.features)} entries "
                                   f"(one per column of the spec), got {got}")
        states = [_check_state(f, s, f"fitted.columns[{i}] (column {f.column!r})")
                  for i, (f, s) in enumerate(zip(spec.features, states))]
        spec._fitted = _Fitted(spec.features, states, n_rows)
        names = fitted["feature_names_out"]
        if names != spec._fitted.names:
            raise FeatureSpecError(f"fitted.feature_names_out {names!r} does not match the names the "
                                   f"spec and its statistics give, {spec._fitted.names!r}")
        return spec


# ------------------------------------------------------------------------ fitted plans
class _Fitted:
    """Fitted statistics turned into what the kernels need: output columns and parameters."""

    def __init__(self, features, states, n_rows):
        self.states = states
        self.n_rows = n_rows
        self.plans = []
        first = 0
        for f, s in zip(features, states):
            plan = _NumericPlan(f, s, first) if f.kind == "numeric" else _OneHotPlan(f, s, first)
            self.plans.append(plan)
            first += plan.width
        self.names = [name for p in self.plans for name in p.names]
        if len(set(self.names)) != len(self.names):
            seen, repeated = set(), []
            for name in self.names:
                if name in seen:
                    repeated.append(name)
                seen.add(name)
            raise FeatureSpecError(f"output column names repeat: {sorted(set(repeated))}; a column "
                                   "name in the spec clashes with a one-hot or indicator name")

    def apply(self, batch, out):
        """Transform ``batch`` into ``out`` (its rows); return the per-column problem counts."""
        m = batch.num_rows
        inputs = [p.prepare(batch[p.column]) for p in self.plans]
        problems = [np.zeros(p.n_problems, dtype=np.int64) for p in self.plans]
        row_bytes = max(1, out.shape[1] * out.itemsize)
        tile = max(256, _TILE_BYTES // row_bytes)
        for lo in range(0, m, tile):
            hi = min(m, lo + tile)
            for plan, x, prob in zip(self.plans, inputs, problems):
                plan.apply(x, lo, hi, out, prob)
        return problems


class _NumericPlan:
    kind = "numeric"
    n_problems = 3

    def __init__(self, feature, state, first):
        self.feature = feature
        self.column = feature.column
        self.first = first
        self.indicator_col = first + 1 if feature.indicator else -1
        self.width = 2 if feature.indicator else 1
        self.names = [self.column] + ([f"{self.column}__missing"] if feature.indicator else [])
        v = state["impute_value"]
        self.has_impute = v is not None
        self.impute = float(v) if v is not None else 0.0
        self.use_clip = state["clip_low"] is not None
        self.clip_lo = float(state["clip_low"]) if self.use_clip else 0.0
        self.clip_hi = float(state["clip_high"]) if self.use_clip else 0.0
        self.center = float(state["center"])
        self.scale = float(state["scale"])

    def prepare(self, view):
        _check_view(self.feature, view)
        return _numeric_input(view)

    def apply(self, x, lo, hi, out, problems):
        values, bits, offset = x
        kt.apply_numeric(values, bits, offset, lo, hi, self.impute, self.has_impute, self.feature.log1p,
                         self.clip_lo, self.clip_hi, self.use_clip, self.center, self.scale,
                         self.first, self.indicator_col, out, problems)


class _OneHotPlan:
    kind = "one_hot"
    n_problems = 1

    def __init__(self, feature, state, first):
        self.feature = feature
        self.column = c = feature.column
        self.first = first
        kept = state["categories"]
        self.other = len(kept)
        self.width = len(kept) + 1 + (feature.null == "indicator")
        self.null_col = {"indicator": first + self.other + 1, "other": first + self.other,
                         "error": -1}[feature.null]
        self.names = [f"{c}={s}" for s in kept] + [f"{c}__other"] + (
            [f"{c}__missing"] if feature.null == "indicator" else [])
        self.value_set = pa.array(kept, type=pa.string())
        # (dictionary, lookup) of the last batch seen: within a pass the dictionary object
        # changes only when new strings arrive, so most batches reuse the table. One tuple,
        # replaced whole, so concurrent callers never see a half-updated pair.
        self._cache = (None, None)

    def lookup(self, dictionary):
        cached_dictionary, table = self._cache
        if cached_dictionary is dictionary:
            return table
        value_set = self.value_set if self.value_set.type == dictionary.type else self.value_set.cast(dictionary.type)
        index = pc.index_in(dictionary, value_set=value_set)
        table = np.ascontiguousarray(index.fill_null(self.other).to_numpy(zero_copy_only=False), dtype=np.int32)
        self._cache = (dictionary, table)
        return table

    def prepare(self, view):
        _check_view(self.feature, view)
        bits = view.validity if view.validity is not None else _NO_BITS
        return view.values, bits, view.validity_offset, self.lookup(view.dictionary)

    def apply(self, x, lo, hi, out, problems):
        codes, bits, offset, table = x
        kt.apply_one_hot(codes, bits, offset, lo, hi, table, self.first, self.width, self.null_col,
                         out, problems)


# ---------------------------------------------------------------------------- fitting
class _NumericStats:
    """Streaming statistics of one numeric column (see the module docstring)."""

    def __init__(self, feature, sample_size):
        self.feature = feature
        self.k = sample_size
        self.buf = np.empty(BLOCK_ROWS, dtype=np.float64)
        self.state = np.array([-1, 0, 0], dtype=np.int64)
        self.moments = np.array([0.0, 0.0, np.inf, -np.inf])
        self.problems = np.zeros(2, dtype=np.int64)
        self.nulls = 0
        self.values = None
        if feature.needs_sample:
            cap = min(2 * self.k, 4096)
            self.values = np.empty(cap, dtype=np.float64)
            self.keys = np.empty(cap, dtype=np.uint64)
            self.fill = np.zeros(1, dtype=np.int64)
            self.threshold = _MAX_KEY

    def update(self, view, start):
        values, bits, offset = _numeric_input(view)
        kt.accumulate_moments(values, bits, offset, start, self.feature.log1p, self.buf, self.state,
                              self.moments, self.problems)
        self.nulls += view.null_count
        if self.values is None:
            return
        i = 0
        while True:
            i = kt.sample_candidates(values, bits, offset, start, i, self.threshold, self.values,
                                     self.keys, self.fill)
            if i >= len(values):
                return
            self._make_room()

    def _make_room(self):
        cap = len(self.values)
        if cap < 2 * self.k:
            # grow before compacting: small columns never pay for a 2k buffer
            new_cap = min(2 * self.k, 2 * cap)
            self.values = np.concatenate([self.values, np.empty(new_cap - cap)])
            self.keys = np.concatenate([self.keys, np.empty(new_cap - cap, dtype=np.uint64)])
        else:
            self._compact()

    def _compact(self):
        c, k = int(self.fill[0]), self.k
        if c <= k:
            return
        keep = np.argpartition(self.keys[:c], k - 1)[:k]
        self.values[:k] = self.values[keep]
        self.keys[:k] = self.keys[keep]
        self.fill[0] = k
        self.threshold = self.keys[:k].max()

    def fit_problems(self):
        """``[nulls without imputation, NaN/inf, negatives under log1p]`` seen in the pass."""
        nulls = self.nulls if self.feature.impute is None else 0
        return np.array([nulls, self.problems[0], self.problems[1]], dtype=np.int64)

    def _chain(self, raw):
        """Impute-free chain without clip or scaling: ``log1p(x)`` or ``x``, as the kernel computes it."""
        raw = np.ascontiguousarray(raw, dtype=np.float64)
        out = np.empty((raw.size, 1), dtype=np.float64)
        kt.apply_numeric(raw, _NO_BITS, 0, 0, raw.size, 0.0, False, self.feature.log1p, 0.0, 0.0, False,
                         0.0, 1.0, 0, -1, out, np.zeros(3, dtype=np.int64))
        return out[:, 0]

    def finish(self):
        """The column's statistics (a plain dict, see :attr:`FeatureSpec.stats_`)."""
        f = self.feature
        kt.merge_block(self.buf, self.state, self.moments)
        count, nulls = int(self.state[2]), int(self.nulls)
        lo_raw, hi_raw = float(self.moments[2]), float(self.moments[3])
        state = {"count": count, "nulls": nulls, "sampled": False,
                 "min": lo_raw if count else None, "max": hi_raw if count else None,
                 "impute_value": None, "clip_low": None, "clip_high": None, "center": 0.0, "scale": 1.0}
        sample, T, m = None, None, 0
        if self.values is not None:
            self._compact()
            sample = np.sort(self.values[:int(self.fill[0])])
            state["sampled"] = count > len(sample)
        if f.impute == "median":
            if count == 0:
                raise FeatureError(f"column {f.column!r} has only nulls ({nulls:,}), so its median is "
                                   "undefined; impute a constant instead, e.g. \"impute\": 0")
            state["impute_value"] = _quantiles(sample, None, 0, [0.5])[0]
        elif f.impute is not None:
            state["impute_value"] = float(f.impute)
        v = state["impute_value"]
        tv = float(self._chain([v])[0]) if v is not None else None
        n_fill = nulls if v is not None else 0
        if sample is not None:
            # the column after impute and log1p, as (sorted sample, imputed value, its copies):
            # nulls weigh in as many times as their share of the column
            T = np.sort(self._chain(sample))
            m = n_fill if not state["sampled"] else round(n_fill * len(T) / count)
        bounds = None
        if f.clip is not None:
            bounds = _quantiles(T, tv, m, f.clip)
            state["clip_low"], state["clip_high"] = bounds
        if f.scale == "standard":
            extremes = list(self._chain([lo_raw, hi_raw])) if count else []
            extremes = _clipped(np.asarray(extremes + ([tv] if n_fill else [])), bounds)
            if extremes.min() == extremes.max():
                # constant (exactly so: min and max are exact): center on it, outputs are 0
                center, scale = float(extremes[0]), 1.0
            elif bounds is not None:
                center, scale = _moments(_clipped(T, bounds), _clipped(tv, bounds), m)
            else:
                center, scale = self._exact_moments(tv, n_fill)
            state["center"], state["scale"] = float(center), (float(scale) if scale > 0 else 1.0)
        elif f.scale == "robust":
            q25, q50, q75 = _quantiles(_clipped(T, bounds), _clipped(tv, bounds), m, [0.25, 0.5, 0.75])
            state["center"], state["scale"] = q50, (q75 - q25 if q75 > q25 else 1.0)
        if not (math.isfinite(state["center"]) and math.isfinite(state["scale"])):
            raise FeatureError(f"column {f.column!r}: its {f.scale} scaling overflows float64 (values up "
                               f"to {max(abs(lo_raw), abs(hi_raw)):.3g}); use \"log1p\" or \"robust\" scaling")
        return state

    def _exact_moments(self, tv, n_fill):
        """Mean and std of all values (streamed) with ``n_fill`` imputed ``tv`` merged in."""
        count = int(self.state[2])
        mean, m2 = float(self.moments[0]), float(self.moments[1])
        n = count + n_fill
        if n_fill:
            delta = tv - mean
            mean += delta * (n_fill / n)
            m2 += delta * delta * (count / n) * n_fill
        return mean, math.sqrt(m2 / n)


def _clipped(x, bounds):
    """``x`` (an array, a float or None) clipped to ``bounds``; as is when bounds is None."""
    if bounds is None or x is None:
        return x
    if isinstance(x, np.ndarray):
        return np.clip(x, bounds[0], bounds[1])
    return min(max(x, bounds[0]), bounds[1])


def _moments(T, fill, m):
    """Mean and std (ddof 0) of ``T`` with ``m`` copies of ``fill`` added (two passes)."""
    n = len(T) + m
    fill = fill if m else 0.0
    mean = (float(T.sum()) + m * fill) / n
    var = (float(((T - mean) ** 2).sum()) + m * (fill - mean) ** 2) / n
    return mean, math.sqrt(var)


class _CategoryCounts:
    """Per-category counts of one string column over one pass (codes are stable within it)."""

    def __init__(self, feature):
        self.feature = feature
        self.counts = np.zeros(0, dtype=np.int64)
        self.nulls = 0
        self.dictionary = None

    def update(self, view, start):
        codes = view.values
        if view.null_count:
            codes = codes[view.is_valid()]
        size = len(view.dictionary)
        if size > len(self.counts):
            self.counts = np.concatenate([self.counts, np.zeros(size - len(self.counts), dtype=np.int64)])
        self.counts[:size] += np.bincount(codes, minlength=size)[:size]
        self.nulls += view.null_count
        self.dictionary = view.dictionary

    def fit_problems(self):
        return np.array([self.nulls if self.feature.null == "error" else 0], dtype=np.int64)

    def finish(self):
        strings = self.dictionary.to_pylist() if self.dictionary is not None else []
        seen = [(int(c), s) for s, c in zip(strings, self.counts.tolist()) if c > 0]
        seen.sort(key=lambda cs: (-cs[0], cs[1]))
        kept = seen[:self.feature.max_categories]
        count = int(self.counts.sum())
        return {"count": count, "nulls": int(self.nulls), "categories": [s for _, s in kept],
                "category_counts": [c for c, _ in kept], "other_count": count - sum(c for c, _ in kept)}


def _quantiles(T, fill, m, qs):
    """Quantiles (numpy's default 'linear' method) of sorted ``T`` with ``m`` copies of ``fill`` added.

    The merged column is never built: element ``j`` is found by position, so ``m`` may be
    the null count of a column of 50 million rows.
    """
    T = np.asarray(T, dtype=np.float64)
    n = len(T) + m
    i0 = int(np.searchsorted(T, fill)) if m else len(T)

    def at(j):
        if j < i0:
            return float(T[j])
        if j < i0 + m:
            return float(fill)
        return float(T[j - m])

    result = []
    for q in qs:
        h = (n - 1) * float(q)
        below = math.floor(h)
        if h >= n - 1:
            result.append(at(n - 1))
            continue
        a, b = at(below), at(below + 1)
        g = h - below
        d = b - a
        # numpy's _lerp: interpolate from the nearer end, so g = 1 lands exactly on b
        result.append(a + d * g if g < 0.5 else b - d * (1 - g))
    return result


# ---------------------------------------------------------------------------- checks
def _numeric_input(view):
    """(values as float32/float64, validity bitmap or empty, bit offset) of a numeric view."""
    bits = view.validity if view.validity is not None else _NO_BITS
    if view.kind == BOOLEAN:
        return view.to_numpy().astype(np.float64), bits, view.validity_offset
    values = view.values
    if values.dtype != np.float64 and values.dtype != np.float32:
        # two value dtypes for the kernels, not ten; integers beyond 2**53 round
        values = values.astype(np.float64)
    return values, bits, view.validity_offset


def _type_problem(feature, kind, arrow_type):
    c = feature.column
    if feature.kind == "numeric":
        if kind in (NUMERIC, BOOLEAN):
            return None
        if kind == DICTIONARY:
            return (f"feature column {c!r} holds strings ({arrow_type}); one-hot encode it with "
                    f"{{'column': {c!r}, 'one_hot': True}}")
        return (f"feature column {c!r} has type {arrow_type}; turn it into a number first (e.g. days "
                "since a date)")
    if kind == DICTIONARY:
        return None
    return (f"feature column {c!r} has type {arrow_type}, but one_hot needs strings; cast it to "
            "string, or give it a numeric spec")


def _check_types(features, schema):
    for f in features:
        t = schema.field(f.column).type
        problem = _type_problem(f, column_kind(t), t)
        if problem:
            raise FeatureError(problem)


def _check_view(feature, view):
    problem = _type_problem(feature, view.kind, view.arrow_type)
    if problem:
        raise FeatureError(problem)


def _check_dtype(dtype):
    try:
        dtype = np.dtype(dtype)
    except TypeError:
        raise ParameterError(f"dtype must be float32 or float64, got {dtype!r}") from None
    if dtype not in (np.float32, np.float64):
        raise ParameterError(f"dtype must be float32 or float64, got {dtype}")
    return dtype


def _plural(n, word):
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def _problem_error(features, problems, prefix):
    parts = []
    for f, p in zip(features, problems):
        c = f.column
        if f.kind == "numeric":
            nulls, nonfinite, negative = (int(x) for x in p)
            if nulls:
                parts.append(f"column {c!r} has {_plural(nulls, 'null')} and no imputation; add "
                             "\"impute\": \"median\" (or a number) to its spec")
            if nonfinite:
                parts.append(f"column {c!r} has {_plural(nonfinite, 'NaN or infinite value')}; make them "
                             "nulls and impute, or drop those rows")
            if negative:
                parts.append(f"column {c!r} has {_plural(negative, 'negative value')}, which log1p cannot "
                             "take; remove \"log1p\" from its spec or shift the column to be >= 0")
        elif p[0]:
            parts.append(f"column {c!r} has {_plural(int(p[0]), 'null')} and \"null\": \"error\"; use "
                         "\"null\": \"indicator\" or \"other\" to encode them")
    return FeatureError(prefix + "; ".join(parts))


def _copy_state(state):
    return {k: (list(v) if isinstance(v, list) else v) for k, v in state.items()}


# ------------------------------------------------------------------ loading saved statistics
_NUMERIC_STATE = ("count", "nulls", "sampled", "min", "max", "impute_value", "clip_low", "clip_high",
                  "center", "scale")
_ONE_HOT_STATE = ("count", "nulls", "categories", "category_counts", "other_count")


def _check_keys(d, allowed, required, where):
    for key in d:
        if key not in allowed:
            near = closest_names(str(key), allowed)
            hint = f"did you mean {' or '.join(map(repr, near))}?" if near else f"valid keys are {', '.join(allowed)}"
            raise FeatureSpecError(f"{where}: unknown key {key!r}; {hint}")
    missing = [k for k in required if k not in d]
    if missing:
        raise FeatureSpecError(f"{where}: missing {', '.join(map(repr, missing))}")


def _get_count(d, key, where):
    v = d[key]
    if not isinstance(v, numbers.Integral) or isinstance(v, (bool, np.bool_)) or v < 0:
        raise FeatureSpecError(f"{where}.{key}: expected a non-negative integer, got {v!r}")
    return int(v)


def _get_float(d, key, where, optional=False):
    v = d[key]
    if v is None and optional:
        return None
    if not _is_number(v) or not math.isfinite(float(v)):
        what = "a finite number or None" if optional else "a finite number"
        raise FeatureSpecError(f"{where}.{key}: expected {what}, got {v!r}")
    return float(v)


def _check_state(feature, s, where):
    if not isinstance(s, Mapping):
        raise FeatureSpecError(f"{where}: expected a dict of statistics, got {type(s).__name__}")
    if feature.kind == "numeric":
        _check_keys(s, _NUMERIC_STATE, _NUMERIC_STATE, where)
        out = {"count": _get_count(s, "count", where), "nulls": _get_count(s, "nulls", where)}
        if not isinstance(s["sampled"], (bool, np.bool_)):
            raise FeatureSpecError(f"{where}.sampled: expected True or False, got {s['sampled']!r}")
        out["sampled"] = bool(s["sampled"])
        for key in ("min", "max", "impute_value", "clip_low", "clip_high"):
            out[key] = _get_float(s, key, where, optional=True)
        out["center"] = _get_float(s, "center", where)
        out["scale"] = _get_float(s, "scale", where)
        if out["scale"] <= 0:
            raise FeatureSpecError(f"{where}.scale: expected a positive number, got {out['scale']!r}")
        if (out["impute_value"] is None) != (feature.impute is None):
            raise FeatureSpecError(f"{where}.impute_value: the spec {'imputes' if feature.impute is not None else 'does not impute'} "
                                   f"nulls, but impute_value is {out['impute_value']!r}")
        for key in ("clip_low", "clip_high"):
            if (out[key] is None) != (feature.clip is None):
                raise FeatureSpecError(f"{where}.{key}: the spec {'clips' if feature.clip else 'does not clip'}, "
                                       f"but {key} is {out[key]!r}")
        if feature.clip is not None and out["clip_low"] > out["clip_high"]:
            raise FeatureSpecError(f"{where}: clip_low {out['clip_low']!r} is above clip_high {out['clip_high']!r}")
        return out
    _check_keys(s, _ONE_HOT_STATE, _ONE_HOT_STATE, where)
    out = {k: _get_count(s, k, where) for k in ("count", "nulls", "other_count")}
    categories, counts = s["categories"], s["category_counts"]
    if not isinstance(categories, list) or not all(isinstance(c, str) for c in categories):
        raise FeatureSpecError(f"{where}.categories: expected a list of strings, got {categories!r}")
    if len(set(categories)) != len(categories):
        raise FeatureSpecError(f"{where}.categories: categories repeat")
    if len(categories) > feature.max_categories:
        raise FeatureSpecError(f"{where}.categories: {len(categories)} categories, more than the spec's "
                               f"max_categories ({feature.max_categories})")
    if not isinstance(counts, list) or len(counts) != len(categories) or not all(
            isinstance(c, numbers.Integral) and not isinstance(c, bool) and c >= 0 for c in counts):
        raise FeatureSpecError(f"{where}.category_counts: expected {len(categories)} non-negative integers "
                               f"(one per category), got {counts!r}")
    out["categories"] = list(categories)
    out["category_counts"] = [int(c) for c in counts]
    return out
