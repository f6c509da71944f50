"""Hashing of 64-bit ids: one finaliser shared by the kernels that partition or look up ids."""
import numpy as np

from .scratch import empty
from .settings import kernel


@kernel
def mix64(x):
    """splitmix64's finaliser: nearby ids spread over partitions and hash-table cells.

    Parameters
    ----------
    x : uint64 scalar, IN (callers cast int64 ids with ``np.uint64``, which keeps the bits:
        one compiled signature serves every caller)

    Returns
    -------
    uint64
        A bijective mix of ``x``: no two ids share a hash, and the top and low bits are both
        usable (partitions take the top bits, table slots the low ones).
    """
    z = np.uint64(x) + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


_FNV_OFFSET = np.uint64(0xCBF29CE484222325)
_FNV_PRIME = np.uint64(0x100000001B3)
_POLY = np.uint64(0x9E3779B97F4A7C15)  # odd: multiplying by it is a bijection mod 2**64


@kernel
def labels_digest(labels, out):
    """A 128-bit digest of a label array: two 64-bit hashes over its values, in one pass.

    Used to tell whether a block's labels changed since the previous pass without shipping
    them (the Dask fit's strict convergence). Each hash runs four interleaved lanes (value ``i``
    goes to lane ``i % 4``; independent lanes keep the multiplier's latency off the critical
    path): hash one is FNV-1a over the 32-bit values, hash two a polynomial
    ``h * POLY + (value + 1)`` mod 2**64; the lanes and the length are chained through
    :func:`mix64` (a bijection, so a lane that differs makes the result differ). Equal arrays
    give equal digests. Arrays differing at one position always give different ones (that
    lane of hash two changes by ``delta * POLY**j``, ``POLY`` odd, ``0 < |delta| < 2**32``);
    more differences collide only by chance (~2**-64 per hash for arrays not built to collide).
    About 0.7 ms per million labels, where blake2b over the same bytes takes ~4.4.

    Parameters
    ----------
    labels : (n,) int32, IN
    out : (2,) uint64, OUT
    """
    # np.empty and a loop, not np.full/np.zeros: each numpy constructor is a compile of its own
    a = empty(4, np.uint64)
    b = empty(4, np.uint64)
    for j in range(4):
        a[j] = _FNV_OFFSET
        b[j] = 0
    n = labels.shape[0]
    one = np.uint64(1)
    i = 0
    while i + 4 <= n:
        for j in range(4):
            v = np.uint64(np.uint32(labels[i + j]))
            a[j] = (a[j] ^ v) * _FNV_PRIME
            b[j] = b[j] * _POLY + (v + one)
        i += 4
    for j in range(n - i):
        v = np.uint64(np.uint32(labels[i + j]))
        a[j] = (a[j] ^ v) * _FNV_PRIME
        b[j] = b[j] * _POLY + (v + one)
    ha = np.uint64(n)
    hb = np.uint64(n)
    for j in range(3, -1, -1):
        ha = mix64(a[j] + ha)
        hb = mix64(b[j] + hb)
    out[0] = ha
    out[1] = hb
