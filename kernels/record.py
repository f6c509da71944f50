"""One customer at a time: rules, feature row and nearest center of a single record, one call.

The real-time :class:`segmint.serve.Scorer` scores one customer per call. It must give the
same bits as the batch path for the same customer, so this kernel holds no arithmetic of its
own: it runs the rule program with the record interpreter of the batch engine's programs
(:func:`.rules.run_record`), then the batch transform kernel per numeric feature
(:func:`.transform.apply_numeric`) and the steps of :func:`.assign.assign_rows` on the one-row
matrix (with the caller's scratch instead of the eight arrays that kernel allocates per call).
It only writes the 0/1 entries of one-hot blocks, whose values are exact, rounds float32
columns' values to float32 (as such a column holds them), and takes the square root the batch
path takes (correctly rounded in IEEE arithmetic in either place). One call does it all, so a
request pays one entry from Python and allocates nothing. The tests prove the bits against the
batch path on random and hand-made customers.

The record comes in one buffer the caller packs with :mod:`struct` (one C call): its float64
*values* and, behind them, its uint8 *states*. A field read by the rules and by the features
(``monetary``, ``frequency``...) has one *slot*, read and converted once:

- ``values``: ``(n_values,)`` float64: the slots' values (0.0 at a null), then per one-hot
  block the output column to set to 1.0 (the category's, ``__other``'s or the null column);
- ``states``: ``(n_slots + t,)`` uint8: the slots' validity (1 valid, 0 null), then the rule
  program's three-valued states (boolean columns, string predicates: see ``run_record``).

Everything else a model holds is in two read-only arrays, ``ints`` and ``floats``, whose parts
are found through the header of ``ints`` (the ``H_*`` positions below).

Compiled with exact IEEE arithmetic (``EXACT``), like the transform kernels and the rule VM.
"""
import numpy as np

from .assign import TILE, _add_row_norms, _tile_argmin
from .rules import run_record
from .scratch import as_bytes, as_pyarray, as_type, frozen
from .settings import EXACT, kernel
from .transform import apply_numeric

# Columns of the numeric features' parameter rows (named, not magic positions).
F_IMPUTE, F_CLIP_LO, F_CLIP_HI, F_CENTER, F_SCALE = 0, 1, 2, 3, 4
N_FLOAT_PARAMS = 5
I_HAS_IMPUTE, I_LOG1P, I_USE_CLIP, I_COL, I_INDICATOR, I_SLOT = 0, 1, 2, 3, 4, 5
N_INT_PARAMS = 6

# The header of ``ints``: counts, and offsets of its parts (an offset into ``ints`` unless said)
H_N_SLOTS = 0        # slots (numeric fields), the validity bytes at the start of the states
H_N_NUM = 1          # numeric features
H_N_ONEHOT = 2       # one-hot blocks
H_PROG = 3           # the rule program (``run_record``'s ``prog``), -1 without rules
H_PROG_END = 4
H_DEFAULT = 5        # the waterfall's default code
H_TO_SEGMENT = 6     # rule code -> segment id (-1: clustered), one entry per code
H_FEATURES = 7       # (n_num, N_INT_PARAMS) feature parameters, row-major
H_ONEHOT = 8         # (n_onehot, 2): first output column and width of each block
H_FLOAT32 = 9        # the slots of float32 columns, ``H_N_FLOAT32`` of them
H_N_FLOAT32 = 10
H_CLUSTER = 11       # 1: find the nearest center of a customer no rule took
H_CONSTS_END = 12    # in ``floats``: the program's constants end, the features' rows start
H_N_VALUES = 13      # float64 values at the start of ``raw`` (the states follow them)
H_RAW_PROBLEMS = 14  # byte offsets in ``raw`` of the (n_num, 3) int64 problem counts,
H_RAW_LABELS = 15    # the (TILE,) int32 labels of the assignment,
H_RAW_BITS = 16      # and the features' validity bitmap (ceil(n_num / 8) bytes)
H_D = 17             # features out (X's width)
H_KP = 18            # the prepared centers' shape (kp, dp)
H_DP = 19
N_HEADER = 20


def raw_layout(n_values, n_states, n_num):
    """Byte offsets of a record buffer's parts: ``(problems, labels, bits, size)`` (8-aligned:
    the values come first, at 0)."""
    problems = (8 * n_values + n_states + 7) // 8 * 8
    labels = problems + 24 * n_num
    bits = labels + 4 * TILE
    return problems, labels, bits, bits + max(1, (n_num + 7) // 8)


def work_layout(d, dp):
    """Sizes in a work array (X's dtype): the assignment's scratch ``(dp + 2, TILE)`` first,
    then the feature row ``(1, d)``: ``(row offset, size)``."""
    return (dp + 2) * TILE, (dp + 2) * TILE + max(d, 1)


@kernel(fastmath=set(EXACT))
def score_customer(raw, ints, floats, centers, work, as_of_us, as_of_day_us):
    """Rules, feature row and nearest center of one packed record.

    Few arguments (each costs the call time to unbox): the per-call and per-thread arrays are
    views into ``raw`` and ``work``, the model's into ``ints``, ``floats`` and ``centers``.

    Parameters
    ----------
    raw : uint8, INOUT: the record's ``values`` (``H_N_VALUES`` float64, see the module; the
        slots of float32 columns are rounded to float32 here, in place) and its ``states``
        (uint8) as the caller packed them, then scratch at the ``H_RAW_*`` offsets
        (:func:`raw_layout`): ``problems`` (n_num, 3) int64, OUT: per numeric feature, as
        :func:`.transform.apply_numeric` counts them ``[nulls without imputation, NaN or
        infinite values, negative values under log1p]``; the assignment's labels; the
        features' validity bitmap
    ints : int64, IN: header (``H_*``), rule program, feature parameters, one-hot blocks,
        code-to-segment map, float32 slots
    floats : float64, IN: the rule program's constants (slots 0 and 1 stand for the instant),
        then the features' ``(n_num, N_FLOAT_PARAMS)`` rows ``impute, clip_lo, clip_hi,
        center, scale``
    centers : float32/float64, IN: the prepared centers (:func:`.assign.prepare_centers`),
        ``C2`` (kp, dp) row-major then ``cn`` (kp,)
    work : centers' dtype, INOUT (:func:`work_layout`): the assignment's tile ``(dp + 2, TILE)``
        (first ``dp`` rows: zero when made, and only column 0 of the first ``d`` rows is ever
        written, so the padding stays zero) and its five accumulators and NaN check; then the
        feature row ``X`` (1, d), OUT
    as_of_us, as_of_day_us : float, the rules' instant and its midnight UTC, microseconds

    Returns
    -------
    status : int
        -1 when a feature had a problem (see ``problems``; nothing assigned), 1 when the row's
        arithmetic failed in the assignment (see :func:`.assign.assign_rows`), else 0
    code : int
        The rule code (the first rule that is true, else the default), -1 without rules
    segment : int
        The segment id: the rule code's segment, else the nearest center (-1 when neither)
    distance : float
        The distance to the nearest center in X's dtype (the square root of the squared
        distance, clipped at 0, as the batch path takes it), widened to float64; 0 unless
        assigned
    """
    n_values = ints[H_N_VALUES]
    values = as_type(raw[:8 * n_values], np.float64)
    states = raw[8 * n_values:]
    f32 = ints[H_FLOAT32]
    for q in range(f32, f32 + ints[H_N_FLOAT32]):
        s = ints[q]
        values[s] = np.float32(values[s])  # round to nearest even; beyond float32: infinite
    bits = raw[ints[H_RAW_BITS]:]
    code = np.int64(-1)
    seg = np.int64(-1)
    p0 = ints[H_PROG]
    if p0 >= 0:
        # the record as the types RecordEvaluator passes (array.array, bytes): one compiled
        # run_record for both callers (a second variant cost as much to compile as this kernel)
        code = np.int64(run_record(ints[p0:ints[H_PROG_END]], floats, as_of_us, as_of_day_us,
                                   as_pyarray(values), as_bytes(states), bits[:0]))
        if code < 0:
            code = ints[H_DEFAULT]
        seg = ints[ints[H_TO_SEGMENT] + code]
    n_num = ints[H_N_NUM]
    n_onehot = ints[H_N_ONEHOT]
    if n_num + n_onehot == 0:
        return 0, code, seg, 0.0
    d = ints[H_D]
    kp = ints[H_KP]
    dp = ints[H_DP]
    row = (dp + 2) * TILE
    X = work[row:row + d].reshape((1, d))
    p_at = ints[H_RAW_PROBLEMS]
    problems = as_type(raw[p_at:p_at + 24 * n_num], np.int64).reshape((n_num, 3))
    for j in range((n_num + 7) // 8):
        bits[j] = 0
    fi = ints[H_FEATURES]
    ff = ints[H_CONSTS_END]
    for j in range(n_num):
        if states[ints[fi + j * N_INT_PARAMS + I_SLOT]] != 0:
            bits[j >> 3] |= np.uint8(1 << (j & 7))
    problems[:, :] = 0
    for j in range(n_num):
        p = fi + j * N_INT_PARAMS
        f = ff + j * N_FLOAT_PARAMS
        s = ints[p + I_SLOT]
        # read-only views and int64 rows: the variant the batch path compiled (a literal 0 or 1, or
        # writable arrays, would compile apply_numeric once more per model dtype)
        apply_numeric(frozen(values[s:s + 1]), frozen(bits), j, np.int64(0), np.int64(1), floats[f + F_IMPUTE],
                      ints[p + I_HAS_IMPUTE] != 0, ints[p + I_LOG1P] != 0, floats[f + F_CLIP_LO], floats[f + F_CLIP_HI],
                      ints[p + I_USE_CLIP] != 0, floats[f + F_CENTER], floats[f + F_SCALE],
                      ints[p + I_COL], ints[p + I_INDICATOR], X, problems[j])
    base = ints[H_N_SLOTS]
    oh = ints[H_ONEHOT]
    for b in range(n_onehot):
        first = ints[oh + 2 * b]
        for c in range(first, first + ints[oh + 2 * b + 1]):
            X[0, c] = 0.0
        X[0, np.int64(values[base + b])] = 1.0
    for j in range(n_num):
        if problems[j, 0] + problems[j, 1] + problems[j, 2] > 0:
            return -1, code, seg, 0.0
    if seg >= 0 or ints[H_CLUSTER] == 0:
        return 0, code, seg, 0.0
    # assign_rows's steps for one row, on the caller's scratch instead of a fresh tile (it
    # allocates eight arrays per call): the same kernels, so the same bits
    C2 = centers[:kp * dp].reshape((kp, dp))
    cn = centers[kp * dp:kp * dp + kp]
    scratch = work[:row].reshape((dp + 2, TILE))
    l_at = ints[H_RAW_LABELS]
    best_l = as_type(raw[l_at:l_at + 4 * TILE], np.int32)
    tile = scratch[:dp]
    best_d, chk = scratch[dp], scratch[dp + 1]
    for j in range(d):  # the one row into the tile's column 0 (a copy: the bits of _fill_tile's)
        tile[j, 0] = X[0, j]
    # one row: one block of rows, not a tile (an int64, not a literal 1: a literal compiles the
    # kernel once more per dtype)
    _tile_argmin(tile, C2, cn, np.int64(1), best_d, best_l, chk)
    _add_row_norms(tile, X.shape[1], best_d)
    v = best_d[0]  # NaN, an infinity or an overflow leaves the best value non-finite
    bad = 1 if (not (v > -np.inf and v < np.inf) or chk[0] != chk[0]) else 0
    if v < 0:  # rounding of the expanded form, as assign_rows clips it
        v = 0
    # the batch path takes np.sqrt of the squared distance in the model's dtype; sqrt is
    # correctly rounded in IEEE arithmetic, so computing it here in that dtype gives its bits
    best_d[0] = v
    best_d[0] = np.sqrt(best_d[0])
    return bad, code, np.int64(best_l[0]), np.float64(best_d[0])
