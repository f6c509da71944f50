"""Dense customer numbers for string ids, straight from Arrow's string buffers.

A string column is ``offsets`` (int32 or int64, one more than the rows) and ``data`` (the UTF-8
bytes): row ``i`` is ``data[offsets[i]:offsets[i + 1]]``. Turning 20M such rows into dense
numbers through Arrow (``dictionary_encode``, then a dictionary unified across batches) cost
more than the whole aggregation; these kernels do it in three passes over a batch:

1. :func:`hash_strings`: a 64-bit hash of each row's bytes (:func:`hash_bytes`); the top
   ``P_BITS`` bits choose one of ``N_PART`` partitions (rows split over threads);
2. :func:`scatter_rows`: each partition's rows and hashes, in row order (rows split over
   threads; chunk ``c`` writes after the rows of chunks ``< c``, so the order is the rows');
3. :func:`number_strings`: each partition numbers its distinct strings in order of first
   appearance in a small open-addressing table (linear probing on the hash's low bits, at most
   half full) that stays in the core's cache (partitions split over threads). A cell holds part
   of the hash and a slot; a match is only a candidate: the row's bytes (its length and first 16
   bytes, carried along by :func:`scatter_rows`, then the rest) are compared with the slot's
   stored copy, so two strings whose hashes collide still get two numbers.

The number of a string is ``slot * N_PART + partition``: dense (the partitions' sizes differ
by a few percent), and ``number & (N_PART - 1)`` is its partition, which is how the aggregation
kernels (``kernels/aggregate.py``, dense mode) place it too, so a customer's state lies in the
partition that numbered it. A partition sees its rows in row order whatever the thread count,
so the numbers do not depend on it.

Each partition keeps its distinct strings (``soff[p, s]..soff[p, s + 1]`` in ``sdata[p]``), so
numbers stay valid across batches whose buffers are gone. :func:`common_prefix`,
:func:`prefix_words`, :func:`sort_ties` and :func:`gather_strings` give the numbered strings in
byte order (the order of Arrow's ``sort_indices`` on strings) and build the result's column.

Hash flooding: the hash is public and fixed (the same in every process), so strings crafted to
collide make probing long (quadratic in the colliding strings), never wrong.
"""
import numpy as np

from .settings import kernel
from .structure import is_valid as _valid  # shared: one compile
from .hashing import mix64 as _mix
from .aggregate import N_PART, P_BITS

EMPTY = np.int64(-1)
GROW_TABLE = 1  # :func:`number_strings` needs a larger table (and room for more slots)
GROW_BYTES = 2  # ... or more room for the partition's string bytes
_SEED = np.uint64(0x6A09E667F3BCC908)
_LEN_MUL = np.uint64(0x9E3779B97F4A7C15)  # odd


@kernel
def _word(data, i):
    """Bytes ``i..i+8`` of ``data`` as a little-endian uint64 (one load once compiled)."""
    return (np.uint64(data[i]) | (np.uint64(data[i + 1]) << np.uint64(8))
            | (np.uint64(data[i + 2]) << np.uint64(16)) | (np.uint64(data[i + 3]) << np.uint64(24))
            | (np.uint64(data[i + 4]) << np.uint64(32)) | (np.uint64(data[i + 5]) << np.uint64(40))
            | (np.uint64(data[i + 6]) << np.uint64(48)) | (np.uint64(data[i + 7]) << np.uint64(56)))


@kernel
def hash_bytes(data, lo, hi):
    """A 64-bit hash of ``data[lo:hi]``.

    The length, spread by an odd multiplier, starts the chain (so ``"ab"`` and ``"ab\\0"``
    differ); each 8-byte word (the last one zero-padded) is XORed in and the state goes
    through :func:`~segmint.kernels.hashing.mix64`, a bijection: strings not built to collide
    collide with probability ~2**-64 per pair. One mix per word (a 10-byte id: two).

    Parameters
    ----------
    data : (m,) uint8, IN
    lo, hi : int, the bytes

    Returns
    -------
    uint64
    """
    h = _SEED ^ (np.uint64(hi - lo) * _LEN_MUL)
    i = lo
    while i + 8 <= hi:
        h = _mix(h ^ _word(data, i))
        i += 8
    if i < hi:
        w = np.uint64(0)
        for k in range(hi - i):
            w |= np.uint64(data[i + k]) << np.uint64(8 * k)
        h = _mix(h ^ w)
    elif hi == lo:
        h = _mix(h)
    return h


@kernel
def hash_strings(offsets, data, bits, bit_offset, lo, hi, hmask, hashes, part, counts, codes):
    """Hash and partition of rows ``lo..hi`` of a string column.

    Parameters
    ----------
    offsets : (n + 1,) int32 or int64, IN: row ``i`` is ``data[offsets[i]:offsets[i + 1]]``
    data : (m,) uint8, IN
    bits, bit_offset : validity bitmap of the rows (uint8, empty: no nulls) and its bit offset
    lo, hi : int, the rows to hash
    hmask : uint64, ANDed onto every hash: all ones, except in tests that force collisions
    hashes : (n,) uint64, OUT for the valid rows of lo..hi
    part : (n,) int16, OUT for rows lo..hi: the partition (top ``P_BITS`` bits of the hash),
        -1 for a null row
    counts : (N_PART,) int64, INOUT: rows per partition
    codes : (n,) int64, OUT for the null rows of lo..hi: -1 (:func:`number_strings` numbers the others)

    Returns
    -------
    int : the null rows among lo..hi
    """
    shift = np.uint64(64 - P_BITS)
    has_bits = bits.shape[0] > 0
    nulls = 0
    for i in range(lo, hi):
        if has_bits and not _valid(bits, bit_offset, i):
            part[i] = -1
            codes[i] = -1
            nulls += 1
            continue
        # int64 positions whatever the offsets' width: one compile of the hash (and of
        # _word) serves string and large_string columns
        h = hash_bytes(data, np.int64(offsets[i]), np.int64(offsets[i + 1])) & hmask
        hashes[i] = h
        p = np.int64(h >> shift)
        part[i] = p
        counts[p] += 1
    return nulls


@kernel
def _head(data, a, n):
    """The first 16 bytes of ``data[a:a + n]`` as two little-endian words, zero-padded."""
    w0 = np.uint64(0)
    w1 = np.uint64(0)
    if n >= 16:
        return _word(data, a), _word(data, a + 8)
    if n >= 8:
        w0 = _word(data, a)
        for k in range(n - 8):
            w1 |= np.uint64(data[a + 8 + k]) << np.uint64(8 * k)
        return w0, w1
    for k in range(n):
        w0 |= np.uint64(data[a + k]) << np.uint64(8 * k)
    return w0, w1


@kernel
def scatter_rows(part, hashes, offsets, data, lo, hi, pos, ent):
    """Each partition's rows of ``lo..hi``, in row order, with what :func:`number_strings`
    compares: hash, length and first 16 bytes. (Read here, where rows come in order; read in
    partition order, each would be a cache miss, and most ids are shorter than 17 bytes.)

    Parameters
    ----------
    part : (n,) int16, IN: from :func:`hash_strings` (-1: left out)
    hashes : (n,) uint64, IN
    offsets, data : the string column, IN (as in :func:`hash_strings`)
    lo, hi : int
    pos : (N_PART,) int64, INOUT: each partition's next position
    ent : (k, 5) int64, OUT: per entry the hash, the first 16 bytes as two little-endian
        words (zero-padded), the row and the length
    """
    for i in range(lo, hi):
        p = part[i]
        if p < 0:
            continue
        j = pos[p]
        pos[p] = j + 1
        a = np.int64(offsets[i])  # int64 whatever the offsets' width: one compile of _head
        n = np.int64(offsets[i + 1]) - a
        w0, w1 = _head(data, a, n)
        ent[j, 0] = np.int64(hashes[i])
        ent[j, 1] = np.int64(w0)
        ent[j, 2] = np.int64(w1)
        ent[j, 3] = i
        ent[j, 4] = n


@kernel
def _same(data, a, n, sdata, p, b):
    """``data[a:a + n]`` equals ``sdata[p, b:b + n]``."""
    k = 0
    while k + 8 <= n:
        # the store's word assembled here (``_word`` of the writable store would compile a
        # second signature of it: the column's bytes are read-only); one load once compiled
        w = np.uint64(0)
        for t in range(8):
            w |= np.uint64(sdata[p, b + k + t]) << np.uint64(8 * t)
        if _word(data, a + k) != w:
            return False
        k += 8
    while k < n:
        if data[a + k] != sdata[p, b + k]:
            return False
        k += 1
    return True


@kernel
def number_strings(p_lo, p_hi, starts, progress, ent, offsets, data, cells, soff, shead, sdata,
                   n_slots, codes):
    """The number of every row of partitions ``p_lo..p_hi``, numbering new strings.

    A cell is 8 bytes, ``tag << 32 | slot`` (-1 empty), ``tag`` 31 bits of the hash (bits
    24..54: not the top bits, which chose the partition, nor the low ones, which chose the
    cell), so a probe touches one small table and, on a tag match only, the slot's record.
    Stops early when a partition's table would be more than half full or its bytes do not
    fit, returning what must grow (``GROW_TABLE | GROW_BYTES``); ``progress`` says where each
    partition resumes (see :func:`grow_cells`).

    Parameters
    ----------
    p_lo, p_hi : int, the partitions
    starts : (N_PART + 1,) int64, IN: partition p's entries are ``ent[starts[p]:starts[p + 1]]``
    progress : (N_PART,) int64, INOUT: the next entry of each partition
    ent : (k, 5) int64, IN: from :func:`scatter_rows`
    offsets, data : the string column, IN (read for new strings and beyond 16 bytes)
    cells : (N_PART, tcap) int64, INOUT: tcap a power of 2
    soff : (N_PART, tcap // 2 + 1) int64, INOUT: slot ``s``'s bytes are ``soff[p, s]..soff[p, s + 1]``
    shead : (N_PART, tcap // 2, 4) int64, INOUT: each slot's first 16 bytes (as in ``ent``),
        length and hash
    sdata : (N_PART, bcap) uint8, INOUT: the partitions' distinct strings
    n_slots : (N_PART,) int64, INOUT
    codes : (n,) int64, OUT for the rows processed: ``slot * N_PART + p``

    Returns
    -------
    int : 0 when done, else what must grow
    """
    tcap = cells.shape[1]
    tmask = np.int64(tcap - 1)
    bcap = sdata.shape[1]
    for p in range(p_lo, p_hi):
        for j in range(progress[p], starts[p + 1]):
            h = ent[j, 0]
            w0 = ent[j, 1]
            w1 = ent[j, 2]
            r = ent[j, 3]
            n = ent[j, 4]
            tag = (h >> 24) & 0x7FFFFFFF
            c = h & tmask
            while True:
                cell = cells[p, c]
                if cell == EMPTY:
                    s = n_slots[p]
                    need = 0
                    if 2 * (s + 1) > tcap:
                        need |= GROW_TABLE
                    if soff[p, s] + n > bcap:
                        need |= GROW_BYTES
                    if need:
                        progress[p] = j
                        return need
                    o = soff[p, s]
                    a = offsets[r]
                    for k in range(n):
                        sdata[p, o + k] = data[a + k]
                    soff[p, s + 1] = o + n
                    shead[p, s, 0] = w0
                    shead[p, s, 1] = w1
                    shead[p, s, 2] = n
                    shead[p, s, 3] = h
                    n_slots[p] = s + 1
                    cells[p, c] = (tag << 32) | s
                    break
                s = cell & 0xFFFFFFFF
                if (cell >> 32) == tag and shead[p, s, 0] == w0 and shead[p, s, 1] == w1 \
                        and shead[p, s, 2] == n \
                        and (n <= 16 or _same(data, offsets[r] + 16, n - 16, sdata, p, soff[p, s] + 16)):
                    break
                c = (c + 1) & tmask
            codes[r] = s * N_PART + p
        progress[p] = starts[p + 1]
    return 0


@kernel
def grow_cells(shead, n_slots, new_cells):
    """Rebuild every partition's cells in a larger, empty table, from its slots' hashes.

    Parameters
    ----------
    shead : (N_PART, scap, 4) int64, IN: as in :func:`number_strings`
    n_slots : (N_PART,) int64, IN
    new_cells : (N_PART, new_tcap) int64, INOUT: new_tcap a power of two, all -1
    """
    mask = np.int64(new_cells.shape[1] - 1)
    for p in range(new_cells.shape[0]):
        for s in range(n_slots[p]):
            h = shead[p, s, 3]
            g = h & mask
            while new_cells[p, g] != EMPTY:
                g = (g + 1) & mask
            new_cells[p, g] = (((h >> 24) & 0x7FFFFFFF) << 32) | s


@kernel
def dictionary_codes(indices, bits, bit_offset, mapping, codes):
    """The numbers of a dictionary column's rows: ``codes[i] = mapping[indices[i]]``.

    Parameters
    ----------
    indices : (n,) int32 or int64, IN: dictionary indices
    bits, bit_offset : validity of indices (empty: no nulls)
    mapping : (d,) int64, IN: the number of each dictionary value, -1 for a null value
    codes : (n,) int64, OUT: -1 for a null row (a null index or a null value)

    Returns
    -------
    int : the null rows, or ``-(i + 1)`` when the valid row ``i`` has an index outside
    ``0..d-1`` (``codes`` is then incomplete)
    """
    has_bits = bits.shape[0] > 0
    d = mapping.shape[0]
    nulls = 0
    for i in range(indices.shape[0]):
        c = -1
        if not has_bits or _valid(bits, bit_offset, i):
            k = indices[i]
            if k < 0 or k >= d:
                return -(i + 1)
            c = mapping[k]
        codes[i] = c
        nulls += c < 0
    return nulls


# -- the numbered strings in byte order -------------------------------------------------------

@kernel
def common_prefix(keys, soff, sdata):
    """Length of the longest prefix shared by the strings of ``keys`` (numbers, as above).

    Parameters
    ----------
    keys : (n,) int64, IN
    soff, sdata : the partitions' strings, IN

    Returns
    -------
    int (0 when ``n`` is 0)
    """
    if keys.shape[0] == 0:
        return 0
    pm = N_PART - 1
    p0 = keys[0] & pm
    s0 = keys[0] >> P_BITS
    a0 = soff[p0, s0]
    lcp = soff[p0, s0 + 1] - a0
    for r in range(1, keys.shape[0]):
        p = keys[r] & pm
        s = keys[r] >> P_BITS
        a = soff[p, s]
        m = min(lcp, soff[p, s + 1] - a)
        k = 0
        while k < m and sdata[p, a + k] == sdata[p0, a0 + k]:
            k += 1
        lcp = k
        if lcp == 0:
            break
    return lcp


@kernel
def prefix_words(keys, soff, sdata, start, out):
    """Bytes ``start..start+8`` of each string as a big-endian uint64 (zero-padded): their
    unsigned order is the strings' byte order, up to ties.

    Parameters
    ----------
    keys : (n,) int64, IN
    soff, sdata : IN
    start : int
    out : (n,) uint64, OUT
    """
    pm = N_PART - 1
    for r in range(keys.shape[0]):
        p = keys[r] & pm
        s = keys[r] >> P_BITS
        a = soff[p, s] + start
        m = min(8, soff[p, s + 1] - a)
        w = np.uint64(0)
        for k in range(8):
            w <<= np.uint64(8)
            if k < m:
                w |= np.uint64(sdata[p, a + k])
        out[r] = w


@kernel
def _less(ka, kb, soff, sdata, start):
    """String of number ``ka`` before the one of ``kb`` in byte order (bytes before ``start``
    equal)."""
    pm = N_PART - 1
    pa_ = ka & pm
    pb = kb & pm
    a = soff[pa_, ka >> P_BITS]
    na = soff[pa_, (ka >> P_BITS) + 1] - a
    b = soff[pb, kb >> P_BITS]
    nb = soff[pb, (kb >> P_BITS) + 1] - b
    m = min(na, nb)
    for k in range(start, m):
        x = sdata[pa_, a + k]
        y = sdata[pb, b + k]
        if x != y:
            return x < y
    return na < nb


@kernel
def sort_ties(order, words, keys, soff, sdata, start, tmp):
    """Put the runs of equal ``words[order]`` in full byte order (insertion sort for short
    runs, a merge sort for long ones), so ``keys[order]`` is in byte order.

    Parameters
    ----------
    order : (n,) int64, INOUT: sorts ``words`` (unsigned) on entry
    words : (n,) uint64, IN: from :func:`prefix_words`
    keys : (n,) int64, IN
    soff, sdata : IN
    start : int, the bytes before it are the same in every string (:func:`common_prefix`)
    tmp : (n,) int64, scratch
    """
    n = order.shape[0]
    lo = 0
    while lo < n:
        hi = lo + 1
        while hi < n and words[order[hi]] == words[order[lo]]:
            hi += 1
        if hi - lo <= 16:
            for i in range(lo + 1, hi):
                v = order[i]
                j = i - 1
                while j >= lo and _less(keys[v], keys[order[j]], soff, sdata, start):
                    order[j + 1] = order[j]
                    j -= 1
                order[j + 1] = v
        else:
            width = 1
            while width < hi - lo:
                for a in range(lo, hi, 2 * width):
                    m = min(a + width, hi)
                    b = min(a + 2 * width, hi)
                    i = a
                    j = m
                    for k in range(a, b):
                        if j >= b or (i < m and not _less(keys[order[j]], keys[order[i]], soff, sdata,
                                                          start)):
                            tmp[k] = order[i]
                            i += 1
                        else:
                            tmp[k] = order[j]
                            j += 1
                for k in range(lo, hi):
                    order[k] = tmp[k]
                width *= 2
        lo = hi


@kernel
def string_lengths(keys, soff, out):
    """``out[r + 1] = out[r] + length of keys[r]``, ``out[0] = 0``: the offsets of the strings.

    Parameters
    ----------
    keys : (n,) int64, IN
    soff : IN
    out : (n + 1,) int64, OUT
    """
    pm = N_PART - 1
    out[0] = 0
    for r in range(keys.shape[0]):
        p = keys[r] & pm
        s = keys[r] >> P_BITS
        out[r + 1] = out[r] + soff[p, s + 1] - soff[p, s]


@kernel
def gather_strings(keys, soff, sdata, offsets, out):
    """The bytes of the strings of ``keys``, one after the other.

    Parameters
    ----------
    keys : (n,) int64, IN
    soff, sdata : IN
    offsets : (n + 1,) int64, IN: from :func:`string_lengths`
    out : (offsets[n],) uint8, OUT
    """
    pm = N_PART - 1
    for r in range(keys.shape[0]):
        p = keys[r] & pm
        s = keys[r] >> P_BITS
        a = soff[p, s]
        o = offsets[r]
        for k in range(offsets[r + 1] - o):
            out[o + k] = sdata[p, a + k]
