"""segmint.dask.fit / predict: the same bits as local segmint, on a real LocalCluster."""
import os
import re
import signal
import subprocess
import sys
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


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_empty_clusters_take_the_farthest_rows_as_locally(client, weighted):
    # 6 distinct points, many duplicates, k = 7: the seeding repeats a point, a center goes empty
    rng = np.random.default_rng(2)
    points = rng.normal(scale=10, size=(6, 2))
    X = points[rng.integers(0, 6, size=140_000)]
    X[rng.integers(0, X.shape[0], size=50)] += rng.normal(size=(50, 2))  # a few far rows
    # weighted: the relocated rows bring their own weights (local _relocate's w[far])
    w = rng.uniform(0.5, 3.0, size=X.shape[0]) if weighted else None
    est = lambda: segmint.KMeans(n_clusters=9, random_state=0, init="random", max_iter=5)  # noqa: E731
    calls = []
    original = dc.DaskPasses.relocate

    def spy(self, empty, sums, wsums):
        calls.append(empty.size)
        return original(self, empty, sums, wsums)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        want = est().fit(X, sample_weight=w)
        dc.DaskPasses.relocate = spy
        try:
            got = dc.fit(est(), X, client=client, rows_per_chunk=ALIGN, sample_weight=w)
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
    with pytest.raises(ParameterError, match=r"sample_weight must have shape \(150001,\), got \(150000,\)"):
        dc.fit(_kmeans(), X, client=client, sample_weight=np.ones(N - 1))
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


# -- in-memory tables (review finding 10) ----------------------------------------------------------
def test_a_pyarrow_table_and_a_pandas_frame_fit_and_predict_as_locally(client, dataset):
    X, frame, _ = dataset
    table = pa.Table.from_pandas(frame, preserve_index=False)
    for data in (table, frame):
        want = _kmeans().fit(data)  # every numeric column: a, b, c (not the strings of 'name')
        got = dc.fit(_kmeans(), data, client=client, rows_per_chunk=ALIGN)
        _same_model(got, want)
        assert list(got.feature_names_in_) == COLUMNS
        # predict selects the fitted columns by name (here from a reordered table)
        reordered = data.select(["c", "name", "b", "a"]) if data is table else data[["c", "name", "b", "a"]]
        labels = dc.predict(got, reordered, client=client, rows_per_chunk=2 * ALIGN)
        assert labels.chunks == ((2 * ALIGN, N - 2 * ALIGN),)
        np.testing.assert_array_equal(labels.compute(), want.predict(data))
    _same_model(dc.fit(_minibatch(), frame, columns=["c", "a"], client=client, rows_per_chunk=ALIGN),
                _minibatch().fit(frame, columns=["c", "a"]))


def test_a_table_is_converted_with_the_local_dtype_rule(client):
    # integers and booleans among the features: float64, cast as local Features casts them
    rng = np.random.default_rng(4)
    n = 70_000
    table = pa.table({"count": rng.integers(0, 50, n), "share": rng.random(n).astype(np.float32),
                      "member": rng.random(n) < 0.3, "id": pa.array([f"c{i}" for i in range(n)])})
    est = lambda: segmint.KMeans(n_clusters=3, random_state=0, max_iter=6)  # noqa: E731
    want = est().fit(table)
    got = dc.fit(est(), table, client=client, rows_per_chunk=ALIGN)
    assert got.cluster_centers_.dtype == np.float64
    _same_model(got, want)
    only32 = table.select(["share"])
    _same_model(dc.fit(est(), only32, client=client), est().fit(only32))
    assert est().fit(only32).cluster_centers_.dtype == np.float32


def test_a_table_with_a_missing_or_non_numeric_column_gets_a_clear_error(client, dataset):
    _, frame, _ = dataset
    table = pa.Table.from_pandas(frame.iloc[:1000], preserve_index=False)
    for data in (table, frame.iloc[:1000]):
        with pytest.raises(UnknownColumnError, match="did you mean 'b'"):
            dc.fit(_kmeans(), data, columns=["a", "bb"], client=client)
        with pytest.raises(FeatureError, match="'name' has type (large_)?string"):
            dc.fit(_kmeans(), data, columns=["a", "name"], client=client)
    with pytest.raises(UnsupportedTypeError, match="pyarrow Table or a pandas DataFrame"):
        dc.fit(_kmeans(), object(), client=client)


def test_segmint_dask_recognises_a_pandas_frame_without_importing_pandas():
    # (building a pyarrow Table imports pandas when it is installed: none is built here)
    code = ("import sys, numpy\n"
            "from segmint.dask import data\n"
            "assert not data._is_memory_table(numpy.zeros((2, 2))) and not data._is_memory_table([[1.0]])\n"
            "print('pandas' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# -- sample weights ------------------------------------------------------------------------------
NW = 140_000  # 3 chunks of 65,536 rows


@pytest.fixture(scope="module")
def weighted(tmp_path_factory):
    """(float32 features, float64 weights with zeros, frame with a 'w' column, Parquet folder)."""
    rng = np.random.default_rng(7)
    X = _blobs(NW, np.float32, seed=7)
    w = rng.gamma(2.0, 1.5, size=NW)
    w[rng.integers(0, NW, size=500)] = 0.0  # rows that do not count
    frame = pd.DataFrame(X, columns=COLUMNS).assign(w=w)
    folder = tmp_path_factory.mktemp("parquet_weighted")
    for i, (lo, hi) in enumerate([(0, 70_001), (70_001, NW)]):
        pq.write_table(pa.Table.from_pandas(frame.iloc[lo:hi], preserve_index=False),
                       folder / f"part-{i}.parquet", row_group_size=30_011)
    return X, w, frame, str(folder)


def test_weights_from_a_parquet_column_give_the_local_weighted_fit(client, weighted):
    X, w, _, folder = weighted
    want = _kmeans().fit(folder, columns=COLUMNS, sample_weight=w)
    assert want.inertia_ != _kmeans().fit(folder, columns=COLUMNS).inertia_  # the weights count
    for rows_per_chunk, persist in [(ALIGN, True), (4 * ALIGN, True), (ALIGN, False)]:
        got = dc.fit(_kmeans(), folder, columns=COLUMNS, sample_weight="w", client=client,
                     rows_per_chunk=rows_per_chunk, persist=persist)
        _same_model(got, want)
    # the weight column is not a feature by default
    got = dc.fit(_kmeans(), folder, sample_weight="w", client=client, rows_per_chunk=ALIGN)
    assert list(got.feature_names_in_) == COLUMNS
    _same_model(got, want)


def test_weighted_minibatch_equals_the_local_fit(client, weighted):
    X, w, _, folder = weighted
    est = lambda: _minibatch(refine_iter=1)  # noqa: E731  (weighted steps, then a weighted Lloyd pass)
    want = est().fit(folder, columns=COLUMNS, sample_weight=w)
    got = dc.fit(est(), folder, columns=COLUMNS, sample_weight="w", client=client, rows_per_chunk=ALIGN)
    _same_model(got, want)
    assert got.n_steps_ == want.n_steps_


@pytest.mark.parametrize("x_rows, w_rows", [(NW, NW), (33_333, 50_000)], ids=["1 partition", "several"])
def test_a_dask_weight_array_gives_the_local_weighted_fit(client, weighted, x_rows, w_rows):
    X, w, _, _ = weighted
    want = _kmeans().fit(X, sample_weight=w)
    darr, dw = da.from_array(X, chunks=(x_rows, 3)), da.from_array(w, chunks=w_rows)
    for persist in (True, False) if x_rows != w_rows else (True,):
        _same_model(dc.fit(_kmeans(), darr, sample_weight=dw, client=client, rows_per_chunk=ALIGN,
                           persist=persist), want)


def test_weights_of_every_other_input_give_the_local_weighted_fit(client, weighted):
    X, w, frame, _ = weighted
    want = _kmeans().fit(X, sample_weight=w)
    _same_model(dc.fit(_kmeans(), X, sample_weight=w, client=client, rows_per_chunk=2 * ALIGN), want)
    _same_model(dc.fit(_kmeans(), frame, columns=COLUMNS, sample_weight="w", client=client), want)
    table = pa.Table.from_pandas(frame, preserve_index=False)
    _same_model(dc.fit(_kmeans(), table, sample_weight="w", client=client, rows_per_chunk=ALIGN), want)
    ddf = dd.from_pandas(frame, npartitions=3)
    _same_model(dc.fit(_kmeans(), ddf, sample_weight="w", client=client, rows_per_chunk=ALIGN), want)
    # a dask Series of unknown partition lengths
    _same_model(dc.fit(_kmeans(), ddf[COLUMNS], sample_weight=ddf["w"], client=client, rows_per_chunk=ALIGN),
                want)
    # seeding on every row: k-means++ reads all the weights
    est = lambda: segmint.KMeans(n_clusters=4, random_state=1, max_iter=4, init_size=NW)  # noqa: E731
    _same_model(dc.fit(est(), da.from_array(X, chunks=(50_000, 3)), sample_weight=da.from_array(w, chunks=NW),
                       client=client, rows_per_chunk=ALIGN), est().fit(X, sample_weight=w))


def _local_error(fit):
    with pytest.raises(ParameterError) as info:
        fit()
    return "^" + re.escape(str(info.value)) + "$"


def test_bad_weights_get_the_error_local_segmint_gives(client, tmp_path):
    rng = np.random.default_rng(3)
    X = rng.normal(size=(1_000, 2))
    negative = np.ones(1_000)
    negative[700] = -1.0
    nan = np.ones(1_000)
    nan[3] = np.nan
    for bad in (negative, nan, np.zeros(1_000), np.ones(999)):
        message = _local_error(lambda: _kmeans().fit(X, sample_weight=bad))
        with pytest.raises(ParameterError, match=message):
            dc.fit(_kmeans(), X, sample_weight=bad, client=client)
        with pytest.raises(ParameterError, match=message):
            dc.fit(_kmeans(), da.from_array(X, chunks=(300, 2)), sample_weight=da.from_array(bad, chunks=250),
                   client=client)
        if bad.size == X.shape[0]:
            path = tmp_path / f"bad-{len(os.listdir(tmp_path))}.parquet"
            pq.write_table(pa.table({"a": X[:, 0], "b": X[:, 1], "w": bad}), path)
            with pytest.raises(ParameterError, match=message):
                dc.fit(_kmeans(), str(path), sample_weight="w", client=client)
    # a wrong length found only once the partitions are counted
    message = _local_error(lambda: _kmeans().fit(X, sample_weight=np.ones(999)))
    with pytest.raises(ParameterError, match=message):
        dc.fit(_kmeans(), X, sample_weight=dd.from_pandas(pd.Series(np.ones(999)), npartitions=2), client=client)
    frame = pd.DataFrame({"a": X[:, 0], "b": X[:, 1], "w": np.ones(1_000), "name": "x"})
    with pytest.raises(UnknownColumnError, match="did you mean 'w'"):
        dc.fit(_kmeans(), frame, sample_weight="ww", client=client)
    with pytest.raises(ParameterError, match="column 'name' .* sample weights must be numbers"):
        dc.fit(_kmeans(), dd.from_pandas(frame, npartitions=2), sample_weight="name", client=client)
    with pytest.raises(ParameterError, match="names a column"):
        dc.fit(_kmeans(), X, sample_weight="w", client=client)
    nulls = tmp_path / "null-weights.parquet"
    pq.write_table(pa.table({"a": X[:4, 0], "w": [1.0, None, 1.0, 1.0]}), nulls)
    with pytest.raises(ParameterError, match="'w' has 1 null"):
        dc.fit(segmint.KMeans(n_clusters=2), str(nulls), sample_weight="w", client=client)
