"""Clustering quality of the default fit on every seed, beside scikit-learn's KMeans.

The fit users run, ``segmint.MiniBatchKMeans(n_clusters=8)`` with every other parameter at
its default, against scikit-learn's ``KMeans(n_clusters=8)`` (Lloyd from one k-means++ seeding
on all rows, its default ``n_init``), on the same rows with the same seeds. The timed work is
one fit of seed 0; the quality is the full-data inertia (float64, ``conftest.inertia_float64``)
of one fit per seed of ``conftest.SEEDS`` (median and worst), the seed-0 fit reused from the
timed one. The issue's target: our median within 0.2% and our worst within 0.5% of
scikit-learn's, with a 10M x 16 fit in at most 0.5 s.

Data (groups ``quality_fit[<data>,k=8]``):

- ``customers``: the benchmark customers' 16 features (``segmint.datasets.customer_features``),
  ``n`` rows by ``--size``;
- ``mixture-overlap`` and ``mixture-apart``: Gaussian mixtures of 8 anisotropic components
  (random rotations, axis scales from 0.3 to 3, unequal weights) in 16 dimensions, made by
  :func:`overlapping_mixture`; their means are spread by 2.0 (strong overlap: many local minima
  with inertias several percent apart) and 3.0 (components mostly apart: the global minimum is
  clear and a bad seeding costs tens of percent). ``2 * n`` rows up to ``MIXTURE_ROWS``.

``segmint.batch8192`` is the same default fit with ``batch_size=8192`` (the fit benchmark of
``bench_cluster.py``), so its quality shows beside the default's.
"""
import numpy as np
import pytest

import segmint
from segmint.datasets import customer_features
from conftest import SEEDS, compare, inertia_float64, record, sklearn_threads

K = 8
MIXTURE_ROWS = 2_000_000
INERTIA = "inertia (float64, all rows)"
# name: (spread of the component means, generator seed)
MIXTURES = {"mixture-overlap": (2.0, 0), "mixture-apart": (3.0, 1)}


def overlapping_mixture(n, d=16, k=K, *, spread=2.0, random_state=0, dtype=np.float32):
    """Rows of a Gaussian mixture with ``k`` overlapping, anisotropic components.

    Component means are drawn from N(0, spread^2 I); each component's covariance is
    Q diag(s)^2 Q^T with Q a random rotation and axis scales s log-uniform in [0.3, 3]; the
    component weights are drawn from Dirichlet(3, ..., 3), so sizes differ. With ``spread`` 2
    the components overlap strongly; with 3 they are mostly apart.

    Returns
    -------
    (n, d) array of ``dtype``
    """
    rng = np.random.default_rng(random_state)
    means = rng.normal(0.0, spread, size=(k, d))
    weights = rng.dirichlet(np.full(k, 3.0))
    maps = []
    for _ in range(k):
        rotation, _ = np.linalg.qr(rng.normal(size=(d, d)))
        maps.append(rotation * np.exp(rng.uniform(np.log(0.3), np.log(3.0), size=d)))
    component = rng.choice(k, size=n, p=weights)
    X = np.empty((n, d), dtype=dtype)
    step = 1 << 18  # bounded float64 scratch
    for lo in range(0, n, step):
        comp = component[lo:lo + step]
        z = rng.normal(size=(len(comp), d))
        block = np.empty_like(z)
        for c in range(k):
            mine = comp == c
            block[mine] = z[mine] @ maps[c].T + means[c]
        X[lo:lo + step] = block
    return X


@pytest.fixture(scope="module", params=["customers", *MIXTURES])
def dataset(request, n_customers):
    """(name, rows): module-scoped, so ours and the peer of one data set run together."""
    name = request.param
    if name == "customers":
        return name, customer_features(n_customers, random_state=0)[0]
    spread, seed = MIXTURES[name]
    return name, overlapping_mixture(min(2 * n_customers, MIXTURE_ROWS), spread=spread, random_state=seed)


def _seed_inertias(X, fit, timed_centers):
    """Full-data inertia of one fit per seed of SEEDS (seed 0's from the timed fit)."""
    return [inertia_float64(X, timed_centers if seed == SEEDS[0] else fit(seed)) for seed in SEEDS]


def _segmint(benchmark, dataset, impl, **params):
    name, X = dataset
    compare(benchmark, f"quality_fit[{name},k={K}]", impl=impl)

    def fit(seed):
        return segmint.MiniBatchKMeans(n_clusters=K, random_state=seed, **params).fit(X)

    fit(SEEDS[0])  # compiled and warm before timing: the timed fit is the same call
    model = benchmark.pedantic(fit, args=(SEEDS[0],), rounds=3, iterations=1)
    values = _seed_inertias(X, lambda seed: fit(seed).cluster_centers_, model.cluster_centers_)
    record(benchmark, quality=(INERTIA, values, "lower"), rows=len(X), k=K, steps=model.n_steps_,
           **params)


def test_default_fit(benchmark, dataset):
    _segmint(benchmark, dataset, "segmint")


def test_batch8192_fit(benchmark, dataset):
    _segmint(benchmark, dataset, "segmint.batch8192", batch_size=8192)


def test_peer_sklearn_kmeans(benchmark, dataset):
    sk = pytest.importorskip("sklearn.cluster")
    name, X = dataset

    def fit(seed):
        return sk.KMeans(n_clusters=K, random_state=seed).fit(X)

    with sklearn_threads() as threads:
        compare(benchmark, f"quality_fit[{name},k={K}]", impl="sklearn.KMeans", threads=threads)
        model = benchmark.pedantic(fit, args=(SEEDS[0],), rounds=1, iterations=1)
        values = _seed_inertias(X, lambda seed: fit(seed).cluster_centers_, model.cluster_centers_)
    record(benchmark, quality=(INERTIA, values, "lower"), rows=len(X), k=K, n_iter=int(model.n_iter_))
