"""segmint.dask.fit / predict: the same bits as local segmint, on a real LocalCluster."""
import os
import signal
import warnings

import numpy as np
import pytest

distributed = pytest.importorskip("distributed", reason="segmint.dask needs the dask extra")
dd = pytest.importorskip("dask.dataframe", reason="dask DataFrame input needs dask[dataframe]")
import dask.array as da  # noqa: E402
import pandas as pd  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

import segmint  # noqa: E402
import segmint.dask as sd  # noqa: E402
from segmint.dask import cluster as dc  # noqa: E402
from segmint.errors import ParameterError, UnknownColumnError, UnsupportedTypeError  # noqa: E402
from segmint._estimator import NotFittedError  # noqa: E402
from segmint.cluster._matrix import FeatureError  # noqa: E402

N = 150_001  # not a multiple of 65,536: a short last chunk
COLUMNS = ["a", "b", "c"]
ALIGN = 65_536


def _blobs(n, dtype, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=4.0, size=(5, len(COLUMNS)))
    X = centers[rng.integers(0, 5, size=n)] + rng.normal(size=(n, len(COLUMNS)))
    return X.astype(dtype)


@pytest.fixture(scope="module")
def client():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                  silence_logs=50) as lc, distributed.Client(lc) as c:
        yield c


@pytest.fixture(scope="module")
def client_1w2t(client):
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=True, dashboard_address=None,
                                  silence_logs=50) as lc, distributed.Client(lc, set_as_default=False) as c:
        yield c


@pytest.fixture(scope="module", params=[np.float32, np.float64], ids=["float32", "float64"])
def dataset(request, tmp_path_factory):
    """(numpy array, pandas frame, Parquet folder of 3 files with odd row groups) of the same rows."""
    dtype = request.param
    X = _blobs(N, dtype)
    frame = pd.DataFrame(X, columns=COLUMNS)
    frame["name"] = "x"  # a string column: not a feature by default
    folder = tmp_path_factory.mktemp(f"parquet_{np.dtype(dtype).name}")
    cuts = [0, 40_003, 111_111, N]
    for i, (lo, hi) in enumerate(zip(cuts, cuts[1:])):
        pq.write_table(pa.Table.from_pandas(frame.iloc[lo:hi], preserve_index=False),
                       folder / f"part-{i}.parquet", row_group_size=9_973 + 1_000 * i)
    return X, frame, str(folder)


def _same_model(got, want):
    np.testing.assert_array_equal(got.cluster_centers_, want.cluster_centers_)
    assert got.cluster_centers_.dtype == want.cluster_centers_.dtype
    assert got.inertia_ == want.inertia_
    assert got.n_iter_ == want.n_iter_


def _kmeans():
    return segmint.KMeans(n_clusters=4, random_state=3, max_iter=12, init_size=20_000)


def _minibatch(**kw):
    return segmint.MiniBatchKMeans(n_clusters=4, random_state=5, batch_size=2_048, max_iter=2, **kw)


def test_kmeans_on_a_parquet_folder_equals_the_local_fit_bit_for_bit(client, dataset):
    X, _, folder = dataset
    want = _kmeans().fit(folder, columns=COLUMNS)
    for rows_per_chunk, persist in [(ALIGN, True), (2 * ALIGN, True), (ALIGN, False)]:
        got = dc.fit(_kmeans(), folder, columns=COLUMNS, client=client, rows_per_chunk=rows_per_chunk,
                     persist=persist)
        _same_model(got, want)
    assert list(got.feature_names_in_) == COLUMNS and got.n_features_in_ == 3
    assert not hasattr(got, "labels_")


def test_kmeans_on_a_dask_dataframe_is_the_same_for_any_partitions(client, dataset):
    X, frame, _ = dataset
    want = _kmeans().fit(frame, columns=COLUMNS)
    for npartitions in [1, 3, 17]:
        ddf = dd.from_pandas(frame, npartitions=npartitions)
        _same_model(dc.fit(_kmeans(), ddf, columns=COLUMNS, client=client, rows_per_chunk=ALIGN), want)
    # persist=False computes the partitions again in every pass
    _same_model(dc.fit(_kmeans(), dd.from_pandas(frame, npartitions=3), columns=COLUMNS, client=client,
                       persist=False), want)


def test_kmeans_on_numpy_and_dask_arrays_equals_the_local_fit(client, dataset):
    X, _, _ = dataset
    want = _kmeans().fit(X)
    _same_model(sd.fit(_kmeans(), X, client=client, rows_per_chunk=2 * ALIGN), want)  # the public name
    darr = da.from_array(X, chunks=(33_333, 2))
    _same_model(dc.fit(_kmeans(), darr, client=client, rows_per_chunk=ALIGN), want)
    assert not hasattr(want, "feature_names_in_")


def test_one_worker_with_two_threads_gives_the_same_model(client_1w2t, dataset):
    X, _, folder = dataset
    want = _kmeans().fit(folder, columns=COLUMNS)
    _same_model(dc.fit(_kmeans(), folder, columns=COLUMNS, client=client_1w2t, rows_per_chunk=ALIGN), want)


def test_n_init_and_tolerance_follow_the_local_fit(client, dataset):
    X, _, _ = dataset
    est = lambda: segmint.KMeans(n_clusters=3, init="random", n_init=2, tol=1e-2, random_state=1)  # noqa: E731
    _same_model(dc.fit(est(), X, client=client, rows_per_chunk=ALIGN), est().fit(X))


def test_empty_clusters_take_the_farthest_rows_as_locally(client):
    # 6 distinct points, many duplicates, k = 7: the seeding repeats a point, a center goes empty
    rng = np.random.default_rng(2)
    points = rng.normal(scale=10, size=(6, 2))
    X = points[rng.integers(0, 6, size=140_000)]
    X[rng.integers(0, X.shape[0], size=50)] += rng.normal(size=(50, 2))  # a few far rows
    est = lambda: segmint.KMeans(n_clusters=9, random_state=0, init="random", max_iter=5)  # noqa: E731
    calls = []
    original = dc.DaskPasses.relocate

    def spy(self, empty, sums, wsums):
        calls.append(empty.size)
        return original(self, empty, sums, wsums)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        want = est().fit(X)
        dc.DaskPasses.relocate = spy
        try:
            got = dc.fit(est(), X, client=client, rows_per_chunk=ALIGN)
        finally:
            dc.DaskPasses.relocate = original
    assert calls, "no cluster went empty: the relocation path was not exercised"
    _same_model(got, want)


@pytest.mark.parametrize("refine_iter", [0, 1])
def test_minibatch_equals_the_local_fit_bit_for_bit(client, dataset, refine_iter):
    X, _, folder = dataset
    want = _minibatch(refine_iter=refine_iter).fit(folder, columns=COLUMNS)
    got = dc.fit(_minibatch(refine_iter=refine_iter), folder, columns=COLUMNS, client=client,
                 rows_per_chunk=ALIGN)
    _same_model(got, want)
    assert got.n_steps_ == want.n_steps_
    _same_model(dc.fit(_minibatch(refine_iter=refine_iter), X, client=client, rows_per_chunk=2 * ALIGN),
                _minibatch(refine_iter=refine_iter).fit(X))


def test_predict_is_a_lazy_chunked_dask_array_equal_to_local_predict(client, dataset):
    X, frame, folder = dataset
    model = _kmeans().fit(folder, columns=COLUMNS)
    want = model.predict(folder)
    labels = dc.predict(model, folder, client=client, rows_per_chunk=2 * ALIGN)
    assert isinstance(labels, da.Array) and labels.dtype == np.int32
    assert labels.chunks == ((2 * ALIGN, N - 2 * ALIGN),)
    np.testing.assert_array_equal(labels.compute(), want)
    ddf = dd.from_pandas(frame, npartitions=3)
    np.testing.assert_array_equal(dc.predict(model, ddf, client=client).compute(), want)
    array_model = _kmeans().fit(X)
    np.testing.assert_array_equal(dc.predict(array_model, X, client=client, rows_per_chunk=ALIGN).compute(),
                                  array_model.predict(X))


def test_a_worker_killed_mid_fit_does_not_change_the_model(client, dataset, monkeypatch):
    X, _, folder = dataset
    want = _kmeans().fit(folder, columns=COLUMNS)
    pids = list(client.run(os.getpid).values())
    original = dc.DaskPasses.lloyd
    passes = []

    def lloyd_then_kill(self, centers):
        passes.append(1)
        if len(passes) == 3:  # once, between two iterations: its persisted blocks are lost
            os.kill(pids[0], signal.SIGKILL)
        return original(self, centers)

    monkeypatch.setattr(dc.DaskPasses, "lloyd", lloyd_then_kill)
    got = dc.fit(_kmeans(), folder, columns=COLUMNS, client=client, rows_per_chunk=ALIGN)
    assert len(passes) >= 3
    _same_model(got, want)
    client.wait_for_workers(2, timeout=60)
    assert pids[0] not in client.run(os.getpid).values()  # the worker did die (its nanny restarted it)


def test_bad_input_gets_segmint_errors_naming_the_problem(client, dataset, monkeypatch, tmp_path):
    X, frame, folder = dataset
    with pytest.raises(NotFittedError):
        dc.predict(segmint.KMeans(n_clusters=2), X, client=client)
    with pytest.raises(UnknownColumnError, match="'b'"):
        dc.fit(_kmeans(), folder, columns=["a", "bb"], client=client)
    with pytest.raises(UnknownColumnError, match="'c'"):
        dc.fit(_kmeans(), dd.from_pandas(frame, npartitions=2), columns=["a", "cc"], client=client)
    with pytest.raises(UnsupportedTypeError, match="segmint.KMeans and segmint.MiniBatchKMeans"):
        from sklearn.cluster import KMeans
        dc.fit(KMeans(n_clusters=2), X, client=client)
    with pytest.raises(ParameterError, match="sample_weight"):
        dc.fit(_kmeans(), X, client=client, sample_weight=np.ones(N))
    with pytest.raises(ParameterError, match="rows_per_chunk"):
        dc.fit(_kmeans(), X, client=client, rows_per_chunk=1000)
    nulls = tmp_path / "nulls.parquet"
    pq.write_table(pa.table({"a": [1.0, 2.0, None, 4.0], "b": [1.0, 2.0, 3.0, 4.0]}), nulls)
    with pytest.raises(FeatureError, match="'a' has 1 null"):
        dc.fit(_kmeans(), str(nulls), client=client)
    big = np.zeros((10, 2))
    big[7, 0] = 1e300
    with pytest.raises(FeatureError, match=r"'x0' holds 1e\+300 \(row 7\)"):
        dc.fit(_kmeans(), big, client=client)
    bad = X[:70_000].copy()
    bad[66_000, 1] = np.nan
    with pytest.raises(FeatureError, match="'x1' has 1"):
        dc.fit(_kmeans(), bad, client=client, rows_per_chunk=ALIGN)

    def no_client():
        raise ValueError("No clients found")

    monkeypatch.setattr(distributed, "get_client", no_client)
    with pytest.raises(ParameterError, match="no Dask client"):
        dc.fit(_kmeans(), X)


def test_relative_paths_and_lists_of_files_read_the_clients_files(client, dataset, monkeypatch):
    # review finding: workers resolve relative paths against their own working folder, and a
    # list of files was taken for an array
    X, _, folder = dataset
    want = _kmeans().fit(folder, columns=COLUMNS)
    files = sorted(f for f in os.listdir(folder) if f.endswith(".parquet"))
    monkeypatch.chdir(folder)  # the client's folder only: the workers' stay where they started
    _same_model(dc.fit(_kmeans(), files, columns=COLUMNS, client=client, rows_per_chunk=ALIGN), want)
    _same_model(dc.fit(_kmeans(), tuple(files), columns=COLUMNS, client=client, rows_per_chunk=ALIGN), want)
    labels = dc.predict(want, files, client=client, rows_per_chunk=ALIGN).compute()
    np.testing.assert_array_equal(labels, want.predict(folder))


def test_predict_on_a_dask_dataframe_selects_the_fitted_columns_by_name(client, dataset):
    # review finding: a reordered frame (or one with an extra numeric column) gave other labels
    X, frame, _ = dataset
    km = _kmeans().fit(frame, columns=COLUMNS)
    want = km.predict(frame)
    shuffled = frame[["c", "name", "b", "a"]].assign(customer_id=np.arange(len(frame)))
    got = dc.predict(km, dd.from_pandas(shuffled, npartitions=3), client=client, rows_per_chunk=ALIGN)
    np.testing.assert_array_equal(got.compute(), want)
