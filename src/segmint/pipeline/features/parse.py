"""Parsing a feature spec: its keys, its per-column objects and their checks (no data)."""
import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from ...errors import SegmintError, closest_names

DEFAULT_SAMPLE_SIZE = 100_000
DEFAULT_MAX_CATEGORIES = 10
FORMAT = "segmint.FeatureSpec"
VERSION = 1

NUMERIC_KEYS = ("column", "log1p", "clip", "scale", "impute", "indicator")
ONE_HOT_KEYS = ("column", "one_hot", "max_categories", "null")
_ALL_KEYS = tuple(dict.fromkeys(NUMERIC_KEYS + ONE_HOT_KEYS))
SCALES = ("standard", "robust")
NULL_MODES = ("indicator", "other", "error")


class FeatureSpecError(SegmintError, ValueError):
    """A feature spec, or a saved one, that cannot be used: unknown keys, wrong types,
    incompatible options, or fitted statistics of the wrong shape."""



@dataclass(frozen=True)
class NumericFeature:
    """One numeric column and its transforms (see the package docstring for the keys)."""

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
    """One string column, one-hot encoded (see the package docstring for the keys)."""

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


def _parse_features(features):
    """The validated entries of a feature spec (a list of column names or dicts)."""
    if isinstance(features, (str, Mapping)) or not hasattr(features, "__iter__"):
        raise FeatureSpecError(
            "a feature spec is a list of column specs, e.g. ['recency_days', {'column': 'monetary', "
            f"'log1p': True}}]; got {type(features).__name__}")
    features = tuple(_parse_feature(entry, i) for i, entry in enumerate(features))
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
