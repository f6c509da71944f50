"""Sums whose order is fixed, so a total does not depend on how rows were split into pieces.

These kernels compile without the ``reassoc`` fast-math flag: the compiler may not reorder
the additions (no vectorised partial sums), so summing rows 0..n in one call or in several
consecutive calls that continue one accumulator gives the same bits.
"""
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
        for i in range(lo, hi):
            s += weights[i] * values[i]
    acc[0] = s
