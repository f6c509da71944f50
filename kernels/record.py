"""One customer at a time: the feature row and nearest center of a single record.

The real-time :class:`segmint.serve.Scorer` scores one customer per call. It must give the
same bits as the batch path for the same customer, so this kernel holds no arithmetic of its
own: it calls the batch kernels themselves (:func:`.transform.apply_numeric` per numeric
feature; the steps of :func:`.assign.assign_rows` on the one-row matrix, with the caller's
scratch instead of the eight arrays that kernel allocates per call), and only writes the 0/1
entries of one-hot blocks, whose values are exact, and the square root the batch path takes
(correctly rounded in IEEE arithmetic in either place). One call does the transform and the
assignment, so a request pays one dispatch from Python, not one per feature, and allocates
nothing. The tests prove the bits against the batch path on random and hand-made customers.

Compiled with exact IEEE arithmetic (``EXACT``), like the transform kernels; the called
kernels keep the flags they were compiled with.
"""
import numpy as np

from .assign import TILE, _add_row_norms, _fill_tile, _tile_argmin
from .settings import EXACT, kernel
from .transform import apply_numeric

# Columns of the numeric parameter arrays (named, not magic positions).
F_IMPUTE, F_CLIP_LO, F_CLIP_HI, F_CENTER, F_SCALE = 0, 1, 2, 3, 4
N_FLOAT_PARAMS = 5
I_HAS_IMPUTE, I_LOG1P, I_USE_CLIP, I_COL, I_INDICATOR, I_FLOAT32 = 0, 1, 2, 3, 4, 5
N_INT_PARAMS = 6


@kernel(fastmath=set(EXACT))
def score_record(inputs, n_num, fparams, iparams, onehot, X, C2, cn, problems, bits, scratch, best_l,
                 want_cluster):
    """Transform one record into ``X[0]`` and, when ``want_cluster``, find its nearest center.

    Parameters
    ----------
    inputs : (2 * n_num + n_onehot,) float64, INOUT: the numeric features' values in spec
        order (any value at a null; the values of float32 columns are rounded to float32 here,
        as such a column holds them in the batch path), then their validity (1.0 valid, 0.0
        null), then, per one-hot block, the output column set to 1.0 (the category's,
        ``__other``'s or the null column). One array, so a call from Python converts one list.
    n_num : int, numeric features
    fparams : (n_num, N_FLOAT_PARAMS) float64, IN: ``impute, clip_lo, clip_hi, center, scale``
    iparams : (n_num, N_INT_PARAMS) int64, IN: ``has_impute, log1p, use_clip, col,
        indicator_col`` (-1: no indicator), ``float32`` (1: the column is float32)
    onehot : (n_onehot, 2) int64, IN: first output column and width of each one-hot block
    X : (1, d) float32/float64, C-contiguous, OUT: the feature row
    C2, cn : prepared centers (:func:`.assign.prepare_centers`), X's dtype, IN
    problems : (n_num, 3) int64, OUT: per numeric feature, as :func:`.transform.apply_numeric`
        counts them: ``[nulls without imputation, NaN or infinite values, negative values
        under log1p]``
    bits : (ceil(n_num / 8),) uint8, OUT: scratch (the validity bitmap of the values)
    scratch : (dp + 6, TILE) X's dtype, ``dp = C2.shape[1]``, INOUT: the assignment's tile
        (first ``dp`` rows: zero when made, and only column 0 of the first ``d`` rows is ever
        written, so the padding stays zero) and its five accumulators and NaN check
    best_l : (TILE,) int32, OUT: scratch of the assignment's labels
    want_cluster : bool, False to transform only

    Returns
    -------
    status : int
        -1 when a feature had a problem (see ``problems``; nothing assigned), 1 when the row's
        arithmetic failed in the assignment (see :func:`.assign.assign_rows`), else 0
    label : int
        The nearest center (0 unless assigned)
    distance : float
        The distance to it in X's dtype (the square root of the squared distance, clipped at
        0, as the batch path takes it), widened to float64; 0 unless assigned
    """
    for j in range(bits.shape[0]):
        bits[j] = 0
    for j in range(n_num):
        if inputs[n_num + j] != 0.0:
            bits[j >> 3] |= np.uint8(1 << (j & 7))
        if iparams[j, I_FLOAT32] != 0:
            inputs[j] = np.float32(inputs[j])  # round to nearest even; beyond float32: infinite
    problems[:, :] = 0
    for j in range(n_num):
        apply_numeric(inputs[j:j + 1], bits, j, 0, 1, fparams[j, F_IMPUTE], iparams[j, I_HAS_IMPUTE] != 0,
                      iparams[j, I_LOG1P] != 0, fparams[j, F_CLIP_LO], fparams[j, F_CLIP_HI],
                      iparams[j, I_USE_CLIP] != 0, fparams[j, F_CENTER], fparams[j, F_SCALE],
                      iparams[j, I_COL], iparams[j, I_INDICATOR], X, problems[j])
    base = 2 * n_num
    for b in range(onehot.shape[0]):
        first = onehot[b, 0]
        for c in range(first, first + onehot[b, 1]):
            X[0, c] = 0.0
        X[0, np.int64(inputs[base + b])] = 1.0
    for j in range(n_num):
        if problems[j, 0] + problems[j, 1] + problems[j, 2] > 0:
            return -1, np.int64(0), 0.0
    if not want_cluster:
        return 0, np.int64(0), 0.0
    # assign_rows's steps for one row, on the caller's scratch instead of a fresh tile (it
    # allocates eight arrays per call): the same kernels, so the same bits
    dp = C2.shape[1]
    tile = scratch[:dp]
    a0, a1, a2, a3 = scratch[dp], scratch[dp + 1], scratch[dp + 2], scratch[dp + 3]
    best_d, chk = scratch[dp + 4], scratch[dp + 5]
    _fill_tile(X, 0, 1, tile)
    _tile_argmin(tile, C2, cn, a0, a1, a2, a3, best_d, best_l, chk)
    _add_row_norms(tile, X.shape[1], best_d)
    v = best_d[0]  # NaN, an infinity or an overflow leaves the best value non-finite
    bad = 1 if (not (v > -np.inf and v < np.inf) or chk[0] != chk[0]) else 0
    if v < 0:  # rounding of the expanded form, as assign_rows clips it
        v = 0
    # the batch path takes np.sqrt of the squared distance in the model's dtype; sqrt is
    # correctly rounded in IEEE arithmetic, so computing it here in that dtype gives its bits
    best_d[0] = v
    best_d[0] = np.sqrt(best_d[0])
    return bad, np.int64(best_l[0]), np.float64(best_d[0])
