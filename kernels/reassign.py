"""Moving empty clusters after a Lloyd pass.

A center that received no weight is moved onto a far row (the caller picks the rows with the
largest distance to their centers, largest first), and that row's weight moves from its old
center's sums to the empty one's, so the next centers are consistent with the move.
"""
from .settings import kernel


@kernel
def relocate_empty(far_rows, far_weights, far_labels, empty, sums, wsums):
    """Give each empty center one far row.

    Parameters
    ----------
    far_rows : (m, d) float32/float64, IN: the rows chosen for the m empty centers, farthest first
    far_weights : (m,) float64, IN: their weights
    far_labels : (m,) int32, IN: the center each row was assigned to
    empty : (m,) int64, IN: the empty centers, in the order they are filled
    sums : (k, d) float64, INOUT: per-center weighted sums of the pass
    wsums : (k,) float64, INOUT: per-center weights of the pass
    """
    m, d = far_rows.shape
    for e in range(m):
        target = empty[e]
        source = far_labels[e]
        w = far_weights[e]
        if wsums[source] - w <= 0:
            continue  # would empty another center: leave this one for the next pass
        for j in range(d):
            v = w * far_rows[e, j]
            sums[target, j] = v
            sums[source, j] -= v
        wsums[target] = w
        wsums[source] -= w
