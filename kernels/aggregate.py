"""Per-customer aggregation of event logs: radix-partitioned hash aggregation.

Events arrive unsorted, batch by batch. A batch is first scattered into ``N_PART`` partitions
by the top bits of a hash of the customer id (:func:`partition_count`, then
:func:`partition_scatter`); each partition then owns a small open-addressing hash table
(linear probing, power-of-two capacity, at most half full) and small per-customer state
arrays that stay in the core's cache while its events are summed (:func:`aggregate_parts`).
A customer's events keep their order inside a partition, and partitions are disjoint, so
splitting the batch or the partitions over threads gives bit-identical sums.

State layout (``p`` partition, ``s`` local slot in order of first appearance):

- ``table[p, cell] = (key, slot)``, slot -1 for an empty cell;
- ``slot_key[p, s]``: the customer id (or dictionary code) of slot ``s``;
- ``istate[p, s, :]`` int64: ``I_COUNT`` qualifying events, ``I_AMOUNT_N`` their non-null
  amounts, ``I_FIRST``/``I_LAST`` first and last event of any type, ``I_FIRST_Q``/``I_LAST_Q``
  first and last qualifying event;
- ``fstate[p, s, :]`` float64: ``F_AMOUNT`` sum of qualifying amounts, then one column per
  window.
"""
import numpy as np

from .settings import kernel

P_BITS = 8
N_PART = 1 << P_BITS
EMPTY = np.int64(-1)
I_COUNT, I_AMOUNT_N, I_FIRST, I_LAST, I_FIRST_Q, I_LAST_Q = range(6)
N_ISTATE = 6
F_AMOUNT = 0
B_ID, B_TS, B_AMOUNT, B_FLAGS = range(4)
QUALIFY_BIT = 63  # in a type code's window bits: the code qualifies (windows use bits 0..62)
INT64_MIN = np.iinfo(np.int64).min
INT64_MAX = np.iinfo(np.int64).max


@kernel
def _mix(x):
    """A 64-bit finaliser (splitmix64) so nearby ids spread over partitions and cells."""
    z = np.uint64(x) + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@kernel
def _valid(bits, offset, i):
    k = offset + i
    return ((bits[k >> 3] >> (k & 7)) & 1) == 1


@kernel
def partition_count(ids, id_bits, id_bit_offset, ts, ts_bits, ts_bit_offset, as_of, lo, hi,
                    part, counts, report):
    """Partition of each event of rows ``lo..hi``, or -1 for an event left out.

    Parameters
    ----------
    ids : (n,) int64, IN: customer ids (or dictionary codes of string ids)
    id_bits, id_bit_offset : validity bitmap of ids (uint8, empty: no nulls) and its bit offset
    ts : (n,) int64, IN: event time in microseconds
    ts_bits, ts_bit_offset : validity of ts
    as_of : int, microseconds; later events are left out
    lo, hi : int, the rows to look at
    part : (n,) int16, OUT for rows lo..hi: the partition, -1 when left out
    counts : (N_PART,) int64, INOUT: events per partition
    report : (3,) int64, INOUT: events with a null id, with a null time, after as_of
    """
    has_id_bits = id_bits.shape[0] > 0
    has_ts_bits = ts_bits.shape[0] > 0
    shift = np.uint64(64 - P_BITS)
    for i in range(lo, hi):
        if has_id_bits and not _valid(id_bits, id_bit_offset, i):
            part[i] = -1
            report[0] += 1
            continue
        if has_ts_bits and not _valid(ts_bits, ts_bit_offset, i):
            part[i] = -1
            report[1] += 1
            continue
        if ts[i] > as_of:
            part[i] = -1
            report[2] += 1
            continue
        p = np.int64(_mix(ids[i]) >> shift)
        part[i] = p
        counts[p] += 1


@kernel
def partition_scatter(ids, ts, amount, amount_bits, amount_bit_offset, types, type_bits,
                      type_bit_offset, lo, hi, part, pos, buf, buf_f):
    """Copy the kept events of rows ``lo..hi`` to their partition's place in the buffers.

    Parameters
    ----------
    ids, ts : (n,) int64, IN
    amount : (n,) float64, IN; empty when there is no amount column
    amount_bits, amount_bit_offset : validity of amount
    types : (n,) int32, IN: event type codes; empty when there is no type column
    type_bits, type_bit_offset : validity of types
    lo, hi : int
    part : (n,) int16, IN: from :func:`partition_count`
    pos : (N_PART,) int64, INOUT: next free position of each partition in the buffer
    buf : (m, 4) int64, OUT: per event ``B_ID`` the id, ``B_TS`` the time, ``B_FLAGS``
        ``(type code + 1) << 1 | amount is valid`` (type code -1 for a null type or no type
        column); one row per event so each partition is one stream of writes
    buf_f : (m, 4) float64, OUT: the same memory as ``buf``; ``B_AMOUNT`` holds the amount
        (0 where it is null)
    """
    has_amount = amount.shape[0] > 0
    has_amount_bits = amount_bits.shape[0] > 0
    has_types = types.shape[0] > 0
    has_type_bits = type_bits.shape[0] > 0
    for i in range(lo, hi):
        p = part[i]
        if p < 0:
            continue
        j = pos[p]
        pos[p] = j + 1
        buf[j, B_ID] = ids[i]
        buf[j, B_TS] = ts[i]
        a_valid = 0
        a = 0.0
        if has_amount and (not has_amount_bits or _valid(amount_bits, amount_bit_offset, i)):
            a_valid = 1
            a = amount[i]
        buf_f[j, B_AMOUNT] = a
        code = -1
        if has_types and (not has_type_bits or _valid(type_bits, type_bit_offset, i)):
            code = types[i]
        buf[j, B_FLAGS] = ((code + 1) << 1) | a_valid


@kernel
def aggregate_parts(p_lo, p_hi, starts, progress, buf, buf_f, buf_slot, table, n_slots, slot_key, istate, fstate, code_bits, as_of,
                    win_lo, win_hi, win_sum):
    """Add the buffered events of partitions ``p_lo..p_hi`` to their customers' state.

    Stops early, returning True, when a partition needs more slots than ``istate`` holds:
    the caller grows the state (:func:`grow_tables`) and calls again; ``progress`` says
    where each partition resumes.

    Parameters
    ----------
    p_lo, p_hi : int, the partitions to process
    starts : (N_PART + 1,) int64, IN: partition p's events are ``starts[p]..starts[p + 1]``
    progress : (N_PART,) int64, INOUT: next event to process in each partition
    buf, buf_f : (m, 4) int64 and float64 views of the partitioned events (see
        :func:`partition_scatter`), IN
    buf_slot : (m,) int32, OUT: local slot of each processed event
    table : (N_PART, tcap, 2) int64, INOUT: hash tables, ``tcap >= 2 * cap``
    n_slots : (N_PART,) int64, INOUT: slots used in each partition
    slot_key : (N_PART, cap) int64, INOUT
    istate : (N_PART, cap, N_ISTATE) int64, INOUT
    fstate : (N_PART, cap, 1 + w) float64, INOUT
    code_bits : (d + 1,) uint64, IN: for type code ``c`` (entry ``c + 1``; entry 0 for a null
        type or no type column): bit ``j`` set when window j counts it, bit ``QUALIFY_BIT``
        set when it counts for recency, frequency and monetary value
    as_of : int, microseconds
    win_lo, win_hi : (w,) int64, IN: window j holds events aged ``[win_lo[j], win_hi[j])``
    win_sum : (w,) uint8, IN: 1 to sum amounts in window j, 0 to count events

    Returns
    -------
    bool : True when stopped for want of slots
    """
    cap = istate.shape[1]
    tmask = np.int64(table.shape[1] - 1)
    n_win = win_lo.shape[0]
    n_f = fstate.shape[2]
    qbit = np.uint64(1) << np.uint64(QUALIFY_BIT)
    for p in range(p_lo, p_hi):
        end = starts[p + 1]
        tab = table[p]
        ist = istate[p]
        fst = fstate[p]
        # Two tight loops per partition (slots first, then sums) run faster than one that
        # does both: each keeps fewer loads in flight.
        for i in range(progress[p], end):
            key = buf[i, B_ID]
            h = np.int64(_mix(key)) & tmask
            while True:
                s = tab[h, 1]
                if s == EMPTY:
                    s = n_slots[p]
                    if s == cap:
                        _sums(progress[p], i, buf, buf_f, buf_slot, ist, fst,
                              code_bits, qbit, as_of, win_lo, win_hi, win_sum, n_win)
                        progress[p] = i
                        return True
                    n_slots[p] = s + 1
                    tab[h, 0] = key
                    tab[h, 1] = s
                    slot_key[p, s] = key
                    ist[s, I_COUNT] = 0
                    ist[s, I_AMOUNT_N] = 0
                    ist[s, I_FIRST] = INT64_MAX
                    ist[s, I_LAST] = INT64_MIN
                    ist[s, I_FIRST_Q] = INT64_MAX
                    ist[s, I_LAST_Q] = INT64_MIN
                    for j in range(n_f):
                        fst[s, j] = 0.0
                    break
                if tab[h, 0] == key:
                    break
                h = (h + 1) & tmask
            buf_slot[i] = s
        _sums(progress[p], end, buf, buf_f, buf_slot, ist, fst, code_bits, qbit,
              as_of, win_lo, win_hi, win_sum, n_win)
        progress[p] = end
    return False


@kernel
def _sums(lo, hi, buf, buf_f, buf_slot, ist, fst, code_bits, qbit, as_of,
          win_lo, win_hi, win_sum, n_win):
    """Add events ``lo..hi`` (slots known) to one partition's state."""
    for i in range(lo, hi):
        s = buf_slot[i]
        t = buf[i, B_TS]
        flags = buf[i, B_FLAGS]
        bits = code_bits[flags >> 1]
        a_valid = (flags & 1) == 1
        a = buf_f[i, B_AMOUNT]
        if t < ist[s, I_FIRST]:
            ist[s, I_FIRST] = t
        if t > ist[s, I_LAST]:
            ist[s, I_LAST] = t
        if bits & qbit:
            ist[s, I_COUNT] += 1
            if t < ist[s, I_FIRST_Q]:
                ist[s, I_FIRST_Q] = t
            if t > ist[s, I_LAST_Q]:
                ist[s, I_LAST_Q] = t
            if a_valid:
                fst[s, F_AMOUNT] += a
                ist[s, I_AMOUNT_N] += 1
        age = as_of - t
        for j in range(n_win):
            if age >= win_lo[j] and age < win_hi[j] and ((bits >> np.uint64(j)) & np.uint64(1)) == 1:
                fst[s, 1 + j] += a if win_sum[j] else 1.0


@kernel
def grow_tables(table, n_slots, new_table):
    """Move every partition's hash table into a larger, empty one (slots all -1).

    Parameters
    ----------
    table : (N_PART, tcap, 2) int64, IN
    n_slots : (N_PART,) int64, IN
    new_table : (N_PART, new_tcap, 2) int64, INOUT: new_tcap a power of two, slots -1
    """
    mask = np.int64(new_table.shape[1] - 1)
    for p in range(table.shape[0]):
        if n_slots[p] == 0:
            continue
        for h in range(table.shape[1]):
            if table[p, h, 1] != EMPTY:
                key = table[p, h, 0]
                g = np.int64(_mix(key)) & mask
                while new_table[p, g, 1] != EMPTY:
                    g = (g + 1) & mask
                new_table[p, g, 0] = key
                new_table[p, g, 1] = table[p, h, 1]


@kernel
def period_pairs(p_lo, p_hi, starts, progress, buf, buf_f, buf_slot,
                 code_bits, period_us, period_shift_us, pairs, n_pairs, n_periods,
                 first_period, first_amount):
    """Distinct purchase periods per customer, for the BTYD summary.

    A period is ``floor((t + period_shift_us) / period_us)``. Each partition owns a hash set
    of ``(slot, period)`` pairs; a pair seen for the first time adds one to the customer's
    distinct periods. The amount spent in the customer's earliest period is tracked so the
    mean value of the repeat periods is ``(total - first) / (periods - 1)``. Stops early,
    returning True, when a set would become more than half full: the caller grows the sets
    (:func:`grow_pairs`) and calls again.

    Parameters
    ----------
    p_lo, p_hi : int, the partitions to process
    starts : (N_PART + 1,) int64, IN
    progress : (N_PART,) int64, INOUT: next event to process in each partition
    buf, buf_f, buf_slot : the partitioned events and their local slots, IN
    code_bits : (d + 1,) uint64, IN: as in :func:`aggregate_parts`
    period_us, period_shift_us : int
    pairs : (N_PART, pcap) int64, INOUT: ``slot << 32 | (period + 2**31)``, -1 for empty
    n_pairs : (N_PART,) int64, INOUT
    n_periods : (N_PART, cap) int64, INOUT: distinct periods of each customer
    first_period : (N_PART, cap) int64, INOUT: earliest period (maximum int64 when none)
    first_amount : (N_PART, cap) float64, INOUT: amounts in the earliest period

    Returns
    -------
    bool : True when stopped for want of room
    """
    pcap = pairs.shape[1]
    mask = np.int64(pcap - 1)
    qbit = np.uint64(1) << np.uint64(QUALIFY_BIT)
    for p in range(p_lo, p_hi):
        end = starts[p + 1]
        i = progress[p]
        while i < end:
            flags = buf[i, B_FLAGS]
            if code_bits[flags >> 1] & qbit:
                s = buf_slot[i]
                period = (buf[i, B_TS] + period_shift_us) // period_us
                key = (s << 32) | ((period + 2147483648) & 0xFFFFFFFF)
                h = np.int64(_mix(key)) & mask
                while True:
                    k = pairs[p, h]
                    if k == EMPTY:
                        if 2 * (n_pairs[p] + 1) > pcap:
                            progress[p] = i
                            return True
                        pairs[p, h] = key
                        n_pairs[p] += 1
                        n_periods[p, s] += 1
                        break
                    if k == key:
                        break
                    h = (h + 1) & mask
                a = buf_f[i, B_AMOUNT]
                if period < first_period[p, s]:
                    first_period[p, s] = period
                    first_amount[p, s] = a
                elif period == first_period[p, s]:
                    first_amount[p, s] += a
            i += 1
        progress[p] = i
    return False


@kernel
def grow_pairs(pairs, new_pairs):
    """Move every partition's pair set into a larger, empty one (all -1)."""
    mask = np.int64(new_pairs.shape[1] - 1)
    for p in range(pairs.shape[0]):
        for h in range(pairs.shape[1]):
            key = pairs[p, h]
            if key != EMPTY:
                g = np.int64(_mix(key)) & mask
                while new_pairs[p, g] != EMPTY:
                    g = (g + 1) & mask
                new_pairs[p, g] = key
