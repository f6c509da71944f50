"""Per-segment statistics of one batch: row counts, moments, quantile sketches, category counts.

Every kernel takes the batch's segments in one of two forms and adds each row to its *slots*:

- ``codes`` (int32, one per row; ``members`` empty): slot ``codes[i]``, or slot ``n_seg`` (the
  unassigned rows) when the code is -1. The whole base is the merge of all slots.
- ``members`` (uint64 ``(n_seg, ceil(n / 64))`` bit words of a multi-mode rule set; ``codes``
  empty): every segment whose bit is set, and slot ``n_seg``, which is then the whole base
  (a row in several segments counts once in it).

Moments are per call and per slot (count, mean, M2 about the slot's own mean over the rows given:
the corrected two-pass formula over values that stay in cache; the mean as an unevaluated sum of
two floats, its rounding kept apart). The caller calls once per fixed block of rows and merges
blocks with Chan's formula in block order, so it gets sound variances even for values like 1e9 +- 1
(and the same bits however the rows were batched). No shift
common to all slots is used: one extreme value (9.2e18 in one segment) would swamp the other
segments' small values once shifted by it. Sketch and category counts are integers: their
totals do not depend on the order of additions, so callers may keep them per thread.
"""
import numpy as np

from .scratch import as_type, empty, zeros
from .settings import kernel
from .structure import is_valid as _is_valid  # shared: one compile
from .sketch import bucket_of_bits


@kernel
def _in_segment(members, s, i):
    return ((members[s, i >> 6] >> np.uint64(i & 63)) & np.uint64(1)) == np.uint64(1)


@kernel
def count_rows(codes, members, n_rows, counts):
    """Rows per segment; slot ``n_seg`` counts the rows in no segment.

    Parameters
    ----------
    codes : (n,) int32, IN; empty when ``members`` is given
    members : (n_seg, words) uint64, IN; empty (0 rows) when ``codes`` is given
    n_rows : int, rows of the batch
    counts : (n_seg + 1,) int64, INOUT
    """
    n_seg = counts.shape[0] - 1
    if codes.shape[0] == n_rows and members.shape[0] == 0:
        for i in range(n_rows):
            c = codes[i]
            counts[c if c >= 0 else n_seg] += 1
        return
    for i in range(n_rows):
        anywhere = False
        for s in range(n_seg):
            if _in_segment(members, s, i):
                counts[s] += 1
                anywhere = True
        if not anywhere:
            counts[n_seg] += 1


@kernel
def profile_numeric(values, bits, bit_offset, codes, members, moments, sketches):
    """Count, mean and M2 per slot of one batch of a numeric column, and its sketches.

    Null rows (validity bit 0), NaN and infinities are left out of everything (the caller
    derives the null share from the row counts). Every row's value is added to each slot
    it belongs to (see the module docstring).

    The work of :func:`numeric_sums`, :func:`numeric_means`, :func:`means_by_parts`,
    :func:`numeric_deviations` and :func:`numeric_moments` in one call: a caller holding its
    rows in several consecutive parts makes those calls itself, part by part, for the same
    bits as one call over the parts joined.

    Parameters
    ----------
    values : (n,) float32/float64, IN
    bits : Arrow validity bitmap (uint8), IN; empty when every row is valid
    bit_offset : int, bit of row 0 in ``bits``
    codes, members : the batch's segments, IN (see the module docstring)
    moments : (n_seg + 1, 4) float64, OUT: ``[count, mean, mean correction, M2]`` of this batch
        per slot: the mean is ``mean + mean correction`` (a double-double: the correction is the
        rounding of the first, small next to it), M2 is about that mean (inf when squares
        overflow, for magnitudes beyond about 1e154)
    sketches : (n_seg + 1, N_BUCKETS) int64, INOUT; or 0 rows to skip the sketch
    """
    n_slots = moments.shape[0]
    sums = zeros(n_slots, np.float64)
    counts = zeros(n_slots, np.float64)
    numeric_sums(values, bits, bit_offset, codes, members, sums, counts, sketches)
    means = zeros(n_slots, np.float64)
    if numeric_means(sums, counts, means):
        means_by_parts(values, bits, bit_offset, codes, members, counts, sums, means)
    dev = zeros(n_slots, np.float64)
    m2 = zeros(n_slots, np.float64)
    numeric_deviations(values, bits, bit_offset, codes, members, means, dev, m2)
    numeric_moments(counts, means, dev, m2, moments)


@kernel
def numeric_sums(values, bits, bit_offset, codes, members, sums, counts, sketches):
    """First pass of :func:`profile_numeric`: per slot the sum and count of the valid finite
    values, added in row order to ``sums`` and ``counts`` (INOUT, float64 ``(n_seg + 1,)``: a
    second call continues the first, over the next rows), and their sketch buckets
    (``sketches`` INOUT, or 0 rows to skip). Other parameters as :func:`profile_numeric`."""
    n = values.shape[0]
    n_seg = sums.shape[0] - 1
    has_bits = bits.shape[0] > 0
    multi = members.shape[0] > 0
    do_sketch = sketches.shape[0] > 0
    scratch = empty(1, np.float64)
    scratch_bits = as_type(scratch, np.int64)
    for i in range(n):
        if has_bits and not _is_valid(bits, bit_offset, i):
            continue
        x = np.float64(values[i])
        if not np.isfinite(x):
            continue
        b = bucket_of_bits(x, scratch, scratch_bits) if do_sketch else 0
        if multi:
            for s in range(n_seg):
                if _in_segment(members, s, i):
                    sums[s] += x
                    counts[s] += 1.0
                    if do_sketch:
                        sketches[s, b] += 1
            slot = n_seg
        else:
            c = codes[i]
            slot = c if c >= 0 else n_seg
        sums[slot] += x
        counts[slot] += 1.0
        if do_sketch:
            sketches[slot, b] += 1


@kernel
def numeric_means(sums, counts, means):
    """``means`` (OUT) of :func:`numeric_sums`' totals; True when a sum overflowed (beyond
    1.8e308): those slots' means are then 0 here, for :func:`means_by_parts` to add up."""
    overflow = False
    for s in range(means.shape[0]):
        means[s] = 0.0
        if counts[s] > 0:
            if np.isfinite(sums[s]):
                means[s] = sums[s] / counts[s]
            else:
                overflow = True
    return overflow


@kernel
def means_by_parts(values, bits, bit_offset, codes, members, counts, sums, means):
    """The means of the slots whose sum overflowed, as sums of ``value / count`` (``means``
    INOUT: a second call continues the first, over the next rows; rare: one more pass)."""
    n = values.shape[0]
    n_seg = means.shape[0] - 1
    has_bits = bits.shape[0] > 0
    multi = members.shape[0] > 0
    for i in range(n):
        if has_bits and not _is_valid(bits, bit_offset, i):
            continue
        x = np.float64(values[i])
        if not np.isfinite(x):
            continue
        if multi:
            for s in range(n_seg):
                if not np.isfinite(sums[s]) and _in_segment(members, s, i):
                    means[s] += x / counts[s]
            slot = n_seg
        else:
            c = codes[i]
            slot = c if c >= 0 else n_seg
        if not np.isfinite(sums[slot]):
            means[slot] += x / counts[slot]


@kernel
def numeric_deviations(values, bits, bit_offset, codes, members, means, dev, m2):
    """Second pass of :func:`profile_numeric`, about each slot's own mean (the values are still
    in cache), with the corrected two-pass formula: the sum of deviations ``dev`` repairs the
    rounding of the first mean; ``dev`` and ``m2`` INOUT (a second call continues the first)."""
    n = values.shape[0]
    n_seg = means.shape[0] - 1
    has_bits = bits.shape[0] > 0
    multi = members.shape[0] > 0
    for i in range(n):
        if has_bits and not _is_valid(bits, bit_offset, i):
            continue
        x = np.float64(values[i])
        if not np.isfinite(x):
            continue
        if multi:
            for s in range(n_seg):
                if _in_segment(members, s, i):
                    d = x - means[s]
                    dev[s] += d
                    m2[s] += d * d
            slot = n_seg
        else:
            c = codes[i]
            slot = c if c >= 0 else n_seg
        d = x - means[slot]
        dev[slot] += d
        m2[slot] += d * d


@kernel
def numeric_moments(counts, means, dev, m2, moments):
    """``moments`` (OUT, see :func:`profile_numeric`) from the passes' totals."""
    for s in range(moments.shape[0]):
        moments[s, 0] = counts[s]
        if counts[s] > 0:
            correction = dev[s] / counts[s]  # the mean's rounding, kept apart (see above)
            spread = m2[s] - dev[s] * correction
            moments[s, 1] = means[s]
            # deviations beyond 1.8e308 (values near the float64 limit): no correction, M2 inf
            moments[s, 2] = correction if abs(correction) < np.inf else 0.0
            if spread >= 0.0:
                moments[s, 3] = spread
            elif spread < 0.0:  # rounding
                moments[s, 3] = 0.0
            else:  # NaN: inf - inf
                moments[s, 3] = np.inf
        else:
            moments[s, 1] = 0.0
            moments[s, 2] = 0.0
            moments[s, 3] = 0.0


@kernel
def profile_category(cat_codes, bits, bit_offset, codes, members, counts):
    """Rows per (slot, category) of one batch of a dictionary string column.

    Parameters
    ----------
    cat_codes : (n,) int32 dictionary codes, IN (valid codes: the caller sized ``counts``)
    bits : Arrow validity bitmap (uint8), IN; empty when every row is valid
    bit_offset : int, bit of row 0 in ``bits``
    codes, members : the batch's segments, IN (see the module docstring)
    counts : (n_seg + 1, 1 + dictionary size) int64, INOUT: column 0 counts nulls, column
        ``c + 1`` the code ``c``
    """
    n = cat_codes.shape[0]
    n_seg = counts.shape[0] - 1
    has_bits = bits.shape[0] > 0
    multi = members.shape[0] > 0
    for i in range(n):
        col = 0 if has_bits and not _is_valid(bits, bit_offset, i) else cat_codes[i] + 1
        if multi:
            for s in range(n_seg):
                if _in_segment(members, s, i):
                    counts[s, col] += 1
            counts[n_seg, col] += 1
        else:
            c = codes[i]
            counts[c if c >= 0 else n_seg, col] += 1


@kernel
def first_seen(cat_codes, bits, bit_offset, lo, hi, mapping, seen, n_seen):
    """Number the categories of rows ``lo .. hi - 1`` in the order the rows first show them.

    A string column's profile codes do not come from the reader's dictionaries (whose order and
    unused entries depend on how the data was written and read) but from the rows: the first
    distinct value met is code 0, the next new one code 1, and so on, so the codes of a whole
    pass are the same whatever its batches, files or chunks.

    Parameters
    ----------
    cat_codes : (n,) int32 dictionary codes of the reader, IN
    bits : Arrow validity bitmap (uint8), IN; empty when every row is valid (null rows are not
        categories: they are counted apart)
    bit_offset : int, bit of row 0 in ``bits``
    lo, hi : int, the rows to read
    mapping : (dictionary size,) int32, INOUT: the profile code of each reader code, -1 for a
        value not met yet (set here when met)
    seen : (>= n_seen + hi - lo,) int32, INOUT: ``seen[k]`` the reader code of profile code ``k``
    n_seen : int, the values met before row ``lo``

    Returns
    -------
    int
        The values met up to row ``hi - 1``.
    """
    has_bits = bits.shape[0] > 0
    for i in range(lo, hi):
        if has_bits and not _is_valid(bits, bit_offset, i):
            continue
        c = cat_codes[i]
        if mapping[c] < 0:
            mapping[c] = n_seen
            seen[n_seen] = c
            n_seen += 1
    return n_seen
