"""Choosing k: segmint's ``sweep_k`` beside the same sweep written with scikit-learn.

Data: the synthetic customers' 16 numeric features (imputed, log-scaled, standardised: the
fixture of ``bench_cluster.py``), float32, ``n`` rows by ``--size``. segmint's sweep reads them as
a table (its timed work includes fitting and applying the feature spec, which passes them
through unchanged: ``scale`` None) and sweeps every row. The peer is what a scikit-learn user
writes: per k and seed ``KMeans(n_clusters=k, n_init=1, random_state=seed)``, then
``calinski_harabasz_score``, ``davies_bouldin_score``, ``silhouette_score(sample_size=...,
random_state=seed)`` and the adjusted Rand index between the seeds' labelings, on
``min(n, PEER_ROWS)`` rows (1M: scikit-learn's sweep of 10M rows takes the better part of an
hour), with threadpoolctl holding it to segmint's threads.

Work: k = 2..12, 3 seeds each, a silhouette sample of 10,000 rows. At ``--size small`` (what
CI runs, untimed, so the benchmark never rots) k = 2..4 and a sample of 2,000 rows keep both
sides to a few seconds.

Groups: ``sweep`` pairs both on the same rows (all of them up to 1M, else the same random 1M:
equal work); ``sweep[all rows]`` times ours alone on
every row, the issue's 10M target (at smaller sizes it repeats the paired work).

Quality: the inertia per row (mean over k; one value per seed, so the median and worst over
seeds are recorded), lower is better; the suggested k (segmint's elbow rule on each side's
median inertia) is recorded beside it.
"""
import numpy as np
import pyarrow as pa
import pytest

import segmint
from segmint.datasets import customer_features
from segmint.explain.elbow import find_elbow
from conftest import compare, record, sklearn_threads

GROUP = "sweep"
SEEDS = (0, 1, 2)  # the sweep's own seeds (n_seeds=3, random_state=0)
PEER_ROWS = 1_000_000
QUALITY = "inertia per row (mean over k)"


def _work(size):
    """(ks, silhouette sample size) for the benchmark size."""
    if size == "small":
        return list(range(2, 5)), 2_000
    return list(range(2, 13)), 10_000


@pytest.fixture(scope="module")
def customers(n_customers):
    X, names, _ = customer_features(n_customers, random_state=0)
    return X, names


@pytest.fixture(scope="module")
def warm():
    from segmint.explain.sweep import sweep_k
    segmint.warmup()
    # the metrics kernels compile on first use: a tiny sweep, untimed
    X = np.random.default_rng(0).normal(size=(3000, 16)).astype(np.float32)
    table = pa.table({f"f{j}": X[:, j] for j in range(16)})
    sweep_k(table, features=[{"column": f"f{j}", "scale": None} for j in range(16)], ks=[2, 3], n_seeds=2,
            sample_size=500, n_bootstrap=10)


def _per_seed_inertia(rows, n):
    """Per seed, the mean over k of the inertia per row."""
    return [float(np.mean([r["inertia"] for r in rows if r["seed"] == s])) / n for s in SEEDS]


def _sample(X):
    """The rows both sides sweep in the paired group: all of them up to PEER_ROWS, else a sorted
    random sample of PEER_ROWS rows (the same for both)."""
    if len(X) <= PEER_ROWS:
        return X
    return X[np.sort(np.random.default_rng(0).choice(len(X), PEER_ROWS, replace=False))]


def _run_ours(benchmark, X, names, ks, sample_size):
    from segmint.explain.sweep import sweep_k
    table = pa.table({name: X[:, j] for j, name in enumerate(names)})
    spec = [{"column": name, "scale": None} for name in names]
    result = benchmark.pedantic(sweep_k, args=(table,), kwargs=dict(
        features=spec, ks=ks, n_seeds=len(SEEDS), random_state=SEEDS[0], sample_size=sample_size),
        rounds=1, iterations=1)
    rows = result.table.to_pylist()
    record(benchmark, quality=(QUALITY, _per_seed_inertia(rows, len(X)), "lower"), rows=len(X),
           ks=f"{ks[0]}..{ks[-1]}", seeds=len(SEEDS), sample_size=sample_size,
           suggested_k=result.suggested_k if result.suggested_k is not None else 0,
           seconds_features=result.timings["features"], seconds_fit=result.timings["fit"],
           seconds_metrics=result.timings["metrics"], seconds_silhouette=result.timings["silhouette"],
           seconds_stability=result.timings["stability"])


def test_sweep_all_rows(benchmark, customers, warm, request):
    """The issue's target: every row (10M at --size large) in <= 30 s. Ours alone: the peer's
    sweep of 10M rows takes the better part of an hour, so the pairing is the group below."""
    X, names = customers
    ks, sample_size = _work(request.config.getoption("--size"))
    compare(benchmark, f"{GROUP}[all rows]")
    _run_ours(benchmark, X, names, ks, sample_size)


def test_sweep(benchmark, customers, warm, request):
    """Paired with scikit-learn on the same rows (at most PEER_ROWS)."""
    X, names = customers
    ks, sample_size = _work(request.config.getoption("--size"))
    compare(benchmark, GROUP)
    _run_ours(benchmark, _sample(X), names, ks, sample_size)


def _sklearn_sweep(X, ks, sample_size):
    from sklearn.cluster import KMeans
    from sklearn.metrics import (adjusted_rand_score, calinski_harabasz_score, davies_bouldin_score,
                                 silhouette_score)
    rows, stability = [], {}
    for k in ks:
        labelings = []
        for seed in SEEDS:
            km = KMeans(n_clusters=k, n_init=1, random_state=seed).fit(X)
            labels = km.labels_
            rows.append(dict(k=k, seed=seed, inertia=float(km.inertia_),
                             calinski_harabasz=calinski_harabasz_score(X, labels),
                             davies_bouldin=davies_bouldin_score(X, labels),
                             silhouette=silhouette_score(X, labels, sample_size=min(sample_size, len(X)),
                                                         random_state=seed)))
            labelings.append(labels)
        pairs = [adjusted_rand_score(labelings[i], labelings[j])
                 for i in range(len(SEEDS)) for j in range(i + 1, len(SEEDS))]
        stability[k] = float(np.mean(pairs))
    return rows, stability


def test_peer_sklearn_sweep(benchmark, customers, request):
    pytest.importorskip("sklearn")
    X, _ = customers
    ks, sample_size = _work(request.config.getoption("--size"))
    Xp = _sample(X)
    rows_used = len(Xp)
    with sklearn_threads() as threads:
        compare(benchmark, GROUP, impl="sklearn", threads=threads)
        rows, _ = benchmark.pedantic(_sklearn_sweep, args=(Xp, ks, sample_size), rounds=1, iterations=1)
    medians = [float(np.median([r["inertia"] for r in rows if r["k"] == k])) for k in ks]
    suggested, _ = find_elbow(ks, medians)
    note = "" if rows_used == len(X) else f"on a random sample of {rows_used:,} of the {len(X):,} rows"
    record(benchmark, quality=(QUALITY, _per_seed_inertia(rows, rows_used), "lower"), rows=rows_used,
           ks=f"{ks[0]}..{ks[-1]}", seeds=len(SEEDS), sample_size=sample_size,
           suggested_k=suggested if suggested is not None else 0, quality_note=note)
