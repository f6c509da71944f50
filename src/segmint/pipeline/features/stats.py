"""One-pass statistics of a column, batch by batch in bounded memory (see the package docstring)."""
import math

import numpy as np

from ...cluster import FeatureError
from ...kernels import transform as kt
from ...io.columns import read_only
from .checks import _NO_BITS, _numeric_input

BLOCK_ROWS = 4096
_MAX_KEY = np.uint64(np.iinfo(np.uint64).max)


class _NumericStats:
    """Streaming statistics of one numeric column (see the package docstring)."""

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
        raw = read_only(np.ascontiguousarray(raw, dtype=np.float64))  # as column values: one signature
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
