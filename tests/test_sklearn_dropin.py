"""segmint's KMeans and MiniBatchKMeans as a drop-in for scikit-learn's, on dense data.

Each test runs the same call with both libraries and compares what a user sees: parameters,
fitted attributes, results of scikit-learn's documented examples, warnings, errors,
``get_feature_names_out`` / ``set_output`` inside scikit-learn pipelines.
"""
import subprocess
import sys
import warnings

import numpy as np
import pytest

import segmint
from segmint.cluster import ConvergenceWarning

sklearn = pytest.importorskip("sklearn")
from sklearn import cluster as skc  # noqa: E402

PAIRS = [(segmint.KMeans, skc.KMeans), (segmint.MiniBatchKMeans, skc.MiniBatchKMeans)]

# scikit-learn's docstring examples (KMeans and MiniBatchKMeans)
DOC_X = np.array([[1, 2], [1, 4], [1, 0], [10, 2], [10, 4], [10, 0]])
DOC_X12 = np.array([[1, 2], [1, 4], [1, 0], [4, 2], [4, 0], [4, 4],
                    [4, 5], [0, 1], [2, 2], [3, 2], [5, 5], [1, -1]])


def blobs(n=600, d=3, k=3, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=10, size=(k, d))
    return (centers[rng.integers(0, k, n)] + rng.normal(size=(n, d))).astype(dtype)


def same_partition(a, b):
    """Labels equal up to renaming the clusters."""
    pairs = set(zip(np.asarray(a).tolist(), np.asarray(b).tolist()))
    return len(pairs) == len(set(np.asarray(a).tolist())) == len(set(np.asarray(b).tolist()))


def test_kmeans_docstring_example_gives_scikit_learns_labels_centers_and_predictions():
    ours = segmint.KMeans(n_clusters=2, random_state=0, n_init="auto").fit(DOC_X)
    theirs = skc.KMeans(n_clusters=2, random_state=0, n_init="auto").fit(DOC_X)
    assert same_partition(ours.labels_, theirs.labels_)
    order = [int(ours.predict(c[None])[0]) for c in theirs.cluster_centers_]
    np.testing.assert_allclose(ours.cluster_centers_[order], theirs.cluster_centers_)
    assert ours.inertia_ == pytest.approx(theirs.inertia_)
    assert same_partition(ours.predict([[0, 0], [12, 3]]), theirs.predict([[0, 0], [12, 3]]))
    # the documented output itself
    assert ours.labels_.tolist() == [1, 1, 1, 0, 0, 0]
    assert ours.cluster_centers_.tolist() == [[10.0, 2.0], [1.0, 2.0]]


def test_minibatch_docstring_examples_give_scikit_learns_clusters():
    # partial_fit on two halves, then fit with max_iter=10, as scikit-learn documents; the
    # random streams differ (numpy Generator vs RandomState), so compare clusterings
    ours = segmint.MiniBatchKMeans(n_clusters=2, random_state=0, batch_size=6, n_init="auto")
    theirs = skc.MiniBatchKMeans(n_clusters=2, random_state=0, batch_size=6, n_init="auto")
    for half in (DOC_X12[:6], DOC_X12[6:]):
        ours, theirs = ours.partial_fit(half), theirs.partial_fit(half)
    assert ours.cluster_centers_.shape == theirs.cluster_centers_.shape == (2, 2)
    assert len(set(ours.predict([[0, 0], [4, 4]]).tolist())) == 2  # as documented: [1, 0]
    # fit with max_iter=10: on 12 points one seed's local optimum says little, so compare the
    # inertia over ten seeds (median and worst), and the documented predictions for each seed
    inertia = {"ours": [], "theirs": []}
    for seed in range(10):
        for who, cls in (("ours", segmint.MiniBatchKMeans), ("theirs", skc.MiniBatchKMeans)):
            model = cls(n_clusters=2, random_state=seed, batch_size=6, max_iter=10, n_init="auto").fit(DOC_X12)
            inertia[who].append(-model.score(DOC_X12))
            assert len(set(model.predict([[0, 0], [4, 4]]).tolist())) == 2, (who, seed)
    assert np.median(inertia["ours"]) <= 1.05 * np.median(inertia["theirs"])
    assert max(inertia["ours"]) <= 1.15 * max(inertia["theirs"])


@pytest.mark.parametrize("ours,theirs", PAIRS)
def test_every_scikit_learn_parameter_is_accepted_with_its_default(ours, theirs):
    sk_params = theirs().get_params()
    our_params = ours().get_params()
    assert set(sk_params) <= set(our_params)
    for name, default in sk_params.items():
        assert our_params[name] == default, name
    ours(**sk_params).fit(blobs(n=100))  # scikit-learn's full parameter set runs


@pytest.mark.parametrize("ours,theirs", PAIRS)
def test_fitted_attributes_match_scikit_learns(ours, theirs):
    X = blobs(dtype=np.float32)
    a, b = ours(n_clusters=3, random_state=0).fit(X), theirs(n_clusters=3, random_state=0).fit(X)
    fitted = {name for name in vars(b) if name.endswith("_") and not name.startswith("_")}
    assert fitted <= set(vars(a))
    assert a.cluster_centers_.dtype == b.cluster_centers_.dtype == np.float32
    assert a.labels_.dtype == b.labels_.dtype and a.labels_.shape == b.labels_.shape
    assert same_partition(a.labels_, b.labels_)
    assert a.inertia_ == pytest.approx(b.inertia_, rel=1e-3)
    assert a.transform(X).dtype == b.transform(X).dtype == np.float32


@pytest.mark.parametrize("algorithm", ["lloyd", "elkan"])
def test_lloyd_and_elkan_are_both_exact_and_give_the_same_clustering(algorithm):
    X = blobs()
    base = segmint.KMeans(n_clusters=3, random_state=0).fit(X)
    other = segmint.KMeans(n_clusters=3, random_state=0, algorithm=algorithm).fit(X)
    assert other.cluster_centers_.tobytes() == base.cluster_centers_.tobytes()
    sk = skc.KMeans(n_clusters=3, random_state=0, algorithm=algorithm).fit(X)
    assert same_partition(other.labels_, sk.labels_)


def test_elkan_with_one_cluster_warns_like_scikit_learn():
    X = blobs(n=30)
    message = "algorithm='elkan' doesn't make sense for a single cluster. Using 'lloyd' instead."
    with pytest.warns(RuntimeWarning, match=message):
        skc.KMeans(n_clusters=1, algorithm="elkan").fit(X)
    with pytest.warns(RuntimeWarning, match=message):
        segmint.KMeans(n_clusters=1, algorithm="elkan").fit(X)


def test_copy_x_false_leaves_the_data_as_it_was_and_changes_nothing():
    X = blobs()
    before = X.copy()
    a = segmint.KMeans(n_clusters=3, random_state=0, copy_x=False).fit(X)
    assert np.array_equal(X, before)
    b = segmint.KMeans(n_clusters=3, random_state=0, copy_x=True).fit(X)
    assert a.cluster_centers_.tobytes() == b.cluster_centers_.tobytes()


def test_verbose_prints_scikit_learns_progress_messages(capsys):
    X = blobs()
    segmint.KMeans(n_clusters=3, random_state=0, verbose=1).fit(X)
    out = capsys.readouterr().out
    assert "Initialization complete" in out and "Iteration 0, inertia" in out and "Converged at iteration" in out
    segmint.MiniBatchKMeans(n_clusters=3, random_state=0, verbose=True, batch_size=50).fit(X)
    out = capsys.readouterr().out
    assert "Minibatch step 1/" in out and "ewa inertia" in out
    segmint.KMeans(n_clusters=3, random_state=0).fit(X)
    assert capsys.readouterr().out == ""


def _bad_cases():
    X = blobs(n=20)
    return {
        "algorithm unknown": (dict(algorithm="full"), X),
        "algorithm auto": (dict(algorithm="auto"), X),
        "n_clusters 0": (dict(n_clusters=0), X),
        "n_clusters negative": (dict(n_clusters=-2), X),
        "max_iter 0": (dict(max_iter=0), X),
        "tol negative": (dict(tol=-1.0), X),
        "n_init 0": (dict(n_init=0), X),
        "n_init text": (dict(n_init="warm"), X),
        "init unknown": (dict(init="kmeans"), X),
        "init wrong shape": (dict(init=np.zeros((2, 3))), X),
        "verbose negative": (dict(verbose=-1), X),
        "random_state negative": (dict(random_state=-1), X),
        "fewer rows than clusters": (dict(n_clusters=30), X),
        "one-dimensional X": (dict(), X[:, 0]),
        "NaN in X": (dict(), np.where(np.arange(60).reshape(20, 3) == 7, np.nan, X)),
        "infinity in X": (dict(), np.where(np.arange(60).reshape(20, 3) == 7, np.inf, X)),
        "no features": (dict(), np.empty((20, 0))),
    }


@pytest.mark.parametrize("ours,theirs", PAIRS)
@pytest.mark.parametrize("case", sorted(_bad_cases()))
def test_bad_inputs_scikit_learn_refuses_are_refused_as_segmint_errors(ours, theirs, case):
    params, X = _bad_cases()[case]
    if "algorithm" in params and ours is segmint.MiniBatchKMeans:
        return  # MiniBatchKMeans has no algorithm=, in scikit-learn either
    with pytest.raises(ValueError):
        theirs(**params).fit(X)
    with pytest.raises(segmint.SegmintError) as info:
        ours(**params).fit(X)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("ours,theirs", PAIRS)
def test_bad_inputs_after_fitting_are_refused_like_scikit_learn(ours, theirs):
    X = blobs(n=60)
    a, b = ours(n_clusters=3, random_state=0).fit(X), theirs(n_clusters=3, random_state=0).fit(X)
    for call in (lambda m: m.predict(np.ones((2, 4))), lambda m: m.transform(np.ones((2, 2))),
                 lambda m: m.fit(X, sample_weight=np.ones(5)), lambda m: m.predict(np.ones(3)),
                 lambda m: m.get_feature_names_out(["a", "b"])):
        with pytest.raises(ValueError):
            call(b)
        with pytest.raises(segmint.SegmintError):
            call(a)
    with pytest.raises(AttributeError):
        theirs().predict(X)
    with pytest.raises(segmint.NotFittedError) as info:  # a ValueError and AttributeError, as sklearn's
        ours().predict(X)
    assert isinstance(info.value, (ValueError, AttributeError))


@pytest.mark.parametrize("ours,theirs", PAIRS)
def test_sparse_input_is_a_clear_segmint_error(ours, theirs):
    scipy_sparse = pytest.importorskip("scipy.sparse")
    X = scipy_sparse.csr_matrix(blobs(n=30))
    theirs(n_clusters=2, random_state=0).fit(X)  # scikit-learn takes it; segmint says what to do
    with pytest.raises(segmint.UnsupportedTypeError, match="sparse input is not supported.*toarray"):
        ours(n_clusters=2).fit(X)


@pytest.mark.parametrize("ours,theirs", PAIRS)
def test_fewer_distinct_points_than_clusters_warns_like_scikit_learn(ours, theirs):
    X = np.repeat(np.array([[0.0, 0.0], [5.0, 5.0]]), 10, axis=0)
    with warnings.catch_warnings(record=True) as sk_warned:
        warnings.simplefilter("always")
        theirs(n_clusters=3, random_state=0).fit(X)
    with warnings.catch_warnings(record=True) as warned:
        warnings.simplefilter("always")
        ours(n_clusters=3, random_state=0).fit(X)
    sk = [(type(w.message).__name__, str(w.message)) for w in sk_warned if "distinct" in str(w.message)]
    got = [(type(w.message).__name__, str(w.message)) for w in warned if "distinct" in str(w.message)]
    assert got == sk  # scikit-learn warns in KMeans only; so does segmint
    assert all(w.filename == __file__ for w in warned)


def test_convergence_warning_is_a_user_warning_as_scikit_learns():
    from sklearn.exceptions import ConvergenceWarning as SkConvergenceWarning
    assert issubclass(ConvergenceWarning, UserWarning) and issubclass(SkConvergenceWarning, UserWarning)
    with pytest.warns(ConvergenceWarning, match=r"Number of distinct clusters \(1\) found smaller than "
                                                r"n_clusters \(2\)"):
        segmint.KMeans(n_clusters=2, random_state=0).fit(np.ones((5, 2)))


@pytest.mark.parametrize("ours,theirs", PAIRS)
def test_explicit_centers_with_n_init_warn_like_scikit_learn_and_run_once(ours, theirs):
    X = blobs(n=60)
    init = X[:3]
    with pytest.warns(RuntimeWarning) as sk_warned:
        theirs(n_clusters=3, init=init, n_init=4).fit(X)
    with pytest.warns(RuntimeWarning) as warned:
        ours(n_clusters=3, init=init, n_init=4).fit(X)
    expected = f"Explicit initial center position passed: performing only one init in {ours.__name__} instead of n_init=4."
    assert [str(w.message) for w in sk_warned if "Explicit" in str(w.message)] == [expected]
    assert [str(w.message) for w in warned] == [expected]
    assert [w.filename for w in warned] == [__file__]  # points at the caller, as scikit-learn's
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ours(n_clusters=3, init=init).fit(X)  # n_init='auto' with centers: silent, as scikit-learn


def test_minibatch_init_size_below_n_clusters_warns_like_scikit_learn():
    X = blobs(n=100)
    message = r"init_size=2 should be larger than n_clusters=3. Setting it to min\(3\*n_clusters, n_samples\)"
    with pytest.warns(RuntimeWarning, match=message):
        skc.MiniBatchKMeans(n_clusters=3, init_size=2, random_state=0).fit(X)
    with pytest.warns(RuntimeWarning, match=message) as warned:
        segmint.MiniBatchKMeans(n_clusters=3, init_size=2, random_state=0).fit(X)
    assert [w.filename for w in warned] == [__file__]


@pytest.mark.parametrize("ours,theirs", PAIRS)
def test_callable_init_gets_scikit_learns_arguments_and_auto_n_init(ours, theirs):
    X = blobs(n=60)
    seen = {"ours": [], "theirs": []}

    def init_for(who):
        def init(X, n_clusters, random_state):
            seen[who].append(type(random_state).__name__)
            return X[random_state.randint(0, X.shape[0], size=n_clusters)]  # RandomState's API
        return init

    ours(n_clusters=3, init=init_for("ours"), random_state=0).fit(X)
    theirs(n_clusters=3, init=init_for("theirs"), random_state=0).fit(X)
    assert seen["ours"] == seen["theirs"] and len(seen["ours"]) in (3, 10)


@pytest.mark.parametrize("ours,theirs", PAIRS)
def test_transform_gives_a_center_distance_zero_to_itself(ours, theirs):
    X = blobs(n=300, d=5, dtype=np.float32) * np.float32(1000)
    model = ours(n_clusters=3, random_state=0).fit(X)
    D = model.transform(model.cluster_centers_)
    assert np.all(np.diag(D) == 0)
    direct = np.sqrt(((X[:, None, :].astype(np.float64)
                       - model.cluster_centers_[None].astype(np.float64)) ** 2).sum(-1))
    np.testing.assert_allclose(model.transform(X), direct, rtol=1e-6)
    sk = theirs(n_clusters=3, random_state=0).fit(X)
    sk.cluster_centers_ = model.cluster_centers_.copy()  # same centers: same distances as sklearn's
    np.testing.assert_allclose(model.transform(X), sk.transform(X), rtol=1e-4, atol=1e-2)


@pytest.mark.parametrize("ours,theirs", PAIRS)
def test_feature_names_out_are_scikit_learns(ours, theirs):
    X = blobs(n=60)
    a, b = ours(n_clusters=3, random_state=0).fit(X), theirs(n_clusters=3, random_state=0).fit(X)
    assert a.get_feature_names_out().tolist() == b.get_feature_names_out().tolist()
    assert a.get_feature_names_out().dtype == object
    assert a.get_feature_names_out(["x0", "x1", "x2"]).tolist() == b.get_feature_names_out(["x0", "x1", "x2"]).tolist()


@pytest.mark.parametrize("ours,theirs", PAIRS)
def test_set_output_pandas_and_polars_return_scikit_learns_frames(ours, theirs):
    pd = pytest.importorskip("pandas")
    X = pd.DataFrame(blobs(n=60), columns=["a", "b", "c"], index=np.arange(100, 160))
    a = ours(n_clusters=3, random_state=0).set_output(transform="pandas")
    b = theirs(n_clusters=3, random_state=0).set_output(transform="pandas")
    fa, fb = a.fit_transform(X), b.fit_transform(X)
    assert isinstance(fa, pd.DataFrame)
    assert fa.columns.tolist() == fb.columns.tolist() and fa.index.equals(fb.index)
    assert isinstance(a.transform(X), pd.DataFrame)
    assert isinstance(a.set_output(transform="default").transform(X), np.ndarray)
    pl = pytest.importorskip("polars")
    out = a.set_output(transform="polars").transform(X)
    assert isinstance(out, pl.DataFrame) and out.columns == fb.columns.tolist() and out.height == 60
    assert a.set_output() is a  # None leaves the setting as it was
    with pytest.raises(ValueError, match="output config"):
        a.set_output(transform="arrow")


def test_the_estimators_work_in_a_pandas_pipeline_and_column_transformer():
    pd = pytest.importorskip("pandas")
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    X = pd.DataFrame(blobs(n=90, d=3), columns=["recency", "frequency", "monetary"])
    X["region"] = np.repeat(["n", "s", "e"], 30)
    for ours, theirs in PAIRS:
        frames = []
        for cls in (ours, theirs):
            ct = ColumnTransformer([("seg", make_pipeline(StandardScaler(), cls(n_clusters=3, random_state=0)),
                                     ["recency", "frequency", "monetary"])], remainder="passthrough")
            frames.append(ct.set_output(transform="pandas").fit_transform(X))
        assert frames[0].columns.tolist() == frames[1].columns.tolist()
        assert frames[0]["remainder__region"].tolist() == X["region"].tolist()
        pipe = make_pipeline(StandardScaler(), ours(n_clusters=3, random_state=0)).set_output(transform="pandas")
        out = pipe.fit_transform(X[["recency", "frequency", "monetary"]])
        assert isinstance(out, pd.DataFrame) and out.shape == (90, 3)
        assert same_partition(pipe.predict(X[["recency", "frequency", "monetary"]]), out.to_numpy().argmin(axis=1))


def test_scikit_learns_global_transform_output_is_honoured():
    pd = pytest.importorskip("pandas")
    X = blobs(n=60)
    with sklearn.config_context(transform_output="pandas"):
        out = segmint.KMeans(n_clusters=3, random_state=0).fit(X).transform(X)
    assert isinstance(out, pd.DataFrame) and out.columns.tolist() == ["kmeans0", "kmeans1", "kmeans2"]


def test_minibatch_score_improves_with_max_iter_once_early_stopping_is_off():
    # why the score did not improve with max_iter: early stopping on the smoothed batch inertia
    # (max_no_improvement=10, scikit-learn's default) ends the fit long before max_iter counts
    X = blobs(n=20_000, d=4, k=8, seed=3, dtype=np.float32)
    early = [segmint.MiniBatchKMeans(n_clusters=8, random_state=1, batch_size=256, max_iter=m).fit(X)
             for m in (5, 50)]
    assert early[0].n_steps_ == early[1].n_steps_ < 5 * 20_000 // 256
    scores = [segmint.MiniBatchKMeans(n_clusters=8, random_state=1, batch_size=256, max_iter=m,
                                      max_no_improvement=None).fit(X).score(X) for m in (1, 5, 25)]
    assert scores[0] < scores[1] < scores[2]


def test_import_segmint_imports_neither_pandas_nor_scikit_learn():
    code = ("import sys, segmint; print(sorted(m for m in ('pandas', 'polars', 'sklearn', 'dask', 'distributed') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr[-2000:]
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("ours,theirs", PAIRS)
def test_feature_name_mismatches_warn_like_scikit_learn(ours, theirs):
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame(blobs(n=60), columns=["a", "b", "c"])
    array = frame.to_numpy()
    for fit_on, predict_on in ((frame, array), (array, frame)):
        messages = []
        for cls in (theirs, ours):
            model = cls(n_clusters=3, random_state=0).fit(fit_on)
            with warnings.catch_warnings(record=True) as warned:
                warnings.simplefilter("always")
                model.predict(predict_on)
            messages.append([(w.category, str(w.message).replace(cls.__name__, "<cls>")) for w in warned
                             if "feature names" in str(w.message)])
            if cls is ours:
                assert [w.filename for w in warned] == [__file__]
        assert messages[0] == messages[1] and len(messages[0]) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ours(n_clusters=3, random_state=0).fit(frame).predict(frame)  # names at both ends: silent


def test_kmeans_plusplus_is_called_as_scikit_learns():
    X = blobs(n=200, d=2)
    centers, indices = segmint.cluster.kmeans_plusplus(X, 3, random_state=0)
    sk_centers, sk_indices = skc.kmeans_plusplus(X, 3, random_state=0)
    assert centers.shape == sk_centers.shape and indices.shape == sk_indices.shape
    np.testing.assert_array_equal(centers, X[indices])
    again, _ = segmint.cluster.kmeans_plusplus(X, 3, np.random.default_rng(0), sample_weight=np.ones(200))
    np.testing.assert_array_equal(again, centers)  # an int seed and its Generator: the same draws
    for bad in (dict(n_clusters=0), dict(n_clusters=500), dict(n_clusters=3, sample_weight=np.ones(3)),
                dict(n_clusters=3, n_local_trials=0)):
        with pytest.raises(ValueError):
            skc.kmeans_plusplus(X, **bad)
        with pytest.raises(segmint.SegmintError):
            segmint.cluster.kmeans_plusplus(X, **bad)
