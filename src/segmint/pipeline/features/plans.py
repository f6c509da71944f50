"""Fitted statistics turned into kernel plans: the output columns and each one's parameters."""
import functools

import numpy as np
import pyarrow as pa

from ..._lazy import lazy_import
from ...kernels import transform as kt
from .checks import _NO_BITS, _check_view, _numeric_input
from .parse import FeatureSpecError

pc = lazy_import("pyarrow.compute")  # on first use: see segmint._lazy

# Output rows per kernel call: a tile of the output this big stays in cache while every
# column is written into it (a whole batch, written column by column, would not).
_TILE_BYTES = 1 << 20


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
        self.categories = tuple(kept)
        # (dictionary, lookup) of the last batch seen: within a pass the dictionary object
        # changes only when new strings arrive, so most batches reuse the table. One tuple,
        # replaced whole, so concurrent callers never see a half-updated pair.
        self._cache = (None, None)

    @functools.cached_property
    def value_set(self):
        """The kept categories as an Arrow string array, built at the first lookup rather than
        at load: ``pa.array`` imports pandas when it is installed (~150 ms of start-up)."""
        return pa.array(self.categories, type=pa.string())

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
