"""Segment profiles: who is in each segment, how many, and what sets it apart, in one pass.

:func:`profile` streams the source once (memory: a few batches plus the per-segment state) and
computes, per segment and for the whole base, sizes, revenue and reach, per numeric feature the
mean, standard deviation (population, ddof=0), null share, median, p10 and p90, the standardized
difference from the base, and per string column the top categories with their lift. Hot loops are
the kernels of :mod:`segmint.kernels.profile`; quantiles come from the mergeable sketch of
:mod:`segmint.kernels.sketch`.

Conventions (also in :class:`Profile`):

- the **whole base** is every row of the source, rows without a segment included; a row of a
  multi-mode rule set counts in every segment it is in and once in the base;
- a null, NaN or infinite value is *null* for the statistics (``null_share`` counts them);
  booleans are numbers 0/1; decimal128/decimal256 and float16 columns are read as float64 (a
  decimal keeps about 15-16 significant digits: exact for money below 1e13 in cents); temporal
  columns (dates, timestamps) are not profiled;
- a ``reachable=`` value counts as reachable when it is finite and non-zero: null, NaN and
  infinite values are not reachable;
- a string column with more than :data:`MAX_CATEGORIES` distinct values (emails, ids) is left out
  of the default ``categories`` (said in :attr:`Profile.notes`), and refused with a
  :class:`~segmint.errors.DataError` when named in ``categories=``: counting it per segment would
  take memory in proportion to its distinct values. The limit is checked at the end of each
  block of :data:`BLOCK_ROWS` rows (the note gives the values met by then);
- a string column's categories rank, at equal shares, in the order the rows first show them
  (not the order of a file's dictionaries);
- a string column's nulls are the category ``"(null)"`` (``"((null))"`` when the column holds
  the string "(null)" itself), so a segment's shares add up to 1;
- ``std_diff`` is NaN when the base's standard deviation is 0 (a constant column) or a segment
  has no value, and NaN never ranks as a trait.

The numbers do not depend on how the source is read: float moments are computed per fixed block
of :data:`BLOCK_ROWS` global rows and merged in block order (a block that batches cut is put
together first), integer counts (rows, sketches, categories) are exact in any order. So any
``batch_size``, thread count, file layout, and :func:`segmint.dask.profile` on any cluster give
the same bits.
"""
import json
import math
import threading
from collections import deque
from concurrent.futures import Future
from typing import NamedTuple

import numpy as np
import pyarrow as pa

from .._lazy import lazy_import
from .._parallel import _get_pool, get_num_threads, ordered_map
from ..errors import DataError, ParameterError, UnsupportedTypeError, unknown_column
from ..io import DEFAULT_BATCH_SIZE
from ..io.columns import (BOOLEAN, DICTIONARY, NUMERIC, TEMPORAL, column_kind, kernel_numbers, read_only,
                          validity_bits, view_of)
from ..kernels import profile as kp
from ..kernels import sketch as ks
from . import describe as words
from .segments import resolve_segments

pc = lazy_import("pyarrow.compute")  # on first use: see segmint._lazy

QUANTILES = (0.5, 0.1, 0.9)  # median, p10, p90
QUANTILE_NAMES = ("median", "p10", "p90")
QUANTILE_METHOD = (
    "median, p10 and p90 come from a log-bucketed quantile sketch (64 buckets per power of two): "
    f"each is within {ks.RELATIVE_ERROR:.2%} (relative) of the exact value of rank floor(q * (n - 1)) "
    "(numpy.quantile's method='lower'); values with |x| < 6e-8 count as 0 and magnitudes of "
    "2^64 (1.8e19) or more are reported as -inf or +inf")
NULL_CATEGORY = "(null)"

# A string column is counted per segment in a (segments + 1) x distinct values array per thread:
# more distinct values than this (emails, ids) are not categories worth profiling.
MAX_CATEGORIES = 1_000

# A sketch holds N_BUCKETS int64 counts per (segment, feature) and thread: refuse, before any
# work, a profile whose sketches alone would take more than this.
MAX_SKETCH_BYTES = 2 << 30

# Float moments are computed per block of this many global rows (row ``r`` is in block
# ``r // BLOCK_ROWS``), each block by one kernel call over all its rows, and blocks are merged in
# block order: so the bits do not depend on batch_size, the files' row groups, the thread count,
# nor on how segmint.dask cuts a dataset into chunks (whole blocks each). The value is local
# segmint's accumulation chunk (segmint.cluster._passes.CHUNK; a test checks).
BLOCK_ROWS = 65_536

_EMPTY_CODES = read_only(np.zeros(0, dtype=np.int32))
_EMPTY_MEMBERS = read_only(np.zeros((0, 0), dtype=np.uint64))
_NO_SKETCH = np.zeros((0, ks.N_BUCKETS), dtype=np.int64)


def profile(source, *, segments, features=None, categories=None, id_column=None, revenue=None,
            reachable=None, top=5, as_of=None, batch_size=DEFAULT_BATCH_SIZE, progress=None):
    """Profile each segment of a customer base in one streaming pass.

    Parameters
    ----------
    source : anything :func:`segmint.open` accepts
    segments : str, Segmenter, RuleSet or table
        What to profile by: a column of ``source``, a fitted Segmenter or a RuleSet (applied on
        the fly), or a table of (id, segment) joined on ``id_column``.
    features : list of str, optional
        Numeric or boolean (0/1) columns to describe; default every numeric and boolean column
        but the id and segment columns (and a Segmenter's own id column). Decimal and float16
        columns are read as float64. Temporal columns are not profiled.
    categories : list of str, optional
        String columns; default every string column but the id and segment columns, leaving out
        (with a note in :attr:`Profile.notes`) those with more than :data:`MAX_CATEGORIES`
        distinct values. A named column with more distinct values is refused with a
        :class:`~segmint.errors.DataError` at the end of the block of :data:`BLOCK_ROWS` rows
        where the pass meets them.
    id_column : str, optional
        The customer id column (left out of the defaults; required to join a table).
    revenue : str, optional
        A numeric money column (decimals are read as float64): revenue, revenue share and revenue
        per customer (null, NaN and infinite values count 0).
    reachable : str, optional
        A boolean or 0/1 column: the share of customers whose value is finite and non-zero
        (null, NaN and infinite values: not reachable).
    top : int
        Categories kept per segment and string column, by share.
    as_of : datetime, date or ISO string, optional
        For rules using dates.
    batch_size : int
        Rows per batch (the result does not depend on it).
    progress : callable, optional
        Called with each batch's row count.

    Returns
    -------
    Profile
    """
    from .._estimator import check_positive_int
    top = check_positive_int("top", top)
    batch_size = check_positive_int("batch_size", batch_size)
    seg = resolve_segments(source, segments, id_column=id_column, as_of=as_of)
    plan = _Plan(seg, features, categories, id_column, revenue, reachable)
    acc = _pass(seg, plan, batch_size, progress)
    # the files read: to_json(path) may not write over any of them
    inputs = [p for p in getattr(seg, "paths", None) or seg.source.paths if p is not None]
    return _build(plan, seg, acc, top, inputs)


# -- which columns ------------------------------------------------------------------------------
class _Plan:
    """The columns a profile reads, checked against the source before any work."""

    def __init__(self, seg, features, categories, id_column, revenue, reachable):
        src = seg.source
        model_id = getattr(seg.segmenter, "id_column", None) if seg.segmenter is not None else None
        skip = {id_column, seg.column, seg.id_column, model_id} - {None}
        kinds = {name: _kind(src.schema.field(name).type) for name in src.column_names}
        casts = {name for name in src.column_names if kinds[name] == NUMERIC
                 and column_kind(src.schema.field(name).type) != NUMERIC}
        if features is None:
            features = [c for c in src.column_names if kinds[c] in (NUMERIC, BOOLEAN) and c not in skip]
        # default categories are dropped when they turn out to have too many distinct values;
        # named ones are refused then
        self.named_categories = categories is not None
        if categories is None:
            categories = [c for c in src.column_names if kinds[c] == DICTIONARY and c not in skip]
        self.features = self._names("features", features, src, kinds, (NUMERIC, BOOLEAN),
                                    "numeric or boolean (a string column goes in categories=)")
        self.categories = self._names("categories", categories, src, kinds, (DICTIONARY,),
                                      "a string column (a number goes in features=)")
        self.booleans = [c for c in self.features if kinds[c] == BOOLEAN]  # described as shares
        self.revenue = self._one("revenue", revenue, src, kinds, (NUMERIC,), "a numeric money column")
        self.reachable = self._one("reachable", reachable, src, kinds, (NUMERIC, BOOLEAN),
                                   "a boolean or 0/1 column")
        # the numeric columns the kernels read: the features (sketched), then revenue and reach
        self.numeric = list(self.features) + [c for c in (self.revenue, self.reachable) if c]
        self.columns = list(dict.fromkeys(self.numeric + self.categories))
        # decimal and float16 columns: read apart and cast to float64 batch by batch
        self.casts = [c for c in self.columns if c in casts]

    @staticmethod
    def _names(what, names, src, kinds, allowed, expected):
        if isinstance(names, str) or not hasattr(names, "__iter__"):
            raise ParameterError(f"{what}= takes a list of column names, got {names!r:.80}")
        out = []
        for name in names:
            if not isinstance(name, str):
                raise ParameterError(f"{what}= takes column names (strings), got {name!r:.80}")
            _check_column(what, name, src, kinds, allowed, expected)
            if name not in out:
                out.append(name)
        return out

    @staticmethod
    def _one(what, name, src, kinds, allowed, expected):
        if name is None:
            return None
        if not isinstance(name, str):
            raise ParameterError(f"{what}= takes a column name, got {name!r:.80}")
        _check_column(what, name, src, kinds, allowed, expected)
        return name


def _kind(t):
    """:func:`column_kind`, with decimals and float16 as numbers (read as float64)."""
    if pa.types.is_decimal(t) or pa.types.is_float16(t):
        return NUMERIC
    return column_kind(t)


def _check_column(what, name, src, kinds, allowed, expected):
    if name not in kinds:
        raise unknown_column(name, src.column_names, f"{src.label} ({what}=)")
    if kinds[name] not in allowed:
        why = " (dates and times are not profiled)" if kinds[name] == TEMPORAL else ""
        raise UnsupportedTypeError(f"{what}= column {name!r} of {src.label} is "
                                   f"{src.schema.field(name).type}: expected {expected}{why}")


# -- the pass -----------------------------------------------------------------------------------
def _pass(seg, plan, batch_size, progress=None, n_threads=None, keep_blocks=False):
    """One streaming pass over ``seg``'s source: an :class:`_Accumulator` holding its statistics.

    ``keep_blocks``: keep each row block's moments (in block order) instead of merging them, and
    leave the category limit to the caller (a chunk of a dataset, see :mod:`segmint.dask.profiling`).
    """
    acc = _Accumulator(plan, len(seg.names), keep_blocks=keep_blocks, n_threads=n_threads)
    if plan.casts:  # segmint's batches do not read decimals: a second reader, row-aligned
        acc.cast_reader = _CastReader(seg.source, plan.casts, batch_size)
    stream = seg.stream([c for c in plan.columns if c not in plan.casts], batch_size)
    for result in ordered_map(acc.batch, acc.prepared(stream), n_threads=n_threads):
        acc.merge(result)
        if progress is not None:
            progress(result.rows)
    acc.finish()
    return acc


class _ThreadState:
    """Integer counts one worker thread adds to: sketches and category counts. Integer sums
    do not depend on their order, so keeping them per thread keeps results thread-invariant."""

    def __init__(self, n_slots, n_sketched, n_categories):
        self.sketches = np.zeros((n_sketched, n_slots, ks.N_BUCKETS), dtype=np.int64)
        self.categories = [np.zeros((n_slots, 1), dtype=np.int64) for _ in range(n_categories)]
        self.rows = np.zeros(n_slots, dtype=np.int64)


class _BatchResult(NamedTuple):
    """What a worker thread made of one batch: its rows, and for each row block it touches, in
    row order, the block's moments (a whole block) or a :class:`_Piece` (a block the batch cuts)."""

    rows: int
    blocks: list


class _Piece:
    """The rows of one row block that one batch holds, kept until the block is whole.

    Per numeric column its kernel values and validity bitmap as the batch has them (views, no
    copy: the batch's memory stays alive with them), the rows' segment codes (a view) or
    membership bits (bool, unpacked: a piece need not start on a 64-row word)."""

    __slots__ = ("start", "stop", "columns", "codes", "members")

    def __init__(self, start, columns, lo, hi, codes, members):
        self.start, self.stop = start + lo, start + hi  # global rows: the first, after the last
        self.columns = [(values[lo:hi], bits, offset + lo) for values, bits, offset in columns]
        self.codes = codes[lo:hi] if codes.shape[0] else None
        self.members = _member_bools(members, lo, hi) if members.shape[0] else None


def _block_moments(parts, moments, sketches):
    """One numeric column's moments over a row block given as consecutive ``parts``
    ``((values, bits, bit offset), codes, members)``: the passes of
    :func:`segmint.kernels.profile.profile_numeric`, each over every part in row order, so the
    bits do not depend on where the parts were cut (nor are the parts copied to join them).
    ``moments`` OUT, ``sketches`` INOUT (or 0 rows)."""
    parts = _widened(parts)  # float32 as float64, a block at a time (in cache)
    if len(parts) == 1:  # one kernel call (a Python call per pass and part costs ~5 us each)
        (values, bits, offset), codes, members = parts[0]
        kp.profile_numeric(values, bits, offset, codes, members, moments, sketches)
        return
    n_slots = moments.shape[0]
    sums, counts = np.zeros(n_slots), np.zeros(n_slots)
    for (values, bits, offset), codes, members in parts:
        kp.numeric_sums(values, bits, offset, codes, members, sums, counts, sketches)
    means = np.zeros(n_slots)
    if kp.numeric_means(sums, counts, means):  # a sum beyond 1.8e308: the means by parts
        for (values, bits, offset), codes, members in parts:
            kp.means_by_parts(values, bits, offset, codes, members, counts, sums, means)
    dev, m2 = np.zeros(n_slots), np.zeros(n_slots)
    for (values, bits, offset), codes, members in parts:
        kp.numeric_deviations(values, bits, offset, codes, members, means, dev, m2)
    kp.numeric_moments(counts, means, dev, m2, moments)


_WIDE = threading.local()  # each worker thread's float64 buffer for float32 blocks


def _widened(parts):
    """``parts`` with float32 values copied, exactly, into float64: into one buffer per thread,
    reused from block to block (a fresh array per block would cost page faults), each part its
    own region of it. The kernels widen each value anyway; one value dtype spares the float32
    compiles of every pass (~0.9 s of a cold warm-up)."""
    need = sum(v.shape[0] for (v, _, _), _, _ in parts if v.dtype == np.float32)
    if need == 0:
        return parts
    buf = getattr(_WIDE, "buf", None)
    if buf is None or buf.shape[0] < need:
        buf = _WIDE.buf = np.empty(max(need, BLOCK_ROWS))
    out, at = [], 0
    for (values, bits, offset), codes, members in parts:
        if values.dtype == np.float32:
            wide = buf[at:at + values.shape[0]]
            np.copyto(wide, values)
            at += values.shape[0]
            values = read_only(wide)  # as the float64 columns' own values (one kernel signature)
        out.append(((values, bits, offset), codes, members))
    return out


def _block_bounds(start, n):
    """``[(lo, hi), ...]`` rows of a batch of ``n`` rows starting at global row ``start``, cut at
    the row blocks' edges (multiples of :data:`BLOCK_ROWS`)."""
    out, lo = [], 0
    while lo < n:
        hi = min(n, lo + BLOCK_ROWS - (start + lo) % BLOCK_ROWS)
        out.append((lo, hi))
        lo = hi
    return out


def _member_bools(members, lo, hi):
    """Rows ``lo .. hi - 1`` of membership bit words as a (n_seg, hi - lo) bool array."""
    as_bytes = np.ascontiguousarray(members, dtype="<u8").view(np.uint8)
    return np.unpackbits(as_bytes, axis=1, count=hi, bitorder="little")[:, lo:].astype(bool)


def _member_words(bools):
    """(n_seg, n) bool memberships as the kernels' uint64 bit words (bit r % 64 of word r // 64)."""
    n_seg, n = bools.shape
    packed = np.packbits(bools, axis=1, bitorder="little")
    words = np.zeros((n_seg, 8 * ((n + 63) // 64)), dtype=np.uint8)
    words[:, :packed.shape[1]] = packed
    return np.ascontiguousarray(words.view("<u8").astype(np.uint64))


def _member_slice(members, lo, hi):
    """Membership words of rows ``lo .. hi - 1`` (a copy: the kernels want C-contiguous words)."""
    if members.shape[0] == 0:
        return members
    if lo % 64 == 0:  # read-only, as every other argument of the kernels: one signature
        return read_only(np.ascontiguousarray(members[:, lo // 64:(hi + 63) // 64]))
    return read_only(_member_words(_member_bools(members, lo, hi)))


class _FirstSeen:
    """A string column's profile codes: its values numbered in the order the rows first show
    them (:func:`segmint.kernels.profile.first_seen`), and how many were met at each row
    block's end.

    The reader's own codes cannot serve: their order, and the unused values a dictionary may
    hold, depend on how the data was written and read (row groups, batches, Dask chunks). So
    does a count taken at a batch's end: the limit :data:`MAX_CATEGORIES` is checked at the end
    of each row block only."""

    def __init__(self):
        self.mapping = np.zeros(0, dtype=np.int32)  # reader code -> profile code (-1: not met)
        self.seen = np.zeros(0, dtype=np.int32)  # profile code -> reader code
        self.n = 0
        self.ends = []  # values met at the end of each row block
        self.dictionary = None  # the reader's (pass-wide) dictionary
        self.over = False  # more than MAX_CATEGORIES at a block's end: no longer followed
        # profile code k is reader code k for every value met (the usual case: Arrow's
        # dictionary_encode and Parquet number values by first appearance too): then the
        # reader's codes serve as they are, without a gather per batch
        self.identity = True

    def meet(self, view, start):
        """Number the new values of a batch starting at global row ``start``, in row order."""
        n = len(view)
        self.dictionary = view.dictionary
        size = len(view.dictionary)
        if size > len(self.mapping):  # a new array: batches under way keep the one they have
            grown = np.full(size, -1, dtype=np.int32)
            grown[:len(self.mapping)] = self.mapping
            self.mapping = grown
        if len(self.seen) < self.n + n:
            grown = np.empty(max(self.n + n, 2 * len(self.seen)), dtype=np.int32)
            grown[:self.n] = self.seen[:self.n]
            self.seen = grown
        bits, offset = _bits(view)
        # every value of the reader's dictionary numbered already: nothing new can appear, only
        # the block ends are recorded (a profiler-measured 1.6 ms a million rows a column saved)
        all_met = self.n == size
        for lo, hi in _block_bounds(start, n):
            if not all_met:
                before = self.n
                self.n = kp.first_seen(view.values, bits, offset, lo, hi, self.mapping, self.seen, self.n)
                if self.identity and self.n > before:
                    self.identity = bool(np.array_equal(self.seen[before:self.n], np.arange(before, self.n)))
            if (start + hi) % BLOCK_ROWS == 0:
                self.block_end()
                if self.over:
                    return

    def block_end(self):
        self.ends.append(self.n)
        self.over = self.n > MAX_CATEGORIES

    def strings(self):
        """The values, by profile code (a pyarrow string array)."""
        if self.n == 0:
            return pa.array([], pa.string())
        return self.dictionary.take(pa.array(self.seen[:self.n]))


class _Accumulator:
    """A pass's statistics: float moments per row block merged in block order (or kept, with
    ``keep_blocks``), integer counts per worker thread, string columns' first-seen codes."""

    def __init__(self, plan, n_seg, keep_blocks=False, n_threads=None):
        self.plan = plan
        self.n_seg = n_seg
        self.n_slots = n_seg + 1
        n_threads_max = 2 * max(1, _threads())
        need = len(plan.features) * self.n_slots * ks.N_BUCKETS * 8 * n_threads_max
        if need > MAX_SKETCH_BYTES:
            raise ParameterError(
                f"profiling {len(plan.features)} features over {n_seg} segments would hold "
                f"{need / 2**30:.1f} GiB of quantile sketches ({ks.N_BUCKETS * 8 // 1000} KB per segment, feature and thread): "
                "pass fewer features= or use fewer segments")
        self.moments = np.zeros((len(plan.numeric), self.n_slots, 4))  # see _chan
        self.blocks = [] if keep_blocks else None  # each row block's moments, in block order
        self.n_rows = 0
        self.seen = [_FirstSeen() for _ in plan.categories]
        self.dropped = {}  # default category column -> distinct values met when dropped
        self.cast_reader = None
        self._open = []  # the pieces of the row block batches have cut, so far
        self._queue = deque()  # blocks' moments (or futures of them) waiting to merge, in order
        n = get_num_threads() if n_threads is None else n_threads
        in_pool = threading.current_thread().name.startswith("segmint")  # (as ordered_map decides)
        self._pool = _get_pool(n) if n > 1 and not in_pool else None
        self._window = 2 * n
        self._states = []
        self._free = []
        self._lock = threading.Lock()

    @property
    def dictionaries(self):
        """Per category column its values by profile code, None for a column left out."""
        return [None if fs.over else fs.strings() for fs in self.seen]

    def prepared(self, stream):
        """The stream with each batch's column views made here, in batch order: string codes
        are numbered by first appearance over the whole pass, so not by workers in arbitrary
        order."""
        for item in stream:
            views = {}
            if self.cast_reader is not None:
                views.update(self.cast_reader.take(item.batch.start, item.batch.num_rows))
            for c in self.plan.numeric:
                if c not in views:
                    views[c] = item.batch[c]
            counted = []
            for j, c in enumerate(self.plan.categories):
                fs = self.seen[j]
                if fs.over:
                    continue  # not even viewed: the reader's dictionary stops growing
                view = item.batch[c]
                fs.meet(view, item.batch.start)
                if fs.over:
                    self._too_many(j)
                elif fs.n <= MAX_CATEGORIES:  # (beyond: left out at this block's end, not counted)
                    counted.append((j, view, fs.mapping, fs.n, fs.identity))
            yield item, views, counted

    def _too_many(self, j):
        """A category column met more than MAX_CATEGORIES values by a row block's end: refused
        when named, else left out (a chunk of a dataset leaves that to its caller)."""
        if self.blocks is not None:
            return
        c, n = self.plan.categories[j], self.seen[j].n
        if self.plan.named_categories:
            raise DataError(
                f"categories= column {c!r} has more than {MAX_CATEGORIES:,} distinct values "
                f"({n:,} so far): too many to count per segment; leave it out of categories= or "
                "group its values first")
        self.dropped[c] = n

    def _acquire(self):
        with self._lock:
            if self._free:
                return self._free.pop()
            state = _ThreadState(self.n_slots, len(self.plan.features), len(self.plan.categories))
            self._states.append(state)
            return state

    def _release(self, state):
        with self._lock:
            self._free.append(state)

    def batch(self, item):
        """One batch (on a worker thread): the moments of the row blocks it holds whole, the
        pieces of those it cuts, and its integer counts (added to this thread's state)."""
        sb, views, counted = item
        n, start = sb.batch.num_rows, sb.batch.start
        # read-only whatever made them (a column's codes, labels computed here): one signature
        codes = read_only(sb.codes) if sb.codes is not None else _EMPTY_CODES
        members = read_only(sb.members) if sb.members is not None else _EMPTY_MEMBERS
        state = self._acquire()
        try:
            kp.count_rows(codes, members, n, state.rows)
            n_sketched = len(self.plan.features)
            columns = []
            for j, name in enumerate(self.plan.numeric):
                view = views[name]
                columns.append((_numbers(view, reach=name == self.plan.reachable and j >= n_sketched), *_bits(view)))
            blocks = []
            for lo, hi in _block_bounds(start, n):
                if hi - lo == BLOCK_ROWS:
                    part = ([(values[lo:hi], bits, offset + lo) for values, bits, offset in columns],
                            codes[lo:hi] if codes.shape[0] else codes, _member_slice(members, lo, hi))
                    blocks.append(self._moments([part], state))
                else:  # a block cut by the batch's edge: completed in order by merge()
                    blocks.append(_Piece(start, columns, lo, hi, codes, members))
            for j, view, mapping, n_seen, identity in counted:
                width = n_seen + 1
                if state.categories[j].shape[1] < width:  # more values met since
                    grown = np.zeros((self.n_slots, width), dtype=np.int64)
                    grown[:, :state.categories[j].shape[1]] = state.categories[j]
                    state.categories[j] = grown
                bits, offset = _bits(view)
                # null rows may hold any code: clip keeps the gather in bounds (they count as nulls)
                if identity and view.values.dtype == np.int32:  # (int32: the kernel's one signature)
                    profile_codes = view.values  # null rows' codes are never read
                elif mapping.shape[0]:
                    profile_codes = np.take(mapping, view.values, mode="clip")
                else:  # no value met yet: all rows null
                    profile_codes = np.zeros(len(view), dtype=np.int32)
                kp.profile_category(read_only(profile_codes), bits, offset, codes, members, state.categories[j])
        finally:
            self._release(state)
        return _BatchResult(n, blocks)

    def _moments(self, parts, state):
        """Moments of one whole row block given as consecutive ``parts`` ``(columns, codes,
        members)`` (one part: a batch held the block; several: batches cut it, no copy made);
        its sketches are added to ``state``."""
        n_sketched = len(self.plan.features)
        moments = np.zeros((len(self.plan.numeric), self.n_slots, 4))
        for j in range(len(self.plan.numeric)):
            sketches = state.sketches[j] if j < n_sketched else _NO_SKETCH
            _block_moments([(columns[j], codes, members) for columns, codes, members in parts], moments[j],
                           sketches)
        return moments

    def merge(self, result):
        """One batch's row blocks, in batch order: whole blocks' moments queued for merging,
        pieces gathered until their block is whole (its moments are then computed on the pool,
        not to serialise a pass whose batches all cut blocks, e.g. files of 100,000-row groups)."""
        for block in result.blocks:
            if isinstance(block, _Piece):
                self._open.append(block)
                if block.stop % BLOCK_ROWS == 0:
                    self._queue.append(self._close(self._open))
                    self._open = []
            else:
                self._queue.append(block)
        self.n_rows += result.rows
        self._drain(keep=self._window)

    def finish(self):
        """After the last batch: the last row block (ended by the data), every block merged, and
        the category limit at the last block's end."""
        if self._open:
            self._queue.append(self._close(self._open))
            self._open = []
        self._drain(keep=0)
        if self.n_rows % BLOCK_ROWS:
            for j, fs in enumerate(self.seen):
                if not fs.over:
                    fs.block_end()
                    if fs.over:
                        self._too_many(j)

    def _close(self, pieces):
        """The moments of the block ``pieces`` make up: a future on the pool, or computed now."""
        if self._pool is None:
            return self._close_block(pieces)
        return self._pool.submit(self._close_block, pieces)

    def _drain(self, keep):
        """Merge the blocks at the head of the queue, in block order, as long as they are ready
        (or while more than ``keep`` are queued: memory stays a few blocks)."""
        while self._queue:
            head = self._queue[0]
            if isinstance(head, Future):
                if not head.done() and len(self._queue) <= keep:
                    return
                head = head.result()
            self._queue.popleft()
            self._add_block(head)

    def _close_block(self, pieces):
        """Moments of the block made of ``pieces`` (in row order), by the kernels' passes over
        the pieces one after the other: the bits of one call over the whole block."""
        parts = [(p.columns, p.codes if p.codes is not None else _EMPTY_CODES,
                  read_only(_member_words(p.members)) if p.members is not None else _EMPTY_MEMBERS)
                 for p in pieces]
        state = self._acquire()
        try:
            return self._moments(parts, state)
        finally:
            self._release(state)

    def _add_block(self, moments):
        if self.blocks is not None:
            self.blocks.append(moments)
            return
        with np.errstate(over="ignore", invalid="ignore"):  # magnitudes beyond 1e154: inf, no warning
            self.moments = _chan(self.moments, moments)

    def totals(self):
        """Integer counts of every thread, added: rows, sketches, category counts (None for a
        column left out)."""
        rows = np.zeros(self.n_slots, dtype=np.int64)
        sketches = np.zeros((len(self.plan.features), self.n_slots, ks.N_BUCKETS), dtype=np.int64)
        cats = [None if fs.over else np.zeros((self.n_slots, fs.n + 1), dtype=np.int64) for fs in self.seen]
        for st in self._states:
            rows += st.rows
            sketches += st.sketches
            for j, c in enumerate(st.categories):
                if cats[j] is not None:
                    cats[j][:, :c.shape[1]] += c
        return rows, sketches, cats


class _CastReader:
    """Decimal and float16 columns, read with the source's own reader (segmint's batches refuse
    those types) and cast to float64 (a decimal keeps 15-16 significant digits), served by row
    range in step with the main pass."""

    def __init__(self, src, names, batch_size):
        from ..io.source import ReaderSource
        if isinstance(src, ReaderSource):
            raise UnsupportedTypeError(
                f"columns {names} of {src.label} are {[str(src.schema.field(c).type) for c in names]}: "
                "a one-pass reader cannot be read twice to cast them; cast them to float64 first")
        self.names = list(names)
        self._batches = src._record_batches(self.names, batch_size)
        self._batch = None
        self._offset = 0  # rows of self._batch already served or skipped
        self._row = 0  # source row of self._batch[self._offset]

    def take(self, start, n):
        """``{name: ColumnView}`` of float64 for rows ``start .. start + n - 1`` (``start`` never
        goes back)."""
        pieces = []
        while n > 0:
            if self._batch is None or self._offset >= self._batch.num_rows:
                self._batch = next(self._batches, None)
                self._offset = 0
                if self._batch is None:
                    raise DataError(f"columns {self.names}: the source ended early")
                continue
            k = min(self._batch.num_rows - self._offset, (start - self._row) if self._row < start else n)
            if self._row >= start:
                pieces.append(self._batch.slice(self._offset, k))
                start, n = start + k, n - k
            self._offset += k
            self._row += k
        out = {}
        for j, name in enumerate(self.names):
            chunks = [p.column(j) for p in pieces]
            array = pa.chunked_array(chunks, pieces[0].schema.field(j).type).combine_chunks() if chunks \
                else pa.array([], pa.float64())
            out[name] = view_of(name, pc.cast(array, pa.float64()))
        return out


def _threads():
    from .._parallel import get_num_threads
    return get_num_threads()


def _chan(a, b):
    """Merge moment arrays ``[..., (count, mean, mean correction, M2)]`` of two disjoint sets of
    values (Chan et al.).

    The mean is kept as a double-double ``mean + correction``: for values like 1e9 +- 1 the
    difference of two means is then exact (their high parts subtract without rounding), so
    merging many batches does not wear the variance down, and no common shift is needed (one
    shift for all segments fails when a single value is extreme)."""
    na, nb = a[..., 0], b[..., 0]
    n = na + nb
    safe = np.where(n > 0, n, 1.0)
    delta = (b[..., 1] - a[..., 1]) + (b[..., 2] - a[..., 2])
    step = delta * (nb / safe)
    hi = a[..., 1] + step
    back = hi - a[..., 1]  # two-sum: the rounding of hi, exactly
    err = (a[..., 1] - (hi - back)) + (step - back)
    out = np.empty_like(a)
    out[..., 0] = n
    out[..., 1] = hi
    out[..., 2] = a[..., 2] + err
    out[..., 3] = a[..., 3] + b[..., 3] + delta * delta * (na * nb / safe)
    # one side empty: the other as it is (its correction intact)
    out = np.where((na == 0)[..., None], b, out)
    return np.where((nb == 0)[..., None] & (na > 0)[..., None], a, out)


def _numbers(view, reach=False):
    """A numeric or boolean view's values as float32/float64 for the kernels
    (:func:`segmint.io.columns.kernel_numbers`)."""
    values = kernel_numbers(view)
    if reach:  # reachable: a finite non-zero value counts as one customer; NaN/inf do not
        values = read_only((np.isfinite(values) & (values != 0)).astype(np.float64))
    return values


_bits = validity_bits


# -- the result -----------------------------------------------------------------------------------
def _build(plan, seg, acc, top, inputs=()):
    n_seg = len(seg.names)
    rows, sketches, cat_counts = acc.totals()
    counts = rows[:n_seg].copy()
    n_unassigned = int(rows[n_seg])
    n_rows = acc.n_rows
    moments = acc.moments
    if seg.multi:  # slot n_seg holds every row once
        base = moments[:, n_seg, :]
        base_sketch = sketches[:, n_seg, :]
        base_cats = [None if c is None else c[n_seg] for c in cat_counts]
    else:  # slot n_seg is the unassigned rows: the base is every slot, merged in slot order
        base = moments[:, 0, :]
        with np.errstate(over="ignore", invalid="ignore"):  # huge magnitudes: inf/NaN, no warnings
            for s in range(1, n_seg + 1):
                base = _chan(base, moments[:, s, :])
        base_sketch = sketches.sum(axis=1)
        base_cats = [None if c is None else c.sum(axis=0) for c in cat_counts]
    all_moments = np.concatenate([moments[:, :n_seg, :], base[:, None, :]], axis=1)  # (m, n_seg+1, 4)
    with np.errstate(invalid="ignore"):  # inf + -inf (overflowed parts): NaN, no warning
        mean_of = all_moments[..., 1] + all_moments[..., 2]  # (m, n_seg+1)
    all_rows = np.append(counts, n_rows).astype(np.float64)
    all_sketches = np.concatenate([sketches[:, :n_seg, :], base_sketch[:, None, :]], axis=1)

    nf = len(plan.features)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        cnt = all_moments[:nf, :, 0].T  # (n_seg+1, nf)
        some = cnt > 0
        means = np.where(some, mean_of[:nf].T, np.nan)
        std = np.where(some, np.sqrt(np.maximum(all_moments[:nf, :, 3].T, 0.0) / np.where(some, cnt, 1)), np.nan)
        null_share = np.where(all_rows[:, None] > 0, 1.0 - cnt / all_rows[:, None], np.nan)
        std_all = std[-1]
        spread = std_all > 0  # NaN (no value) compares False too
        std_diff = np.where(spread, (means[:-1] - means[-1]) / np.where(spread, std_all, 1.0), np.nan)
        share = all_rows / n_rows if n_rows else np.full(n_seg + 1, np.nan)
    quantiles = np.full((n_seg + 1, nf, len(QUANTILES)), np.nan)
    qs = np.asarray(QUANTILES)
    for f in range(nf):
        for s in range(n_seg + 1):
            ks.sketch_quantiles(all_sketches[f, s], qs, quantiles[s, f])

    revenue = revenue_share = per_customer = reach = None
    j = nf
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        if plan.revenue:
            revenue = all_moments[j][:, 0] * mean_of[j]
            revenue_share = revenue / revenue[-1] if revenue[-1] != 0 else np.full(n_seg + 1, np.nan)
            per_customer = np.where(all_rows > 0, revenue / np.where(all_rows > 0, all_rows, 1), np.nan)
            j += 1
        if plan.reachable:
            reached = np.rint(all_moments[j][:, 0] * mean_of[j])
            reach = np.where(all_rows > 0, reached / np.where(all_rows > 0, all_rows, 1), np.nan)

    centroid = _centroids(seg, plan.features, n_seg)
    dictionaries = acc.dictionaries
    kept = [j for j, d in enumerate(dictionaries) if d is not None]
    top_categories = _top_categories([plan.categories[j] for j in kept], [dictionaries[j] for j in kept],
                                     [cat_counts[j] for j in kept], [base_cats[j] for j in kept], n_seg, top)
    # in column order (not the order the pass met them in: that depends on its batches)
    notes = [f"left out of categories: {c!r} (more than {MAX_CATEGORIES:,} distinct values; "
             f"{acc.dropped[c]:,} when dropped)" for c in plan.categories if c in acc.dropped]
    return Profile(
        names=list(seg.names), features=list(plan.features),
        categories=[plan.categories[j] for j in kept], notes=notes, inputs=list(inputs),
        n_rows=int(n_rows), n_unassigned=n_unassigned, counts=counts.astype(np.int64), means=means,
        std=std, null_share=null_share, std_diff=std_diff, quantiles=quantiles, share=share,
        revenue=revenue, revenue_share=revenue_share, revenue_per_customer=per_customer,
        reachable_share=reach, centroid=centroid, top_categories=top_categories, booleans=plan.booleans)


def _centroids(seg, features, n_seg):
    """(n_seg, n_features) cluster centers in input units for a Segmenter's clusters, NaN
    elsewhere; None when the segments are not clusters."""
    model = seg.segmenter
    if model is None or getattr(model, "clusterer_", None) is None or model.feature_spec_ is None:
        return None
    spec = model.feature_spec_
    centers = spec.inverse_transform(model.clusterer_.cluster_centers_)
    out = np.full((n_seg, len(features)), np.nan)
    for p in spec._check_fitted().plans:
        # one-hot columns hold category shares, not a value of the column: left out
        if p.kind == "numeric" and p.column in features:
            out[:centers.shape[0], features.index(p.column)] = centers[:, p.first]
    return out


def _top_categories(categories, dictionaries, cat_counts, base_cats, n_seg, top):
    """Per category column, per segment then the base: ``[(category, share, lift), ...]`` of the
    ``top`` categories by share in the segment (ties: order of first appearance, nulls first)."""
    out = []
    for j, column in enumerate(categories):
        d = dictionaries[j]
        strings = d.to_pylist() if d is not None else []
        null = NULL_CATEGORY
        while null in strings:  # a real "(null)" keeps its name; the nulls become "((null))"
            null = f"({null})"
        names = [null] + strings
        base = base_cats[j].astype(np.float64)
        base_share = base / base.sum() if base.sum() else base
        per_slot = []
        for s in range(n_seg + 1):
            c = (cat_counts[j][s] if s < n_seg else base_cats[j]).astype(np.float64)
            total = c.sum()
            if total == 0:
                per_slot.append([])
                continue
            share = c / total
            order = np.argsort(-share, kind="stable")
            kept = [int(k) for k in order[:top] if c[k] > 0]
            per_slot.append([(names[k], float(share[k]), float(share[k] / base_share[k])) for k in kept])
        out.append(per_slot)
    return out


class Profile:
    """Per-segment statistics; made by :func:`profile`.

    Attributes
    ----------
    segments : list of str
        Segment names, in code order.
    features, categories : list of str
        The numeric and the string columns profiled.
    n_rows : int
        Rows of the source (the whole base).
    n_unassigned : int
        Rows in no segment (a null segment, an id missing from the table, no rule matched).
    quantiles : str
        How median, p10 and p90 are computed, and their error bound.
    notes : list of str
        What the profile left out and why (e.g. a string column with too many distinct values).
    inputs : tuple of str
        The files the profile read: ``to_json``, ``write_report`` and ``save_png`` never write
        over them (empty for in-memory data).
    table : pyarrow.Table
        Tidy: ``segment`` (null: the whole base), ``feature`` (null for size statistics),
        ``category`` (null unless a category statistic), ``statistic``, ``value`` (float64).
        Statistics: ``count``, ``share``, ``revenue``, ``revenue_share``,
        ``revenue_per_customer``, ``reachable_share``; per feature ``mean``, ``std`` (ddof=0),
        ``null_share``, ``median``, ``p10``, ``p90`` (+-inf beyond 2^64), ``std_diff``, ``centroid`` (a Segmenter's
        clusters: the center in input units; numeric features only); per category ``share``
        and ``lift``.
    summary : pyarrow.Table
        One row per segment, then the base (segment null): ``segment``, ``count``, ``share``,
        ``revenue``, ``revenue_share``, ``revenue_per_customer``, ``reachable_share``,
        ``description``.
    std_diff : numpy.ndarray
        (n_segments, n_features) float64: ``(mean_seg - mean_all) / std_all``; NaN when the
        base's standard deviation is 0 or the segment has no value.
    means : numpy.ndarray
        (n_segments + 1, n_features) float64, the last row the base.
    counts : numpy.ndarray
        (n_segments,) int64.
    descriptions : dict
        Segment name -> one line of words.
    """

    def __init__(self, **parts):
        # made by profile() from its statistics (see _setup), not by users: the statistics'
        # names stay out of the public signature
        self._setup(**parts)

    def _setup(self, *, names, features, categories, n_rows, n_unassigned, counts, means, std,
               null_share, std_diff, quantiles, share, revenue, revenue_share, revenue_per_customer,
               reachable_share, centroid, top_categories, booleans=(), notes=(), inputs=()):
        self.segments = names
        self.notes = list(notes)
        self.inputs = tuple(str(p) for p in inputs)  # the files the profile read: never written over
        self._booleans = frozenset(booleans)
        self.features = features
        self.categories = categories
        self.n_rows = n_rows
        self.n_unassigned = n_unassigned
        self.quantiles = QUANTILE_METHOD
        self.counts = counts
        self.means = means
        self.std_diff = std_diff
        self._std = std
        self._null_share = null_share
        self._quantiles = quantiles
        self._share = share
        self._revenue = (revenue, revenue_share, revenue_per_customer)
        self._reach = reachable_share
        self._centroid = centroid
        self._top = top_categories
        self._traits = [self._rank(i) for i in range(len(names))]
        rev_share = revenue_share if revenue_share is not None else [None] * (len(names) + 1)
        self.descriptions = {name: words.describe(self._traits[i], float(share[i]), _num(rev_share[i]),
                                                  int(counts[i]))
                             for i, name in enumerate(names)}
        self.summary = self._summary()
        self.table = self._tidy()

    # -- words -------------------------------------------------------------------------------
    def _category_items(self, i):
        items = []
        for j, column in enumerate(self.categories):
            base = {c: s for c, s, _ in self._top[j][-1]}
            for category, share, lift in self._top[j][i]:
                items.append((column, category, share, base.get(category, share / lift if lift else 0.0),
                              lift))
        return items

    def _rank(self, i):
        return words.rank_traits(self.features, self.std_diff[i], self.means[i], self.means[-1],
                                 self._category_items(i), booleans=self._booleans)

    def traits(self, segment, top=3):
        """What sets ``segment`` apart, strongest first.

        Parameters
        ----------
        segment : str or int
            A segment name. An int is looked up as a name first (``str(segment)``: segments
            from an integer column are named "1", "2", ...) and only then, when no segment has
            that name, as a code (position in :attr:`segments`).
        top : int
            How many traits at most.

        Returns
        -------
        list of (feature, category or None, std_diff or lift, text)
        """
        return list(self._traits[self._index(segment)][:top])

    def _index(self, segment):
        if isinstance(segment, (int, np.integer)) and not isinstance(segment, bool):
            if str(int(segment)) in self.segments:  # a name first: integer segment values
                return self.segments.index(str(int(segment)))
            if 0 <= segment < len(self.segments):
                return int(segment)
        elif isinstance(segment, str) and segment in self.segments:
            return self.segments.index(segment)
        from ..errors import closest_names
        near = closest_names(str(segment), self.segments)
        hint = f"; did you mean {near[0]!r}?" if near else ""
        raise ParameterError(f"no segment {segment!r} in this profile{hint}")

    # -- tables ------------------------------------------------------------------------------
    def _summary(self):
        n = len(self.segments)
        revenue, rev_share, per_customer = self._revenue

        def col(values):
            return pa.array([None] * (n + 1) if values is None else [_num(v) for v in values], pa.float64())

        return pa.table({
            "segment": pa.array(self.segments + [None], pa.string()),
            "count": pa.array(list(self.counts) + [self.n_rows], pa.int64()),
            "share": col(self._share),
            "revenue": col(revenue),
            "revenue_share": col(rev_share),
            "revenue_per_customer": col(per_customer),
            "reachable_share": col(self._reach),
            "description": pa.array([self.descriptions[s] for s in self.segments] + [None], pa.string()),
        })

    def _tidy(self):
        rows = []
        revenue, rev_share, per_customer = self._revenue
        slots = list(self.segments) + [None]
        for i, name in enumerate(slots):
            count = self.counts[i] if name is not None else self.n_rows
            rows.append((name, None, None, "count", float(count)))
            rows.append((name, None, None, "share", self._share[i]))
            if revenue is not None:
                rows += [(name, None, None, "revenue", revenue[i]),
                         (name, None, None, "revenue_share", rev_share[i]),
                         (name, None, None, "revenue_per_customer", per_customer[i])]
            if self._reach is not None:
                rows.append((name, None, None, "reachable_share", self._reach[i]))
            for f, feature in enumerate(self.features):
                rows += [(name, feature, None, "mean", self.means[i, f]),
                         (name, feature, None, "std", self._std[i, f]),
                         (name, feature, None, "null_share", self._null_share[i, f])]
                rows += [(name, feature, None, q, self._quantiles[i, f, k])
                         for k, q in enumerate(QUANTILE_NAMES)]
                if name is not None:
                    rows.append((name, feature, None, "std_diff", self.std_diff[i, f]))
                    if self._centroid is not None:
                        rows.append((name, feature, None, "centroid", self._centroid[i, f]))
            for j, column in enumerate(self.categories):
                for category, share, lift in self._top[j][i]:
                    rows += [(name, column, category, "share", share), (name, column, category, "lift", lift)]
        seg, feat, cat, stat, val = zip(*rows) if rows else ((),) * 5
        return pa.table({"segment": pa.array(seg, pa.string()), "feature": pa.array(feat, pa.string()),
                         "category": pa.array(cat, pa.string()), "statistic": pa.array(stat, pa.string()),
                         "value": pa.array([_num(v) for v in val], pa.float64())})

    # -- export ------------------------------------------------------------------------------
    def to_dict(self):
        """The profile as plain JSON-able data (NaN as None)."""
        def columns(table):
            return {name: [_json(v) for v in table.column(name).to_pylist()] for name in table.column_names}

        return {"format": "segmint-profile", "version": 1, "segments": list(self.segments),
                "features": list(self.features), "categories": list(self.categories),
                "n_rows": self.n_rows, "n_unassigned": self.n_unassigned, "quantiles": self.quantiles,
                "notes": list(self.notes),
                "descriptions": dict(self.descriptions),
                "traits": {s: [[f, c, _json(v), t] for f, c, v, t in self._traits[i]]
                           for i, s in enumerate(self.segments)},
                "summary": columns(self.summary), "table": columns(self.table)}

    def to_json(self, path=None):
        """The profile as JSON text; with ``path``, also written there atomically.

        A ``path`` that is (or lies in) a file the profile read raises
        :class:`~segmint.errors.OutputError`, leaving that file as it was.

        Returns
        -------
        str
            The JSON text.
        """
        text = json.dumps(self.to_dict(), indent=2, allow_nan=False, ensure_ascii=False) + "\n"
        if path is not None:
            from ..io.writers import write_text
            write_text(path, text, inputs=self.inputs)
        return text

    def to_markdown(self):
        """The summary, the means and the standardized differences as Markdown tables."""
        revenue, reach = self._revenue[0] is not None, self._reach is not None
        head = ["segment", "count", "share"] + (["revenue share"] if revenue else []) \
            + (["reachable"] if reach else []) + ["description"]
        lines = ["# Segment profile", "", f"{self.n_rows:,} customers, {len(self.segments)} segments"
                 + (f", {self.n_unassigned:,} in no segment" if self.n_unassigned else "") + ".", "",
                 _md_row(head), _md_row(["---"] * len(head))]
        for i, name in enumerate(self.segments):
            cells = [_clean(name), f"{int(self.counts[i]):,}", words.format_share(self._share[i])]
            if revenue:
                cells.append(words.format_share(self._revenue[1][i]))
            if reach:
                cells.append(words.format_share(self._reach[i]))
            lines.append(_md_row(cells + [_clean(self.descriptions[name])]))
        if self.features:
            lines += ["", "## Means (standardized difference from the base)", "",
                      _md_row(["segment"] + [_clean(f) for f in self.features]),
                      _md_row(["---"] * (len(self.features) + 1))]
            for i, name in enumerate(self.segments + ["(all)"]):
                cells = [_clean(name)]
                for f in range(len(self.features)):
                    cell = words.format_number(self.means[i, f])
                    if i < len(self.segments) and math.isfinite(self.std_diff[i, f]):
                        cell += f" ({self.std_diff[i, f]:+.2f})"
                    cells.append(cell)
                lines.append(_md_row(cells))
            lines += ["", f"Quantiles: {self.quantiles}."]
        lines += [f"Note: {_clean(n)}." for n in self.notes]
        return "\n".join(lines) + "\n"

    def __str__(self):
        width = 100
        revenue, reach = self._revenue[0] is not None, self._reach is not None
        names = [_clean(s) for s in self.segments]
        name_w = min(24, max([len("segment")] + [len(s) for s in names]))
        head = f"{'segment':<{name_w}} {'count':>11} {'share':>6}" + (f" {'rev share':>9}" if revenue else "") \
            + (f" {'reach':>6}" if reach else "")
        lines = [head + "  description"]
        indent = len(head) + 2
        for i, name in enumerate(names + ["(all)"]):
            count = int(self.counts[i]) if i < len(self.segments) else self.n_rows
            cells = f"{_cut(name, name_w):<{name_w}} {count:>11,} {words.format_share(self._share[i]):>6}"
            if revenue:
                cells += f" {words.format_share(self._revenue[1][i]):>9}"
            if reach:
                cells += f" {words.format_share(self._reach[i]):>6}"
            text = _clean(self.descriptions[self.segments[i]]) if i < len(self.segments) else ""
            lines += _wrap(cells, text, indent, width)
        if self.n_unassigned:
            lines.append(f"({self.n_unassigned:,} customers are in no segment)")
        lines += [f"note: {_clean(n)}" for n in self.notes]
        lines.append("")
        lines.append("what sets each segment apart (standardized difference of the mean, or lift):")
        for i, name in enumerate(names):
            parts = []
            for feature, category, value, _ in self._traits[i][:5]:
                parts.append(_clean(f"{feature}={category} x{value:.1f}" if category is not None
                                    else f"{feature} {value:+.2f}"))
            lines += _wrap(f"  {_cut(name, name_w):<{name_w}}", ", ".join(parts) or "-", name_w + 4, width)
        return "\n".join(lines)

    def __repr__(self):
        return (f"<Profile: {len(self.segments)} segments, {self.n_rows:,} rows, "
                f"{len(self.features)} features, {len(self.categories)} categories>")


def _num(v):
    """A float for the tables: NaN (no value) is null; +-inf (a quantile beyond the sketch's
    range, a sum that overflowed) stays, and becomes null in JSON."""
    if v is None:
        return None
    v = float(v)
    return None if math.isnan(v) else v


_clean = words._one_line


def _json(v):
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def _md_row(cells):
    return "| " + " | ".join(_clean(c).replace("|", "\\|") for c in cells) + " |"


def _cut(text, n):
    return text if len(text) <= n else text[:n - 1] + "~"


def _wrap(first, text, indent, width):
    """``first`` then ``text`` wrapped to ``width``, continuation lines indented."""
    import textwrap
    room = max(20, width - indent)
    parts = textwrap.wrap(text, room) or [""]
    return [f"{first:<{indent - 2}}  {parts[0]}".rstrip()] + [" " * indent + p for p in parts[1:]]
