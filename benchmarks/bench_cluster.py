"""Clustering hot paths, each beside its peer on the same data in the same run.

Data: the synthetic customers' 16 numeric features (imputed, log-scaled, standardised), float32,
``n`` rows by ``--size`` (small 100k, medium 1M, large 10M). Every group (``compare``) gives all
its implementations the same rows, the same centers or the same starting point; quality figures
are computed the same way for each (in float64, by ``conftest.nearest_float64``), from results
that do not depend on how many rounds the timer ran. Compilation and data generation happen
before timing.

Groups: ``assign[k=..,dtype]`` (nearest center for given centers: segmint ``predict``,
scikit-learn ``predict``, faiss ``IndexFlatL2.search``; k from 2 to 4096 on fixed work of
``n * 8`` rows x centers, so k=4096 runs ``n / 512`` rows, at least 10,000, and k=2 all n rows;
at k <= 8 ours also records the memory-bandwidth floor: the time of one pass that only reads
the rows, measured beside it with the same threads), ``predict[k=..]`` (a fitted model's
centers), ``minibatch_step_kernel`` and ``partial_fit`` (one and five mini-batch steps),
``kmeans++[k=..]`` (seeding), ``fit[k=8]`` (MiniBatchKMeans beside scikit-learn's and faiss),
``fit_lloyd[k=8]`` (KMeans beside scikit-learn's), ``scaling``.

Peers run on segmint's thread count (scikit-learn through threadpoolctl, faiss through its
OpenMP switch; ``conftest.THREADS``). The fit benchmarks time one fit of seed 0; their quality
is the full-data inertia of fits over the five seeds of ``conftest.SEEDS`` (median and worst),
fitted outside the timed region, the seed-0 fit reused from the timed one. At ``--size large``
that is four more fits each: about 2 s for segmint's, about 40 s for scikit-learn's KMeans;
scikit-learn's MiniBatchKMeans takes minutes per fit on 10M rows, so its seed fits use a random
sample of ``QUALITY_FIT_ROWS`` rows when there are more (their inertia is still over all rows,
and ``extra_info`` says so).
"""
import time

import numba
import numpy as np
import pytest

import segmint
from segmint._parallel import chunk_bounds, run_chunks
from segmint.cluster._matrix import kernel_layout
from segmint.cluster._passes import no_sums, prepare
from segmint.cluster.init import kmeans_plusplus
from segmint.datasets import customer_features
from segmint.kernels.assign import assign_rows
from segmint.kernels.minibatch import minibatch_update
from conftest import (SEEDS, compare, faiss_threads, inertia_float64, nearest_float64, record,
                      sklearn_threads)

K = 8
BATCH = 8192
ASSIGN_KS = (2, 8, 64, 256, 1024, 4096)
FLOOR_KS = (2, 8)  # memory-bound: the bandwidth floor is recorded beside these
DTYPES = (np.float32, np.float64)
AGREEMENT = "label agreement with float64"
INERTIA = "inertia (float64, all rows)"
QUALITY_FIT_ROWS = 1_000_000  # rows scikit-learn's MiniBatchKMeans seed fits use, at most


@pytest.fixture(scope="module")
def features(n_customers):
    X, names, truth = customer_features(n_customers, random_state=0)
    return X


@pytest.fixture(scope="module")
def warm():
    segmint.warmup()


def _assigned_inertia(X, centers, labels, block=1 << 20):
    """Float64 sum of squared distances of each row to the center it was given."""
    C = np.asarray(centers, dtype=np.float64)
    total = 0.0
    for lo in range(0, len(X), block):
        diff = np.asarray(X[lo:lo + block], dtype=np.float64) - C[labels[lo:lo + block]]
        total += float(np.einsum("ij,ij->", diff, diff))
    return total


def _label_quality(case, labels):
    """Agreement with the float64 reference (the quality figure) and the inertia it costs."""
    labels = np.asarray(labels).ravel()
    agreement = float(np.mean(labels == case["ref_labels"]))
    excess = _assigned_inertia(case["X"], case["C"], labels) / case["ref_inertia"] - 1
    return agreement, excess


# -- assignment: k = 8 .. 1024, float32 and float64 ----------------------------------------------
_ref_cache = {}


@pytest.fixture(scope="module", params=[(k, np.dtype(dt).name) for k in ASSIGN_KS for dt in DTYPES],
                ids=[f"k{k}-{np.dtype(dt).name}" for k in ASSIGN_KS for dt in DTYPES])
def assign_case(request, features):
    """Rows, centers and the float64 reference for one (k, dtype).

    Module-scoped and parametrised, so pytest runs ours and the peers of one case together
    and frees the case before the next (at 10M rows a float64 copy is 1.3 GB).
    """
    k, dtype = request.param
    # fixed work: rows * k is the same for every k >= 8 (n * 8), with at least 10,000 rows
    m = min(len(features), max(len(features) // max(k // 8, 1), 10_000))
    if k not in _ref_cache:  # the float64 copy holds the same values: one reference per k
        X = features[:m]
        C = X[np.random.default_rng(0).choice(m, k, replace=False)]
        labels, dist = nearest_float64(X, C)
        _ref_cache.clear()
        _ref_cache[k] = (C, labels, float(dist.sum()))
    C, ref_labels, ref_inertia = _ref_cache[k]
    return dict(k=k, dtype=dtype, X=features[:m].astype(dtype), C=C.astype(dtype),
                ref_labels=ref_labels, ref_inertia=ref_inertia, group=f"assign[k={k},{dtype}]")


def _record_assign(benchmark, case, labels, **info):
    agreement, excess = _label_quality(case, labels)
    record(benchmark, quality=(AGREEMENT, agreement, "higher"), rows=len(case["X"]), k=case["k"],
           dtype=case["dtype"], distance_evals=len(case["X"]) * case["k"], inertia_excess=excess, **info)


@numba.njit(nogil=True, fastmath=True)
def _read_values(flat, lo, hi):
    s = flat[lo] - flat[lo]  # in the data's dtype: the loop vectorises to plain loads and adds
    for i in range(lo, hi):
        s += flat[i]
    return s


def bandwidth_floor(X, repeat=9):
    """Median seconds of one pass that only reads every value of the C-ordered X, on segmint's
    threads in chunks of 65,536 rows (what any assignment must at least do), and the values read
    per second: the floor a memory-bound assignment (small k) can approach."""
    flat = X.reshape(-1)
    bounds = chunk_bounds(flat.size, 65_536 * X.shape[1])
    run_chunks(lambda b: _read_values(flat, *b), bounds)  # compiled and paged in before timing
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        run_chunks(lambda b: _read_values(flat, *b), bounds)
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def test_assign(benchmark, assign_case, warm):
    compare(benchmark, assign_case["group"])
    X, C = assign_case["X"], assign_case["C"]
    model = segmint.KMeans(n_clusters=len(C), init=C, max_iter=1)
    model.cluster_centers_, model.n_features_in_ = C, X.shape[1]
    model.predict(X[:256])  # compiled for this dtype and layout before timing
    labels = benchmark(model.predict, X)
    info = {}
    if assign_case["k"] in FLOOR_KS:
        floor = bandwidth_floor(X)
        info.update(bandwidth_floor_ms=floor * 1e3, bandwidth_floor_gb_s=X.nbytes / floor / 1e9)
        stats = getattr(benchmark, "stats", None)
        if stats is not None and getattr(stats, "stats", None) is not None:
            info["time_over_floor"] = float(stats.stats.median) / floor
    _record_assign(benchmark, assign_case, labels, mean_label=float(labels.mean()), **info)


def test_peer_sklearn_assign(benchmark, assign_case):
    sk = pytest.importorskip("sklearn.cluster")
    X, C = assign_case["X"], assign_case["C"]
    # fitted on the centers themselves: a valid fitted model, no empty clusters
    model = sk.KMeans(n_clusters=len(C), init=C, n_init=1, max_iter=1).fit(C)
    model.cluster_centers_ = C.copy()  # predict with exactly the given centers
    with sklearn_threads() as threads:
        compare(benchmark, assign_case["group"], impl="sklearn", threads=threads)
        labels = benchmark(model.predict, X)
    _record_assign(benchmark, assign_case, labels)


def test_peer_faiss_assign(benchmark, assign_case):
    faiss, threads = faiss_threads()
    compare(benchmark, assign_case["group"], impl="faiss", threads=threads)
    X, C = assign_case["X"], assign_case["C"]
    index = faiss.IndexFlatL2(X.shape[1])
    index.add(np.ascontiguousarray(C, dtype=np.float32))

    def run():
        # faiss searches float32 only: converting float64 rows is part of its work
        return index.search(np.ascontiguousarray(X, dtype=np.float32), 1)[1]

    labels = benchmark(run)
    note = "float64 rows converted to float32 inside the timed call" if X.dtype != np.float32 else ""
    _record_assign(benchmark, assign_case, labels, note=note)


# -- predict with a fitted model's centers ------------------------------------------------------
@pytest.fixture(scope="module", params=[8, 256], ids=lambda k: f"k{k}")
def fitted(request, features, warm):
    k = request.param
    model = segmint.MiniBatchKMeans(n_clusters=k, batch_size=BATCH, random_state=0, max_iter=1).fit(features)
    labels, dist = nearest_float64(features, model.cluster_centers_)
    return dict(k=k, model=model, X=features, C=model.cluster_centers_, ref_labels=labels,
                ref_inertia=float(dist.sum()), group=f"predict[k={k}]")


def test_predict(benchmark, fitted):
    compare(benchmark, fitted["group"])
    model, X = fitted["model"], fitted["X"]
    model.predict(X[:256])
    labels = benchmark(model.predict, X)
    agreement, _ = _label_quality(fitted, labels)
    record(benchmark, quality=(AGREEMENT, agreement, "higher"), rows=len(X), k=fitted["k"],
           inertia=model.inertia_, mean_label=float(labels.mean()))


def test_peer_sklearn_predict(benchmark, fitted):
    sk = pytest.importorskip("sklearn.cluster")
    X, C = fitted["X"], fitted["C"]
    # fitted on the centers themselves: a valid fitted model, no empty clusters
    model = sk.KMeans(n_clusters=len(C), init=C, n_init=1, max_iter=1).fit(C)
    model.cluster_centers_ = C.copy()  # the same centers as ours
    with sklearn_threads() as threads:
        compare(benchmark, fitted["group"], impl="sklearn", threads=threads)
        labels = benchmark(model.predict, X)
    agreement, _ = _label_quality(fitted, labels)
    record(benchmark, quality=(AGREEMENT, agreement, "higher"), rows=len(X), k=fitted["k"])


# -- one mini-batch step ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def minibatch_data(features):
    """Five batches of BATCH rows, K starting centers, and rows to score the result on."""
    rng = np.random.default_rng(0)
    n = len(features)
    batches = [features[rng.integers(0, n, BATCH)] for _ in range(5)]
    start = features[rng.choice(n, K, replace=False)]
    holdout = features[rng.integers(0, n, min(n, 65_536))]
    return batches, start, holdout


def test_minibatch_step(benchmark, minibatch_data, warm):
    """The kernels of one step: assign the batch, move the centers (what partial_fit wraps)."""
    compare(benchmark, f"minibatch_step_kernel[b={BATCH},k={K}]")
    batches, start, holdout = minibatch_data
    Xb = batches[0]
    labels = np.empty(len(Xb), np.int32)
    dist = np.empty(len(Xb), np.float32)

    def fresh():  # every round starts from the same centers: fixed work, a repeatable result
        return (start.copy(), np.zeros(K)), {}

    def step(centers, counts):
        C2, cn = prepare(centers)
        assign_rows(*kernel_layout(Xb), 0, len(Xb), C2, cn, labels, 0, dist, 0, True, *no_sums(Xb))
        minibatch_update(Xb, np.empty(0, np.float32), labels, centers, counts)
        return centers

    step(*fresh()[0])
    centers = benchmark.pedantic(step, setup=fresh, rounds=200, iterations=1)
    record(benchmark, quality=("holdout inertia after the step", inertia_float64(holdout, centers), "lower"),
           batch_size=len(Xb), k=K, batch_inertia=float(dist.sum(dtype=np.float64)))


def _five_steps(model, batches):
    for b in batches:
        model.partial_fit(b)
    return model


def test_minibatch_partial_fit(benchmark, minibatch_data, warm):
    compare(benchmark, f"partial_fit[5x{BATCH},k={K}]")
    batches, start, holdout = minibatch_data

    def fresh():
        return (segmint.MiniBatchKMeans(n_clusters=K, init=start, n_init=1, batch_size=BATCH,
                                        random_state=0), batches), {}

    _five_steps(*fresh()[0])
    model = benchmark.pedantic(_five_steps, setup=fresh, rounds=20, iterations=1)
    record(benchmark, quality=("holdout inertia after 5 steps",
                               inertia_float64(holdout, model.cluster_centers_), "lower"),
           steps_per_round=5, batch_size=BATCH, k=K)


def test_peer_sklearn_minibatch_step(benchmark, minibatch_data):
    """scikit-learn's MiniBatchKMeans per step (its fit does not converge quickly at 10M rows)."""
    sk = pytest.importorskip("sklearn.cluster")
    batches, start, holdout = minibatch_data

    def fresh():
        return (sk.MiniBatchKMeans(n_clusters=K, init=start, n_init=1, batch_size=BATCH,
                                   random_state=0), batches), {}

    with sklearn_threads() as threads:
        compare(benchmark, f"partial_fit[5x{BATCH},k={K}]", impl="sklearn", threads=threads)
        model = benchmark.pedantic(_five_steps, setup=fresh, rounds=20, iterations=1)
    record(benchmark, quality=("holdout inertia after 5 steps",
                               inertia_float64(holdout, model.cluster_centers_), "lower"),
           steps_per_round=5, batch_size=BATCH, k=K)


# -- k-means++ seeding --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def init_sample(features):
    # MiniBatchKMeans's default init_size at batch_size 8192
    return features[: min(len(features), 3 * BATCH)]


@pytest.mark.parametrize("k", [8, 64])
def test_kmeanspp_init(benchmark, init_sample, warm, k):
    compare(benchmark, f"kmeans++[k={k}]")
    kmeans_plusplus(init_sample[:256], k, np.random.default_rng(0))

    def run():
        return kmeans_plusplus(init_sample, k, np.random.default_rng(0))[0]

    centers = benchmark(run)
    potential = inertia_float64(init_sample, centers)
    record(benchmark, quality=("potential", potential, "lower"), sample_rows=len(init_sample), k=k,
           sample_inertia=potential)


@pytest.mark.parametrize("k", [8, 64])
def test_peer_sklearn_kmeanspp_init(benchmark, init_sample, k):
    sk = pytest.importorskip("sklearn.cluster")
    with sklearn_threads() as threads:
        compare(benchmark, f"kmeans++[k={k}]", impl="sklearn", threads=threads)
        centers = benchmark(lambda: sk.kmeans_plusplus(init_sample, k, random_state=0)[0])
    potential = inertia_float64(init_sample, centers)
    record(benchmark, quality=("potential", potential, "lower"), sample_rows=len(init_sample), k=k,
           sample_inertia=potential)


# -- full fits, with peers: one timed fit of seed 0, quality over SEEDS ----------------------------
def _seed_inertias(X, fit, timed_centers=None, fit_rows=None):
    """Full-data float64 inertia of one fit per seed of SEEDS, fitted outside the timed region.

    Parameters
    ----------
    X : (n, d) array, the rows every inertia is computed on
    fit : callable (rows, seed) -> (k, d) centers
    timed_centers : (k, d) array, optional
        The centers of the timed fit (seed 0 on all rows): reused instead of fitting seed 0 again.
    fit_rows : int, optional
        Fit on a fixed random sample of this many rows (when X has more) instead of all rows.
    """
    rows = X
    if fit_rows is not None and len(X) > fit_rows:
        rows = X[np.sort(np.random.default_rng(0).choice(len(X), fit_rows, replace=False))]
        timed_centers = None  # the timed fit saw all rows: not comparable with the sampled ones
    values = []
    for seed in SEEDS:
        centers = timed_centers if seed == SEEDS[0] and timed_centers is not None else fit(rows, seed)
        values.append(inertia_float64(X, centers))
    return values, len(rows)


def _segmint_centers(estimator):
    def fit(rows, seed):
        return estimator.set_params(random_state=seed).fit(rows).cluster_centers_
    return fit


def test_minibatch_fit(benchmark, features, warm):
    compare(benchmark, f"fit[k={K}]")
    model = segmint.MiniBatchKMeans(n_clusters=K, batch_size=BATCH, random_state=SEEDS[0])
    benchmark.pedantic(model.fit, args=(features,), rounds=3, iterations=1)
    info = dict(rows=len(features), k=K, inertia=model.inertia_, steps=model.n_steps_)
    values, fit_rows = _seed_inertias(features, _segmint_centers(
        segmint.MiniBatchKMeans(n_clusters=K, batch_size=BATCH)), model.cluster_centers_)
    record(benchmark, quality=(INERTIA, values, "lower"), quality_fit_rows=fit_rows, **info)


def test_peer_sklearn_minibatch_fit(benchmark, features):
    sk = pytest.importorskip("sklearn.cluster")

    def fit(rows, seed):
        return sk.MiniBatchKMeans(n_clusters=K, batch_size=BATCH, n_init=1, random_state=seed).fit(rows)

    with sklearn_threads() as threads:
        compare(benchmark, f"fit[k={K}]", impl="sklearn.MiniBatchKMeans", threads=threads)
        model = benchmark.pedantic(fit, args=(features, SEEDS[0]), rounds=1, iterations=1)
        values, fit_rows = _seed_inertias(features, lambda rows, seed: fit(rows, seed).cluster_centers_,
                                          model.cluster_centers_, fit_rows=QUALITY_FIT_ROWS)
    note = ("" if fit_rows == len(features) else
            f"seed fits on a random sample of {fit_rows:,} rows (minutes per fit on all rows); "
            "inertia over all rows")
    record(benchmark, quality=(INERTIA, values, "lower"), quality_fit_rows=fit_rows, quality_note=note,
           rows=len(features), k=K, inertia=float(model.inertia_), steps=int(model.n_steps_))


def test_peer_faiss_kmeans(benchmark, features):
    faiss, threads = faiss_threads()
    compare(benchmark, f"fit[k={K}]", impl="faiss.Kmeans", threads=threads)
    X = np.ascontiguousarray(features, dtype=np.float32)

    def fit(rows, seed):
        km = faiss.Kmeans(rows.shape[1], K, niter=20, seed=seed, verbose=False)
        km.train(rows)
        return km

    km = benchmark.pedantic(fit, args=(X, SEEDS[0]), rounds=1, iterations=1)
    values, fit_rows = _seed_inertias(X, lambda rows, seed: fit(rows, seed).centroids, km.centroids)
    # faiss trains on at most k * max_points_per_centroid rows it samples itself (its default)
    train_rows = min(len(X), K * int(km.cp.max_points_per_centroid))
    record(benchmark, quality=(INERTIA, values, "lower"), quality_fit_rows=fit_rows, rows=len(X), k=K,
           train_rows=train_rows, inertia=values[0])


def test_kmeans_fit(benchmark, features, warm):
    compare(benchmark, f"fit_lloyd[k={K}]")
    model = segmint.KMeans(n_clusters=K, random_state=SEEDS[0])
    benchmark.pedantic(model.fit, args=(features,), rounds=1, iterations=1)
    values, fit_rows = _seed_inertias(features, _segmint_centers(segmint.KMeans(n_clusters=K)),
                                      model.cluster_centers_)
    record(benchmark, quality=(INERTIA, values, "lower"), quality_fit_rows=fit_rows,
           rows=len(features), k=K, inertia=model.inertia_, n_iter=model.n_iter_)


def test_peer_sklearn_kmeans_fit(benchmark, features):
    sk = pytest.importorskip("sklearn.cluster")

    def fit(rows, seed):
        return sk.KMeans(n_clusters=K, n_init=1, random_state=seed).fit(rows)

    with sklearn_threads() as threads:
        compare(benchmark, f"fit_lloyd[k={K}]", impl="sklearn", threads=threads)
        model = benchmark.pedantic(fit, args=(features, SEEDS[0]), rounds=1, iterations=1)
        values, fit_rows = _seed_inertias(features, lambda rows, seed: fit(rows, seed).cluster_centers_,
                                          model.cluster_centers_)
    record(benchmark, quality=(INERTIA, values, "lower"), quality_fit_rows=fit_rows,
           rows=len(features), k=K, inertia=float(model.inertia_), n_iter=int(model.n_iter_))


# -- scaling ------------------------------------------------------------------------------------
def test_scaling_is_linear(benchmark, features, warm):
    """fit and predict on n/10 and n rows: the ratio of times should be about 10.

    The timed work is fit + predict on all n rows; the n/10 run is timed by hand beforehand.
    """
    compare(benchmark, "scaling[fit+predict]")
    n = len(features)
    times = {}

    def fit_predict(name, X):
        model = segmint.MiniBatchKMeans(n_clusters=K, batch_size=BATCH, random_state=0, max_iter=1,
                                        max_no_improvement=None)
        # a fixed number of steps (one pass over the rows): fit work = steps + one full pass
        t = time.perf_counter()
        model.fit(X)
        fit_s = time.perf_counter() - t
        t = time.perf_counter()
        model.predict(X)
        times[name] = (fit_s, time.perf_counter() - t)
        return model

    fit_predict("tenth", features[: n // 10])
    model = benchmark.pedantic(fit_predict, args=("full", features), rounds=1, iterations=1)
    fit_ratio = times["full"][0] / times["tenth"][0]
    predict_ratio = times["full"][1] / times["tenth"][1]
    record(benchmark, quality=(INERTIA, inertia_float64(features, model.cluster_centers_), "lower"),
           rows_tenth=n // 10, rows_full=n, fit_time_ratio=fit_ratio, predict_time_ratio=predict_ratio,
           verdict=f"10x rows -> fit {fit_ratio:.1f}x, predict {predict_ratio:.1f}x (linear is 10x)")
