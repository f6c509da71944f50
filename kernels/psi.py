"""Counts for the population stability index, per batch: ranges, sketches, bins, categories.

Loops over one batch of one column, each adding integer counts to an array the caller owns
(:func:`finite_range` instead widens a min/max pair: the range :func:`scaled_sketch` needs).
Integer sums, minima and maxima do not depend on their order, so a caller may count batches on
any thread and combine them in any order: the totals are the same bits for any thread count.

The reference statistics sketch shifted and scaled values (:func:`scaled_sketch`), so that
their edges do not depend on the values' magnitude.

Conventions shared by the kernels:

- a row is *missing* when its validity bit is 0 (null) or its value is NaN; missing rows are
  counted apart, in the last slot of ``counts``;
- infinities are values: ``-inf`` lies below every edge (first bin), ``+inf`` above every edge
  (last bin); in a sketch they go to the overflow buckets (see :mod:`segmint.kernels.sketch`);
- bins are **left-closed**: with inner edges ``e_0 < e_1 < ... < e_{k-1}``, bin ``b`` holds
  ``e_{b-1} <= x < e_b`` (``e_{-1} = -inf``, ``e_k = +inf``), so a value exactly on an edge
  goes to the bin above it: ``numpy.searchsorted(edges, x, side="right")``.
"""
import numpy as np

from .scratch import as_type, empty
from .settings import EXACT, kernel
from .structure import is_valid as _is_valid  # shared: one compile
from .sketch import N_BUCKETS, bucket_of_bits

# Up to this many edges a branch-free count of the edges at or below a value beats a binary
# search (whose branches the CPU cannot predict on shuffled data); decile bins have 9 edges.
_LINEAR_EDGES = 32


@kernel
def finite_range(values, bits, bit_offset, out):
    """Widen ``[out[0], out[1]]`` to the smallest and largest finite value of one batch.

    Min and max do not depend on the order batches are combined in: the same bits for any
    thread count.

    Parameters
    ----------
    values : (n,) float32/float64, IN
    bits : Arrow validity bitmap (uint8), IN; empty when every row is valid
    bit_offset : int, bit of row 0 in ``bits``
    out : (2,) float64, INOUT: ``[min, max]`` of the finite valid values so far; start from
        ``[+inf, -inf]`` (still so after a batch without a finite value)
    """
    has_bits = bits.shape[0] > 0
    lo = out[0]
    hi = out[1]
    for i in range(values.shape[0]):
        if has_bits and not _is_valid(bits, bit_offset, i):
            continue
        x = np.float64(values[i])
        if x == x and x != np.inf and x != -np.inf:  # finite
            if x < lo:
                lo = x
            if x > hi:
                hi = x
    out[0] = lo
    out[1] = hi


# IEEE arithmetic without fast-math: ``scaled_value`` in segmint.monitor.reference repeats the same
# two operations in Python and must land on the same bits, or bin counts would stop being exact.
@kernel(fastmath=set(EXACT))
def scaled_sketch(values, bits, bit_offset, low_half, scale, counts):
    """Add one batch of a numeric column, shifted and scaled, to its quantile sketch.

    Each value ``x`` is counted as ``y = (x * 0.5 - low_half) * scale``: with ``low_half`` half
    the reference minimum and ``scale`` the inverse of half its spread, finite values map to
    ``[0, 1]`` (halves first, so that ``max - min`` cannot overflow), so the sketch's relative
    precision applies to the distance from the minimum, not to the value's magnitude. The map is
    monotone (each IEEE step is), so a sketch bucket is an interval of ``x`` as well.

    Parameters
    ----------
    values : (n,) float32/float64, IN
    bits : Arrow validity bitmap (uint8), IN; empty when every row is valid
    bit_offset : int, bit of row 0 in ``bits``
    low_half : float64, half the smallest finite reference value
    scale : float64 > 0, finite
    counts : (N_BUCKETS + 1,) int64, INOUT: sketch buckets of ``y`` (``-inf`` in bucket 0,
        ``+inf`` in bucket ``N_BUCKETS - 1``); the last slot counts missing rows (null or NaN)
    """
    has_bits = bits.shape[0] > 0
    missing = counts.shape[0] - 1
    top = N_BUCKETS - 1
    scratch = empty(1, np.float64)
    scratch_bits = as_type(scratch, np.int64)
    for i in range(values.shape[0]):
        if has_bits and not _is_valid(bits, bit_offset, i):
            counts[missing] += 1
            continue
        x = np.float64(values[i])
        if x != x:
            counts[missing] += 1
        elif x == np.inf:
            counts[top] += 1
        elif x == -np.inf:
            counts[0] += 1
        else:
            y = (x * 0.5 - low_half) * scale
            counts[bucket_of_bits(y, scratch, scratch_bits)] += 1


@kernel
def bin_counts(values, bits, bit_offset, edges, counts):
    """Count one batch of a numeric column into left-closed bins; count its missing rows.

    Parameters
    ----------
    values : (n,) float32/float64, IN
    bits : Arrow validity bitmap (uint8), IN; empty when every row is valid
    bit_offset : int, bit of row 0 in ``bits``
    edges : (k,) float64, IN: finite inner edges, strictly increasing (callers check)
    counts : (k + 2,) int64, INOUT: ``counts[b]`` for bin ``b`` (``e_{b-1} <= x < e_b``,
        ``b`` in ``0..k``), ``counts[k + 1]`` for missing rows (null or NaN)
    """
    n_edges = edges.shape[0]
    missing = n_edges + 1
    has_bits = bits.shape[0] > 0
    linear = n_edges <= _LINEAR_EDGES
    for i in range(values.shape[0]):
        if has_bits and not _is_valid(bits, bit_offset, i):
            counts[missing] += 1
            continue
        x = np.float64(values[i])
        if x != x:
            counts[missing] += 1
            continue
        if linear:
            b = 0
            for j in range(n_edges):
                b += edges[j] <= x  # branch-free: the number of edges at or below x
        else:
            lo = 0
            hi = n_edges
            while lo < hi:  # the first edge above x
                mid = (lo + hi) >> 1
                if edges[mid] <= x:
                    lo = mid + 1
                else:
                    hi = mid
            b = lo
        counts[b] += 1


@kernel
def code_counts(codes, bits, bit_offset, counts):
    """Count one batch of a dictionary-coded column by code; count its null rows.

    Parameters
    ----------
    codes : (n,) int32, IN: codes into the pass's dictionary, each in ``0 .. m - 1`` where
        valid (callers check; values under a null bit are ignored)
    bits : Arrow validity bitmap (uint8), IN; empty when every row is valid
    bit_offset : int, bit of row 0 in ``bits``
    counts : (m + 1,) int64, INOUT: ``counts[c]`` rows of code ``c``, ``counts[m]`` null rows
    """
    missing = counts.shape[0] - 1
    has_bits = bits.shape[0] > 0
    for i in range(codes.shape[0]):
        if has_bits and not _is_valid(bits, bit_offset, i):
            counts[missing] += 1
        else:
            counts[codes[i]] += 1
