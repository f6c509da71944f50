"""``segmint.aggregate``: customer features from event logs, in one streaming pass.

Events may arrive in any order and in any number of batches; memory holds one batch plus a
few numbers per customer. Events after ``as_of`` are ignored; events with a null customer id
or a null timestamp are counted in the result's report, never dropped silently.
"""
import numbers
import re
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import pyarrow as pa

from .._time import (DURATION_UNITS, MAX_DURATION_US, MAX_US, MIN_US, US_PER_DAY, US_PER_WEEK,
                     as_of_microseconds, time_scale)
from ..errors import CorruptFileError, DataError, ParameterError, unknown_column

# Events per batch. Not the one streaming default (``segmint.io.DEFAULT_BATCH_SIZE``) on purpose:
# each batch is radix-partitioned 256 ways, a cost per batch, so small batches are slow (on
# 20.5M events: 131,072 per batch 570 ms, 1M 455 ms, 4M 425 ms). A 4M-event batch holds ~120 MB.
EVENT_BATCH_SIZE = 1 << 22

# Sums by segment. Floating-point addition is not associative, so a sum's bits depend on the
# order of its additions. Every float sum here (``monetary``, sum windows, BTYD's first-period
# amount) has one fixed structure, whatever the batches and threads: the input's rows are cut
# into segments of ``kernels.aggregate.SEGMENT_ROWS`` (65,536) consecutive global rows (a
# segment may span batches); a customer's amounts are added from 0.0 in row order within each
# segment, and the segment partials are added to the total in segment order, a left fold from
# 0.0 (``((0.0 + s0) + s1) + ...``; a segment without the customer's events adds nothing).
# The kernels keep the pending partials beside the totals and fold them lazily (see
# ``kernels/aggregate.py``). This is what lets ``segmint.dask.aggregate``, whose chunks are
# whole segments, return the very same bits: its chunk tasks send per-segment partials and
# its bucket tasks fold them in segment order. Counts, firsts and lasts are exact in any order.

from ..io import open as open_source
from ..io.columns import DICTIONARY, NUMERIC, TEMPORAL, column_kind, read_only
from .._memory import pool_array, result_array
from .._parallel import chunk_bounds, get_num_threads, run_chunks
from ..kernels import aggregate as agg
from ..kernels import string_ids as sk

SEGMENT_ROWS = agg.SEGMENT_ROWS  # rows per segment of float sums (see "Sums by segment")


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_DENSE_MAX = 1 << 31  # ids per dense span at most (slots are int32)
# Dense mode: partitions of more customers than this are summed in blocks of _BLOCK_SLOTS
# customers (about 240 KB of state; see _Scan._blocks)
_BLOCK_MIN_SLOTS = 4096
_BLOCK_SLOTS = 2048
# (period length, shift): 1970-01-01 was a Thursday; shifted by 3 days, weeks start on Monday
_PERIODS = {"D": (US_PER_DAY, 0), "W": (US_PER_WEEK, 3 * US_PER_DAY)}
# Event times must lie in the years 1..9999 (``MIN_US..MAX_US``, see segmint._time): times
# beyond would overflow silently in the kernels (a ms time near 2^63 lands in 1969).
# A window with neither 'last' nor 'between' covers every age an event can have: [0, ALL_TIME)
ALL_TIME_US = MAX_DURATION_US + 1
# uint64 ids map onto int64 by flipping the top bit: a bijection that keeps their order
# (0 -> -2^63, 2^63 -> 0, 2^64 - 1 -> 2^63 - 1), so the int64 kernels and sorts serve them too
_SIGN = np.int64(-(1 << 63))


@dataclass
class Window:
    """One windowed aggregate: ``count`` or ``sum`` of events aged ``[start, end)`` before as_of."""
    name: str
    agg: str
    start: int          # microseconds
    end: int            # microseconds
    types: tuple        # event types that count; empty: all
    trend_of: str = None  # set on the older window of a trend: the trend's name


@dataclass
class AggregateResult:
    """What :func:`aggregate` returns.

    Attributes
    ----------
    table : pyarrow.Table
        One row per customer (sorted by customer id).
    null_id, null_timestamp, after_as_of : int
        Events left out: with a null customer id, with a null timestamp, later than ``as_of``.
    n_events : int
        Events read in all.
    """
    table: pa.Table
    null_id: int
    null_timestamp: int
    after_as_of: int
    n_events: int


def aggregate(events, *, id_column="customer_id", timestamp="ts", amount=None, event_type=None,
              qualifying=None, as_of=None, windows=None, batch_size=EVENT_BATCH_SIZE):
    """Per-customer recency, frequency, monetary value, tenure and windowed counts and sums.

    ``frequency`` and ``recency_days`` here count events and days: ``frequency`` is the number
    of qualifying events, ``recency_days`` the days since the last one. :func:`btyd_summary`
    keeps the lifetimes package's meanings of ``frequency`` and ``recency`` (repeat periods,
    periods between the first and the last purchase) for the models fitted on it.

    Parameters
    ----------
    events : anything :func:`segmint.open` accepts
    id_column : str
        The customer id column: integers (any width; uint64 ids such as hashes keep their
        type and exact values) or strings. The result keeps its name.
    timestamp : str
        The event time column: a timestamp or a date, in the years 1 to 9999 (beyond, time
        arithmetic would overflow: such a time is refused, naming its row and value).
    amount : str, optional
        The money of each event (purchases); nulls are skipped in sums and means.
    event_type : str, optional
        The event type column (strings); needed for ``qualifying`` and typed windows.
    qualifying : str or list of str, optional
        Event types that count as purchases for recency, frequency and monetary value
        (default: every event).
    as_of : datetime, date or ISO string, optional
        The instant the features describe (default now, UTC); later events are ignored.
    windows : dict, optional
        Name -> spec, e.g. ``{"orders_90d": {"agg": "count", "last": "90d", "type": "purchase"},
        "spend_60_120d": {"agg": "sum", "between": ["60d", "120d"], "type": ["purchase"]},
        "purchases": {"agg": "count", "type": "purchase"}}``:
        ``last`` covers ages ``[0, d)``, ``between`` covers ``[a, b)`` before ``as_of``, and
        a window with neither covers all time up to ``as_of``; durations are at most
        3,652,058 days (the years 1 to 9999).
        A trend, ``{"orders_trend": {"agg": "trend", "last": "60d", "type": "purchase",
        "of": "count"}}``, gives ``orders_trend_recent`` (last 60 days),
        ``orders_trend_previous`` (the 60 days before) and ``orders_trend``, their ratio
        (null when the earlier window is empty).
    batch_size : int, default :data:`EVENT_BATCH_SIZE` (4,194,304 events)
        Events per batch; memory holds one batch (about 36 bytes per event; string ids
        about 60 more) plus the per-customer state (string ids: plus each distinct string).
        A chunk of an in-memory table or memory-mapped Arrow file is cut into nearly equal
        batches, so a batch may hold up to 1.5 x ``batch_size`` events (a chunk of 1.4 x
        ``batch_size`` is one batch, not two): each batch sweeps the per-customer state once.

    Returns
    -------
    AggregateResult
        ``table`` columns: the customer id (named as ``id_column``), ``frequency``
        (qualifying events), ``monetary`` (sum of their amounts), ``monetary_mean``,
        ``recency_days`` (whole days since the last qualifying event; null when there is
        none), ``tenure_days`` (whole days since the first event of any type),
        ``mean_gap_days`` (mean days between qualifying events: first to last over
        ``frequency - 1``; null below two), ``first_event``, ``last_event``, then one
        column per window. Customers whose every event was left out are not in it.

    Raises
    ------
    ParameterError
        A window spec, ``as_of``, ``qualifying``, ``batch_size`` or a column argument of the
        wrong kind or out of range (the message names the window and the field).
    DataError
        A column of the wrong type, or an event time outside the years 1 to 9999.
    """
    inp = _inputs(events, id_column, timestamp, amount, event_type, qualifying, as_of)
    spec = _windows(windows)
    if len(spec) > agg.MAX_WINDOWS:
        raise ParameterError(f"at most {agg.MAX_WINDOWS} windows per call (a trend counts two), got {len(spec)}")
    if any(w.types for w in spec) and event_type is None:
        raise ParameterError("typed windows need event_type= (the column of event types)")
    scan = _Scan(inp, spec, batch_size)
    table = scan.table(_columns_aggregate)
    return AggregateResult(table, *scan.report_counts(), scan.n_events)


def btyd_summary(events, *, id_column="customer_id", timestamp="ts", amount=None,
                 event_type=None, qualifying=None, as_of=None, period="D",
                 batch_size=EVENT_BATCH_SIZE):
    """The summary buy-till-you-die (BTYD) lifetime-value models are fitted on.

    Follows the convention of ``lifetimes.utils.summary_data_from_transaction_data`` and
    PyMC-Marketing's ``rfm_summary``: purchases are grouped into periods (calendar days or
    weeks, Monday to Sunday, UTC), then per customer with at least one purchase

    - ``frequency``: distinct purchase periods minus one (repeat purchases);
    - ``recency``: periods between the first and the last purchase period;
    - ``T``: periods between the first purchase period and the period of ``as_of``;
    - ``monetary_value``: mean amount per repeat period (the first period left out), 0 when
      there is no repeat.

    These are lifetimes' names, kept so the table feeds its fitters unchanged; they differ
    from :func:`aggregate`'s ``frequency`` (every qualifying event, the first included) and
    ``recency_days`` (days since the last qualifying event, counted back from ``as_of``).

    Parameters
    ----------
    events, id_column, timestamp, amount, event_type, qualifying, as_of
        As in :func:`aggregate`; ``qualifying`` names the purchase event types.
    period : {'D', 'W'}
        Day or week (``'day'`` and ``'week'`` also accepted).
    batch_size : int
        As in :func:`aggregate`.

    Returns
    -------
    AggregateResult
        ``table`` columns: the customer id, ``frequency`` (int64), ``recency`` and ``T``
        (float64, in periods, as the fitters expect) and ``monetary_value`` (float64); customers
        without a qualifying event are not in it (as in lifetimes).
    """
    key = str(period).strip().upper()
    key = {"DAY": "D", "WEEK": "W"}.get(key, key)
    if key not in _PERIODS:
        raise ParameterError(f"period={period!r}: use 'D' (day) or 'W' (week)")
    inp = _inputs(events, id_column, timestamp, amount, event_type, qualifying, as_of)
    scan = _Scan(inp, [], batch_size, period=_PERIODS[key])
    table = scan.table(_columns_btyd)
    return AggregateResult(table, *scan.report_counts(), scan.n_events)


def _inputs(events, id_column, timestamp, amount, event_type, qualifying, as_of):
    """Check the columns and options shared by :func:`aggregate` and :func:`btyd_summary`."""
    for arg, col in (("id_column", id_column), ("timestamp", timestamp), ("amount", amount),
                     ("event_type", event_type)):
        if col is not None and not isinstance(col, str):
            raise ParameterError(f"{arg}= names a column: expected a string, got {col!r}")
    src = open_source(events)
    as_of_us = _as_of_us(as_of)
    names = src.column_names
    for col in [id_column, timestamp] + [c for c in (amount, event_type) if c is not None]:
        if col not in names:
            raise unknown_column(col, names, src.label)
    id_kind = column_kind(src.schema.field(id_column).type)
    id_type = src.schema.field(id_column).type
    if id_kind == NUMERIC and pa.types.is_integer(id_type):
        string_ids = False
    elif id_kind == DICTIONARY:
        string_ids = True
    else:
        raise DataError(f"customer id column {id_column!r} has type {id_type}; use integers or strings")
    ts_type = src.schema.field(timestamp).type
    if column_kind(ts_type) != TEMPORAL or pa.types.is_duration(ts_type):
        raise DataError(f"timestamp column {timestamp!r} has type {ts_type}; use a timestamp or a date")
    scale = time_scale(ts_type)
    if amount is not None and column_kind(src.schema.field(amount).type) != NUMERIC:
        raise DataError(f"amount column {amount!r} must be numeric, got {src.schema.field(amount).type}")
    if event_type is not None and column_kind(src.schema.field(event_type).type) != DICTIONARY:
        raise DataError(f"event type column {event_type!r} must hold strings")
    qualifying = _as_tuple(qualifying, "qualifying=")
    if qualifying and event_type is None:
        raise ParameterError("qualifying= needs event_type= (the column of event types)")
    return _Inputs(src, id_column, timestamp, amount, event_type, qualifying, as_of_us, scale,
                   string_ids, id_type, pa.types.is_uint64(id_type))


def _as_of_us(as_of):
    """``as_of`` in microseconds; a wrong kind or text is a :class:`ParameterError`."""
    try:
        return int(as_of_microseconds(as_of)[0])
    except (TypeError, ValueError, OverflowError) as e:
        raise ParameterError(str(e)) from None


@dataclass
class _Inputs:
    src: object
    id_column: str
    timestamp: str
    amount: str
    event_type: str
    qualifying: tuple
    as_of_us: int
    scale: float
    string_ids: bool
    id_type: object
    flip_ids: bool      # uint64 ids, mapped onto int64 by flipping the top bit (see _SIGN)


class _Scan:
    """One pass over the events: partition each batch, then aggregate the partitions.

    Memory: the batch's partitioned copy (about 36 bytes per event) plus the per-customer
    state (about 60 bytes plus 8 per window), whatever the number of events. String ids add
    the numbering's scratch (about 60 bytes per event of a batch) and each distinct string
    with about 80 bytes of table (see :class:`_StringIds`).
    """

    def __init__(self, inp, spec, batch_size, period=None):
        batch_size = _check_batch_size(batch_size)
        self.inp = inp
        self.spec = spec
        self.period = period
        self.report = np.zeros((max(1, get_num_threads()), 3), dtype=np.int64)
        self.n_events = 0
        self.cap = 0
        self.n_slots = np.zeros(agg.N_PART, dtype=np.int64)
        self.table_ = np.full((agg.N_PART, 16, 2), -1, dtype=np.int64)
        self.istate = np.zeros((agg.N_PART, 0, agg.N_ISTATE), dtype=np.int64)  # grown per batch
        # totals, then the segment partials of the float sums (see kernels.aggregate)
        n_sums = 1 + sum(w.agg == "sum" for w in spec)
        self.fstate = np.zeros((agg.N_PART, 0, 1 + len(spec) + n_sums))
        self.strings = _StringIds(self.report.shape[0]) if inp.string_ids else None
        # Dense mode while ids look like dictionary codes or database keys (base, base + 1, ...
        # with few gaps): slots come straight from the id, no hash table. Ids that turn out
        # sparse move the state to hash mode once. BTYD's pair sets stay in hash mode.
        self.dense = period is None
        self.base = 0 if inp.string_ids else None
        self.id_span = 0
        self.valid_ids = 0
        self.planned = False
        self.win_lo = np.asarray([w.start for w in spec], dtype=np.int64)
        self.win_hi = np.asarray([w.end for w in spec], dtype=np.int64)
        self.win_sum = np.asarray([w.agg == "sum" for w in spec], dtype=np.uint8)
        self.win_col, self.sum_cols = agg.sum_columns(self.win_sum)
        if period is not None:
            self.n_pairs = np.zeros(agg.N_PART, dtype=np.int64)
            self.pairs = np.full((agg.N_PART, 64), -1, dtype=np.int64)
            self.n_periods = np.zeros((agg.N_PART, 0), dtype=np.int64)
            self.first_period = np.zeros((agg.N_PART, 0), dtype=np.int64)
            self.first_amount = np.zeros((agg.N_PART, 0))
            self.pseg = np.zeros((agg.N_PART, 0), dtype=np.int64)
            self.seg_period = np.zeros((agg.N_PART, 0), dtype=np.int64)
            self.seg_amount = np.zeros((agg.N_PART, 0))
        self._run(int(batch_size))

    def report_counts(self):
        r = self.report.sum(axis=0)
        return int(r[0]), int(r[1]), int(r[2])

    def _grow_tables(self):
        """Double every partition's hash table."""
        P, tcap = self.table_.shape[:2]
        table = pool_array((P, 2 * tcap, 2), np.int64, fill=-1)
        agg.grow_tables(self.table_, self.n_slots, table)
        self.table_ = table

    def _grow(self, need, slack=True):
        """Room for ``need`` customers per partition, with a quarter more for later batches
        unless ``slack`` is False. Returns the capacity before."""
        old = self.cap
        if need <= old:
            return old
        cap = max(need + need // 4 if slack else need, 16)
        P = agg.N_PART

        def widen(a, fill):
            # the old slots copied, the new ones set to ``fill``, partitions split over threads
            b = pool_array((P, cap) + a.shape[2:], a.dtype)

            def copy(r):
                b[r[0]:r[1], :old] = a[r[0]:r[1]]
                b[r[0]:r[1], old:] = fill

            run_chunks(copy, _runs(P, self.report.shape[0]))
            return b

        # every slot starts as a customer without events, whether it gets one or not
        self.istate = widen(self.istate, _NEW_ISTATE)
        self.fstate = widen(self.fstate, 0.0)
        if self.period is not None:
            self.n_periods = widen(self.n_periods, 0)
            self.first_period = widen(self.first_period, agg.INT64_MAX)
            self.first_amount = widen(self.first_amount, 0.0)
            self.pseg = widen(self.pseg, -1)
            self.seg_period = widen(self.seg_period, agg.INT64_MAX)
            self.seg_amount = widen(self.seg_amount, 0.0)
        self.cap = cap
        return old

    def _plan_dense(self, batch_size):
        """Where ids can be read for free (memory, memory-mapped files), find their range
        first, so dense-mode state is allocated once instead of growing batch by batch."""
        src, inp = self.inp.src, self.inp
        if not self.dense or inp.string_ids or src.kind not in ("table", "ipc") or not src.zero_copy:
            return
        lo, hi, n = agg.INT64_MAX, agg.INT64_MIN, 0
        n_threads = self.report.shape[0]
        for batch in src.batches(columns=[inp.id_column], batch_size=batch_size, balanced=True):
            ids = batch[inp.id_column]
            values, bits, offset = _id_values(ids, inp), _bits(ids), ids.validity_offset
            runs = _runs(values.size, n_threads if values.size >= 65_536 else 1)
            rng = np.zeros((len(runs), 3), dtype=np.int64)
            # a run's validity bits start at bit offset + its first row
            run_chunks(lambda c: agg.id_range(values[runs[c][0]:runs[c][1]], bits, offset + runs[c][0], rng[c]),
                       range(len(runs)))
            for r in rng:
                if r[2]:
                    lo, hi, n = min(lo, int(r[0])), max(hi, int(r[1])), n + int(r[2])
        if n:
            self._dense_fits(lo, hi, n, slack=False)
        self.planned = True

    def _choose_mode(self, ids):
        """Stay dense while this batch's ids (a kernel column) fit (see ``__init__``); else move
        to hash mode."""
        if not self.dense or self.planned:
            return
        rng = np.zeros(3, dtype=np.int64)
        agg.id_range(ids.values, ids.bitmap(), ids.offset, rng)
        self._dense_fits(*(int(v) for v in rng))

    def _dense_fits(self, lo, hi, n, slack=True):
        """Ids ``lo..hi`` (``n`` of them, non-null) arrive: grow the dense span, or leave dense mode."""
        if n == 0:
            return
        self.valid_ids += n
        if self.base is None:
            self.base = lo
        span = max(self.id_span, hi - self.base + 1)
        # dense slots cost memory per id in the span: allow about one per event seen, or, for
        # string numbers (``slot * N_PART + partition``: the partitions' sizes differ by a few
        # percent, unless strings were made to collide), two per distinct string
        limit = max(1 << 16, self.valid_ids, 2 * self.strings.n_distinct if self.strings else 0)
        if lo < self.base or span > limit or span > _DENSE_MAX:
            self._to_hash()
            return
        self.id_span = span
        self._grow(-(-span // agg.N_PART), slack)

    def _dense_rows(self):
        """Dense mode: ``(keys, flat rows)`` of the customers seen, in id order."""
        keys = pool_array(agg.N_PART * self.cap, np.int64)
        rows = pool_array(agg.N_PART * self.cap, np.int64)
        n = agg.dense_seen(self.istate, keys, rows)
        return keys[:n], rows[:n]

    def _to_hash(self):
        self.dense = False
        keys, rows = self._dense_rows() if self.cap else (np.zeros(0, np.int64),) * 2
        ids = keys + (self.base or 0)
        # customers per hash partition, by the kernel that partitions events (time 0, kept)
        counts = np.zeros(agg.N_PART, dtype=np.int64)
        _partition_count(_KernelColumn(read_only(ids)), _KernelColumn(read_only(np.zeros(ids.size, np.int64))),
                         _ALL_TIMES_AT_0,
                         as_of_us=0, rows=(0, ids.size), dense=False, base=0,
                         part=np.empty(ids.size, np.int16), counts=counts,
                         report=np.zeros(3, np.int64), bad_row=np.full(1, -1, np.int64))
        need = int(counts.max())
        cap = max(16, need + need // 4)
        tcap = 1 << max(4, (2 * cap - 1).bit_length())
        table = pool_array((agg.N_PART, tcap, 2), np.int64, fill=-1)
        istate = pool_array((agg.N_PART, cap, agg.N_ISTATE), np.int64)
        istate[:] = _NEW_ISTATE  # slots without a customer yet (see _grow)
        fstate = pool_array((agg.N_PART, cap, self.fstate.shape[2]), np.float64, fill=0.0)
        # (n_slots is all zeros in dense mode: slots there come from the ids). Ids sparse from
        # the first batch on (hashed ids, say) have no customers to move: no kernel call (and
        # none to compile: the warm-up covers only that common case)
        if keys.size:
            agg.dense_to_hash(keys, rows, self.base or 0, self.istate.reshape(-1, agg.N_ISTATE),
                              self.fstate.reshape(-1, self.fstate.shape[2]), table, self.n_slots, istate, fstate)
        self.table_, self.istate, self.fstate, self.cap = table, istate, fstate, cap

    def _run(self, batch_size):
        inp = self.inp
        read = [inp.id_column, inp.timestamp] + [c for c in (inp.amount, inp.event_type) if c is not None]
        n_threads = self.report.shape[0]
        raw_ids = None
        if inp.string_ids and inp.src.kind == "table" and inp.id_column not in read[1:]:
            # string ids are numbered from the table's own buffers (see _StringIds): not read
            # through the source, which would dictionary-encode the whole column first
            raw_ids = inp.src.table.column(inp.id_column)
            read = read[1:]
        self._plan_dense(batch_size)
        buffers = None
        unit = _TimeUnit.of(inp.scale)
        for batch in inp.src.batches(columns=list(dict.fromkeys(read)), batch_size=batch_size, balanced=True):
            n = batch.num_rows
            self.n_events += n
            if n == 0:
                continue
            if inp.string_ids:
                pieces = raw_ids.slice(batch.start, n).chunks if raw_ids is not None else \
                    [batch.record_batch.column(inp.id_column)]
                id_col = self.strings.codes(pieces, n)
            else:
                ids = batch[inp.id_column]
                id_col = _KernelColumn(_id_values(ids, inp), _bits(ids), ids.validity_offset)
            self._choose_mode(id_col)
            dense, base = self.dense, (self.base or 0)
            width = 3 if dense else 4
            if buffers is None or buffers[0].shape[0] < n or buffers[1].shape[1] != width:
                rows = pool_array((n, width), np.int64)
                buffers = (pool_array(n, np.int16), rows, rows.view(np.float64), pool_array(n, np.int32))
            ts_view = batch[inp.timestamp]
            ts_col = _KernelColumn(ts_view.values.view(np.int64), _bits(ts_view), ts_view.validity_offset)
            if inp.amount is not None:
                a_view = batch[inp.amount]
                amount_col = _KernelColumn(read_only(a_view.values.astype(np.float64, copy=False)), _bits(a_view),
                                           a_view.validity_offset)
            else:
                amount_col = _KernelColumn(_NO_FLOATS)
            type_col, code_bits = _type_tables(batch, inp.event_type, inp.qualifying, self.spec)
            part, buf, buf_f, b_slot = buffers
            # the batch's rows by global segment (see "Sums by segment" above): a thread takes
            # whole segments, so each segment's events are counted, then placed, by one kernel call
            row0 = self.n_events - n
            g0, off = row0 >> agg.SEG_BITS, row0 & (agg.SEGMENT_ROWS - 1)
            seg_rows = [(max(0, k * agg.SEGMENT_ROWS - off), min(n, (k + 1) * agg.SEGMENT_ROWS - off))
                        for k in range((off + n - 1) // agg.SEGMENT_ROWS + 1)]
            runs = _runs(len(seg_rows), n_threads)
            block_shift, n_parts = self._blocks()
            counts = np.zeros((len(seg_rows), n_parts), dtype=np.int64)
            bad_rows = np.full((len(runs), 1), -1, dtype=np.int64)
            report = np.zeros((len(runs), 3), dtype=np.int64)

            def count(c):
                for k in range(*runs[c]):
                    _partition_count(id_col, ts_col, unit, as_of_us=inp.as_of_us, rows=seg_rows[k],
                                     dense=dense, base=base, block_shift=block_shift, part=part,
                                     counts=counts[k],
                                     report=report[c], bad_row=bad_rows[c])

            run_chunks(count, range(len(runs)))
            self.report[:len(runs)] += report
            if (bad_rows >= 0).any():
                row = int(bad_rows[bad_rows >= 0].min())
                raise _time_error(inp, ts_view, int(ts_col.values[row]), batch.start + row)
            starts = np.zeros(n_parts + 1, dtype=np.int64)
            np.cumsum(counts.sum(axis=0), out=starts[1:])
            # segment k of partition p starts after the partition's events of segments < k
            seg_lo = np.empty((len(seg_rows) + 1, n_parts), dtype=np.int64)
            seg_lo[:-1] = starts[:-1] + np.cumsum(counts, axis=0) - counts
            seg_lo[-1] = starts[1:]
            pos = seg_lo[:-1].copy()

            def scatter(c):
                for k in range(*runs[c]):
                    _partition_scatter(id_col.values, ts_col.values, unit, amount_col, type_col, code_bits,
                                       as_of_us=inp.as_of_us, windows=(self.win_lo, self.win_hi),
                                       rows=seg_rows[k], part=part, pos=pos[k], buf=buf, buf_f=buf_f,
                                       dense=dense, base=base, buf_slot=b_slot)

            run_chunks(scatter, range(len(runs)))
            parts = _part_ranges(starts, n_threads)
            if not dense:
                progress = starts[:-1].copy()

                def assign(r):
                    return agg.assign_slots(r[0], r[1], starts, progress, buf, b_slot, self.table_, self.n_slots)

                while any(run_chunks(assign, parts)):
                    self._grow_tables()
                # the state grows once per batch, to the slots now known to be needed
                self._grow(int(self.n_slots.max()))
            run_chunks(lambda r: agg.sum_events(r[0], r[1], seg_lo, g0, buf, buf_f, b_slot, self.istate,
                                                self.fstate, self.win_sum, self.win_col, self.sum_cols), parts)
            if self.period is not None:
                self._periods(parts, starts, seg_lo, g0, buf, buf_f, b_slot)
        # the last segment partials of every customer (at most one pending each)
        ist, fst = self.istate.reshape(-1, agg.N_ISTATE), self.fstate.reshape(-1, self.fstate.shape[2])
        run_chunks(lambda r: agg.fold_pending(ist[r[0]:r[1]], fst[r[0]:r[1]], self.sum_cols),
                   _runs(ist.shape[0], n_threads))
        if self.period is not None:
            agg.fold_periods(self.first_period, self.first_amount, self.pseg, self.seg_period, self.seg_amount)

    def _blocks(self):
        """``(block_shift, partitions)`` for :func:`segmint.kernels.aggregate.partition_count`:
        dense mode with more than ``_BLOCK_MIN_SLOTS`` customers per partition splits each
        partition into blocks of ``_BLOCK_SLOTS`` (at most 64 blocks), so the state that
        ``sum_events`` works on stays in the core's cache: on 2M customers x 10 events, 20.2 ns
        per event instead of 28.3 (4M-event batches), scatter +0.6 ns. Hash mode: one block."""
        if not self.dense or self.cap <= _BLOCK_MIN_SLOTS:
            return 63, agg.N_PART
        bits = _BLOCK_SLOTS.bit_length() - 1
        while -(-self.cap >> bits) > 64:
            bits += 1
        return agg.P_BITS + bits, agg.N_PART * -(-self.cap >> bits)

    def _periods(self, parts, starts, seg_lo, g0, buf, buf_f, b_slot):
        period_us, shift_us = self.period
        progress = starts[:-1].copy()

        def pairs(r):
            return agg.period_pairs(r[0], r[1], seg_lo, g0, progress, buf, buf_f, b_slot,
                                    period_us, shift_us, self.pairs, self.n_pairs,
                                    self.n_periods, self.first_period, self.first_amount,
                                    self.pseg, self.seg_period, self.seg_amount)

        while any(run_chunks(pairs, parts)):
            new = pool_array((agg.N_PART, 2 * self.pairs.shape[1]), np.int64, fill=-1)
            agg.grow_pairs(self.pairs, new)
            self.pairs = new

    def table(self, columns):
        """The result table: one row per customer seen, sorted by id; ``columns`` builds it."""
        if self.dense:
            keys, rows = self._dense_rows()
            keys += self.base or 0
            if not self.inp.string_ids:  # already in id order
                return columns(self, rows, self._id_array(keys))
        else:
            slot_key = pool_array((agg.N_PART, self.cap), np.int64)
            agg.slot_keys(self.table_, slot_key)
            rows = np.flatnonzero((np.arange(self.cap) < self.n_slots[:, None]).ravel())
            keys = slot_key.ravel()[rows]
        if self.inp.string_ids:
            order, ids = self.strings.sorted_ids(keys, self.inp.id_column)
        else:
            order = _argsort(keys)
            ids = self._id_array(keys[order])
        return columns(self, rows[order], ids)

    def _id_array(self, keys):
        """The id column of the result from int64 keys, in the id column's own type."""
        if self.inp.flip_ids:
            return pa.array((keys ^ _SIGN).view(np.uint64), pa.uint64())
        return pa.array(keys).cast(self.inp.id_type)

    def fields(self, rows):
        """Every state field of the given flat rows: ``(istate fields, fstate fields)``, one row
        per field (transposed views of the rows gathered; ``segmint.dask`` keeps these partial
        states). The float fields are the totals (the partials are folded in)."""
        ist = self.istate.reshape(-1, self.istate.shape[2])[rows]
        fst = self.fstate.reshape(-1, self.fstate.shape[2])[rows, :1 + len(self.spec)]
        return ist.T, fst.T

    def flat(self, array, rows):
        return array.reshape(-1)[rows]


class _Columns(NamedTuple):
    """The output columns of :func:`segmint.kernels.aggregate.aggregate_columns` and where each
    window's went (see there)."""
    ints: np.ndarray
    floats: np.ndarray
    valid: np.ndarray
    win_dst: np.ndarray
    win_int: np.ndarray
    trend_dst: np.ndarray
    trend_valid: np.ndarray

    def array(self, kind, values, bitmap=-1):
        """One column as an Arrow array (zero-copy), with the validity bitmap ``bitmap`` if >= 0."""
        bits = None if bitmap < 0 else pa.py_buffer(self.valid[bitmap])
        return pa.Array.from_buffers(kind, values.size, [bits, pa.py_buffer(values)])


def _state_columns(scan, rows):
    """The result columns of the customers at flat ``rows`` of the scan's state, in that order,
    by one kernel pass on every thread (:func:`segmint.kernels.aggregate.aggregate_columns`)."""
    n, spec = rows.size, scan.spec
    count_windows = [j for j, w in enumerate(spec) if w.agg == "count"]
    sum_windows = [j for j, w in enumerate(spec) if w.agg != "count"]
    trends = [j for j, w in enumerate(spec) if w.trend_of is not None]
    n_i = agg.C_LAST_Q + 1 + len(count_windows)
    n_f = agg.C_GAP + 1 + len(sum_windows)
    win_dst = np.empty(len(spec), dtype=np.int64)
    win_dst[count_windows] = agg.C_LAST_Q + 1 + np.arange(len(count_windows))
    win_dst[sum_windows] = agg.C_GAP + 1 + np.arange(len(sum_windows))
    win_int = np.asarray([w.agg == "count" for w in spec], dtype=np.uint8)
    trend_dst = np.full(len(spec), -1, dtype=np.int64)
    trend_valid = np.full(len(spec), -1, dtype=np.int64)
    trend_dst[trends] = n_f + np.arange(len(trends))
    trend_valid[trends] = agg.V_GAP + 1 + np.arange(len(trends))
    out_i = result_array((n_i, n), np.int64)
    out_f = result_array((n_f + len(trends), n), np.float64)
    valid = result_array((agg.V_GAP + 1 + len(trends), (n + 7) // 8), np.uint8)
    if isinstance(scan, _Scan):
        ist = scan.istate.reshape(-1, scan.istate.shape[2])
        fst = scan.fstate.reshape(-1, scan.fstate.shape[2])
    else:  # a bucket of segmint.dask.aggregate: its state comes field by field (``fields``)
        ist, fst = (np.ascontiguousarray(a.T) for a in scan.fields(rows))
        rows = np.arange(n)
    rows = read_only(np.ascontiguousarray(rows, dtype=np.int64))
    day0 = scan.inp.as_of_us // US_PER_DAY
    # one chunk per thread, of whole validity bytes (8 rows)
    step = -(-max(1, -(-n // get_num_threads())) // 8) * 8
    run_chunks(lambda r: agg.aggregate_columns(ist, fst, rows, r[0], r[1], day0, win_dst, win_int,
                                               trend_dst, trend_valid, out_i, out_f, valid),
               chunk_bounds(n, step))
    return _Columns(out_i, out_f, valid, win_dst, win_int, trend_dst, trend_valid)


def _columns_aggregate(scan, rows, ids):
    out = _state_columns(scan, rows)
    ints, floats = out.ints, out.floats
    when = pa.timestamp("us", tz="UTC")
    columns = {
        scan.inp.id_column: ids,
        "frequency": out.array(pa.int64(), ints[agg.C_FREQUENCY]),
        "monetary": out.array(pa.float64(), floats[agg.C_MONETARY]),
        "monetary_mean": out.array(pa.float64(), floats[agg.C_MEAN], agg.V_MEAN),
        "recency_days": out.array(pa.int64(), ints[agg.C_RECENCY], agg.V_RECENCY),
        "tenure_days": out.array(pa.int64(), ints[agg.C_TENURE]),
        "mean_gap_days": out.array(pa.float64(), floats[agg.C_GAP], agg.V_GAP),
        "first_event": out.array(when, ints[agg.C_FIRST]),
        "last_event": out.array(when, ints[agg.C_LAST]),
    }
    for j, w in enumerate(scan.spec):
        columns[w.name] = out.array(pa.int64(), ints[out.win_dst[j]]) if out.win_int[j] else \
            out.array(pa.float64(), floats[out.win_dst[j]])
        if w.trend_of is not None:  # the second of a trend's two windows: add the ratio
            columns[w.trend_of] = out.array(pa.float64(), floats[out.trend_dst[j]], out.trend_valid[j])
    return pa.table(columns)


def _columns_btyd(scan, rows, ids):
    out = _state_columns(scan, rows)
    keep = out.ints[agg.C_FREQUENCY] > 0
    rows = rows[keep]
    n_periods = scan.flat(scan.n_periods, rows)
    first = scan.flat(scan.first_period, rows)
    total = out.floats[agg.C_MONETARY][keep]
    first_amount = scan.flat(scan.first_amount, rows)
    period_us, shift_us = scan.period
    last = (out.ints[agg.C_LAST_Q][keep] + shift_us) // period_us
    now = (scan.inp.as_of_us + shift_us) // period_us
    repeat = n_periods - 1
    value = np.divide(total - first_amount, repeat, out=np.zeros(rows.size), where=repeat > 0)
    return pa.table({
        scan.inp.id_column: ids.filter(pa.array(keep)),
        "frequency": pa.array(repeat),
        "recency": pa.array((last - first).astype(np.float64)),
        "T": pa.array((now - first).astype(np.float64)),
        "monetary_value": pa.array(value),
    })


# ANDed onto every string hash: all ones. Tests set fewer bits to force hash collisions (then
# only the byte comparison on a hash match tells strings apart).
_HASH_MASK = np.uint64(0xFFFFFFFFFFFFFFFF)
# A dictionary much larger than the rows that use it (a slice of a big table): its rows are
# numbered, not its values
_DICTIONARY_RATIO = 2


class _StringIds:
    """Numbers string customer ids across the batches of one scan (``kernels/string_ids.py``).

    The numbers feed the aggregation as integer ids (dense: ``slot * N_PART + partition``); the
    strings stay in the partitions' stores, so the result's ids are built from them at the
    end, in byte order (:meth:`sorted_ids`). Plain string columns are hashed row by row;
    dictionary columns hash their dictionary once (again only when it changes) and gather.
    This replaces Arrow's ``dictionary_encode`` of every row and the unification of batch
    dictionaries, which cost more than the aggregation itself on 20M string ids.
    """

    def __init__(self, n_threads):
        self.n_threads = n_threads
        self.cells = np.full((agg.N_PART, 16), -1, dtype=np.int64)
        self.soff = np.zeros((agg.N_PART, 9), dtype=np.int64)
        self.shead = np.zeros((agg.N_PART, 8, 4), dtype=np.int64)
        self.sdata = np.zeros((agg.N_PART, 256), dtype=np.uint8)
        self.n_slots = np.zeros(agg.N_PART, dtype=np.int64)
        self.scratch = None
        self.dict_key = None
        self.dict_map = None
        self.dict_ref = None

    @property
    def n_distinct(self):
        return int(self.n_slots.sum())

    def codes(self, pieces, n):
        """The numbers of a batch's ids, given as Arrow arrays (``pieces``, ``n`` rows in all):
        a :class:`_KernelColumn` of int64 numbers with its validity."""
        if self.scratch is None or self.scratch[0].shape[0] < n:
            self.scratch = (pool_array(n, np.int64), pool_array(n, np.uint64), pool_array(n, np.int16),
                            pool_array((n, 5), np.int64))
        codes = self.scratch[0][:n]
        nulls = 0
        row = 0
        for piece in pieces:
            m = len(piece)
            if m == 0:
                continue
            out = codes[row:row + m]
            if pa.types.is_dictionary(piece.type) and len(piece.dictionary) > _DICTIONARY_RATIO * m:
                piece = piece.dictionary_decode()
            if pa.types.is_dictionary(piece.type):
                nulls += self._dictionary_codes(piece, out)
            else:
                nulls += self._number(_string_buffers(piece), out)
            row += m
        if nulls:
            return _KernelColumn(read_only(codes), read_only(np.packbits(codes >= 0, bitorder="little")), 0)
        return _KernelColumn(read_only(codes))

    def _dictionary_codes(self, piece, out):
        dictionary = piece.dictionary
        key = _buffers_key(dictionary)
        if key != self.dict_key:
            mapping = np.empty(len(dictionary), dtype=np.int64)
            self._number(_string_buffers(dictionary), mapping)
            # the dictionary is kept: its memory cannot be reused by another with the same key
            self.dict_key, self.dict_map, self.dict_ref = key, mapping, dictionary
        indices = piece.indices
        values = np.frombuffer(indices.buffers()[1], dtype=np.dtype(indices.type.to_pandas_dtype()),
                               count=indices.offset + len(indices))[indices.offset:]
        if values.dtype != np.int32:
            values = values.astype(np.int64)
        bits, offset = _arrow_bits(indices)
        nulls = sk.dictionary_codes(read_only(values), bits, offset, self.dict_map, out)
        if nulls < 0:
            raise DataError(f"customer ids: dictionary index {int(values[-nulls - 1])} at row "
                            f"{-nulls - 1:,} of a batch lies outside its dictionary of "
                            f"{len(dictionary):,} strings")
        return nulls

    def _number(self, strings, out):
        """Number the rows of one string array (``(offsets, data, bits, bit offset)``) into
        ``out``; null rows get -1. Returns the null rows."""
        offsets, data, bits, bit_offset = strings
        n = out.shape[0]
        _, hashes, part, ent = self.scratch if self.scratch[0].shape[0] >= n else (
            None, np.empty(n, np.uint64), np.empty(n, np.int16), np.empty((n, 5), np.int64))
        runs = _runs(n, self.n_threads if n >= 65_536 else 1)
        counts = np.zeros((len(runs), agg.N_PART), dtype=np.int64)
        nulls = run_chunks(lambda c: sk.hash_strings(offsets, data, bits, bit_offset, runs[c][0], runs[c][1],
                                                     _HASH_MASK, hashes, part, counts[c], out),
                           range(len(runs)))
        starts = np.zeros(agg.N_PART + 1, dtype=np.int64)
        np.cumsum(counts.sum(axis=0), out=starts[1:])
        pos = starts[:-1] + np.cumsum(counts, axis=0) - counts  # chunk c after chunks < c
        run_chunks(lambda c: sk.scatter_rows(part, hashes, offsets, data, runs[c][0], runs[c][1], pos[c], ent),
                   range(len(runs)))
        progress = starts[:-1].copy()
        parts = _part_ranges(starts, self.n_threads if n >= 65_536 else 1)
        while True:
            need = 0
            for r in run_chunks(lambda r: sk.number_strings(r[0], r[1], starts, progress, ent, offsets, data,
                                                            self.cells, self.soff, self.shead, self.sdata,
                                                            self.n_slots, out), parts):
                need |= r
            if not need:
                return sum(nulls)
            if need & sk.GROW_TABLE:
                tcap = self.cells.shape[1]
                cells = pool_array((agg.N_PART, 2 * tcap), np.int64, fill=-1)
                sk.grow_cells(self.shead, self.n_slots, cells)
                soff = pool_array((agg.N_PART, tcap + 1), np.int64)
                soff[:, :self.soff.shape[1]] = self.soff
                shead = pool_array((agg.N_PART, tcap, 4), np.int64)
                shead[:, :self.shead.shape[1]] = self.shead
                self.cells, self.soff, self.shead = cells, soff, shead
            if need & sk.GROW_BYTES:
                sdata = pool_array((agg.N_PART, 2 * self.sdata.shape[1]), np.uint8)
                sdata[:, :self.sdata.shape[1]] = self.sdata
                self.sdata = sdata

    def sorted_ids(self, keys, id_column):
        """``(order, ids)``: the order that sorts the strings numbered ``keys`` bytewise (as
        Arrow sorts strings), and those strings in that order as a string array."""
        n = keys.size
        keys = np.ascontiguousarray(keys, dtype=np.int64)
        start = sk.common_prefix(keys, self.soff, self.sdata)
        words = np.empty(n, dtype=np.uint64)
        sk.prefix_words(keys, self.soff, self.sdata, start, words)
        # as int64 with the top bit flipped (the same order), sorted on two threads; ties (equal
        # words) in any order: sort_ties puts them in byte order
        order = _argsort((words ^ np.uint64(1 << 63)).view(np.int64))
        sk.sort_ties(order, words, keys, self.soff, self.sdata, start, np.empty(n, dtype=np.int64))
        ordered = keys[order]
        offsets = np.empty(n + 1, dtype=np.int64)
        sk.string_lengths(ordered, self.soff, offsets)
        data = np.empty(max(1, int(offsets[-1])), dtype=np.uint8)
        # the bytes of consecutive runs of strings on each thread (offsets are absolute: each
        # writes its own part of data): 195 -> ~100 ms for 2M customer ids
        runs = _runs(n, self.n_threads if n >= 65_536 else 1)
        run_chunks(lambda r: sk.gather_strings(ordered[r[0]:r[1]], self.soff, self.sdata, offsets[r[0]:r[1] + 1],
                                               data), runs)
        if offsets[-1] < 1 << 31:
            ids = pa.Array.from_buffers(pa.string(), n, [None, pa.py_buffer(offsets.astype(np.int32)),
                                                        pa.py_buffer(data)])
        else:
            ids = pa.Array.from_buffers(pa.large_string(), n, [None, pa.py_buffer(offsets), pa.py_buffer(data)])
        try:
            ids.validate(full=True)
        except pa.ArrowInvalid as exc:
            raise CorruptFileError(f"customer id column {id_column!r} holds a string that is not valid "
                                   f"UTF-8 ({exc})") from None
        return order, ids.cast(pa.string())


def _string_buffers(array):
    """``(offsets, data, validity bits, bit offset)`` of a string array, as the kernels take them."""
    if not (pa.types.is_string(array.type) or pa.types.is_large_string(array.type)):
        array = array.cast(pa.large_string())  # string views
    n = len(array)
    buffers = array.buffers()
    dtype = np.int64 if pa.types.is_large_string(array.type) else np.int32
    # read-only whatever the source (one kernel signature: see segmint.io.columns.read_only)
    if n == 0 or buffers[1] is None:
        return read_only(np.zeros(1, dtype)), _NO_BYTES, _NO_BITS, 0
    offsets = np.frombuffer(buffers[1], dtype=dtype, count=array.offset + n + 1)[array.offset:]
    data = np.frombuffer(buffers[2], dtype=np.uint8) if buffers[2] is not None and buffers[2].size else _NO_BYTES
    bits, offset = _arrow_bits(array)
    return read_only(offsets), read_only(data), bits, offset


def _arrow_bits(array):
    """``(validity bitmap, bit offset of row 0)`` of an Arrow array; empty when no nulls."""
    if array.null_count == 0 or array.buffers()[0] is None:
        return _NO_BITS, 0
    return read_only(np.frombuffer(array.buffers()[0], dtype=np.uint8)), array.offset


def _buffers_key(array):
    """What identifies an array's memory: equal keys, the same strings."""
    return (len(array), array.offset) + tuple(b.address if b is not None else 0 for b in array.buffers())


def _argsort(keys):
    """``np.argsort`` of keys, the halves sorted on two threads and merged (equal keys in no
    particular order)."""
    n = keys.size
    if get_num_threads() < 2 or n < 65_536:
        return np.argsort(keys)
    half = n // 2
    a, b = run_chunks(lambda r: r[0] + np.argsort(keys[r[0]:r[1]]), [(0, half), (half, n)])
    out = np.empty(n, dtype=np.int64)
    agg.merge_order(keys, a.astype(np.int64, copy=False), b.astype(np.int64, copy=False), out)
    return out


def _runs(n, n_threads):
    """``0..n`` cut into at most ``n_threads`` runs of consecutive items, as equal as may be."""
    cuts = [n * t // max(1, n_threads) for t in range(max(1, n_threads) + 1)]
    return [(a, b) for a, b in zip(cuts[:-1], cuts[1:]) if b > a]


def _part_ranges(starts, n_threads):
    """Split the partitions (``starts``: where each begins, and the end) into ``n_threads``
    runs of about equal numbers of events."""
    n_parts = starts.size - 1
    if n_threads <= 1:
        return [(0, n_parts)]
    total = starts[-1]
    cuts = [0]
    for t in range(1, n_threads):
        cuts.append(int(np.searchsorted(starts, total * t // n_threads)))
    cuts.append(n_parts)
    return [(a, b) for a, b in zip(cuts[:-1], cuts[1:]) if b > a] or [(0, n_parts)]


def _id_values(view, inp):
    """A batch's ids as int64 for the kernels (uint64 ids with their top bit flipped)."""
    # read-only whatever the source: one kernel signature (see segmint.io.columns.read_only)
    if inp.flip_ids:
        return read_only(view.values.view(np.int64) ^ _SIGN)
    return read_only(view.values.astype(np.int64, copy=False))


# -- the partition kernels, called by name ------------------------------------------------------
# The kernels take flat argument lists (Numba compiles plain arrays and ints best); these
# wrappers, called once per chunk of a batch (never per event), give the arguments names.

class _KernelColumn(NamedTuple):
    """A column as the kernels read it."""
    values: np.ndarray
    bits: np.ndarray = None  # the validity bitmap; empty (or None): no nulls
    offset: int = 0          # the bit of the first row in ``bits``

    def bitmap(self):
        return _NO_BITS if self.bits is None else self.bits


class _TimeUnit(NamedTuple):
    """How the kernels turn a time column's values into microseconds, and which values may be.

    Microseconds are ``value * mul // div`` (a multiply in the kernel is free; an array of
    converted times here is not); values outside ``lo..hi`` lie outside the years 1..9999.
    """
    mul: int
    div: int
    lo: int
    hi: int

    @classmethod
    def of(cls, scale):
        """The unit of a column whose value times ``scale`` is microseconds."""
        mul, div = (int(round(scale)), 1) if scale >= 1 else (1, int(round(1 / scale)))
        lo, hi = -(-MIN_US // mul) * div, MAX_US // mul * div
        i64 = np.iinfo(np.int64)
        return cls(mul, div, max(lo, int(i64.min)), min(hi, int(i64.max)))


# Microseconds as they are, and only the time 0 allowed: for partitioning ids alone (their
# times are all 0, at as_of 0, so every id is kept)
_ALL_TIMES_AT_0 = _TimeUnit(mul=1, div=1, lo=0, hi=0)


def _partition_count(ids, ts, unit, *, as_of_us, rows, dense, base, part, counts, report, bad_row,
                     block_shift=63):
    """:func:`segmint.kernels.aggregate.partition_count` of ``rows = (lo, hi)`` by name."""
    agg.partition_count(ids.values, ids.bitmap(), ids.offset, ts.values, ts.bitmap(), ts.offset,
                        unit.mul, unit.div, unit.lo, unit.hi, as_of_us, rows[0], rows[1],
                        dense, base, block_shift, part, counts, report, bad_row)


def _partition_scatter(ids, ts, unit, amounts, types, code_bits, *, as_of_us, windows, rows, part,
                       pos, buf, buf_f, dense, base, buf_slot):
    """:func:`segmint.kernels.aggregate.partition_scatter` of ``rows = (lo, hi)`` by name;
    ``windows`` is ``(win_lo, win_hi)``, ``amounts`` and ``types`` are kernel columns."""
    agg.partition_scatter(ids, ts, unit.mul, unit.div, amounts.values, amounts.bitmap(), amounts.offset,
                          types.values, types.bitmap(), types.offset, code_bits, as_of_us,
                          windows[0], windows[1], rows[0], rows[1], part, pos, buf, buf_f, dense,
                          base, buf_slot)


def _time_error(inp, view, value, row):
    unit = view.unit or "D"
    return DataError(f"timestamp column {inp.timestamp!r}: row {row:,} holds {value:,} ({unit} since "
                     "1970-01-01), outside the years 1 to 9999 where segmint's time arithmetic cannot "
                     "overflow; fix or drop such events first")


def _check_batch_size(batch_size):
    if isinstance(batch_size, bool) or not isinstance(batch_size, (numbers.Integral, np.integer)) \
            or batch_size < 1:
        raise ParameterError(f"batch_size must be a positive number of events, got {batch_size!r}")
    return int(batch_size)


def _type_tables(batch, event_type, qualifying, spec):
    """Per-batch bits over the event-type dictionary (the kernel reads type codes):
    ``(type codes as a kernel column, bits per code)``.

    Entry ``c + 1`` describes type code ``c``, entry 0 a null type (or no type column): bit
    ``j`` set when window j counts the event, bit ``QUALIFY_BIT`` when it qualifies.
    """
    strings = batch[event_type].dictionary.to_pylist() if event_type is not None else []
    bits = np.zeros(len(strings) + 1, dtype=np.uint64)
    for c, value in enumerate([None] + strings):
        b = 0
        for j, w in enumerate(spec):
            if not w.types or value in w.types:
                b |= 1 << j
        if not qualifying or value in qualifying:
            b |= 1 << agg.QUALIFY_BIT
        bits[c] = b
    if event_type is None:
        return _KernelColumn(_NO_CODES), bits
    view = batch[event_type]
    return _KernelColumn(view.values, _bits(view), view.validity_offset), bits


def _windows(windows):
    if windows is None:
        return []
    if not isinstance(windows, dict):
        raise ParameterError("windows must be a dict of name -> spec, e.g. {'orders_90d': {'agg': "
                             f"'count', 'last': '90d'}}, got {type(windows).__name__} {windows!r:.80}")
    spec = []
    for name, w in windows.items():
        if not isinstance(name, str) or not name.strip():
            raise ParameterError(f"window names must be non-empty strings, got {name!r}")
        if not isinstance(w, dict):
            raise ParameterError(f"window {name!r}: expected a dict like {{'agg': 'count', 'last': '90d'}}, "
                                 f"got {type(w).__name__}")
        unknown = [k for k in w if k not in ("agg", "last", "between", "type", "of")]
        if unknown:
            raise ParameterError(f"window {name!r}: unknown keys {', '.join(sorted(map(repr, unknown)))} "
                                 "(known: agg, last, between, type, of)")
        kind = w.get("agg", "count")
        if not isinstance(kind, str) or kind not in ("count", "sum", "trend"):
            raise ParameterError(f"window {name!r}: agg must be 'count', 'sum' or 'trend', got {kind!r}")
        if "last" in w and "between" in w:
            raise ParameterError(f"window {name!r}: give either 'last' or 'between', not both")
        types = _as_tuple(w.get("type"), f"window {name!r}: type")
        if kind == "trend":
            of = w.get("of", "count")
            if not isinstance(of, str) or of not in ("count", "sum"):
                raise ParameterError(f"window {name!r}: a trend is 'of' 'count' or 'sum', got {of!r}")
            if "last" not in w:
                raise ParameterError(f"window {name!r}: a trend compares the 'last' window with the one "
                                     "before it, e.g. {'agg': 'trend', 'last': '60d'}")
            d = _duration(name, "last", w["last"])
            spec.append(Window(f"{name}_recent", of, 0, d, types))
            spec.append(Window(f"{name}_previous", of, d, 2 * d, types, trend_of=str(name)))
            continue
        if "of" in w:
            raise ParameterError(f"window {name!r}: 'of' belongs to trends (agg: 'trend')")
        if "last" in w:
            start, end = 0, _duration(name, "last", w["last"])
        elif "between" not in w:  # all time: every age from 0 to the longest possible
            start, end = 0, ALL_TIME_US
        else:
            pair = w["between"]
            if not isinstance(pair, (list, tuple)) or len(pair) != 2:
                raise ParameterError(f"window {name!r}: 'between' takes two durations, e.g. ['60d', '120d']")
            start, end = _duration(name, "between", pair[0]), _duration(name, "between", pair[1])
            if end <= start:
                raise ParameterError(f"window {name!r}: the second duration must be longer than the first")
        spec.append(Window(str(name), kind, start, end, types))
    names = [w.name for w in spec] + [w.trend_of for w in spec if w.trend_of]
    clash = sorted({n for n in names if names.count(n) > 1} | (set(names) & _FIXED_COLUMNS))
    if clash:
        raise ParameterError(f"window names clash with other output columns: {', '.join(clash)}")
    return spec


_FIXED_COLUMNS = {"frequency", "monetary", "monetary_mean", "recency_days", "tenure_days",
                  "mean_gap_days", "first_event", "last_event"}


def _duration(name, field, text):
    """Microseconds of a window's duration (``'90d'``, ``'12h'``, ``'1.5w'``...)."""
    m = _DURATION.match(text) if isinstance(text, str) else None
    if not m:
        raise ParameterError(f"window {name!r}: {field} {text!r:.40} is not a duration like '90d', '12h' or '2w'")
    us = float(m.group(1)) * DURATION_UNITS[m.group(2)]
    if us > MAX_DURATION_US:  # checked as a float: int() of the text's number may be huge
        raise ParameterError(f"window {name!r}: {field} {text!r:.40} is longer than the years 1 to 9999 "
                             f"that event times span (at most {MAX_DURATION_US // US_PER_DAY:,}d)")
    return int(us)


def _as_tuple(value, what="event types"):
    """One string or a list of strings as a tuple (event types name dictionary strings)."""
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, (list, tuple, set, frozenset)) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise ParameterError(f"{what} must be a string or a list of strings, got {value!r:.80}")


def _bits(view):
    return view.validity if view.validity is not None else _NO_BITS


# The integer state of a customer without events (see kernels/aggregate.py)
_NEW_ISTATE = np.zeros(agg.N_ISTATE, dtype=np.int64)
_NEW_ISTATE[[agg.I_FIRST, agg.I_FIRST_Q]] = agg.INT64_MAX
_NEW_ISTATE[[agg.I_LAST, agg.I_LAST_Q]] = agg.INT64_MIN
_NEW_ISTATE[agg.I_SEG] = -1
_NO_BITS = read_only(np.zeros(0, dtype=np.uint8))
_NO_CODES = read_only(np.zeros(0, dtype=np.int32))
_NO_FLOATS = read_only(np.zeros(0, dtype=np.float64))
_NO_BYTES = read_only(np.zeros(1, dtype=np.uint8))  # one byte: Numba gets a non-empty buffer
