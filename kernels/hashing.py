"""Hashing of 64-bit ids: one finaliser shared by the kernels that partition or look up ids."""
import numpy as np

from .settings import kernel


@kernel
def mix64(x):
    """splitmix64's finaliser: nearby ids spread over partitions and hash-table cells.

    Parameters
    ----------
    x : int64 or uint64 scalar, IN

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
