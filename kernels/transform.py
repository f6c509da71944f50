"""Feature transforms: the statistics pass of ``FeatureSpec.fit`` and the apply loop of ``transform``.

Fit reads every batch once:

- :func:`accumulate_moments` buffers the valid values of each block of ``buf.shape[0]``
  consecutive rows and, when the block is complete, merges its count, mean and sum of squared
  deviations into running totals (Chan, Golub and LeVeque). Blocks are cut at multiples of the
  block size in the *source's* row numbering, never at batch edges, so every block holds the
  same values at the same positions whatever the batch size, and the result has the same bits.
- :func:`sample_candidates` feeds a bottom-k sample: row ``r`` gets the priority
  :func:`row_priority` ``(r)``, a bijective 64-bit mix of its index (so no two rows tie), and
  the sample is the k valid rows of smallest priority. The caller owns the buffer and
  compacts it to the k smallest when it fills; which rows survive depends on row indices
  only, not on batches or on when compaction happens.

Transform writes a row-major ``(n, d)`` output over a range of rows ``lo..hi``, so callers
can tile a batch and keep the output tile in cache while columns are filled one by one:

- :func:`apply_numeric`: null check, impute, log1p, clip, scale; optional indicator column;
- :func:`apply_one_hot`: dictionary code to output column through a per-batch lookup table.

The apply kernels compile with exact IEEE arithmetic (``EXACT``): every value is computed by
the same sequence of correctly rounded operations in float64 and rounded once when stored, so
a model saved and loaded elsewhere, and the slow twin in the tests, give the same bits. They
hold no reductions, so fast-math would buy little.
"""
import math

import numpy as np

from .settings import EXACT, kernel

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)


@kernel
def row_priority(row):
    """Sampling priority of a row: splitmix64's finaliser of its index (a bijection on uint64).

    Parameters
    ----------
    row : int, the row's index in the source (>= 0)

    Returns
    -------
    uint64
    """
    z = np.uint64(row) + _GOLDEN
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    return z ^ (z >> np.uint64(31))


@kernel
def merge_block(buf, state, moments):
    """Fold the buffered block into the running moments and empty the buffer.

    The block's mean and sum of squared deviations are computed from the buffer in two
    passes, then merged with Chan et al.'s update. Fast-math may reorder the two sums: their
    inputs (one block, always starting at ``buf[0]``) do not depend on batch boundaries, so
    neither does the order LLVM picks.

    Parameters
    ----------
    buf : (block_rows,) float64, IN: the block's values in ``buf[:state[1]]``
    state : (3,) int64, INOUT: ``[current block index, values in buf, values merged so far]``;
        ``state[1]`` is set to 0 and ``state[2]`` grows by the block's count
    moments : (4,) float64, INOUT: ``[mean, sum of squared deviations, min, max]``; the
        first two are updated here
    """
    nb = state[1]
    if nb == 0:
        return
    s = 0.0
    for j in range(nb):
        s += buf[j]
    mean_b = s / nb
    m2_b = 0.0
    for j in range(nb):
        d = buf[j] - mean_b
        m2_b += d * d
    na = state[2]
    n = na + nb
    delta = mean_b - moments[0]
    moments[0] += delta * (np.float64(nb) / np.float64(n))
    moments[1] += m2_b + delta * delta * (np.float64(na) / np.float64(n)) * np.float64(nb)
    state[1] = 0
    state[2] = n


@kernel
def accumulate_moments(values, bits, bit_offset, row_start, use_log1p, buf, state, moments,
                       problems):
    """Add one batch of a numeric column to its running moments.

    Null rows are skipped (the caller counts them from the Arrow null count); NaN and
    infinite values, and negative values when ``use_log1p``, are counted in ``problems`` and
    left out. Min and max are of the raw values; mean and M2 of ``log1p(x)`` when
    ``use_log1p``, else of ``x``. Call :func:`merge_block` once after the last batch.

    Parameters
    ----------
    values : (n,) float32/float64, IN
    bits : Arrow validity bitmap (uint8), IN; empty when every row is valid
    bit_offset : int, bit of row 0 in ``bits``
    row_start : int, index in the source of the row ``values[0]``
    use_log1p : bool
    buf : (block_rows,) float64, INOUT: values of the current block (see :func:`merge_block`)
    state : (3,) int64, INOUT: ``[current block index (-1 before the first), values in buf,
        values merged so far]``
    moments : (4,) float64, INOUT: ``[mean, M2, min, max]`` (start at ``[0, 0, inf, -inf]``)
    problems : (2,) int64, INOUT: ``[NaN or infinite values, negative values under log1p]``
    """
    n = values.shape[0]
    block_rows = buf.shape[0]
    has_bits = bits.shape[0] > 0
    i = 0
    while i < n:
        row = row_start + i
        b = row // block_rows
        if b != state[0]:
            merge_block(buf, state, moments)
            state[0] = b
        end = min(n, (b + 1) * block_rows - row_start)
        fill = state[1]
        for j in range(i, end):
            if has_bits:
                k = bit_offset + j
                if ((bits[k >> 3] >> (k & 7)) & 1) == 0:
                    continue
            x = np.float64(values[j])
            if not np.isfinite(x):
                problems[0] += 1
                continue
            if use_log1p and x < 0.0:
                problems[1] += 1
                continue
            moments[2] = min(moments[2], x)
            moments[3] = max(moments[3], x)
            buf[fill] = math.log1p(x) if use_log1p else x
            fill += 1
        state[1] = fill
        i = end


@kernel
def sample_candidates(values, bits, bit_offset, row_start, begin, threshold, out_values, out_keys,
                      fill):
    """Append the valid rows whose priority is at most ``threshold`` to the sample buffer.

    Stops early when the buffer is full and returns the row to resume from; the caller then
    grows or compacts the buffer (keeping the k smallest priorities and lowering
    ``threshold`` to the largest kept one) and calls again from that row.

    Parameters
    ----------
    values : (n,) float32/float64, IN
    bits : Arrow validity bitmap (uint8), IN; empty when every row is valid
    bit_offset : int, bit of row 0 in ``bits``
    row_start : int, index in the source of the row ``values[0]``
    begin : int, first row of this batch to look at
    threshold : uint64, largest priority still admitted
    out_values : (cap,) float64, INOUT: sampled values, in ``out_values[:fill[0]]``
    out_keys : (cap,) uint64, INOUT: their priorities
    fill : (1,) int64, INOUT: entries in use

    Returns
    -------
    int
        ``n`` when the batch is done, else the row where the buffer was full.
    """
    n = values.shape[0]
    cap = out_values.shape[0]
    has_bits = bits.shape[0] > 0
    count = fill[0]
    for i in range(begin, n):
        if has_bits:
            k = bit_offset + i
            if ((bits[k >> 3] >> (k & 7)) & 1) == 0:
                continue
        key = row_priority(row_start + i)
        if key <= threshold:
            if count == cap:
                fill[0] = count
                return i
            out_values[count] = values[i]
            out_keys[count] = key
            count += 1
    fill[0] = count
    return n


@kernel(fastmath=set(EXACT))
def apply_numeric(values, bits, bit_offset, lo, hi, impute, has_impute, use_log1p,
                  clip_lo, clip_hi, use_clip, center, scale, col, indicator_col, out, problems):
    """Rows ``lo..hi`` of one numeric column into one output column: impute, log1p, clip, scale.

    Per row, in float64: ``x`` = the value, or ``impute`` for a null; ``x = log1p(x)`` when
    ``use_log1p``; ``x = min(max(x, clip_lo), clip_hi)`` when ``use_clip``; then
    ``out[i, col] = (x - center) / scale``, rounded once to ``out``'s dtype. Rows that cannot
    be transformed (a null without imputation, NaN or infinity, a negative value under log1p)
    get NaN and are counted in ``problems``; the caller raises.

    Parameters
    ----------
    values : (n,) float32/float64, IN
    bits : Arrow validity bitmap (uint8), IN; empty when every row is valid
    bit_offset : int, bit of row 0 in ``bits``
    lo, hi : int, rows to transform
    impute : float, value for nulls (used when ``has_impute``)
    has_impute : bool
    use_log1p : bool
    clip_lo, clip_hi : float, bounds (used when ``use_clip``), in log1p units when ``use_log1p``
    use_clip : bool
    center, scale : float, ``scale != 0``
    col : int, output column of the value
    indicator_col : int, output column of the null indicator (1.0 for an imputed null, else
        0.0), or -1 for none
    out : (n, d) float32/float64, C-contiguous, OUT: rows ``lo..hi`` of columns ``col`` and
        ``indicator_col`` are written
    problems : (3,) int64, INOUT: ``[nulls without imputation, NaN or infinite values,
        negative values under log1p]``
    """
    has_bits = bits.shape[0] > 0
    has_indicator = indicator_col >= 0
    for i in range(lo, hi):
        valid = True
        if has_bits:
            k = bit_offset + i
            valid = ((bits[k >> 3] >> (k & 7)) & 1) == 1
        if has_indicator:
            out[i, indicator_col] = 0.0 if valid else 1.0
        if valid:
            x = np.float64(values[i])
            if not np.isfinite(x):
                problems[1] += 1
                out[i, col] = np.nan
                continue
        elif has_impute:
            x = impute
        else:
            problems[0] += 1
            out[i, col] = np.nan
            continue
        if use_log1p:
            if x < 0.0:
                problems[2] += 1
                out[i, col] = np.nan
                continue
            x = math.log1p(x)
        if use_clip:
            if x < clip_lo:
                x = clip_lo
            elif x > clip_hi:
                x = clip_hi
        out[i, col] = (x - center) / scale


@kernel(fastmath=set(EXACT))
def apply_one_hot(codes, bits, bit_offset, lo, hi, lookup, first_col, width, null_col, out,
                  problems):
    """Rows ``lo..hi`` of one dictionary-coded string column into its block of one-hot columns.

    Each row's block ``out[i, first_col:first_col + width]`` is zeroed, then one 1.0 is set:
    at ``first_col + lookup[code]`` for a valid row, at ``null_col`` for a null. With
    ``null_col == -1`` nulls are errors: their block stays zero and they are counted.

    Parameters
    ----------
    codes : (n,) int32, IN: codes into the batch's dictionary (any value at null rows)
    bits : Arrow validity bitmap (uint8), IN; empty when every row is valid
    bit_offset : int, bit of row 0 in ``bits``
    lo, hi : int, rows to transform
    lookup : (len(dictionary),) int32, IN: column offset in the block of every dictionary
        entry, ``0 <= lookup[c] < width``
    first_col, width : int, the block's columns in ``out``
    null_col : int, output column for nulls (inside the block), or -1
    out : (n, d) float32/float64, C-contiguous, OUT
    problems : (1,) int64, INOUT: nulls met with ``null_col == -1``
    """
    has_bits = bits.shape[0] > 0
    for i in range(lo, hi):
        for j in range(first_col, first_col + width):
            out[i, j] = 0.0
        if has_bits:
            k = bit_offset + i
            if ((bits[k >> 3] >> (k & 7)) & 1) == 0:
                if null_col >= 0:
                    out[i, null_col] = 1.0
                else:
                    problems[0] += 1
                continue
        out[i, first_col + lookup[codes[i]]] = 1.0
