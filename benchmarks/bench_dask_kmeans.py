"""Distributed k-means on Dask: segmint.dask beside dask-ml's KMeans on the same LocalCluster.

Data: ``n`` x 16 float32 rows around 16 centers (``n`` by ``--size``: 100k small, 1M medium,
10M large), one dask array of ``CHUNK_ROWS``-row chunks persisted on a LocalCluster of 2 worker
processes with 1 thread each before anything is timed; both implementations read it from there.
Kernels are loaded on every worker (``segmint.dask.warmup``) and one untimed call of each
implementation runs first.

Groups:
- ``dask_fit[k=16,iters=..]``: a fit from the same initial centers, ``tol=0`` and a fixed
  ``max_iter`` (the groups overlap, so both run that many Lloyd iterations: ``n_iter`` in
  ``extra_info``); ``extra_info["per_iteration_s"]`` is the time over the iterations run. Quality: the fit's inertia (float64 over all rows).
- ``dask_lloyd_iteration[k=16]``: one Lloyd pass of ours alone, on blocks already persisted, with
  the overhead over local segmint's ``lloyd_pass`` on the same rows in one process (same thread
  count: 2; the median of 15 paired differences, a local pass right after a distributed one) and
  the target ``5 ms + 1 ms per chunk`` in ``extra_info``.
- ``dask_init[k=16]``: ours (a sample of 100,000 rows gathered from the blocks, greedy k-means++
  on the client) against dask-ml's k-means|| (``init_scalable``, default rounds), one timed round
  per seed of ``conftest.SEEDS``. Quality over those seeds (median and worst): the inertia of the
  initial centers, and in ``extra_info`` that of a fit of ``ITERS`` Lloyd iterations from them
  (the same fit for both: what an init buys is the final clustering).
- ``dask_predict[k=16]``: labels of every row from the same centers, computed to a numpy array.
  Quality: agreement with local segmint's predict (float32 arithmetic may break near-ties
  differently).
"""
import time

import numpy as np
import pytest

import segmint
from conftest import SEEDS, compare, inertia_float64, record

distributed = pytest.importorskip("distributed", reason="needs the dask extra")
da = pytest.importorskip("dask.array")
dask_ml_cluster = pytest.importorskip("dask_ml.cluster", reason="dask-ml is the peer")

from segmint.cluster._matrix import Features  # noqa: E402
from segmint.cluster._passes import lloyd_pass  # noqa: E402
from segmint.cluster.init import kmeans_plusplus  # noqa: E402
from segmint.cluster.kmeans import _init_sample, DEFAULT_INIT_SAMPLE  # noqa: E402
from segmint.dask import cluster as dc  # noqa: E402
from segmint.dask.chunks import CHUNK_ROWS  # noqa: E402
from segmint.dask.data import feature_blocks  # noqa: E402

K = 16
D = 16
ITERS = 10
WORKERS, THREADS_PER_WORKER = 2, 1


@pytest.fixture(scope="module")
def client():
    with distributed.LocalCluster(n_workers=WORKERS, threads_per_worker=THREADS_PER_WORKER, processes=True,
                                  dashboard_address=None, silence_logs=50) as lc, distributed.Client(lc) as c:
        try:
            from segmint.dask.warm import warmup
            warmup(c)
        except ImportError:  # pragma: no cover - before segmint.dask.warmup lands
            c.run(segmint.warmup)
        yield c


@pytest.fixture(scope="module")
def data(client, n_customers):
    rng = np.random.default_rng(0)
    # overlapping groups: Lloyd keeps moving for more than ITERS iterations, so both fits run
    # exactly ITERS (segmint also stops when no label changes, which well-separated data reach early)
    truth = rng.normal(scale=0.7, size=(K, D))
    X = (truth[rng.integers(0, K, size=n_customers)] + rng.normal(size=(n_customers, D))).astype(np.float32)
    darr = da.from_array(X, chunks=(CHUNK_ROWS, D)).persist()
    distributed.wait(darr)
    sample = X[np.sort(rng.choice(X.shape[0], size=min(X.shape[0], DEFAULT_INIT_SAMPLE), replace=False))]
    centers, _ = kmeans_plusplus(sample, K, np.random.default_rng(1))
    return {"X": X, "darr": darr, "centers": centers.astype(np.float32)}


def _timed(fn, times):
    """``fn`` recording its own wall time in ``times`` (the figures beside pytest-benchmark's own,
    which is off when benchmarks run untimed)."""
    def run():
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
        return out
    return run


def _ours(centers):
    return segmint.KMeans(n_clusters=K, init=centers, n_init=1, max_iter=ITERS, tol=0.0)


def _daskml(centers):
    return dask_ml_cluster.KMeans(n_clusters=K, init=centers, max_iter=ITERS, tol=0.0, random_state=0)


def test_dask_fit(benchmark, client, data):
    compare(benchmark, f"dask_fit[k={K},iters={ITERS}]", threads=WORKERS * THREADS_PER_WORKER)
    dc.fit(_ours(data["centers"]), data["darr"], client=client)  # untimed first call
    times = []
    model = benchmark.pedantic(_timed(lambda: dc.fit(_ours(data["centers"]), data["darr"], client=client), times),
                               rounds=3, iterations=1)
    record(benchmark, quality=("inertia (float64, all rows)", inertia_float64(data["X"], model.cluster_centers_),
                               "lower"), n_iter=int(model.n_iter_), workers=WORKERS,
           per_iteration_s=float(np.median(times)) / model.n_iter_)


def test_peer_daskml_fit(benchmark, client, data):
    compare(benchmark, f"dask_fit[k={K},iters={ITERS}]", impl="dask_ml", threads=WORKERS * THREADS_PER_WORKER)
    _daskml(data["centers"]).fit(data["darr"])
    times = []
    model = benchmark.pedantic(_timed(lambda: _daskml(data["centers"]).fit(data["darr"]), times), rounds=3,
                               iterations=1)
    record(benchmark, quality=("inertia (float64, all rows)", inertia_float64(data["X"], model.cluster_centers_),
                               "lower"), n_iter=int(model.n_iter_), workers=WORKERS,
           per_iteration_s=float(np.median(times)) / model.n_iter_)


def test_dask_lloyd_iteration(benchmark, client, data):
    compare(benchmark, f"dask_lloyd_iteration[k={K}]", threads=WORKERS * THREADS_PER_WORKER)
    blocks = feature_blocks(data["darr"], client=client)
    local = Features(data["X"])
    try:
        passes = dc.DaskPasses(blocks, K)
        passes.lloyd(data["centers"])
        ours = []
        sums, wsums, inertia = benchmark.pedantic(_timed(lambda: passes.lloyd(data["centers"]), ours), rounds=10,
                                                  iterations=1)
        n_chunks = len(blocks.refs)
        # the overhead from pairs, each a local pass (same thread count, one process) right after a
        # distributed one: the machine's drift over a minute (+-20 ms here) falls on both alike
        pairs = []
        with segmint.threads(WORKERS * THREADS_PER_WORKER):
            want = lloyd_pass(local, data["centers"])
            for _ in range(15):
                t0 = time.perf_counter()
                passes.lloyd(data["centers"])
                t1 = time.perf_counter()
                lloyd_pass(local, data["centers"])
                pairs.append((t1 - t0, time.perf_counter() - t1))
    finally:
        blocks.release()
    assert want[2] == inertia  # the same bits as the local pass
    pairs = np.array(pairs)
    local_s = float(np.median(pairs[:, 1]))
    overhead = float(np.median(pairs[:, 0] - pairs[:, 1]))
    record(benchmark, quality=("pass inertia", inertia, "equal"), chunks=n_chunks, pass_s=float(np.median(ours)),
           paired_pass_s=float(np.median(pairs[:, 0])), local_pass_s=local_s,
           overhead_s=overhead, overhead_target_s=0.005 + 0.001 * n_chunks)


def _seeded_rounds(init, seeds=SEEDS):
    """A benchmark body running ``init(seed)`` for the next seed of ``seeds`` at each call, and
    the centers it returned per seed (quality over several seeds: median and worst)."""
    queue, got = list(seeds), {}

    def run():
        seed = queue.pop(0)
        got[seed] = np.asarray(init(seed), dtype=np.float32)
        return got[seed]

    def rest():  # the seeds a run with timing off (one call) did not reach, untimed
        while queue:
            run()
        return got
    run.rest = rest
    return run, got


def _init_quality(benchmark, client, data, got):
    """Record, per seed, the inertia of the initial centers and of a fit of ``ITERS`` Lloyd
    iterations from them (the same fit for both implementations: ours, bit-identical to local):
    what an init buys is the final clustering, not the first one."""
    inits = [inertia_float64(data["X"], got[s]) for s in SEEDS]
    fits = [inertia_float64(data["X"], dc.fit(_ours(got[s]), data["darr"], client=client).cluster_centers_)
            for s in SEEDS]
    record(benchmark, quality=("init inertia (float64, all rows)", inits, "lower"),
           fit_inertia_median=float(np.median(fits)), fit_inertia_worst=float(np.max(fits)),
           fit_iterations=ITERS, seeds=len(SEEDS))


def test_dask_init(benchmark, client, data):
    compare(benchmark, f"dask_init[k={K}]", threads=WORKERS * THREADS_PER_WORKER)
    blocks = feature_blocks(data["darr"], client=client)
    try:
        def seed(s):
            rng = np.random.default_rng(s)
            size = min(blocks.n_rows, DEFAULT_INIT_SAMPLE)
            _, sample = _init_sample(blocks, size, rng)
            return kmeans_plusplus(sample, K, rng)[0]

        seed(99)  # untimed first call
        run, got = _seeded_rounds(seed)
        benchmark.pedantic(run, rounds=len(SEEDS), iterations=1)
        got = run.rest()
    finally:
        blocks.release()
    _init_quality(benchmark, client, data, got)


def test_peer_daskml_init(benchmark, client, data):
    from dask_ml.cluster.k_means import init_scalable
    compare(benchmark, f"dask_init[k={K}]", impl="dask_ml", threads=WORKERS * THREADS_PER_WORKER)
    from dask_ml.utils import check_random_state  # init_scalable wants a dask RandomState, as KMeans passes it
    init_scalable(data["darr"], K, random_state=check_random_state(99))  # untimed first call
    run, got = _seeded_rounds(lambda s: init_scalable(data["darr"], K, random_state=check_random_state(s)))
    benchmark.pedantic(run, rounds=len(SEEDS), iterations=1)
    _init_quality(benchmark, client, data, run.rest())


def _fitted_ours(data):
    model = _ours(data["centers"])
    model.cluster_centers_ = data["centers"].copy()
    model.n_features_in_ = D
    return model


def test_dask_predict(benchmark, client, data):
    compare(benchmark, f"dask_predict[k={K}]", threads=WORKERS * THREADS_PER_WORKER)
    model = _fitted_ours(data)
    dc.predict(model, data["darr"], client=client).compute()
    labels = benchmark.pedantic(lambda: dc.predict(model, data["darr"], client=client).compute(),
                                rounds=5, iterations=1)
    local = model.predict(data["X"])
    record(benchmark, quality=("agreement with local segmint", float(np.mean(labels == local)), "higher"))


def test_peer_daskml_predict(benchmark, client, data):
    compare(benchmark, f"dask_predict[k={K}]", impl="dask_ml", threads=WORKERS * THREADS_PER_WORKER)
    model = _daskml(data["centers"]).fit(data["darr"][:K * 10])  # any fit; its centers are set below
    model.cluster_centers_ = data["centers"].copy()
    model.predict(data["darr"]).compute()
    labels = benchmark.pedantic(lambda: model.predict(data["darr"]).compute(), rounds=5, iterations=1)
    local = _fitted_ours(data).predict(data["X"])
    record(benchmark, quality=("agreement with local segmint", float(np.mean(labels == local)), "higher"))
