"""Slow, obviously correct twins of the clustering kernels (plain Python / NumPy)."""
import numpy as np


def sq_distances(X, C):
    """(n, k) squared distances, computed directly in float64."""
    X = np.asarray(X, dtype=np.float64)
    C = np.asarray(C, dtype=np.float64)
    return ((X[:, None, :] - C[None, :, :]) ** 2).sum(axis=2)


def assign(X, C):
    """Nearest center (lowest index on ties) and its squared distance."""
    D = sq_distances(X, C)
    labels = np.argmin(D, axis=1) if len(X) else np.zeros(0, dtype=np.int64)
    return labels, D[np.arange(len(X)), labels] if len(X) else np.zeros(0)


def lloyd_sums(X, w, labels, k):
    d = X.shape[1]
    sums = np.zeros((k, d))
    wsums = np.zeros(k)
    for i in range(len(X)):
        sums[labels[i]] += w[i] * X[i].astype(np.float64)
        wsums[labels[i]] += w[i]
    return sums, wsums


def minibatch_update(Xb, w, labels, centers, counts):
    centers = centers.astype(np.float64).copy()
    counts = counts.copy()
    moved = 0.0
    for c in range(len(centers)):
        mine = labels == c
        bw = w[mine].sum()
        if bw > 0:
            new = (centers[c] * counts[c] + (w[mine, None] * Xb[mine]).sum(axis=0)) / (counts[c] + bw)
            moved += ((new - centers[c]) ** 2).sum()
            centers[c] = new
            counts[c] += bw
    return centers, counts, moved


def trial_potentials(X, w, closest, candidates):
    out_d = np.empty((len(candidates), len(X)))
    pots = np.empty(len(candidates))
    for t, c in enumerate(candidates):
        d = ((X.astype(np.float64) - X[c].astype(np.float64)) ** 2).sum(axis=1)
        out_d[t] = np.minimum(d, closest)
        pots[t] = (w * out_d[t]).sum()
    return out_d, pots


def inertia(X, C, w=None):
    _, d = assign(X, C)
    return float(d.sum() if w is None else (w * d).sum())


def distances(X, C):
    """(n, k) Euclidean distances, each difference taken first (0 for a row equal to a center)."""
    return np.sqrt(sq_distances(X, C))


def count_beyond(X, limit):
    """Per feature: values that are NaN or beyond ``limit`` in absolute value."""
    X = np.asarray(X, dtype=np.float64)
    return (~(np.abs(X) <= limit)).sum(axis=0)
