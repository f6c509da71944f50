"""Per-customer aggregation of event logs: a hash table from ids to dense slots, then sums.

Events arrive unsorted, batch by batch. Integer customer ids go through an open-addressing
hash table (linear probing, power-of-two capacity, at most half full) that gives each new id
the next dense slot, in order of first appearance, so a pass over the same data in the same
order gives the same slots. Aggregates live in arrays indexed by slot.
"""
import numpy as np

from .settings import kernel

EMPTY = np.int64(-1)


@kernel
def _mix(x):
    """A 64-bit finaliser (splitmix64) so nearby ids spread over the table."""
    z = np.uint64(x) + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@kernel
def slots_for_ids(ids, id_bits, id_bit_offset, keys, slot_of, n_slots, out):
    """Dense slot of every id, inserting ids not seen before.

    Parameters
    ----------
    ids : (n,) int64, IN
    id_bits : uint8 validity bitmap of ids, IN; empty when no id is null
    id_bit_offset : int
    keys : (cap,) int64, INOUT: the hash table's keys (cap a power of two, at most half full
        after this call: the caller grows it first)
    slot_of : (cap,) int64, INOUT: the dense slot of each key, -1 for an empty cell
    n_slots : (1,) int64, INOUT: slots handed out so far
    out : (n,) int64, OUT: the slot of each event, -1 where the id is null
    """
    cap = keys.shape[0]
    mask = np.uint64(cap - 1)
    has_bits = id_bits.shape[0] > 0
    for i in range(ids.shape[0]):
        if has_bits:
            k = id_bit_offset + i
            if ((id_bits[k >> 3] >> (k & 7)) & 1) == 0:
                out[i] = -1
                continue
        key = ids[i]
        h = np.int64(_mix(key) & mask)
        while True:
            s = slot_of[h]
            if s == EMPTY:
                slot = n_slots[0]
                n_slots[0] = slot + 1
                keys[h] = key
                slot_of[h] = slot
                out[i] = slot
                break
            if keys[h] == key:
                out[i] = s
                break
            h = (h + 1) & np.int64(cap - 1)


@kernel
def rehash(keys, slot_of, new_keys, new_slot_of):
    """Move every key of a table into a larger, empty one (``new_slot_of`` all -1)."""
    mask = np.uint64(new_keys.shape[0] - 1)
    for h in range(keys.shape[0]):
        s = slot_of[h]
        if s != EMPTY:
            key = keys[h]
            g = np.int64(_mix(key) & mask)
            while new_slot_of[g] != EMPTY:
                g = (g + 1) & np.int64(new_keys.shape[0] - 1)
            new_keys[g] = key
            new_slot_of[g] = s


@kernel
def accumulate(slots, ts, ts_bits, ts_bit_offset, amount, amount_bits, amount_bit_offset,
               types, type_bits, type_bit_offset, qual_table, win_any, win_table,
               as_of, win_lo, win_hi, win_sum,
               count, amount_sum, amount_n, first_any, last_any, last_q, win, report):
    """Add one batch of events to the per-slot aggregates.

    Parameters
    ----------
    slots : (n,) int64, IN: slot of each event (-1: null id)
    ts : (n,) int64, IN: event time in microseconds
    ts_bits, ts_bit_offset : validity of ts (empty bitmap: no nulls)
    amount : (n,) float64, IN (empty when there is no amount column)
    amount_bits, amount_bit_offset : validity of amount
    types : (n,) int32, IN: event type codes (empty when there is no type column)
    type_bits, type_bit_offset : validity of types
    qual_table : (d,) uint8, IN: 1 for type codes that count for recency/frequency/monetary;
        empty: every event counts
    win_any : (w,) uint8, IN: 1 where window j counts events of any type
    win_table : (w, d) uint8, IN: 1 where window j counts events of type code c
    as_of : int, microseconds; later events are ignored
    win_lo, win_hi : (w,) int64, IN: window j holds events with ``as_of - win_hi < t <= as_of - win_lo``
    win_sum : (w,) uint8, IN: 1 to sum the amount in window j, 0 to count events
    count, amount_sum, amount_n : (slots,) int64 / float64 / int64, INOUT: qualifying events,
        sum of their non-null amounts, how many amounts were non-null
    first_any, last_any : (slots,) int64, INOUT: first and last event time of any type
    last_q : (slots,) int64, INOUT: last qualifying event time (minimum int64 when none)
    win : (w, slots) float64, INOUT
    report : (3,) int64, INOUT: events with a null id, with a null time, after as_of
    """
    n = slots.shape[0]
    has_ts_bits = ts_bits.shape[0] > 0
    has_amount = amount.shape[0] > 0
    has_amount_bits = amount_bits.shape[0] > 0
    has_types = types.shape[0] > 0
    has_type_bits = type_bits.shape[0] > 0
    all_qualify = qual_table.shape[0] == 0
    n_win = win_lo.shape[0]
    for i in range(n):
        s = slots[i]
        if s < 0:
            report[0] += 1
            continue
        if has_ts_bits:
            k = ts_bit_offset + i
            if ((ts_bits[k >> 3] >> (k & 7)) & 1) == 0:
                report[1] += 1
                continue
        t = ts[i]
        if t > as_of:
            report[2] += 1
            continue
        if t < first_any[s]:
            first_any[s] = t
        if t > last_any[s]:
            last_any[s] = t
        a = 0.0
        a_valid = False
        if has_amount:
            a_valid = True
            if has_amount_bits:
                k = amount_bit_offset + i
                a_valid = ((amount_bits[k >> 3] >> (k & 7)) & 1) == 1
            if a_valid:
                a = amount[i]
        code = -1
        if has_types:
            code = types[i]
            if has_type_bits:
                k = type_bit_offset + i
                if ((type_bits[k >> 3] >> (k & 7)) & 1) == 0:
                    code = -1
        if all_qualify or (code >= 0 and qual_table[code] == 1):
            count[s] += 1
            if t > last_q[s]:
                last_q[s] = t
            if a_valid:
                amount_sum[s] += a
                amount_n[s] += 1
        age = as_of - t
        for j in range(n_win):
            if age >= win_lo[j] and age < win_hi[j] and \
                    (win_any[j] == 1 or (code >= 0 and win_table[j, code] == 1)):
                if win_sum[j]:
                    if a_valid:
                        win[j, s] += a
                else:
                    win[j, s] += 1.0
