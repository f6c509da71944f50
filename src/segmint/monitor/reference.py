"""Reference statistics: what a customer base looked like, as plain data a model file can hold.

:func:`reference_statistics` reads a source (twice with numeric features, see below) and
records, for later drift checks against new data alone (:func:`segmint.monitor.psi.feature_drift`):

- per **numeric feature** (numbers and booleans as 0/1) the inner bin edges at the reference
  deciles, the rows in each bin and the missing rows;
- per **categorical feature** (a string column) the rows of each category and the null rows;
- with ``segments=`` (a column), the rows of each segment and the rows without one.

How the edges are chosen, and how exact the bin counts are
-----------------------------------------------------------
The decile ``q`` (q = 0.1, ..., 0.9) is the value ``d`` of rank ``floor(q * (n - 1))`` among the
``n`` non-missing values (``numpy.quantile``'s ``method="lower"``). A numeric feature takes two
streaming passes (so a source that can be read only once, a stream, is refused):

1. the smallest and largest finite value, ``lo`` and ``hi``;
2. segmint's mergeable quantile sketch (:mod:`segmint.kernels.sketch`: 64 log-spaced buckets
   per power of two, one bucket for magnitudes below 2^-24) of every value **shifted and scaled**
   to ``y = (x * 0.5 - lo * 0.5) / ((hi - lo) * 0.5)`` in ``[0, 1]``
   (:func:`segmint.kernels.psi.scaled_sketch`). The sketch's precision is then relative to the
   distance from ``lo`` and to the spread, whatever the magnitude of the values: years, epoch
   seconds, values around 1e-9 and negative values are resolved alike.

The edge of decile ``d`` is the smallest float64 ``e`` whose ``y`` reaches the upper boundary of
the sketch bucket holding ``d`` (found by bisection over float64 values, with the same IEEE
operations as the kernel). So

- **bound**: ``d < e <= d + (d - lo) / 64 + (hi - lo) * 2^-23`` (a sketch bucket spans at most
  1/64 of its ``y``, and ``y`` below 2^-24 shares one bucket; the rest is rounding slack), or
  ``e`` is the float64 right after ``d`` (a constant column, or ``d`` the maximum).
  Distinct values closer than that may share a bin; integers less than 64 apart from the
  minimum never do;
- the bin counts are **exact** for these edges: ``x`` maps to ``y`` monotonically, so the rows
  below ``e`` are exactly the rows of the sketch buckets up to ``d``'s;
- bins are left-closed (``e_{b-1} <= x < e_b``, see :mod:`segmint.kernels.psi`): a value equal to
  an edge is in the bin above it, as ``numpy.searchsorted(edges, x, side="right")``;
- deciles that share a bucket give the same edge, which is kept once: ties and few distinct
  values give fewer than 9 edges and bins of unequal size; a constant column gives 1 edge (just
  above its value: every row below it, none above); a column without a single non-missing value
  gives none (one bin, empty);
- the first bin always holds rows; the last one is empty in the reference when the top decile
  is in the bucket of the maximum (0/1 flags, small counts): it then catches current values
  above the reference range (its reference share is floored to epsilon by the PSI);
- ``-inf`` and ``+inf`` are values below and above every finite one: a decile at ``-inf`` gives
  the edge ``lo`` (only ``-inf`` below it), a decile at ``+inf`` no edge (nothing lies above it);
- a spread below 2^-1022 (subnormal numbers) is resolved no finer than a spread of 2^-1022:
  the bound's last term is then ``2^-1022 * 2^-23`` = 2^-1045 (the scale of ``y`` is capped at
  2^1023, as ``1 / (half the spread)`` would overflow).

Missing values: a null or a NaN is *missing* (counted apart); infinities are values (in the outer
bins); a categorical feature's nulls are its null count. The document stores counts, not shares:
shares are counts over ``n_rows`` and stay exact.
"""
import math
import struct
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from .._documents import short_repr as _short
from .._estimator import check_positive_int
from .._lazy import lazy_import
from .._parallel import ordered_map
from ..errors import DataError, ParameterError, UnsupportedTypeError, unknown_column
from ..io import DEFAULT_BATCH_SIZE
from ..io import open as open_source
from ..io.columns import BOOLEAN, DICTIONARY, NUMERIC, column_kind, kernel_numbers, read_only, validity_bits

kpsi = lazy_import("segmint.kernels.psi")  # on first use: see segmint._lazy (a model's load reads this module)
ks = lazy_import("segmint.kernels.sketch")

FORMAT = "segmint-reference"
VERSION = 1
DECILES = tuple(q / 10 for q in range(1, 10))

# A categorical feature or segment column with more distinct values than this (emails, ids) is
# refused: the reference travels inside a model file, whose description is at most 16 MiB.
MAX_CATEGORIES = 1_000

# Segments a document's segments= section may list (a Segmenter's segment ids are int16).
MAX_SEGMENT_NAMES = 32_768

# Bins one numeric feature of a loaded document may declare (segmint writes at most 9 edges; other
# writers may use finer bins, but not enough to make a drift check slow or large).
MAX_EDGES = 1_000

EDGE_METHOD = (
    "inner edges at the reference deciles d (value of rank floor(q * (n - 1)), q = 0.1..0.9, "
    "non-missing values), from a quantile sketch of (x - min) / (max - min) (finite min and max "
    "of a first pass): d < edge <= max(d + (d - min) / 64 + (max - min) * 2^-23, next float after "
    "d); equal edges kept "
    "once; bins left-closed; bin counts exact")

# Largest scale of the shifted sketch: 1 / (half the spread) overflows for subnormal spreads.
_MAX_SCALE = 2.0 ** 1023



# -- the statistics ---------------------------------------------------------------------------
@dataclass(frozen=True)
class NumericReference:
    """One numeric feature: inner bin ``edges`` (strictly increasing, finite), ``counts``
    (``len(edges) + 1`` bins, left-closed) and ``null_count`` (rows null or NaN)."""

    name: str
    edges: tuple
    counts: tuple
    null_count: int

    @property
    def n_rows(self):
        return sum(self.counts) + self.null_count

    @property
    def shares(self):
        """Share of all rows in each bin (the null share is apart: together they add to 1)."""
        n = self.n_rows
        return tuple(c / n if n else 0.0 for c in self.counts)

    @property
    def null_share(self):
        n = self.n_rows
        return self.null_count / n if n else 0.0


@dataclass(frozen=True)
class CategoryReference:
    """One string column (a categorical feature, or the segment column): ``categories`` (in
    **dictionary order**: the order of the pass's dictionary, i.e. the first batch's dictionary
    with strings met later appended, which for a plain string column is the order of first
    appearance; an integer segment column's in increasing value; categories without a row are
    left out), their
    ``counts`` (each above 0) and ``null_count``. A Segmenter's ``reference_.segments`` is the
    exception: named ``"segment"``, it lists every segment name in id order, zero counts
    included, with ``null_count`` 0."""

    name: str
    categories: tuple
    counts: tuple
    null_count: int

    @property
    def n_rows(self):
        return sum(self.counts) + self.null_count

    @property
    def shares(self):
        """``{category: share of all rows}`` (the null share is apart)."""
        n = self.n_rows
        return {c: (k / n if n else 0.0) for c, k in zip(self.categories, self.counts)}

    @property
    def null_share(self):
        n = self.n_rows
        return self.null_count / n if n else 0.0


class ReferenceStatistics:
    """Reference statistics of a customer base (see the module docstring).

    Attributes
    ----------
    n_rows : int
        Rows of the reference source.
    features : dict of str to NumericReference
        Numeric features, in the order asked for.
    categories : dict of str to CategoryReference
        Categorical features, in the order asked for.
    segments : CategoryReference or None
        Rows per segment (``name`` is the segment column; ``null_count`` the rows without a
        segment), when ``segments=`` was given.
    """

    def __init__(self, n_rows, features=(), categories=(), segments=None):
        self.n_rows = int(n_rows)
        self.features = {f.name: f for f in features}
        self.categories = {c.name: c for c in categories}
        self.segments = segments

    def __eq__(self, other):
        return isinstance(other, ReferenceStatistics) and self.to_dict() == other.to_dict()

    def __repr__(self):
        seg = f", segments by {self.segments.name!r}" if self.segments is not None else ""
        return (f"<ReferenceStatistics: {self.n_rows:,} rows, {len(self.features)} numeric and "
                f"{len(self.categories)} categorical features{seg}>")

    def to_dict(self):
        """The statistics as plain JSON-able data (``{"format": "segmint-reference", "version": 1,
        ...}``); :meth:`from_dict` reads it back to an equal object."""
        def category(c):
            return {"name": c.name, "categories": list(c.categories), "counts": list(c.counts),
                    "null_count": c.null_count}

        return {"format": FORMAT, "version": VERSION, "n_rows": self.n_rows, "edges": EDGE_METHOD,
                "features": [{"name": f.name, "edges": list(f.edges), "counts": list(f.counts),
                              "null_count": f.null_count} for f in self.features.values()],
                "categories": [category(c) for c in self.categories.values()],
                "segments": category(self.segments) if self.segments is not None else None}

    @classmethod
    def from_dict(cls, data):
        """Read a document written by :meth:`to_dict`, checking every field.

        Raises
        ------
        segmint.pipeline.model_file.ModelFormatError
            Not a reference document, a newer version, or a field of the wrong type or value
            (NaN or unsorted edges, negative counts, counts that do not add up to ``n_rows``);
            the message names the field.
        """
        return _read(data)


# -- the pass ---------------------------------------------------------------------------------
def reference_statistics(source, *, features, categories=(), segments=None,
                         batch_size=DEFAULT_BATCH_SIZE):
    """Reference statistics of ``source`` in streaming passes (see the module docstring): one,
    and a second over the numeric features only when there are any.

    Parameters
    ----------
    source : anything :func:`segmint.open` accepts
        Read twice when ``features`` is not empty, so not a stream that can be read only once.
    features : list of str
        Numeric or boolean columns (booleans as 0/1).
    categories : list of str
        String columns (plain or dictionary-encoded), at most :data:`MAX_CATEGORIES` distinct
        values with rows each (unused dictionary entries, as in a pandas Categorical, are free).
    segments : str, optional
        A column holding each row's segment (strings or integers; a null is no segment).
    batch_size : int
        Rows per batch.

    Returns
    -------
    ReferenceStatistics
    """
    batch_size = check_positive_int("batch_size", batch_size)
    src = open_source(source)
    plan = _plan(src, features, categories, segments)
    if plan.numeric and src.one_shot:
        raise DataError(f"{src.label} can be read only once, but reference statistics of numeric "
                        "features read it twice (their range, then their deciles): pass a Table, a "
                        "DataFrame or a file")
    columns = list(dict.fromkeys(plan.numeric + plan.strings + plan.integers))
    ranges = np.empty((len(plan.numeric), 2))
    ranges[:, 0], ranges[:, 1] = np.inf, -np.inf
    strings = [np.zeros(1, dtype=np.int64) for _ in plan.strings]
    integers = [{} for _ in plan.integers]  # integer segment column: value -> count
    dictionaries = [None] * len(plan.strings)
    n_rows = 0

    def prepared():  # views made in batch order: string codes grow with the pass's dictionary
        for batch in src.batches(columns=columns, batch_size=batch_size):
            views = {c: batch[c] for c in columns}
            for j, name in enumerate(plan.strings):
                dictionaries[j] = views[name].dictionary
            yield batch.num_rows, views

    def count(item):
        n, views = item
        rg = np.empty_like(ranges)
        rg[:, 0], rg[:, 1] = np.inf, -np.inf
        for j, name in enumerate(plan.numeric):
            values, bits, offset = numeric_arrays(views[name])
            kpsi.finite_range(values, bits, offset, rg[j])
        cats = []
        for name in plan.strings:
            view = views[name]
            counts = np.zeros(len(view.dictionary) + 1, dtype=np.int64)
            kpsi.code_counts(view.values, *_bits(view), counts)
            cats.append(counts)
        ints = [_integer_counts(views[name]) for name in plan.integers]
        return n, rg, cats, ints

    for n, rg, cats, ints in ordered_map(count, prepared()):
        n_rows += n
        ranges[:, 0] = np.minimum(ranges[:, 0], rg[:, 0])
        ranges[:, 1] = np.maximum(ranges[:, 1], rg[:, 1])
        for j, c in enumerate(cats):
            strings[j] = _add_padded(strings[j], c)
            used = int(np.count_nonzero(strings[j][:-1]))
            if used > MAX_CATEGORIES:  # categories with rows: unused dictionary entries are free
                raise DataError(f"{plan.what[plan.strings[j]]} column {plan.strings[j]!r} of {src.label} "
                                f"has more than {MAX_CATEGORIES:,} distinct values ({used:,} so far): too "
                                "many for reference statistics; leave it out or group its values first")
        for j, d in enumerate(ints):
            for value, k in d.items():
                integers[j][value] = integers[j].get(value, 0) + k
            if len(integers[j]) - (None in integers[j]) > MAX_CATEGORIES:
                raise DataError(f"segments= column {plan.integers[j]!r} of {src.label} has more than "
                                f"{MAX_CATEGORIES:,} distinct values: is it a segment column?")

    numeric = []
    if plan.numeric:
        bounds = ranges.tolist()
        sketches = _scaled_sketches(src, plan.numeric, [sketch_scale(*b) for b in bounds], batch_size)
        numeric = [numeric_reference(name, sketches[j], *bounds[j]) for j, name in enumerate(plan.numeric)]
    by_string = {name: _string_reference(name, dictionaries[j], strings[j], n_rows)
                 for j, name in enumerate(plan.strings)}
    by_integer = {name: _integer_reference(name, integers[j], n_rows)
                  for j, name in enumerate(plan.integers)}
    cats = [by_string[name] for name in plan.categories]
    seg = None
    if plan.segments is not None:
        seg = by_string.get(plan.segments) or by_integer.get(plan.segments)
    return ReferenceStatistics(n_rows, numeric, cats, seg)


def widen_finite_ranges(views, names, out):
    """Widen ``out[j] = [lo, hi]`` to the finite values of column ``names[j]`` in one batch
    (``views`` maps each column to its ColumnView); start from ``[+inf, -inf]``. The first pass
    of :func:`reference_statistics`, for a caller that reads the batches anyway."""
    for j, name in enumerate(names):
        values, bits, offset = numeric_arrays(views[name])
        kpsi.finite_range(values, bits, offset, out[j])


def finite_ranges(src, names, batch_size):
    """``(lo, hi)`` per numeric column ``names[j]`` over every row of ``src`` (an opened source
    that can be read again): the first pass of :func:`reference_statistics` alone."""
    out = np.empty((len(names), 2))
    out[:, 0], out[:, 1] = np.inf, -np.inf
    if names:
        for batch in src.batches(columns=list(names), batch_size=batch_size):
            widen_finite_ranges({c: batch[c] for c in names}, names, out)
    return [tuple(r) for r in out.tolist()]


class _KnownRangePass:
    """Reference statistics in **one** pass when the finite range of every numeric feature is
    known already, so a Segmenter's fit reads its source once more, not twice. The result
    equals :func:`reference_statistics`'s only when the ranges are **the source's own** (what the
    first pass of :func:`reference_statistics` finds on it: a FeatureSpec's ``min``/``max``
    when it was fitted on this very source, or :func:`finite_ranges` /
    :func:`widen_finite_ranges` on it); other ranges (a spec fitted on older data) give wrong
    edges and counts for values outside them.

    The caller drives the pass: :meth:`count` (pure: any thread) turns one batch's views into
    partial counts, :meth:`add` merges them **in batch order** on one thread, :meth:`finish`
    builds the statistics. String views must be made, and their ``dictionary`` handed to
    :meth:`add`, in batch order (their codes grow with the pass's dictionary).

    Parameters
    ----------
    numeric : list of str
        Numeric or boolean columns.
    strings : list of str
        String (dictionary-coded) columns; one with more than :data:`MAX_CATEGORIES` categories
        is dropped from the result (see :attr:`dropped`), never an error.
    ranges : list of (float, float)
        ``(lo, hi)`` per numeric column: its smallest and largest finite value **in the source
        counted** (``lo > hi``: none).
    """

    def __init__(self, numeric, strings, ranges):
        self.numeric, self.strings = list(numeric), list(strings)
        self.ranges = [(float(lo), float(hi)) for lo, hi in ranges]
        self.scales = [sketch_scale(lo, hi) for lo, hi in self.ranges]
        self.sketches = np.zeros((len(self.numeric), ks.N_BUCKETS + 1), dtype=np.int64)
        self.counts = [np.zeros(1, dtype=np.int64) for _ in self.strings]
        self.dictionaries = [None] * len(self.strings)
        self.dropped = set()
        self.n_rows = 0

    def count(self, n_rows, views):
        """Partial counts of one batch: ``views`` maps each column to its ColumnView."""
        sk = np.zeros_like(self.sketches)
        for j, name in enumerate(self.numeric):
            values, bits, offset = numeric_arrays(views[name])
            kpsi.scaled_sketch(values, bits, offset, self.scales[j][0], self.scales[j][1], sk[j])
        cats = []
        for name in self.strings:
            if name in self.dropped:  # too many categories already: left out, no need to count
                cats.append(None)
                continue
            view = views[name]
            c = np.zeros(len(view.dictionary) + 1, dtype=np.int64)
            kpsi.code_counts(view.values, *_bits(view), c)
            cats.append(c)
        return n_rows, sk, cats

    def add(self, partial, dictionaries):
        """Merge one batch's :meth:`count` (in batch order), with the string columns' dictionaries
        as of that batch."""
        n, sk, cats = partial
        self.n_rows += n
        self.sketches += sk
        for j, c in enumerate(cats):
            self.dictionaries[j] = dictionaries[j]
            if c is None or self.strings[j] in self.dropped:
                continue
            self.counts[j] = _add_padded(self.counts[j], c)
            if int(np.count_nonzero(self.counts[j][:-1])) > MAX_CATEGORIES:
                self.dropped.add(self.strings[j])
                self.counts[j] = None  # not needed any more

    def finish(self, segments=None):
        """The :class:`ReferenceStatistics` (``segments``: a :class:`CategoryReference` or None)."""
        numeric = [numeric_reference(name, self.sketches[j], *self.ranges[j])
                   for j, name in enumerate(self.numeric)]
        cats = [_string_reference(name, self.dictionaries[j], self.counts[j], self.n_rows)
                for j, name in enumerate(self.strings) if name not in self.dropped]
        return ReferenceStatistics(self.n_rows, numeric, cats, segments)


def _scaled_sketches(src, names, scales, batch_size):
    """The second pass: one shifted and scaled sketch per numeric feature (plus missing rows)."""
    sketches = np.zeros((len(names), ks.N_BUCKETS + 1), dtype=np.int64)

    def prepared():
        for batch in src.batches(columns=names, batch_size=batch_size):
            yield [batch[c] for c in names]

    def count(views):
        sk = np.zeros_like(sketches)
        for j, view in enumerate(views):
            values, bits, offset = numeric_arrays(view)
            kpsi.scaled_sketch(values, bits, offset, scales[j][0], scales[j][1], sk[j])
        return sk

    for sk in ordered_map(count, prepared()):
        sketches += sk
    return sketches


def sketch_scale(lo, hi):
    """``(low_half, scale)`` of :func:`segmint.kernels.psi.scaled_sketch` for a finite range
    ``[lo, hi]`` (``lo > hi``: no finite value; the map is then ``y = x``)."""
    if not lo <= hi:
        return 0.0, 1.0
    half_spread = hi * 0.5 - lo * 0.5
    scale = 1.0 / half_spread if half_spread > 0 else 1.0
    return lo * 0.5, min(scale, _MAX_SCALE)


def scaled_value(x, low_half, scale):
    """The ``y`` that :func:`segmint.kernels.psi.scaled_sketch` sketches for ``x``: the same
    IEEE operations, so the same bits."""
    return (x * 0.5 - low_half) * scale


class _Plan:
    def __init__(self):
        self.numeric, self.categories, self.strings, self.integers = [], [], [], []
        self.segments = None
        self.what = {}


def _plan(src, features, categories, segments):
    plan = _Plan()
    kinds = {}
    for what, names in (("features=", features), ("categories=", categories)):
        if isinstance(names, str) or not hasattr(names, "__iter__"):
            raise ParameterError(f"{what} takes a list of column names, got {_short(names)}")
        for name in names:
            if not isinstance(name, str):
                raise ParameterError(f"{what} takes column names (strings), got {_short(name)}")
            if name in plan.what:
                raise ParameterError(f"column {name!r} is named twice (in {plan.what[name]} and {what}): "
                                     "a column is either a numeric or a categorical feature")
            kind = _column(src, name, what)
            if what == "features=":
                if kind not in (NUMERIC, BOOLEAN):
                    raise UnsupportedTypeError(
                        f"features= column {name!r} of {src.label} is {src.schema.field(name).type}: "
                        "expected a numeric or boolean column (a string column goes in categories=)")
                plan.numeric.append(name)
            else:
                if kind != DICTIONARY:
                    raise UnsupportedTypeError(
                        f"categories= column {name!r} of {src.label} is {src.schema.field(name).type}: "
                        "expected a string column (a number goes in features=)")
                plan.categories.append(name)
                plan.strings.append(name)
            plan.what[name] = what
            kinds[name] = kind
    if segments is not None:
        if not isinstance(segments, str):
            raise ParameterError(f"segments= takes a column name here, got {_short(segments)}")
        kind = _column(src, segments, "segments=")
        t = src.schema.field(segments).type
        integer = kind == NUMERIC and (pa.types.is_integer(t) or (
            pa.types.is_dictionary(t) and pa.types.is_integer(t.value_type)))
        if kind != DICTIONARY and not integer:
            raise UnsupportedTypeError(f"segments= column {segments!r} of {src.label} is {t}: "
                                       "expected a string or integer column")
        plan.segments = segments
        plan.what.setdefault(segments, "segments=")
        if kind == DICTIONARY and segments not in plan.strings:
            plan.strings.append(segments)
        elif integer:
            plan.integers.append(segments)
    return plan


def _column(src, name, what):
    if name not in src.column_names:
        raise unknown_column(name, src.column_names, f"{src.label} ({what})")
    kind = column_kind(src.schema.field(name).type)
    if kind is None:
        raise UnsupportedTypeError(f"{what} column {name!r} of {src.label} is "
                                   f"{src.schema.field(name).type}, which segmint does not read; "
                                   "cast it to float64 (numbers) or string (categories) first")
    return kind


def numeric_arrays(view):
    """``(values, validity bits, bit offset)`` of a numeric or boolean view for the kernels
    (:func:`segmint.io.columns.kernel_numbers`, float32 widened to float64: the kernels widen
    each value anyway, and one value dtype halves their compiles in a cold warm-up)."""
    values = kernel_numbers(view)
    if values.dtype == np.float32:
        values = read_only(values.astype(np.float64))  # read-only as the views' own: one signature
    return (values,) + validity_bits(view)


_bits = validity_bits


def _add_padded(total, part):
    """``total + part`` where the shorter array is padded before its last slot (the null count)."""
    width = max(len(total), len(part))
    out = np.zeros(width, dtype=np.int64)
    for a in (total, part):
        out[:len(a) - 1] += a[:-1]
        out[-1] += a[-1]
    return out


def _integer_counts(view):
    valid = view.is_valid() if view.validity is not None else None
    values = view.values if valid is None else view.values[valid]
    distinct, counts = np.unique(values, return_counts=True)
    out = {int(v): int(k) for v, k in zip(distinct.tolist(), counts.tolist())}
    out[None] = view.length - len(values)
    return out


def bucket_upper_edge(index):
    """The smallest float64 above every value of sketch bucket ``index`` (+inf for the positive
    overflow bucket). Positive buckets hold ``[lo, hi)``, negative ones ``(-hi, -lo]`` and the
    zero bucket ``(-2^-24, 2^-24)``: see :mod:`segmint.kernels.sketch`."""
    if index == ks.N_BUCKETS - 1:
        return math.inf
    if index == ks.ZERO:
        return ks.MIN_MAGNITUDE
    if index == 0:
        return math.nextafter(-ks.MAX_MAGNITUDE, math.inf)
    k = index - ks.ZERO - 1 if index > ks.ZERO else ks.ZERO - 1 - index
    e = k // ks.SUB_BUCKETS + ks.MIN_EXPONENT
    m = k % ks.SUB_BUCKETS
    if index > ks.ZERO:
        return 2.0 ** e * (1.0 + (m + 1) / ks.SUB_BUCKETS)
    return math.nextafter(-(2.0 ** e * (1.0 + m / ks.SUB_BUCKETS)), math.inf)


def numeric_reference(name, sketch, lo, hi):
    """A :class:`NumericReference` from a shifted and scaled sketch of ``N_BUCKETS`` buckets plus
    a missing count (what :func:`segmint.kernels.psi.scaled_sketch` fills with
    ``sketch_scale(lo, hi)``), ``lo`` and ``hi`` the smallest and largest finite value."""
    buckets, missing = sketch[:-1], int(sketch[-1])
    cumulative = np.cumsum(buckets)
    n = int(cumulative[-1])
    low_half, scale = sketch_scale(lo, hi)
    edges, below = [], []
    if n:
        for q in DECILES:
            rank = math.floor(q * (n - 1))
            b = int(np.searchsorted(cumulative, rank, side="right"))  # first bucket past the rank
            edge = _first_at_or_above(bucket_upper_edge(b), lo, hi, low_half, scale)
            if math.isfinite(edge) and (not edges or edge > edges[-1]):
                edges.append(edge)
                below.append(int(cumulative[b]))
    counts = np.diff([0] + below + [n]).tolist()
    return NumericReference(name, tuple(edges), tuple(int(c) for c in counts), missing)


def _first_at_or_above(t, lo, hi, low_half, scale):
    """The smallest float64 ``x`` whose scaled value reaches ``t``: every value below it maps
    below ``t``, every value from it on to ``t`` or above (the map is monotone). ``lo`` when
    ``t <= 0`` (only ``-inf`` lies below), the float after ``hi`` when even ``hi`` stays below
    ``t`` (+inf when there is none, or without finite values and ``t`` = +inf)."""
    if t == math.inf:  # the decile is +inf: nothing lies above it
        return math.inf
    if not lo <= hi:  # no finite value: the sketch holds only -inf and +inf, y = x
        return 0.0
    if t <= 0:
        return lo
    if scaled_value(hi, low_half, scale) < t:
        return math.nextafter(hi, math.inf)
    a, b = _order_key(lo), _order_key(hi)  # scaled(lo) = 0 < t <= scaled(hi)
    while a < b:
        mid = (a + b) // 2
        if scaled_value(_from_order_key(mid), low_half, scale) >= t:
            b = mid
        else:
            a = mid + 1
    return _from_order_key(a)


def _order_key(x):
    """An integer that orders finite float64 values as their values (-0.0 and 0.0 alike)."""
    bits = struct.unpack("<q", struct.pack("<d", x))[0]
    return bits if bits >= 0 else -(bits & 0x7FFF_FFFF_FFFF_FFFF)


def _from_order_key(k):
    if k >= 0:
        return struct.unpack("<d", struct.pack("<q", k))[0]
    return -struct.unpack("<d", struct.pack("<q", -k))[0]


def _string_reference(name, dictionary, counts, n_rows):
    if dictionary is None:
        return CategoryReference(name, (), (), int(n_rows))
    names = dictionary.to_pylist()
    kept = [(c, int(k)) for c, k in zip(names, counts[:-1].tolist()) if k > 0]
    return CategoryReference(name, tuple(c for c, _ in kept), tuple(k for _, k in kept), int(counts[-1]))


def _integer_reference(name, counts, n_rows):
    nulls = counts.pop(None, 0) if counts else n_rows
    values = sorted(counts)
    return CategoryReference(name, tuple(str(v) for v in values), tuple(counts[v] for v in values), nulls)


# -- reading a document -----------------------------------------------------------------------
def _fail(message):
    from ..pipeline.model_file import ModelFormatError  # lazy: model_file will import this module
    return ModelFormatError(f"reference statistics: {message}")


# Counts and row numbers a document may hold: every integer up to 2^53 is exact as a float64,
# so shares and PSI stay exact; larger ones cannot be real row counts and would overflow numpy.
MAX_COUNT = 2 ** 53


def _int(value, field):
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _fail(f"{field} must be a non-negative integer, got {_short(value)}")
    if value > MAX_COUNT:
        raise _fail(f"{field} = {_short(value)} is above 2^53 (the largest count segmint reads)")
    return value


def _list(value, field, limit):
    if not isinstance(value, list):
        raise _fail(f"{field} must be a list, got {_short(value)}")
    if len(value) > limit:
        raise _fail(f"{field} has {len(value):,} items; at most {limit:,} are allowed")
    return value


def _name(value, field):
    if not isinstance(value, str) or not value:
        raise _fail(f"{field} must be a non-empty string, got {_short(value)}")
    return value


def _keys(data, field, required, optional=()):
    if not isinstance(data, dict):
        raise _fail(f"{field} must be a mapping, got {_short(data)}")
    missing = [k for k in required if k not in data]
    if missing:
        raise _fail(f"{field} lacks {', '.join(repr(k) for k in missing)}")
    unknown = [k for k in data if k not in required and k not in optional]
    if unknown:
        raise _fail(f"{field} has unknown field {_short(unknown[0])}")


def _read_numeric(item, field, n_rows):
    _keys(item, field, ("name", "edges", "counts", "null_count"))
    name = _name(item["name"], f"{field}.name")
    edges = []
    for i, e in enumerate(_list(item["edges"], f"{field}.edges", MAX_EDGES)):
        where = f"{field}.edges[{i}]"
        try:  # an integer beyond float64 (10**400) overflows: refused as not finite
            finite = not isinstance(e, bool) and isinstance(e, (int, float)) and math.isfinite(float(e))
        except OverflowError:
            finite = False
        if not finite:
            raise _fail(f"{where} must be a finite number, got {_short(e)}")
        e = float(e)
        if edges and not e > edges[-1]:
            raise _fail(f"{where} = {e!r} is not above the edge before it ({edges[-1]!r}): "
                        "edges must be strictly increasing")
        edges.append(e)
    counts = [_int(c, f"{field}.counts[{i}]")
              for i, c in enumerate(_list(item["counts"], f"{field}.counts", MAX_EDGES + 1))]
    if len(counts) != len(edges) + 1:
        raise _fail(f"{field}.counts has {len(counts)} bins; {len(edges)} edges make {len(edges) + 1}")
    ref = NumericReference(name, tuple(edges), tuple(counts), _int(item["null_count"], f"{field}.null_count"))
    _check_total(ref, field, n_rows)
    return ref


def _read_category(item, field, n_rows, limit=MAX_CATEGORIES):
    _keys(item, field, ("name", "categories", "counts", "null_count"))
    name = _name(item["name"], f"{field}.name")
    cats = _list(item["categories"], f"{field}.categories", limit)
    for i, c in enumerate(cats):
        if not isinstance(c, str):
            raise _fail(f"{field}.categories[{i}] must be a string, got {_short(c)}")
    repeated = _first_repeat(cats)
    if repeated is not None:
        raise _fail(f"{field}.categories holds {repeated!r} twice")
    counts = [_int(c, f"{field}.counts[{i}]")
              for i, c in enumerate(_list(item["counts"], f"{field}.counts", limit))]
    if len(counts) != len(cats):
        raise _fail(f"{field}.counts has {len(counts)} items for {len(cats)} categories")
    ref = CategoryReference(name, tuple(cats), tuple(counts), _int(item["null_count"], f"{field}.null_count"))
    _check_total(ref, field, n_rows)
    return ref


def _first_repeat(items):
    """The first item seen a second time, or None: one pass with a set (a hostile document may
    list 100,000 names, so no ``items.count`` per item)."""
    seen = set()
    for item in items:
        if item in seen:
            return item
        seen.add(item)
    return None


def _check_total(ref, field, n_rows):
    if ref.n_rows != n_rows:
        raise _fail(f"{field}: counts and null_count add up to {ref.n_rows:,} rows, n_rows is {n_rows:,}")


def _read(data):
    if not isinstance(data, dict):
        raise _fail(f"expected a mapping with \"format\": {FORMAT!r}, got {_short(data)}")
    if data.get("format") != FORMAT:
        raise _fail(f"\"format\" must be {FORMAT!r}, got {_short(data.get('format'))}")
    version = data.get("version")
    if isinstance(version, bool) or not isinstance(version, int):
        raise _fail(f"\"version\" must be an integer, got {_short(version)}")
    if version > VERSION:
        raise _fail(f"version {version} is newer than this segmint reads ({VERSION}): upgrade segmint")
    if version < 1:
        raise _fail(f"\"version\" must be 1 or more, got {version}")
    _keys(data, "the document", ("format", "version", "n_rows", "features", "categories", "segments"),
          ("edges",))
    if not isinstance(data.get("edges", ""), str):
        raise _fail(f"\"edges\" (how the edges were chosen) must be a string, got {_short(data['edges'])}")
    n_rows = _int(data["n_rows"], "n_rows")
    features = [_read_numeric(item, f"features[{i}]", n_rows)
                for i, item in enumerate(_list(data["features"], "features", 100_000))]
    categories = [_read_category(item, f"categories[{i}]", n_rows)
                  for i, item in enumerate(_list(data["categories"], "categories", 100_000))]
    names = [f.name for f in features] + [c.name for c in categories]
    repeated = _first_repeat(names)
    if repeated is not None:
        raise _fail(f"feature {repeated!r} is described twice")
    segments = None
    if data["segments"] is not None:
        # a model's segments (its segment names) may outnumber MAX_CATEGORIES: a rule set of
        # thousands of segments is allowed, up to the int16 segment ids
        segments = _read_category(data["segments"], "segments", n_rows, MAX_SEGMENT_NAMES)
    return ReferenceStatistics(n_rows, features, categories, segments)
