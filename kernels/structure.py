"""Checks of the Arrow layout that other loops trust without looking.

Arrow compute functions and segmint's kernels read string offsets without bounds checks:
an offset that goes backwards or past the end of the character data makes them read (or
hash) memory outside the buffer. A file can carry any bytes, so the offsets of the string
columns read from a file are checked here, in one pass, before anything uses them.
"""
from .settings import kernel


@kernel
def is_valid(bits, bit_offset, i):
    """Validity bit of row ``i`` in an Arrow bitmap (LSB first) starting at bit ``bit_offset``.

    One kernel shared by every module that reads validity bitmaps: each module's own copy
    was a compile of its own (~0.04 s each, cold).

    Parameters
    ----------
    bits : (m,) uint8, IN: the bitmap
    bit_offset, i : int64, the bitmap's first bit and the row

    Returns
    -------
    bool
    """
    k = bit_offset + i
    return ((bits[k >> 3] >> (k & 7)) & 1) == 1


@kernel
def first_bad_offset(offsets, data_size):
    """Position of the first offset that breaks Arrow's rules, or -1 when all hold.

    Arrow's rules: ``0 <= offsets[0]``, ``offsets[i] <= offsets[i + 1]`` and
    ``offsets[-1] <= data_size``. Together they put every string inside the data buffer.
    The scan has no early exit inside a block, so it vectorises; a failing block is then
    searched for the exact position.

    Parameters
    ----------
    offsets : (n + 1,) int32/int64, IN
        The offsets of ``n`` strings (already sliced to the array's own rows).
    data_size : int
        Size in bytes of the character data the offsets point into.

    Returns
    -------
    int
        Index into ``offsets`` of the first offset that is negative, smaller than the one
        before it, or beyond ``data_size``; -1 when there is none.
    """
    n = offsets.shape[0]
    if n == 0:
        return -1
    if offsets[0] < 0 or offsets[0] > data_size:
        return 0
    block = 4096
    for lo in range(1, n, block):
        hi = min(lo + block, n)
        bad = False
        for i in range(lo, hi):
            bad |= (offsets[i] < offsets[i - 1]) | (offsets[i] > data_size)
        if bad:
            for i in range(lo, hi):
                if offsets[i] < offsets[i - 1] or offsets[i] > data_size:
                    return i
    return -1
