"""Clustering hot paths, each beside its peer on the same data in the same run.

Data: the synthetic customers' 16 numeric features (imputed, log-scaled, standardised), float32,
``n`` rows by ``--size`` (small 100k, medium 1M, large 10M). Quality figures (inertia, relative
inertia against scikit-learn's KMeans, label agreement) sit in ``extra_info`` beside each time.
Compilation and data generation happen before timing.
"""
import time

import numpy as np
import pytest

import segmint
from segmint.cluster._passes import prepare
from segmint.cluster.init import kmeans_plusplus
from segmint.datasets import customer_features
from segmint.kernels.assign import assign_rows
from segmint.kernels.minibatch import minibatch_update
from conftest import record

K = 8


@pytest.fixture(scope="module")
def features(n_customers):
    X, names, truth = customer_features(n_customers, seed=0)
    return X


@pytest.fixture(scope="module")
def warm():
    segmint.warmup()


@pytest.fixture(scope="module")
def sklearn_kmeans(features):
    """scikit-learn's KMeans fitted once: the quality reference and the predict peer."""
    sk = pytest.importorskip("sklearn.cluster")
    t = time.perf_counter()
    model = sk.KMeans(n_clusters=K, n_init=1, random_state=0).fit(features)
    return model, time.perf_counter() - t


# -- assignment kernel ------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("k", [8, 64, 256, 1024])
def test_assign(benchmark, features, warm, k, dtype):
    X = features[: max(len(features) // (k // 8), 10_000)].astype(dtype)  # fixed work: n*k constant
    rng = np.random.default_rng(0)
    C = X[rng.choice(len(X), k, replace=False)].copy()
    model = segmint.KMeans(n_clusters=k, init=C, max_iter=1)
    model.cluster_centers_, model.n_features_in_ = C, X.shape[1]
    labels = benchmark(model.predict, X)
    record(benchmark, rows=len(X), k=k, dtype=np.dtype(dtype).name,
           distance_evals=len(X) * k, mean_label=float(labels.mean()))


def test_minibatch_step(benchmark, features, warm):
    rng = np.random.default_rng(0)
    Xb = features[rng.integers(0, len(features), 8192)]
    centers = features[:K].copy()
    C2, cn = prepare(centers)
    labels = np.empty(len(Xb), np.int32)
    dist = np.empty(len(Xb), np.float32)
    counts = np.zeros(K)

    def step():
        assign_rows(Xb, 0, len(Xb), C2, cn, labels, 0, dist, 0, True)
        return minibatch_update(Xb, np.empty(0, np.float32), labels, centers, counts)

    benchmark(step)
    record(benchmark, batch_size=len(Xb), k=K, batch_inertia=float(dist.sum()))


def test_kmeanspp_init(benchmark, features, warm):
    sample = features[: min(len(features), 24_576)]

    def run():
        return kmeans_plusplus(sample, K, np.random.default_rng(0))[0]

    centers = benchmark(run)
    inertia = float(((sample[:, None, :] - centers[None]) ** 2).sum(-1).min(1).sum())
    record(benchmark, sample_rows=len(sample), k=K, sample_inertia=inertia)


# -- fit and predict, with peers ----------------------------------------------------------------
def test_minibatch_fit(benchmark, features, warm, request):
    model = segmint.MiniBatchKMeans(n_clusters=K, batch_size=8192, random_state=0)
    benchmark.pedantic(model.fit, args=(features,), rounds=3, iterations=1)
    info = dict(rows=len(features), k=K, inertia=model.inertia_, steps=model.n_steps_)
    try:
        ref, ref_time = request.getfixturevalue("sklearn_kmeans")
        info.update(sklearn_kmeans_inertia=ref.inertia_, sklearn_kmeans_fit_s=ref_time,
                    inertia_vs_sklearn_kmeans=model.inertia_ / ref.inertia_ - 1)
    except pytest.skip.Exception:
        pass
    record(benchmark, **info)


def test_kmeans_fit(benchmark, features, warm):
    model = segmint.KMeans(n_clusters=K, random_state=0)
    benchmark.pedantic(model.fit, args=(features,), rounds=1, iterations=1)
    record(benchmark, rows=len(features), k=K, inertia=model.inertia_, n_iter=model.n_iter_)


@pytest.mark.parametrize("k", [8, 256])
def test_predict(benchmark, features, warm, k):
    model = segmint.MiniBatchKMeans(n_clusters=k, batch_size=8192, random_state=0, max_iter=1).fit(features)
    labels = benchmark(model.predict, features)
    record(benchmark, rows=len(features), k=k, inertia=model.inertia_, mean_label=float(labels.mean()))


def test_peer_sklearn_kmeans_fit(benchmark, features):
    sk = pytest.importorskip("sklearn.cluster")
    model = sk.KMeans(n_clusters=K, n_init=1, random_state=0)
    benchmark.pedantic(model.fit, args=(features,), rounds=1, iterations=1)
    record(benchmark, rows=len(features), k=K, inertia=float(model.inertia_), n_iter=int(model.n_iter_))


def test_peer_sklearn_minibatch_step(benchmark, features):
    """scikit-learn's MiniBatchKMeans per step (its fit does not converge quickly at 10M rows)."""
    sk = pytest.importorskip("sklearn.cluster")
    model = sk.MiniBatchKMeans(n_clusters=K, batch_size=8192, random_state=0, n_init=1)
    rng = np.random.default_rng(0)
    model.partial_fit(features[rng.integers(0, len(features), 8192)])
    batches = [features[rng.integers(0, len(features), 8192)] for _ in range(5)]
    benchmark(lambda: [model.partial_fit(b) for b in batches])
    record(benchmark, steps_per_round=5, batch_size=8192, k=K)


@pytest.mark.parametrize("k", [8, 256])
def test_peer_sklearn_predict(benchmark, features, k):
    sk = pytest.importorskip("sklearn.cluster")
    init = features[np.random.default_rng(0).choice(len(features), k, replace=False)]
    model = sk.KMeans(n_clusters=k, init=init, n_init=1, max_iter=1).fit(features[:50_000])
    benchmark(model.predict, features)
    record(benchmark, rows=len(features), k=k)


def test_peer_faiss_kmeans(benchmark, features, request):
    faiss = pytest.importorskip("faiss")
    X = np.ascontiguousarray(features, dtype=np.float32)

    def run():
        km = faiss.Kmeans(X.shape[1], K, niter=20, seed=1, verbose=False)
        km.train(X)
        return km

    km = benchmark.pedantic(run, rounds=1, iterations=1)
    D, _ = km.index.search(X, 1)
    info = dict(rows=len(X), k=K, inertia=float(D.sum(dtype=np.float64)))
    try:
        ref, _ = request.getfixturevalue("sklearn_kmeans")
        info["inertia_vs_sklearn_kmeans"] = info["inertia"] / ref.inertia_ - 1
    except pytest.skip.Exception:
        pass
    record(benchmark, **info)


def test_peer_faiss_search(benchmark, features):
    faiss = pytest.importorskip("faiss")
    X = np.ascontiguousarray(features, dtype=np.float32)
    index = faiss.IndexFlatL2(X.shape[1])
    index.add(X[:K])
    benchmark(index.search, X, 1)
    record(benchmark, rows=len(X), k=K)


# -- scaling ------------------------------------------------------------------------------------
def test_scaling_is_linear(benchmark, features, warm):
    """fit and predict on n/10 and n rows: the ratio of times should be about 10."""
    n = len(features)
    small = features[: n // 10]
    times = {}
    for name, X in (("tenth", small), ("full", features)):
        model = segmint.MiniBatchKMeans(n_clusters=K, batch_size=8192, random_state=0, max_iter=1,
                                        max_no_improvement=None)
        # a fixed number of steps (one pass over n/10 rows): fit work = steps + one full pass
        t = time.perf_counter()
        model.fit(X)
        fit_s = time.perf_counter() - t
        t = time.perf_counter()
        model.predict(X)
        times[name] = (fit_s, time.perf_counter() - t)
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)
    fit_ratio = times["full"][0] / times["tenth"][0]
    predict_ratio = times["full"][1] / times["tenth"][1]
    record(benchmark, rows_tenth=n // 10, rows_full=n, fit_time_ratio=fit_ratio,
           predict_time_ratio=predict_ratio,
           verdict=f"10x rows -> fit {fit_ratio:.1f}x, predict {predict_ratio:.1f}x (linear is 10x)")
