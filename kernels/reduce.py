"""Sums whose order is fixed, so a total does not depend on how rows were split into pieces.

These kernels compile without the ``reassoc`` fast-math flag: the compiler may not reorder
the additions (no vectorised partial sums), so summing rows 0..n in one call or in several
consecutive calls that continue one accumulator gives the same bits.
"""
import numpy as np

from .settings import FASTMATH, kernel

_ORDERED = set(FASTMATH) - {"reassoc"}


@kernel(fastmath=_ORDERED)
def weighted_sum(values, weights, lo, hi, acc):
    """``acc[0] += sum(weights[i] * values[i] for i in lo..hi)``, added in row order.

    Parameters
    ----------
    values : (n,) float32/float64, IN
    weights : (n,) float, or empty for unit weights, IN
    lo, hi : int
    acc : (1,) float64, INOUT
    """
    s = acc[0]
    if weights.shape[0] == 0:
        for i in range(lo, hi):
            s += values[i]
    else:
        # the product in float64: float32 weights times float32 distances may overflow float32
        # (weights up to 2^64 and distances up to float32's max are allowed), never float64
        for i in range(lo, hi):
            s += np.float64(weights[i]) * np.float64(values[i])
    acc[0] = s
