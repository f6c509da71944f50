"""Checks of column types and values, and the errors that name every offending column."""
import numpy as np

from ...cluster import FeatureError
from ...errors import ParameterError
from ...io.columns import BOOLEAN, DICTIONARY, NUMERIC, column_kind, read_only

_NO_BITS = read_only(np.zeros(0, dtype=np.uint8))


def _numeric_input(view):
    """(values as float32/float64, validity bitmap or empty, bit offset) of a numeric view."""
    bits = view.validity if view.validity is not None else _NO_BITS
    if view.kind == BOOLEAN:
        return read_only(view.to_numpy().astype(np.float64)), bits, view.validity_offset
    values = view.values
    if values.dtype != np.float64 and values.dtype != np.float32:
        # two value dtypes for the kernels, not ten; integers beyond 2**53 round
        values = values.astype(np.float64)
    # read-only, as every column array the kernels get (see segmint.io.columns.read_only)
    return read_only(values), read_only(bits), view.validity_offset


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
