"""Per-customer aggregation of event logs: radix-partitioned hash aggregation.

Events arrive unsorted, batch by batch. A batch is first scattered into ``N_PART`` partitions
by the top bits of a hash of the customer id (:func:`partition_count`, then
:func:`partition_scatter`); each partition then owns a small open-addressing hash table
(linear probing, power-of-two capacity, at most half full) and small per-customer state
arrays that stay in the core's cache while its events are summed (:func:`assign_slots`,
:func:`sum_events`).
A customer's events keep their order inside a partition, and partitions are disjoint, so
splitting the batch or the partitions over threads gives bit-identical sums.

State layout (``p`` partition, ``s`` local slot in order of first appearance):

- ``table[p, cell] = (key, slot)``, slot -1 for an empty cell;
- ``slot_key[p, s]``: the customer id (or dictionary code) of slot ``s``;
- ``istate[p, s, :]`` int64: ``I_COUNT`` qualifying events, ``I_AMOUNT_N`` their non-null
  amounts, ``I_FIRST``/``I_LAST`` first and last event of any type, ``I_FIRST_Q``/``I_LAST_Q``
  first and last qualifying event;
- ``istate[p, s, I_SEG]``: the global segment (see below) the slot's partials belong to, -1
  for none;
- ``fstate[p, s, :]`` float64: ``F_AMOUNT`` sum of qualifying amounts, then one column per
  window (``f = 1 + w`` columns in all), then the partials of segment ``I_SEG`` of the float
  sums: ``f + 0`` for ``F_AMOUNT``, then one per sum window, in window order (count windows
  need none: counts add exactly in any order).

Segments: event ``r`` of the input (its global row, whatever the batches) lies in segment
``r >> SEG_BITS``. Every float sum is accumulated per segment from 0.0 in row order, and a
customer's segment partials are added to its totals in segment order (``total = ((0.0 + s0) +
s1) + ...``), lazily: when the customer's first event of a later segment arrives
(:func:`sum_events`), or at the end (:func:`fold_pending`). A distributed run, whose chunks
are whole segments, reproduces these sums bit for bit (``segmint.dask.events``).
"""
import numpy as np

from .settings import EXACT, kernel
from .structure import is_valid as _valid  # shared: one compile
from .hashing import mix64 as _mix

P_BITS = 8
N_PART = 1 << P_BITS
EMPTY = np.int64(-1)
I_COUNT, I_AMOUNT_N, I_FIRST, I_LAST, I_FIRST_Q, I_LAST_Q, I_SEG = range(7)
N_ISTATE = 7
SEG_BITS = 16
SEGMENT_ROWS = 1 << SEG_BITS  # rows per segment of the input, the unit of float sums
F_AMOUNT = 0
B_TS, B_AMOUNT, B_FLAGS, B_ID = range(4)  # buffer columns; B_ID in hash mode only
QUALIFY_BIT = 63  # in an event's bits: it qualifies (windows use bits 0..61)
AMOUNT_BIT = 62   # in an event's bits: its amount is not null
MAX_WINDOWS = 62
INT64_MIN = np.iinfo(np.int64).min
INT64_MAX = np.iinfo(np.int64).max
US_PER_DAY = 86_400_000_000  # as segmint._time's (kernels import nothing from segmint)


@kernel
def id_range(ids, id_bits, id_bit_offset, out):
    """Smallest and largest non-null id and how many are non-null: ``out = (min, max, n)``.

    Parameters
    ----------
    ids : (n,) int64, IN
    id_bits, id_bit_offset : validity bitmap of ids (empty: no nulls)
    out : (3,) int64, OUT (min and max are 0 when every id is null)
    """
    has_bits = id_bits.shape[0] > 0
    lo = INT64_MAX
    hi = INT64_MIN
    n = 0
    for i in range(ids.shape[0]):
        if has_bits and not _valid(id_bits, id_bit_offset, i):
            continue
        v = ids[i]
        lo = min(lo, v)
        hi = max(hi, v)
        n += 1
    out[0] = lo if n else 0
    out[1] = hi if n else 0
    out[2] = n


@kernel
def dense_to_hash(keys, rows, base, istate, fstate, table, n_slots, new_istate, new_fstate):
    """Move dense-mode state into hash mode (ids turned out too sparse for dense slots).

    Parameters
    ----------
    keys : (n,) int64, IN: ``id - base`` of every customer seen, increasing
    rows : (n,) int64, IN: their flat rows in ``istate``/``fstate`` (dense layout)
    base : int
    istate, fstate : (N_PART * cap, ...) flattened dense-mode state, IN
    table : (N_PART, tcap, 2) int64, INOUT: empty hash tables (slots -1), big enough
    n_slots : (N_PART,) int64, INOUT: zeros on entry
    new_istate, new_fstate : (N_PART, new_cap, ...), OUT
    """
    tmask = np.int64(table.shape[1] - 1)
    shift = np.uint64(64 - P_BITS)
    for r in range(keys.shape[0]):
        key = keys[r] + base
        z = _mix(np.uint64(key))
        p = np.int64(z >> shift)
        h = np.int64(z) & tmask
        while table[p, h, 1] != EMPTY:
            h = (h + 1) & tmask
        s = n_slots[p]
        n_slots[p] = s + 1
        table[p, h, 0] = key
        table[p, h, 1] = s
        for k in range(istate.shape[1]):
            new_istate[p, s, k] = istate[rows[r], k]
        for k in range(fstate.shape[1]):
            new_fstate[p, s, k] = fstate[rows[r], k]


@kernel
def partition_count(ids, id_bits, id_bit_offset, ts, ts_bits, ts_bit_offset, ts_mul, ts_div,
                    ts_lo, ts_hi, as_of, lo, hi, dense, base, block_shift, part, counts, report, bad_row):
    """Partition of each event of rows ``lo..hi``, or -1 for an event left out.

    Hash mode: the top bits of a hash of the id. Dense mode (ids ``base, base + 1, ...`` with
    few gaps, e.g. dictionary codes or database keys): the low bits of ``id - base``, so a
    customer's slot in its partition is ``(id - base) >> P_BITS``, with no hash table.

    Parameters
    ----------
    ids : (n,) int64, IN: customer ids (or dictionary codes of string ids)
    id_bits, id_bit_offset : validity bitmap of ids (uint8, empty: no nulls) and its bit offset
    ts : (n,) int64, IN: event time in its column's unit
    ts_bits, ts_bit_offset : validity of ts
    ts_mul, ts_div : int, microseconds are ``ts * ts_mul // ts_div``
    ts_lo, ts_hi : int, the valid times in the column's unit: outside them the conversion to
        microseconds (or later arithmetic on ages) could overflow int64 silently
    as_of : int, microseconds; later events are left out
    lo, hi : int, the rows to look at
    dense : bool, base : int, the mode (see above)
    block_shift : int, dense mode: ids ``base + k`` go to block ``p + N_PART * (k >> block_shift)``
        of partition ``p`` (a block holds ``2 ** (block_shift - P_BITS)`` slots, so the state
        :func:`sum_events` works on at a time stays in the core's cache); 63: one block
    part : (n,) int16, OUT for rows lo..hi: the partition (block), -1 when left out
    counts : (N_PART * blocks,) int64, INOUT: events per partition (block)
    report : (3,) int64, INOUT: events with a null id, with a null time, after as_of
    bad_row : (1,) int64, INOUT: -1, or the first row whose non-null time is outside
        ``ts_lo..ts_hi`` (such an event is left out and not counted; the caller refuses the data)
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
        if ts[i] < ts_lo or ts[i] > ts_hi:
            part[i] = -1
            if bad_row[0] < 0:
                bad_row[0] = i
            continue
        # (no 64-bit division per event unless needed: it cost more than the rest of this loop)
        t = ts[i] * ts_mul if ts_div == 1 else ts[i] * ts_mul // ts_div
        if t > as_of:
            part[i] = -1
            report[2] += 1
            continue
        if dense:
            k = ids[i] - base
            p = (k & (N_PART - 1)) | ((k >> block_shift) << P_BITS)
        else:
            p = np.int64(_mix(np.uint64(ids[i])) >> shift)
        part[i] = p
        counts[p] += 1


@kernel
def partition_scatter(ids, ts, ts_mul, ts_div, amount, amount_bits, amount_bit_offset, types,
                      type_bits, type_bit_offset, code_bits, as_of, win_lo, win_hi, lo, hi, part, pos, buf,
                      buf_f, dense, base, buf_slot):
    """Copy the kept events of rows ``lo..hi`` to their partition's place in the buffers.

    Parameters
    ----------
    ids : (n,) int64, IN
    ts : (n,) int64, IN: event time; microseconds are ``ts * ts_mul // ts_div``
    ts_mul, ts_div : int
    amount : (n,) float64, IN; empty when there is no amount column
    amount_bits, amount_bit_offset : validity of amount
    types : (n,) int32, IN: event type codes; empty when there is no type column
    type_bits, type_bit_offset : validity of types
    code_bits : (d + 1,) uint64, IN: for type code ``c`` (entry ``c + 1``; entry 0 for a null
        type or no type column): bit ``j`` set when window j counts that type, bit
        ``QUALIFY_BIT`` when it counts for recency, frequency and monetary value
    as_of : int, microseconds
    win_lo, win_hi : (w,) int64, IN: window j holds events aged ``[win_lo[j], win_hi[j])``
    lo, hi : int
    part : (n,) int16, IN: from :func:`partition_count`
    pos : (N_PART,) int64, INOUT: next free position of each partition in the buffer
    buf : (m, 3 or 4) int64, OUT: per event ``B_TS`` the time, ``B_ID`` the id (hash mode:
        4 columns; dense mode needs no id, 3 columns, less memory traffic), ``B_FLAGS`` the
        event's bits: bit j when window j counts it, ``QUALIFY_BIT`` when it qualifies,
        ``AMOUNT_BIT`` when its amount is not null (worked out here, where the loop waits on
        memory anyway); one row per event so each partition is one stream of writes
    buf_f : float64 view of the same memory as ``buf``; ``B_AMOUNT`` holds the amount
        (0 where it is null)
    dense : bool, base : int
        Dense mode (see :func:`partition_count`): the local slot is known from the id
    buf_slot : (m,) int32, OUT in dense mode: the local slot of each event
    """
    has_amount = amount.shape[0] > 0
    has_amount_bits = amount_bits.shape[0] > 0
    has_types = types.shape[0] > 0
    has_type_bits = type_bits.shape[0] > 0
    qbit = np.uint64(1) << np.uint64(QUALIFY_BIT)
    abit = np.uint64(1) << np.uint64(AMOUNT_BIT)
    for i in range(lo, hi):
        p = part[i]
        if p < 0:
            continue
        j = pos[p]
        pos[p] = j + 1
        t = ts[i] * ts_mul if ts_div == 1 else ts[i] * ts_mul // ts_div  # see partition_count
        buf[j, B_TS] = t
        if dense:
            buf_slot[j] = (ids[i] - base) >> P_BITS
        else:
            buf[j, B_ID] = ids[i]
        a_valid = 0
        a = 0.0
        if has_amount and (not has_amount_bits or _valid(amount_bits, amount_bit_offset, i)):
            a_valid = 1
            a = amount[i]
        buf_f[j, B_AMOUNT] = a
        code = -1
        if has_types and (not has_type_bits or _valid(type_bits, type_bit_offset, i)):
            code = types[i]
        bits = code_bits[code + 1]
        age = as_of - t
        in_windows = np.uint64(0)
        for w in range(win_lo.shape[0]):
            if age >= win_lo[w] and age < win_hi[w]:
                in_windows |= np.uint64(1) << np.uint64(w)
        bits = (bits & (in_windows | qbit)) | (abit if a_valid else np.uint64(0))
        buf[j, B_FLAGS] = np.int64(bits)


@kernel
def assign_slots(p_lo, p_hi, starts, progress, buf, buf_slot, table, n_slots):
    """Local slot of every buffered event of partitions ``p_lo..p_hi``, inserting new ids.

    Stops early, returning True, when a partition's hash table would become more than half
    full: the caller grows the tables (:func:`grow_tables`) and calls again; ``progress``
    says where each partition resumes.

    Parameters
    ----------
    p_lo, p_hi : int, the partitions to process
    starts : (N_PART + 1,) int64, IN: partition p's events are ``starts[p]..starts[p + 1]``
    progress : (N_PART,) int64, INOUT: next event to process in each partition
    buf : (m, 4) int64, IN: the partitioned events of hash mode (see :func:`partition_scatter`)
    buf_slot : (m,) int32, OUT: local slot of each event
    table : (N_PART, tcap, 2) int64, INOUT: per partition ``(key, slot)`` cells, slot -1 empty
    n_slots : (N_PART,) int64, INOUT: slots used in each partition

    Returns
    -------
    bool : True when stopped for want of room
    """
    tcap = table.shape[1]
    tmask = np.int64(tcap - 1)
    for p in range(p_lo, p_hi):
        tab = table[p]
        for i in range(progress[p], starts[p + 1]):
            key = buf[i, B_ID]
            h = np.int64(_mix(np.uint64(key))) & tmask
            while True:
                s = tab[h, 1]
                if s == EMPTY:
                    s = n_slots[p]
                    if 2 * (s + 1) > tcap:
                        progress[p] = i
                        return True
                    n_slots[p] = s + 1
                    tab[h, 0] = key
                    tab[h, 1] = s
                    break
                if tab[h, 0] == key:
                    break
                h = (h + 1) & tmask
            buf_slot[i] = s
        progress[p] = starts[p + 1]
    return False


@kernel
def sum_events(p_lo, p_hi, seg_lo, g0, buf, buf_f, buf_slot, istate, fstate, win_sum, win_col, sum_cols):
    """Add the buffered events of partitions ``p_lo..p_hi`` to their customers' state.

    Parameters
    ----------
    p_lo, p_hi : int, the partitions (or dense mode's blocks: see :func:`partition_count`;
        block ``p`` belongs to partition ``p % N_PART``) to process
    seg_lo : (k + 1, N_PART * blocks) int64, IN: the events of the batch's ``j``-th segment
        (global segment ``g0 + j``) in partition p are ``seg_lo[j, p]..seg_lo[j + 1, p]``
    g0 : int, the global segment of the batch's first row
    buf, buf_f : (m, 3 or 4) int64 and float64 views of the partitioned events, IN
    buf_slot : (m,) int32, IN: from :func:`assign_slots` (or the dense ids)
    istate : (N_PART, cap, N_ISTATE) int64, INOUT
    fstate : (N_PART, cap, f + 1 + sums) float64, INOUT: totals, then the pending segment
        partials of the float sums (see the module notes)
    win_sum : (w,) uint8, IN: 1 to sum amounts in window j, 0 to count events
    win_col, sum_cols : int64, IN: from :func:`sum_columns` of ``win_sum``
    """
    # the fold's bit masks, read from memory so the compiler cannot turn them back into a
    # branch (see _sums)
    masks = np.array([0, -1], dtype=np.int64)
    for p in range(p_lo, p_hi):
        q = p & (N_PART - 1)  # a block's partition (see partition_count)
        for j in range(seg_lo.shape[0] - 1):
            _sums(seg_lo[j, p], seg_lo[j + 1, p], g0 + j, buf, buf_f, buf_slot, istate[q], fstate[q],
                  win_sum, win_col, sum_cols, masks)


def sum_columns(win_sum):
    """``(win_col, sum_cols)`` (int64 arrays): the fstate column each window's events add to
    (count windows: their total; sum windows: their partial), and the total column of each
    partial, for :func:`sum_events` and :func:`fold_pending`.

    Plain Python, computed once per scan by the caller: as a kernel it was one more compile
    (with its own array allocations) for a few integers.
    """
    n_win = len(win_sum)
    nf = 1 + n_win
    win_col = np.empty(n_win, dtype=np.int64)
    sum_cols = [F_AMOUNT]
    for j in range(n_win):
        if win_sum[j]:
            win_col[j] = nf + len(sum_cols)
            sum_cols.append(1 + j)
        else:
            win_col[j] = 1 + j
    return win_col, np.asarray(sum_cols, dtype=np.int64)


@kernel
def fold_pending(istate, fstate, sum_cols):
    """Add every customer's pending segment partials to its totals (the end of the input).

    Parameters
    ----------
    istate : (m, N_ISTATE) int64, INOUT: partitions flattened
    fstate : (m, f + 1 + sums) float64, INOUT
    sum_cols : int64, IN: from :func:`sum_columns`
    """
    nf = fstate.shape[1] - sum_cols.shape[0]
    for s in range(istate.shape[0]):
        if istate[s, I_SEG] >= 0:  # the slot's partials added to their totals, in order, and cleared
            for k in range(sum_cols.shape[0]):
                fstate[s, sum_cols[k]] += fstate[s, nf + k]
                fstate[s, nf + k] = 0.0
            istate[s, I_SEG] = -1


@kernel
def slot_keys(table, out):
    """The id of every slot: ``out[p, slot] = key`` for each used cell of each table.

    Parameters
    ----------
    table : (N_PART, tcap, 2) int64, IN
    out : (N_PART, cap) int64, OUT for the slots in use
    """
    for p in range(table.shape[0]):
        for h in range(table.shape[1]):
            s = table[p, h, 1]
            if s != EMPTY:
                out[p, s] = table[p, h, 0]


@kernel
def _sums(lo, hi, seg, buf, buf_f, buf_slot, ist, fst, win_sum, win_col, sum_cols, masks):
    """Add events ``lo..hi`` (slots known, all in global segment ``seg``) to one partition's
    state: float sums go to the segment partials, an older segment's partials are folded first."""
    abit = np.uint64(1) << np.uint64(AMOUNT_BIT)
    n_win = win_sum.shape[0]
    nf = 1 + n_win  # the partials' columns follow the totals'
    n_sums = sum_cols.shape[0]
    for i in range(lo, hi):
        s = buf_slot[i]
        # The customer's first event of this segment folds its older partials in (a fresh
        # slot's are 0.0 into 0.0: no change). Customers with few events change segments at
        # random, so a branch on it is mispredicted often: it made this kernel 50% slower
        # (2M events, 100k customers); this form, 12%. The fold is done on every event with
        # bit masks (read from ``masks``: the compiler turns a computed mask back into a
        # branch): the partial, or +0.0, is added to the total (+0.0 changes no bit: a total
        # is never -0.0, as it starts at +0.0), and the partial is kept or becomes +0.0.
        new = ist[s, I_SEG] != seg
        ist[s, I_SEG] = seg
        mask = masks[np.int64(new)]  # all bits set when the segment changed, else none
        q = np.float64(fst[s, nf + F_AMOUNT]).view(np.int64)
        fst[s, F_AMOUNT] += np.int64(q & mask).view(np.float64)  # q or +0.0
        part = np.int64(q & ~mask).view(np.float64)               # +0.0 or q
        for k in range(1, n_sums):
            q = np.float64(fst[s, nf + k]).view(np.int64)
            fst[s, sum_cols[k]] += np.int64(q & mask).view(np.float64)
            fst[s, nf + k] = np.int64(q & ~mask).view(np.float64)
        t = buf[i, B_TS]
        bits = np.uint64(buf[i, B_FLAGS])
        a_valid = (bits & abit) != 0
        a = buf_f[i, B_AMOUNT]
        # Without branches: whether an event is the customer's earliest or latest so far, or
        # qualifies, is as good as random in unsorted logs (mispredicted branches). The partial
        # is never -0.0 (as the totals above), so adding +0.0 changes no bit. (Windows keep
        # their branch: rarely taken, and without it 30% slower.)
        ist[s, I_FIRST] = min(ist[s, I_FIRST], t)
        ist[s, I_LAST] = max(ist[s, I_LAST], t)
        qualify = np.int64((bits >> np.uint64(QUALIFY_BIT)) & np.uint64(1))
        ist[s, I_COUNT] += qualify
        ist[s, I_FIRST_Q] = min(ist[s, I_FIRST_Q], t if qualify else INT64_MAX)
        ist[s, I_LAST_Q] = max(ist[s, I_LAST_Q], t if qualify else INT64_MIN)
        counted = qualify & np.int64(a_valid)
        ist[s, I_AMOUNT_N] += counted
        part += a if counted else 0.0
        fst[s, nf + F_AMOUNT] = part
        for j in range(n_win):
            if (bits >> np.uint64(j)) & np.uint64(1):
                fst[s, win_col[j]] += a if win_sum[j] else 1.0


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
                g = np.int64(_mix(np.uint64(key))) & mask
                while new_table[p, g, 1] != EMPTY:
                    g = (g + 1) & mask
                new_table[p, g, 0] = key
                new_table[p, g, 1] = table[p, h, 1]


@kernel
def period_pairs(p_lo, p_hi, seg_lo, g0, progress, buf, buf_f, buf_slot,
                 period_us, period_shift_us, pairs, n_pairs, n_periods,
                 first_period, first_amount, pseg, seg_period, seg_amount):
    """Distinct purchase periods per customer, for the BTYD summary.

    A period is ``floor((t + period_shift_us) / period_us)``. Each partition owns a hash set
    of ``(slot, period)`` pairs; a pair seen for the first time adds one to the customer's
    distinct periods. The amount spent in the customer's earliest period is tracked so the
    mean value of the repeat periods is ``(total - first) / (periods - 1)``: per segment (the
    segment's earliest period and its amounts there, added in row order), folded in segment
    order like the other sums (see the module notes and :func:`fold_periods`). Stops early,
    returning True, when a set would become more than half full: the caller grows the sets
    (:func:`grow_pairs`) and calls again.

    Parameters
    ----------
    p_lo, p_hi : int, the partitions to process
    seg_lo : (k + 1, N_PART) int64, IN: as in :func:`sum_events` (its last row: the partitions' ends)
    g0 : int, the global segment of the batch's first row
    progress : (N_PART,) int64, INOUT: next event to process in each partition
    buf, buf_f, buf_slot : the partitioned events and their local slots, IN
    period_us, period_shift_us : int
    pairs : (N_PART, pcap) int64, INOUT: ``slot << 32 | (period + 2**31)``, -1 for empty
    n_pairs : (N_PART,) int64, INOUT
    n_periods : (N_PART, cap) int64, INOUT: distinct periods of each customer
    first_period : (N_PART, cap) int64, INOUT: earliest period (maximum int64 when none)
    first_amount : (N_PART, cap) float64, INOUT: amounts in the earliest period
    pseg : (N_PART, cap) int64, INOUT: the segment of the pending partials, -1 for none
    seg_period, seg_amount : (N_PART, cap), INOUT: the pending segment's earliest period
        (maximum int64 when none) and its amounts there

    Returns
    -------
    bool : True when stopped for want of room
    """
    pcap = pairs.shape[1]
    mask = np.int64(pcap - 1)
    qbit = np.uint64(1) << np.uint64(QUALIFY_BIT)
    n_seg = seg_lo.shape[0] - 1
    masks = np.array([0, -1], dtype=np.int64)  # read from memory: see _sums
    for p in range(p_lo, p_hi):
        end = seg_lo[n_seg, p]
        i = progress[p]
        j = 0
        while i < end:
            while i >= seg_lo[j + 1, p]:
                j += 1
            if np.uint64(buf[i, B_FLAGS]) & qbit:
                s = np.int64(buf_slot[i])  # int64 as in fold_periods: one compile of _fold_period
                period = (buf[i, B_TS] + period_shift_us) // period_us
                key = (s << 32) | ((period + 2147483648) & 0xFFFFFFFF)
                h = np.int64(_mix(np.uint64(key))) & mask
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
                # the customer's first purchase of this segment folds the older segment in,
                # without a branch (as in _sums: it would be mispredicted often). A fresh
                # slot's (no period, 0.0) folds into (no period, 0.0) as 0.0 + 0.0: no change.
                g = g0 + j
                new = np.int64(pseg[p, s] != g)
                pseg[p, s] = g
                sp, amount = _fold_period(first_period, first_amount, seg_period, seg_amount, p, s,
                                          new, masks)
                if period < sp:
                    sp = period
                    amount = a
                elif period == sp:
                    amount += a
                seg_period[p, s] = sp
                seg_amount[p, s] = amount
            i += 1
        progress[p] = i
    return False


@kernel
def _fold_period(first_period, first_amount, seg_period, seg_amount, p, s, new, masks):
    """When ``new`` (0 or 1) is 1, fold slot ``s``'s pending segment into its earliest period
    and amount; returns the segment's ``(period, amount)`` to go on with (cleared when folded).
    Bit masks, not branches (see :func:`_sums`)."""
    sp = seg_period[p, s]
    sa = np.float64(seg_amount[p, s]).view(np.int64)
    fp = first_period[p, s]
    fa = np.float64(first_amount[p, s]).view(np.int64)
    m_lt = masks[np.int64(sp < fp) & new]   # an earlier period: take the segment's amount
    m_eq = masks[np.int64(sp == fp) & new]  # the same period: add it
    m_new = masks[new]
    first_period[p, s] = fp ^ ((fp ^ sp) & m_lt)
    added = np.float64(np.float64(first_amount[p, s]) + np.float64(seg_amount[p, s])).view(np.int64)
    fa = fa ^ ((fa ^ added) & m_eq)
    fa = fa ^ ((fa ^ sa) & m_lt)
    first_amount[p, s] = np.int64(fa).view(np.float64)
    return sp ^ ((sp ^ INT64_MAX) & m_new), np.int64(sa & ~m_new).view(np.float64)


@kernel
def fold_periods(first_period, first_amount, pseg, seg_period, seg_amount):
    """:func:`period_pairs`' pending segments folded in (the end of the input); arrays as there."""
    masks = np.array([0, -1], dtype=np.int64)
    for p in range(pseg.shape[0]):
        for s in range(pseg.shape[1]):
            new = np.int64(pseg[p, s] >= 0)
            sp, amount = _fold_period(first_period, first_amount, seg_period, seg_amount, p, s, new, masks)
            seg_period[p, s] = sp
            seg_amount[p, s] = amount
            pseg[p, s] = -1


@kernel
def grow_pairs(pairs, new_pairs):
    """Move every partition's pair set into a larger, empty one (all -1)."""
    mask = np.int64(new_pairs.shape[1] - 1)
    for p in range(pairs.shape[0]):
        for h in range(pairs.shape[1]):
            key = pairs[p, h]
            if key != EMPTY:
                g = np.int64(_mix(np.uint64(key))) & mask
                while new_pairs[p, g] != EMPTY:
                    g = (g + 1) & mask
                new_pairs[p, g] = key


@kernel
def dense_seen(istate, keys, rows):
    """Dense mode: the customers seen, in id order (one pass, instead of numpy's several).

    Parameters
    ----------
    istate : (N_PART, cap, N_ISTATE) int64, IN: slot ``s`` of partition ``p`` holds the id
        ``base + s * N_PART + p``; a slot without an event has ``I_FIRST`` at the maximum int64
    keys : (N_PART * cap,) int64, OUT: ``id - base`` of each customer seen, increasing
    rows : (N_PART * cap,) int64, OUT: its flat row in ``istate.reshape(-1, N_ISTATE)``

    Returns
    -------
    int : the customers seen (the first entries of ``keys`` and ``rows``)
    """
    cap = istate.shape[1]
    n = 0
    for k in range(N_PART * cap):
        p = k & (N_PART - 1)
        s = k >> P_BITS
        if istate[p, s, I_FIRST] != INT64_MAX:
            keys[n] = k
            rows[n] = p * cap + s
            n += 1
    return n


# The rows of aggregate_columns' outputs: int64 columns, float64 columns, validity bitmaps
C_FREQUENCY, C_RECENCY, C_TENURE, C_FIRST, C_LAST, C_LAST_Q = range(6)  # then count windows
C_MONETARY, C_MEAN, C_GAP = range(3)                             # then sum windows, trends
V_MEAN, V_RECENCY, V_GAP = range(3)                              # then trends


@kernel(fastmath=set(EXACT))
def aggregate_columns(istate, fstate, rows, lo, hi, day0, win_dst, win_int, trend_dst, trend_valid,
                      out_i, out_f, valid):
    """The columns of ``segmint.aggregate``'s table for rows ``lo..hi`` of the output, straight
    from the customers' state: one pass instead of a gather and a dozen NumPy passes.

    Exact IEEE arithmetic (no fast-math): the means and ratios must round as NumPy's division.

    Parameters
    ----------
    istate : (m, N_ISTATE) int64, IN: per-customer integer state, partitions flattened
    fstate : (m, f) float64, IN: totals first (``F_AMOUNT``, then one per window)
    rows : (n,) int64, IN: the customers' rows in output order
    lo, hi : int, the output rows to fill; ``lo`` a multiple of 8 (each validity byte is
        written by one call)
    day0 : int, the day of as_of (days since 1970-01-01)
    win_dst : (w,) int64, IN: window j's row in ``out_i`` (``win_int[j]`` 1: a count, as
        int64) or in ``out_f`` (0: a sum)
    win_int : (w,) uint8, IN
    trend_dst, trend_valid : (w,) int64, IN: for the older window j of a trend, the trend's
        row in ``out_f`` and in ``valid`` (window j - 1 over window j, 0.0 unless window j
        is positive, null when it is 0); -1 for other windows
    out_i : (6 + count windows, n) int64, OUT: ``C_FREQUENCY`` qualifying events,
        ``C_RECENCY`` whole days from the last qualifying event to as_of's day, ``C_TENURE``
        from the first event, ``C_FIRST``/``C_LAST`` first and last event, ``C_LAST_Q`` the
        last qualifying event (microseconds), then the count windows
    out_f : (3 + sum windows + trends, n) float64, OUT: ``C_MONETARY`` sum of qualifying
        amounts, ``C_MEAN`` their mean (0.0 when none), ``C_GAP`` mean days between
        qualifying events (0.0 below two), then sum windows and trends
    valid : (3 + trends, ceil(n / 8)) uint8, OUT: Arrow validity bitmaps (LSB first) of the
        mean (``V_MEAN``: some amount), recency (``V_RECENCY``: some qualifying event),
        gap (``V_GAP``: two or more) and the trends
    """
    n_win = win_dst.shape[0]
    for r in range(lo, hi):
        s = rows[r]
        b = r >> 3
        bit = np.uint8(1) << np.uint8(r & 7)
        if r & 7 == 0:
            for v in range(valid.shape[0]):
                valid[v, b] = 0
        count = istate[s, I_COUNT]
        amount_n = istate[s, I_AMOUNT_N]
        first_q = istate[s, I_FIRST_Q]
        last_q = istate[s, I_LAST_Q]
        total = fstate[s, F_AMOUNT]
        out_i[C_FREQUENCY, r] = count
        # (a constant divisor: a multiply, not a 64-bit division per customer)
        out_i[C_RECENCY, r] = day0 - last_q // US_PER_DAY
        out_i[C_TENURE, r] = day0 - istate[s, I_FIRST] // US_PER_DAY
        out_i[C_FIRST, r] = istate[s, I_FIRST]
        out_i[C_LAST, r] = istate[s, I_LAST]
        out_i[C_LAST_Q, r] = last_q
        out_f[C_MONETARY, r] = total
        out_f[C_MEAN, r] = total / np.float64(amount_n) if amount_n > 0 else 0.0
        out_f[C_GAP, r] = np.float64(last_q - first_q) / np.float64(US_PER_DAY) / np.float64(count - 1) \
            if count > 1 else 0.0
        if amount_n != 0:
            valid[V_MEAN, b] |= bit
        if count > 0:
            valid[V_RECENCY, b] |= bit
        if count > 1:
            valid[V_GAP, b] |= bit
        for j in range(n_win):
            value = fstate[s, 1 + j]
            if win_int[j]:
                out_i[win_dst[j], r] = np.int64(value)
            else:
                out_f[win_dst[j], r] = value
            if trend_dst[j] >= 0:
                out_f[trend_dst[j], r] = fstate[s, j] / value if value > 0 else 0.0
                if value != 0:
                    valid[trend_valid[j], b] |= bit


@kernel
def merge_order(keys, a, b, out):
    """Merge two index lists, each sorting its part of ``keys``, into one sorted order.

    Parameters
    ----------
    keys : (n,) int64, IN (unique values: no ties to order)
    a, b : (na,) and (nb,) int64, IN: indices into keys, each in increasing key order
    out : (na + nb,) int64, OUT
    """
    i = 0
    j = 0
    for r in range(out.shape[0]):
        if j >= b.shape[0] or (i < a.shape[0] and keys[a[i]] < keys[b[j]]):
            out[r] = a[i]
            i += 1
        else:
            out[r] = b[j]
            j += 1
