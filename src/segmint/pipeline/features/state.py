"""Fitted state as plain data: copying it out, and checking a saved one before it is used."""
import math
import numbers
from collections.abc import Mapping

import numpy as np

from ...errors import closest_names
from .parse import FeatureSpecError, _is_number

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
