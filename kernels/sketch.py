"""A mergeable quantile sketch with a relative error bound: log-bucketed counts of values.

A value's bucket comes from its float64 bits: the exponent and the top ``MANTISSA_BITS`` bits of
the mantissa, so each octave ``[2^e, 2^(e+1))`` is cut into 64 equal pieces. A bucket's
representative is the point of equal relative distance to both its ends, so any value of the
bucket is within ``RELATIVE_ERROR`` = 1/128 (0.78%) of it. Negative values have a mirrored store,
and values with ``|x| < 2^MIN_EXPONENT`` (about 6e-8) share one zero bucket (reported as 0).
The range reaches ``2^(MAX_EXPONENT + 1)`` = 2^64 (about 1.8e19), beyond every int64; larger
magnitudes go to one overflow bucket per sign, reported as -inf or +inf (not as a wrong finite
value): memory stays ``N_BUCKETS`` counts per sketch whatever the data.

A sketch is a plain int64 array of ``N_BUCKETS`` counts laid out in value order (the negative
overflow bucket first, then the negative buckets, the zero bucket in the middle, the positive
buckets, the positive overflow bucket last), so two sketches merge by addition and a quantile is a
walk along the cumulative counts.
"""
import numpy as np

from .scratch import as_type, empty
from .settings import kernel

MANTISSA_BITS = 6
SUB_BUCKETS = 1 << MANTISSA_BITS
MIN_EXPONENT = -24
MIN_MAGNITUDE = 2.0 ** MIN_EXPONENT
MAX_EXPONENT = 63
MAX_MAGNITUDE = 2.0 ** (MAX_EXPONENT + 1)  # 2^64: magnitudes from here on are +-inf
SIDE = (MAX_EXPONENT - MIN_EXPONENT + 1) * SUB_BUCKETS  # finite buckets per sign
ZERO = SIDE + 1  # index of the zero bucket (index 0 is the negative overflow bucket)
N_BUCKETS = 2 * SIDE + 3
RELATIVE_ERROR = 1.0 / (2 * SUB_BUCKETS)


@kernel
def bucket_of_bits(x, scratch, scratch_bits):
    """The bucket index of a finite float64 ``x`` (see the module docstring).

    The exponent and mantissa bits are read through ``scratch`` (a 1-element float64 array)
    and ``scratch_bits`` (its int64 view): the compiler turns the store and load into a plain
    bit cast, faster than ``frexp`` or a logarithm in the hot loop.

    Parameters
    ----------
    x : float64, finite (callers leave NaN and infinities out)
    scratch : (1,) float64, INOUT (scratch space)
    scratch_bits : (1,) int64, ``scratch.view(np.int64)``

    Returns
    -------
    int64 in ``0 .. N_BUCKETS - 1``
    """
    a = abs(x)
    if a < MIN_MAGNITUDE:
        return ZERO
    scratch[0] = a
    bits = scratch_bits[0]
    e = ((bits >> 52) & 0x7FF) - 1023
    if e > MAX_EXPONENT:
        k = SIDE  # the overflow bucket
    else:
        k = (e - MIN_EXPONENT) * SUB_BUCKETS + ((bits >> (52 - MANTISSA_BITS)) & (SUB_BUCKETS - 1))
    if x < 0.0:
        return ZERO - 1 - k
    return ZERO + 1 + k


@kernel
def bucket_of(x):
    """:func:`bucket_of_bits` of one value (allocates its scratch: for tests and one-offs)."""
    scratch = empty(1, np.float64)
    return bucket_of_bits(x, scratch, as_type(scratch, np.int64))


@kernel
def bucket_value(index):
    """The representative value of bucket ``index``: within ``RELATIVE_ERROR`` of every value
    of the bucket (0 for the zero bucket, -inf and +inf for the overflow buckets)."""
    if index == ZERO:
        return 0.0
    if index == 0:
        return -np.inf
    if index == N_BUCKETS - 1:
        return np.inf
    k = index - ZERO - 1 if index > ZERO else ZERO - 1 - index
    e = k // SUB_BUCKETS + MIN_EXPONENT
    m = k % SUB_BUCKETS
    lo = 2.0 ** e * (1.0 + m / SUB_BUCKETS)
    hi = 2.0 ** e * (1.0 + (m + 1) / SUB_BUCKETS)
    rep = 2.0 * lo * hi / (lo + hi)  # (rep - lo) / lo == (hi - rep) / hi
    return rep if index > ZERO else -rep


@kernel
def sketch_quantiles(counts, qs, out):
    """Quantiles of the values a sketch counted, with the "lower" rank convention.

    Quantile ``q`` of ``n`` values is the value of rank ``floor(q * (n - 1))`` (0-based) in
    sorted order, as ``numpy.quantile(..., method="lower")``; the result is its bucket's
    representative. NaN when the sketch is empty.

    Parameters
    ----------
    counts : (N_BUCKETS,) int64, IN
    qs : (m,) float64 in [0, 1], IN
    out : (m,) float64, OUT
    """
    n = 0
    for c in counts:
        n += c
    for j in range(qs.shape[0]):
        if n == 0:
            out[j] = np.nan
            continue
        rank = np.int64(np.floor(qs[j] * (n - 1)))
        seen = 0
        for b in range(counts.shape[0]):
            seen += counts[b]
            if seen > rank:
                out[j] = bucket_value(b)
                break


@kernel
def sketch_values(values, counts):
    """Add finite float values to one sketch (NaN and infinities are skipped).

    Parameters
    ----------
    values : (n,) float32/float64, IN
    counts : (N_BUCKETS,) int64, INOUT
    """
    scratch = empty(1, np.float64)
    scratch_bits = as_type(scratch, np.int64)
    for i in range(values.shape[0]):
        x = np.float64(values[i])
        if np.isfinite(x):
            counts[bucket_of_bits(x, scratch, scratch_bits)] += 1
