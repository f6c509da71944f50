"""The id join of two (id, segment) snapshots: pair counts of a migration matrix.

Both snapshots' ids arrive as int64 keys, ``key - base`` in ``0..span-1`` (``base`` the smallest
id when ids are dense enough). Sparse ids (hashes, scattered keys) are numbered first: both
snapshots' ids, one after the other, are grouped into partitions by the top bits of a hash
(:func:`partition_count`, :func:`partition_scatter`), and each partition numbers its distinct
ids in a small, cache-resident hash table (:func:`number_partitions`, partitions split over
threads); an id's number is its partition's first position plus its order of appearance there,
so numbers lie in ``0..rows-1`` and ``base`` is 0. Probes are bounded (ids chosen to collide
in the public hash would make linear probing quadratic): past the bound the caller numbers the
ids by a sort instead (O(n log n) for any ids). The join is then direct addressing in two steps:

1. :func:`scatter_codes`, once per snapshot (the two run side by side on two threads), writes
   each customer's segment into ``slots[key - base]`` and finds a repeated id on the way;
2. :func:`crosstab_slots` walks both slot arrays in order, a chunk of slots per call, and
   counts each (previous segment, current segment) pair into the chunk's own matrix.

Counts are integers and chunks are fixed by the span alone, so the chunk matrices add up to the
same bits for any thread count and any order.

A slot holds ``c + 1`` for a customer of segment ``c`` and ``0`` where no customer has that key.
"""
import numpy as np

from .settings import kernel
from .hashing import mix64 as _mix


@kernel
def scatter_codes(keys, base, codes, slots):
    """Write each customer's segment into its slot.

    Parameters
    ----------
    keys : (n,) int64, IN: ``keys[i] - base`` is the slot of row ``i``, in ``0..slots.shape[0]-1``
    base : int64
    codes : (n,) int32, IN: segment of each row, ``>= 0``
    slots : (span,) int32, INOUT: zeros on entry; ``codes[i] + 1`` at each row's slot on exit

    Returns
    -------
    int: the first row whose slot was already written (a repeated id), or -1
    """
    for i in range(keys.shape[0]):
        k = keys[i] - base
        if slots[k] != 0:
            return i
        slots[k] = codes[i] + 1
    return -1


@kernel
def crosstab_slots(previous, current, lo, hi, matrix):
    """Count the (previous, current) segment pairs of slots ``lo..hi``.

    Parameters
    ----------
    previous, current : (span,) int32, IN: slots as :func:`scatter_codes` left them
    lo, hi : int, the slots of this chunk
    matrix : (n_from + 1, n_to + 1) int64, INOUT: zeros on entry; ``matrix[a - 1, b - 1]`` for a
        slot of both, row ``n_from`` (new) for a slot only in ``current``, column ``n_to``
        (departed) for a slot only in ``previous``
    """
    new_row = matrix.shape[0] - 1
    departed_col = matrix.shape[1] - 1
    for k in range(lo, hi):
        a = previous[k]
        b = current[k]
        if a == 0 and b == 0:
            continue
        i = a - 1 if a > 0 else new_row
        j = b - 1 if b > 0 else departed_col
        matrix[i, j] += 1


@kernel
def partition_count(ids, p_shift, counts):
    """Rows of each hash partition: ``counts[p] += 1`` for each id of partition ``p``.

    Parameters
    ----------
    ids : (n,) int64, IN
    p_shift : int, ``64 - log2(partitions)``: a partition is the top bits of the id's hash
    counts : (partitions,) int64, INOUT
    """
    shift = np.uint64(p_shift)
    for i in range(ids.shape[0]):
        counts[np.int64(_mix(np.uint64(ids[i])) >> shift)] += 1


@kernel
def partition_scatter(ids, p_shift, cursor, part_ids, part_rows):
    """Group ids by hash partition, keeping their order inside a partition.

    Parameters
    ----------
    ids : (n,) int64, IN
    p_shift : int, as in :func:`partition_count`
    cursor : (partitions,) int64, INOUT: each partition's first position on entry (the running
        sum of :func:`partition_count`), its end on exit
    part_ids : (n,) int64, OUT: the ids, partition after partition
    part_rows : (n,) int64, OUT: the row of each of ``part_ids`` in ``ids``
    """
    shift = np.uint64(p_shift)
    for i in range(ids.shape[0]):
        p = np.int64(_mix(np.uint64(ids[i])) >> shift)
        j = cursor[p]
        part_ids[j] = ids[i]
        part_rows[j] = i
        cursor[p] = j + 1


@kernel
def number_partitions(part_ids, part_rows, starts, p_lo, p_hi, max_probe, table_keys, table_numbers, out):
    """Number the distinct ids of partitions ``p_lo..p_hi``: an id of partition ``p`` gets
    ``starts[p]`` plus its order of first appearance in the partition (open addressing with
    linear probing in a small table reused for each partition, so it stays in cache).

    Each partition uses the first ``size`` slots of the table, ``size`` the power of two at
    least twice its own row count (at least 16), so only those are reset and the load stays at
    most 1/2. The slot of an id is the *low* bits of its hash, the partition its *top* bits:
    disjoint bits, so ids of one partition still spread over its table. Probing is bounded:
    ids chosen to collide (the hash is public, so an adversary can invert it) make a probe
    longer than ``max_probe``, and the kernel stops at once and reports it; the caller then
    numbers the ids another way (a sort), so the cost stays O(rows * max_probe) whatever the ids.

    Parameters
    ----------
    part_ids, part_rows : (n,) int64, IN: as :func:`partition_scatter` left them
    starts : (partitions + 1,) int64, IN: first position of each partition, then ``n``
    p_lo, p_hi : int, the partitions of this chunk
    max_probe : int, the longest probe allowed (slots looked at for one id)
    table_keys : (cap,) int64, scratch; ``cap`` at least the ``size`` of every partition
    table_numbers : (cap,) int32, scratch
    out : (n,) int64, OUT (rows of these partitions only): the number of the id of each row

    Returns
    -------
    int: -1 when every id was numbered, else the partition where a probe exceeded ``max_probe``
    (``out`` is then incomplete)
    """
    for p in range(p_lo, p_hi):
        lo = starts[p]
        hi = starts[p + 1]
        size = 16
        while size < 2 * (hi - lo):
            size *= 2
        mask = np.int64(size - 1)
        table_numbers[:size] = -1
        count = 0
        for j in range(lo, hi):
            key = part_ids[j]
            h = np.int64(_mix(np.uint64(key)) & np.uint64(mask))
            probes = 0
            while True:
                number = table_numbers[h]
                if number < 0:
                    table_keys[h] = key
                    table_numbers[h] = count
                    out[part_rows[j]] = lo + count
                    count += 1
                    break
                if table_keys[h] == key:
                    out[part_rows[j]] = lo + number
                    break
                probes += 1
                if probes > max_probe:
                    return p
                h = (h + 1) & mask
    return -1
