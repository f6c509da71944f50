"""KMeans and MiniBatchKMeans: the estimator contract and the promises of the clustering issue."""
import threading
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import naive_kmeans as naive
import segmint
from segmint.cluster import _matrix

ESTIMATORS = [segmint.KMeans, segmint.MiniBatchKMeans]


def blobs(n=3000, d=4, k=4, seed=0, dtype=np.float32, spread=0.5):
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=10, size=(k, d))
    truth = rng.integers(0, k, n)
    X = centers[truth] + rng.normal(scale=spread, size=(n, d))
    return X.astype(dtype), truth


def _make(cls, **kw):
    kw.setdefault("random_state", 0)
    if cls is segmint.MiniBatchKMeans:
        kw.setdefault("batch_size", 256)
    return cls(**kw)


@pytest.mark.parametrize("cls", ESTIMATORS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_recovers_blobs_and_keeps_dtype(cls, dtype):
    X, truth = blobs(dtype=dtype)
    model = _make(cls, n_clusters=4).fit(X)
    assert model.cluster_centers_.dtype == dtype
    assert model.labels_.dtype == np.int32 and model.labels_.shape == (len(X),)
    # every true blob maps to exactly one cluster
    pairs = {(t, l) for t, l in zip(truth.tolist(), model.labels_.tolist())}
    assert len(pairs) == 4
    assert model.inertia_ == pytest.approx(naive.inertia(X, model.cluster_centers_), rel=1e-4)
    assert np.array_equal(model.predict(X), model.labels_)
    assert model.score(X) == pytest.approx(-model.inertia_, rel=1e-5)
    dist = model.transform(X[:10])
    np.testing.assert_allclose(dist, np.sqrt(naive.sq_distances(X[:10], model.cluster_centers_)), rtol=1e-4, atol=1e-3)
    assert model.n_iter_ >= 1 and model.n_features_in_ == 4


def test_int_input_becomes_float64():
    X = np.repeat(np.arange(6).reshape(3, 2), 4, axis=0)
    model = segmint.KMeans(n_clusters=3, random_state=0).fit(X)
    assert model.cluster_centers_.dtype == np.float64
    assert sorted(np.bincount(model.labels_).tolist()) == [4, 4, 4]


@pytest.mark.parametrize("cls", ESTIMATORS)
def test_same_seed_same_bits_with_one_or_two_threads(cls):
    X, _ = blobs(n=200_000, d=5, k=6, seed=2)
    with segmint.threads(1):
        a = _make(cls, n_clusters=6, random_state=7).fit(X)
    with segmint.threads(2):
        b = _make(cls, n_clusters=6, random_state=7).fit(X)
    assert a.cluster_centers_.tobytes() == b.cluster_centers_.tobytes()
    assert np.array_equal(a.labels_, b.labels_)
    assert a.inertia_ == b.inertia_
    c = _make(cls, n_clusters=6, random_state=8).fit(X)
    assert c.cluster_centers_.tobytes() != a.cluster_centers_.tobytes()


@pytest.mark.parametrize("cls", ESTIMATORS)
def test_out_of_core_parquet_equals_in_memory(cls, tmp_path, monkeypatch):
    X, _ = blobs(n=5000, d=3, k=3, seed=4)
    names = ["a", "b", "c"]
    table = pa.table({n: X[:, j] for j, n in enumerate(names)})
    folder = tmp_path / "ds"
    folder.mkdir()
    for i in range(3):
        pq.write_table(table.slice(i * 1700, 1700), folder / f"part-{i}.parquet", row_group_size=300)
    tiny = 257
    seen = []
    original = segmint.io.source.Source.batches

    def spy(self, columns=None, batch_size=segmint.io.DEFAULT_BATCH_SIZE):
        for batch in original(self, columns, batch_size):
            seen.append(batch.num_rows)
            yield batch

    monkeypatch.setattr(_matrix, "BLOCK_ROWS", tiny)
    monkeypatch.setattr(segmint.io.source.Source, "batches", spy)
    streamed = _make(cls, n_clusters=3, random_state=3).fit(segmint.open(folder))
    assert seen and max(seen) <= tiny  # bounded batches were used throughout
    in_memory = _make(cls, n_clusters=3, random_state=3).fit(X)
    from_table = _make(cls, n_clusters=3, random_state=3).fit(table)
    for other in (in_memory, from_table):
        assert streamed.cluster_centers_.tobytes() == other.cluster_centers_.tobytes()
        assert np.array_equal(streamed.labels_, other.labels_)
        assert streamed.inertia_ == other.inertia_
    assert list(streamed.feature_names_in_) == names
    assert np.array_equal(streamed.predict(segmint.open(folder)), in_memory.predict(X))


def test_fit_on_memory_mapped_ipc_with_feature_names(tmp_path):
    customers = segmint.make_customers(3000, random_state=1)
    path = tmp_path / "c.arrow"
    segmint.write_table(customers, path)
    features = ["frequency", "monetary", "tenure_days", "sessions_30d"]
    model = segmint.MiniBatchKMeans(n_clusters=4, random_state=0, batch_size=512).fit(path, columns=features)
    assert list(model.feature_names_in_) == features
    labels = model.predict(segmint.open(path))
    assert labels.shape == (3000,)
    X = np.column_stack([customers.column(f).to_numpy().astype(np.float64) for f in features])
    assert np.array_equal(labels, model.predict(X))


@pytest.mark.parametrize("cls", ESTIMATORS)
def test_every_method_reads_the_named_columns_of_a_source(cls):
    table = pa.table({"a": np.r_[np.zeros(20), np.full(20, 9.0)], "b": np.arange(40.0) % 3,
                      "noise": np.random.default_rng(0).normal(size=40) * 100})
    X = np.column_stack([table["a"].to_numpy(), table["b"].to_numpy()])
    cols = ["a", "b"]
    model = _make(cls, n_clusters=2).fit(table, columns=cols)
    assert list(model.feature_names_in_) == cols
    expected = model.predict(X)
    assert np.array_equal(model.predict(table, columns=cols), expected)
    np.testing.assert_allclose(model.transform(table, columns=cols), model.transform(X))
    assert model.score(table, columns=cols) == pytest.approx(model.score(X))
    assert np.array_equal(_make(cls, n_clusters=2).fit_predict(table, columns=cols), expected)
    assert _make(cls, n_clusters=2).fit_transform(table, columns=cols).shape == (40, 2)
    if cls is segmint.MiniBatchKMeans:
        assert _make(cls, n_clusters=2).partial_fit(table, columns=cols).n_features_in_ == 2
    with pytest.raises(TypeError):  # the old name is gone: one name per concept
        model.predict(table, features=cols)
    with pytest.raises(segmint.FeatureError, match="columns= names columns of a table"):
        model.predict(X, columns=cols)


def test_nulls_and_nan_are_named_with_counts():
    table = pa.table({"ok": np.arange(10.0), "age": pa.array([1.0, None, 3.0, None] + [5.0] * 6)})
    with pytest.raises(segmint.FeatureError, match=r"'age' has 2 nulls"):
        segmint.KMeans(n_clusters=2).fit(table)
    X = np.ones((20, 3))
    X[[1, 5, 7], 2] = np.nan
    X[4, 0] = np.inf
    with pytest.raises(segmint.FeatureError, match=r"'x0' has 1, 'x2' has 3"):
        segmint.MiniBatchKMeans(n_clusters=2).fit(X)
    model = segmint.KMeans(n_clusters=2, random_state=0).fit(np.arange(20.0).reshape(10, 2))
    bad = np.arange(20.0).reshape(10, 2)
    bad[[1, 4, 6], 1] = np.nan
    with pytest.raises(segmint.FeatureError, match=r"'x1' has 3"):
        model.predict(bad)


def test_string_features_are_refused_with_a_hint():
    table = pa.table({"x": [1.0, 2.0], "region": ["NY", "CA"]})
    with pytest.raises(segmint.FeatureError, match="'region'.*encode strings"):
        segmint.KMeans(n_clusters=1).fit(table, columns=["x", "region"])
    with pytest.raises(segmint.UnknownColumnError, match="did you mean 'region'"):
        segmint.KMeans(n_clusters=1).fit(table, columns=["regoin"])


@pytest.mark.parametrize("cls", ESTIMATORS)
def test_degenerate_inputs(cls):
    with pytest.raises(ValueError, match="0 rows"):
        _make(cls, n_clusters=2).fit(np.empty((0, 3)))
    with pytest.raises(ValueError, match="n_samples=3 should be >= n_clusters=4"):
        _make(cls, n_clusters=4).fit(np.ones((3, 2)))
    # constant columns and duplicate rows
    X = np.zeros((50, 3))
    X[25:, 0] = 1.0
    model = _make(cls, n_clusters=2).fit(X)
    assert sorted(np.bincount(model.labels_).tolist()) == [25, 25]
    same = _make(cls, n_clusters=3).fit(np.ones((10, 2)))
    assert same.inertia_ == 0.0
    one = _make(cls, n_clusters=1).fit(np.array([[1.0, 2.0]]))
    np.testing.assert_array_equal(one.cluster_centers_, [[1.0, 2.0]])
    with pytest.raises(ValueError, match="2-D"):
        _make(cls).fit(np.ones(5))


def test_sample_weight_equals_repeating_rows():
    X, _ = blobs(n=300, d=2, k=3, seed=5, dtype=np.float64)
    w = np.random.default_rng(0).integers(1, 4, len(X))
    init = X[:3].copy()
    weighted = segmint.KMeans(n_clusters=3, init=init, max_iter=50).fit(X, sample_weight=w)
    repeated = segmint.KMeans(n_clusters=3, init=init, max_iter=50).fit(np.repeat(X, w, axis=0))
    np.testing.assert_allclose(weighted.cluster_centers_, repeated.cluster_centers_, rtol=1e-10)
    assert weighted.inertia_ == pytest.approx(repeated.inertia_, rel=1e-10)
    with pytest.raises(ValueError, match="sample_weight"):
        segmint.KMeans(n_clusters=3).fit(X, sample_weight=np.ones(3))


def test_lloyd_matches_scikit_learn_from_the_same_init():
    sklearn = pytest.importorskip("sklearn.cluster")
    X, _ = blobs(n=2000, d=5, k=5, seed=6, dtype=np.float64, spread=3.0)
    init = X[[0, 10, 20, 30, 40]]
    ours = segmint.KMeans(n_clusters=5, init=init, tol=0).fit(X)
    theirs = sklearn.KMeans(n_clusters=5, init=init, n_init=1, tol=0, algorithm="lloyd").fit(X)
    np.testing.assert_allclose(ours.cluster_centers_, theirs.cluster_centers_, rtol=1e-8, atol=1e-8)
    assert ours.inertia_ == pytest.approx(theirs.inertia_, rel=1e-9)


@pytest.mark.parametrize("init", ["random", "array", "callable"])
def test_init_options(init):
    X, _ = blobs(n=500, k=3, seed=8, dtype=np.float64)
    spec = {"random": "random", "array": X[:3], "callable": lambda X, n_clusters, random_state: X[:n_clusters]}[init]
    model = segmint.KMeans(n_clusters=3, init=spec, random_state=0).fit(X)
    assert model.cluster_centers_.shape == (3, 4)
    with pytest.raises(ValueError, match="shape"):
        segmint.KMeans(n_clusters=3, init=X[:2]).fit(X)
    with pytest.raises(ValueError, match="init must be"):
        segmint.KMeans(n_clusters=3, init="kmeans").fit(X)


def test_partial_fit_keeps_random_state_and_is_reproducible():
    X, _ = blobs(n=3000, k=3, seed=9)
    def run():
        m = segmint.MiniBatchKMeans(n_clusters=3, random_state=1)
        for lo in range(0, 3000, 500):
            m.partial_fit(X[lo:lo + 500])
        return m
    a, b = run(), run()
    assert a.n_steps_ == 6
    assert a.cluster_centers_.tobytes() == b.cluster_centers_.tobytes()
    assert len({(t, l) for t, l in zip(blobs(n=3000, k=3, seed=9)[1].tolist(), a.predict(X).tolist())}) == 3


def test_partial_fit_continues_from_centers_set_without_a_fit():
    # a model whose centers were loaded from a file (or set by hand) has no step state yet
    X, _ = blobs(n=600, d=2, k=3, seed=4, dtype=np.float64)
    start = np.array([[0.0, 0.0], [5.0, 5.0], [-5.0, 5.0]])
    start.setflags(write=False)  # as a loaded array may be
    model = segmint.MiniBatchKMeans(n_clusters=3, random_state=0)
    model.cluster_centers_, model.n_features_in_ = start, 2
    model.partial_fit(X[:300]).partial_fit(X[300:])
    assert model.n_steps_ == 2 and model.cluster_centers_.shape == (3, 2)
    assert not np.array_equal(model.cluster_centers_, start)  # moved, on its own copy
    assert np.array_equal(start, [[0.0, 0.0], [5.0, 5.0], [-5.0, 5.0]])
    bad = segmint.MiniBatchKMeans(n_clusters=2)
    bad.cluster_centers_, bad.n_features_in_ = np.array([[np.nan, 0.0], [1.0, 1.0]]), 2
    with pytest.raises(segmint.FeatureError, match="center 0, feature 0"):
        bad.partial_fit(X)


def test_params_contract():
    m = segmint.MiniBatchKMeans(n_clusters=5, batch_size=64)
    assert m.get_params()["n_clusters"] == 5
    assert m.set_params(n_clusters=6) is m and m.n_clusters == 6
    assert repr(m) == "MiniBatchKMeans(batch_size=64, n_clusters=6)"
    with pytest.raises(ValueError, match="did you mean 'batch_size'"):
        m.set_params(batchsize=3)
    with pytest.raises(TypeError):
        segmint.KMeans(8, 10)  # everything after n_clusters is keyword-only
    with pytest.raises(segmint.NotFittedError, match="not fitted"):
        segmint.KMeans().predict(np.ones((2, 2)))
    with pytest.raises(ValueError, match="n_clusters"):
        segmint.KMeans(n_clusters=0).fit(np.ones((3, 2)))
    fitted = segmint.KMeans(n_clusters=2, random_state=0).fit(np.arange(10.0).reshape(5, 2))
    with pytest.raises(ValueError, match="3 features, but KMeans is expecting 2"):
        fitted.predict(np.ones((2, 3)))


def test_concurrent_predict_from_four_threads():
    X, _ = blobs(n=50_000, d=8, k=16, seed=10)
    model = segmint.MiniBatchKMeans(n_clusters=16, random_state=0, batch_size=1024).fit(X)
    expected = model.predict(X)
    errors = []
    stop = time.perf_counter() + 2.0

    def worker():
        try:
            while time.perf_counter() < stop:
                if not np.array_equal(model.predict(X), expected):
                    errors.append("wrong labels")
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(repr(exc))

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors


def test_scikit_learn_check_estimator():
    pytest.importorskip("sklearn")
    from sklearn.utils.estimator_checks import check_estimator
    expected = {
        "check_estimators_unfitted": "segmint raises its own NotFittedError (a ValueError and an "
                                     "AttributeError, like scikit-learn's) so it never imports scikit-learn",
        "check_sample_weight_equivalence_on_dense_data": "random seeding draws rows, so weights and "
                                                         "repeated rows seed differently; with a fixed init "
                                                         "they agree (test_sample_weight_equals_repeating_rows)",
    }
    for est in (segmint.KMeans(n_clusters=2, n_init=2, max_iter=5),
                segmint.MiniBatchKMeans(n_clusters=2, batch_size=10, max_iter=5)):
        check_estimator(est, expected_failed_checks=expected)
