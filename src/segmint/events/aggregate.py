"""``segmint.aggregate``: customer features from event logs, in one streaming pass.

Events may arrive in any order and in any number of batches; memory holds one batch plus a
few numbers per customer. Events after ``as_of`` are ignored; events with a null customer id
or a null timestamp are counted in the result's report, never dropped silently.
"""
import re
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from .._time import as_of_microseconds
from ..errors import DataError, unknown_column
from ..io import open as open_source
from ..io.columns import DICTIONARY, NUMERIC, TEMPORAL, column_kind
from ..kernels import aggregate as agg
from ..rules.compile import time_scale

US_PER_DAY = 86_400_000_000
_INT64_MIN = np.iinfo(np.int64).min
_INT64_MAX = np.iinfo(np.int64).max
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNITS = {"s": 1_000_000, "m": 60_000_000, "h": 3_600_000_000, "d": US_PER_DAY, "w": 7 * US_PER_DAY}


@dataclass
class Window:
    """One windowed aggregate: ``count`` or ``sum`` of events aged ``[start, end)`` before as_of."""
    name: str
    agg: str
    start: int          # microseconds
    end: int            # microseconds
    types: tuple        # event types that count; empty: all


@dataclass
class AggregateResult:
    """What :func:`aggregate` returns.

    Attributes
    ----------
    table : pyarrow.Table
        One row per customer (sorted by customer id).
    null_customer, null_timestamp, after_as_of : int
        Events left out: with a null customer id, with a null timestamp, later than ``as_of``.
    events : int
        Events read in all.
    """
    table: pa.Table
    null_customer: int
    null_timestamp: int
    after_as_of: int
    events: int


def aggregate(events, *, customer="customer_id", timestamp="ts", amount=None, event_type=None,
              qualifying=None, as_of=None, windows=None, batch_size=1 << 20):
    """Per-customer recency, frequency, monetary value, tenure and windowed counts and sums.

    Parameters
    ----------
    events : anything :func:`segmint.open` accepts
    customer : str
        The customer id column: integers or strings.
    timestamp : str
        The event time column: a timestamp or a date.
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
        "spend_60_120d": {"agg": "sum", "between": ["60d", "120d"], "type": ["purchase"]}}``:
        ``last`` covers ages ``[0, d)``, ``between`` covers ``[a, b)`` before ``as_of``.

    Returns
    -------
    AggregateResult
        ``table`` columns: the customer id, ``frequency`` (qualifying events), ``monetary``
        (sum of their amounts), ``monetary_mean``, ``recency_days`` (whole days since the last
        qualifying event; null when there is none), ``tenure_days`` (whole days since the
        first event of any type), ``first_event``, ``last_event``, then one column per window.
    """
    src = open_source(events)
    as_of_us = int(as_of_microseconds(as_of)[0])
    names = src.column_names
    for col in [customer, timestamp] + [c for c in (amount, event_type) if c is not None]:
        if col not in names:
            raise unknown_column(col, names, src.label)
    id_kind = column_kind(src.schema.field(customer).type)
    id_type = src.schema.field(customer).type
    if id_kind == NUMERIC and pa.types.is_integer(id_type):
        string_ids = False
    elif id_kind == DICTIONARY:
        string_ids = True
    else:
        raise DataError(f"customer id column {customer!r} has type {id_type}; use integers or strings")
    ts_type = src.schema.field(timestamp).type
    if column_kind(ts_type) != TEMPORAL or pa.types.is_duration(ts_type):
        raise DataError(f"timestamp column {timestamp!r} has type {ts_type}; use a timestamp or a date")
    scale = time_scale(ts_type)
    if amount is not None and column_kind(src.schema.field(amount).type) != NUMERIC:
        raise DataError(f"amount column {amount!r} must be numeric, got {src.schema.field(amount).type}")
    if event_type is not None and column_kind(src.schema.field(event_type).type) != DICTIONARY:
        raise DataError(f"event type column {event_type!r} must hold strings")
    qualifying = _as_tuple(qualifying)
    spec = _windows(windows)
    if (qualifying or any(w.types for w in spec)) and event_type is None:
        raise DataError("qualifying= and typed windows need event_type= (the column of event types)")

    state = _State(len(spec))
    report = np.zeros(3, dtype=np.int64)
    n_events = 0
    win_lo = np.asarray([w.start for w in spec], dtype=np.int64)
    win_hi = np.asarray([w.end for w in spec], dtype=np.int64)
    win_sum = np.asarray([w.agg == "sum" for w in spec], dtype=np.uint8)
    read = [customer, timestamp] + [c for c in (amount, event_type) if c is not None]
    for batch in src.batches(columns=list(dict.fromkeys(read)), batch_size=batch_size):
        n = batch.num_rows
        n_events += n
        ids = batch[customer]
        if string_ids:
            slots = ids.values.astype(np.int64)
            if ids.validity is not None:
                slots[~ids.is_valid()] = -1
            state.ensure(len(ids.dictionary))
            state.n_slots[0] = len(ids.dictionary)
        else:
            state.ensure_table(n)
            slots = np.empty(n, dtype=np.int64)
            agg.slots_for_ids(ids.values.astype(np.int64, copy=False), _bits(ids), ids.validity_offset,
                              state.keys, state.slot_of, state.n_slots, slots)
            state.ensure(int(state.n_slots[0]))
        ts_view = batch[timestamp]
        ts = ts_view.values if scale == 1.0 else (ts_view.values * np.int64(round(scale))
                                                 if scale >= 1 else ts_view.values // np.int64(round(1 / scale)))
        if amount is not None:
            a_view = batch[amount]
            amounts = a_view.values.astype(np.float64, copy=False)
            a_bits, a_off = _bits(a_view), a_view.validity_offset
        else:
            amounts, a_bits, a_off = np.empty(0), _NO_BITS, 0
        types, t_bits, t_off, qual_table, win_any, win_table = _type_tables(batch, event_type, qualifying, spec)
        agg.accumulate(slots, np.ascontiguousarray(ts, dtype=np.int64), _bits(ts_view), ts_view.validity_offset,
                       amounts, a_bits, a_off, types, t_bits, t_off, qual_table, win_any, win_table,
                       as_of_us, win_lo, win_hi, win_sum,
                       state.count, state.amount_sum, state.amount_n, state.first_any, state.last_any,
                       state.last_q, state.win, report)
        if string_ids:
            state.id_dictionary = ids.dictionary
    table = state.table(customer, string_ids, as_of_us, spec, id_type)
    return AggregateResult(table, int(report[0]), int(report[1]), int(report[2]), n_events)


class _State:
    """Per-customer arrays, grown as customers appear."""

    def __init__(self, n_windows):
        self.n_windows = n_windows
        self.cap = 0
        self.n_slots = np.zeros(1, dtype=np.int64)
        self.keys = np.zeros(16, dtype=np.int64)
        self.slot_of = np.full(16, -1, dtype=np.int64)
        self.id_dictionary = None
        self.count = np.zeros(0, np.int64)
        self.amount_sum = np.zeros(0)
        self.amount_n = np.zeros(0, np.int64)
        self.first_any = np.zeros(0, np.int64)
        self.last_any = np.zeros(0, np.int64)
        self.last_q = np.zeros(0, np.int64)
        self.win = np.zeros((n_windows, 0))

    def ensure_table(self, incoming):
        """Keep the hash table at most half full even if every incoming id is new."""
        need = 2 * (int(self.n_slots[0]) + incoming)
        if self.keys.size >= need:
            return
        size = 1 << max(4, (need - 1).bit_length())
        keys = np.zeros(size, dtype=np.int64)
        slot_of = np.full(size, -1, dtype=np.int64)
        agg.rehash(self.keys, self.slot_of, keys, slot_of)
        self.keys, self.slot_of = keys, slot_of
        self.ensure(int(self.n_slots[0]) + incoming)

    def ensure(self, n):
        """Room for ``n`` customers."""
        if n <= self.cap:
            return
        cap = max(n, 2 * self.cap, 1024)
        grow = cap - self.cap

        def extend(a, fill, dtype):
            return np.concatenate([a, np.full(grow, fill, dtype=dtype)])

        self.count = extend(self.count, 0, np.int64)
        self.amount_sum = extend(self.amount_sum, 0.0, np.float64)
        self.amount_n = extend(self.amount_n, 0, np.int64)
        self.first_any = extend(self.first_any, _INT64_MAX, np.int64)
        self.last_any = extend(self.last_any, _INT64_MIN, np.int64)
        self.last_q = extend(self.last_q, _INT64_MIN, np.int64)
        self.win = np.concatenate([self.win, np.zeros((self.n_windows, grow))], axis=1)
        self.cap = cap

    def table(self, customer, string_ids, as_of_us, spec, id_type):
        n = int(self.n_slots[0])
        seen = self.last_any[:n] != _INT64_MIN  # customers whose every event was dropped: left out
        if string_ids:
            ids = pa.array(self.id_dictionary.to_pylist()[:n] if self.id_dictionary is not None else [],
                           pa.string())
        else:
            keys = np.empty(n, dtype=np.int64)
            used = self.slot_of >= 0
            keys[self.slot_of[used]] = self.keys[used]
            ids = pa.array(keys).cast(id_type)
        order = np.flatnonzero(seen)
        ids = ids.take(pa.array(order))
        sort = pa.compute.sort_indices(ids)
        idx = np.asarray(order)[np.asarray(sort)]
        count = self.count[idx]
        last_q = self.last_q[idx]
        has_q = last_q != _INT64_MIN
        amount_n = self.amount_n[idx]
        day0 = as_of_us // US_PER_DAY * US_PER_DAY
        columns = {
            customer: ids.take(sort),
            "frequency": pa.array(count),
            "monetary": pa.array(self.amount_sum[idx]),
            "monetary_mean": pa.array(np.divide(self.amount_sum[idx], amount_n, out=np.zeros(idx.size),
                                                where=amount_n > 0), mask=amount_n == 0),
            "recency_days": pa.array(_whole_days(day0, last_q), mask=~has_q),
            "tenure_days": pa.array(_whole_days(day0, self.first_any[idx])),
            "first_event": pa.array(self.first_any[idx], pa.timestamp("us", tz="UTC")),
            "last_event": pa.array(self.last_any[idx], pa.timestamp("us", tz="UTC")),
        }
        for j, w in enumerate(spec):
            values = self.win[j, idx]
            columns[w.name] = pa.array(values.astype(np.int64)) if w.agg == "count" else pa.array(values)
        return pa.table(columns)


def _whole_days(day0_us, t_us):
    """Calendar days between the day of ``t`` and the day of as_of (UTC)."""
    return (day0_us // US_PER_DAY) - np.floor_divide(t_us, US_PER_DAY)


def _type_tables(batch, event_type, qualifying, spec):
    """Per-batch lookup tables over the event-type dictionary (the kernel reads type codes)."""
    w = len(spec)
    win_any = np.asarray([0 if s.types else 1 for s in spec], dtype=np.uint8)
    if event_type is None:
        return _NO_CODES, _NO_BITS, 0, _NO_BITS, np.ones(w, np.uint8), np.zeros((w, 1), np.uint8)
    view = batch[event_type]
    strings = view.dictionary.to_pylist()
    qual = np.asarray([s in qualifying for s in strings], dtype=np.uint8) if qualifying else _NO_BITS
    table = np.zeros((w, max(len(strings), 1)), dtype=np.uint8)
    for j, s in enumerate(spec):
        for c, value in enumerate(strings):
            table[j, c] = value in s.types
    return view.values, _bits(view), view.validity_offset, qual, win_any, table


def _windows(windows):
    spec = []
    for name, w in (windows or {}).items():
        if not isinstance(w, dict):
            raise DataError(f"window {name!r}: expected a dict like {{'agg': 'count', 'last': '90d'}}")
        unknown = set(w) - {"agg", "last", "between", "type"}
        if unknown:
            raise DataError(f"window {name!r}: unknown keys {', '.join(sorted(unknown))}")
        kind = w.get("agg", "count")
        if kind not in ("count", "sum"):
            raise DataError(f"window {name!r}: agg must be 'count' or 'sum', got {kind!r}")
        if ("last" in w) == ("between" in w):
            raise DataError(f"window {name!r}: give either 'last' or 'between'")
        if "last" in w:
            start, end = 0, _duration(name, w["last"])
        else:
            pair = w["between"]
            if not isinstance(pair, (list, tuple)) or len(pair) != 2:
                raise DataError(f"window {name!r}: 'between' takes two durations, e.g. ['60d', '120d']")
            start, end = _duration(name, pair[0]), _duration(name, pair[1])
            if end <= start:
                raise DataError(f"window {name!r}: the second duration must be longer than the first")
        spec.append(Window(str(name), kind, start, end, _as_tuple(w.get("type"))))
    return spec


def _duration(name, text):
    m = _DURATION.match(str(text))
    if not m:
        raise DataError(f"window {name!r}: {text!r} is not a duration like '90d', '12h' or '2w'")
    return int(float(m.group(1)) * _UNITS[m.group(2)])


def _as_tuple(value):
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    return tuple(value)


def _bits(view):
    return view.validity if view.validity is not None else _NO_BITS


_NO_BITS = np.zeros(0, dtype=np.uint8)
_NO_CODES = np.zeros(0, dtype=np.int32)
