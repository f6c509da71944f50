"""Mini-batch k-means update (Sculley 2010), weighted, with per-center counts.

Each center moves toward the mean of the batch rows assigned to it with a learning rate of
(batch weight of the center) / (all weight the center has seen), which is Sculley's
per-sample rate 1/count applied to a whole batch at once (as scikit-learn does).
"""
import numpy as np

from .scratch import zeros
from .settings import kernel


@kernel
def minibatch_update(Xb, weights, labels, centers, weight_sums):
    """Move the centers toward their batch rows.

    Parameters
    ----------
    Xb : (b, d) float32/float64, any layout, IN: the batch
    weights : (b,) same dtype, or empty for unit weights, IN
    labels : (b,) int32, IN: nearest center of each batch row (from ``assign_rows``)
    centers : (k, d) same dtype, INOUT: moved in place
    weight_sums : (k,) float64, INOUT: total weight each center has seen; the batch's is added

    Returns
    -------
    float
        Sum over centers of the squared distance each center moved (float64).
    """
    b, d = Xb.shape
    k = centers.shape[0]
    unit = weights.shape[0] == 0
    sums = zeros((k, d), np.float64)
    batch_w = zeros(k, np.float64)
    for i in range(b):
        lab = labels[i]
        w = 1.0 if unit else weights[i]
        batch_w[lab] += w
        for j in range(d):
            sums[lab, j] += w * Xb[i, j]
    moved = 0.0
    for c in range(k):
        if batch_w[c] > 0:
            old = weight_sums[c]
            new = old + batch_w[c]
            for j in range(d):
                updated = (centers[c, j] * old + sums[c, j]) / new
                delta = updated - centers[c, j]
                moved += delta * delta
                centers[c, j] = updated
            weight_sums[c] = new
    return moved
