"""Segmenter: features, rules then clusters, streaming score, model files; against slow twins.

The slow twins here: ``FeatureSpec.transform`` (tested on its own in test_pipeline_features.py)
for the feature matrix, a brute-force float64 nearest center for labels and distances, plain
NumPy waterfalls (and ``RuleSet.evaluate``) for the rule segments, and the same clusterer fitted
directly on the reference matrix of the rows in scope.
"""
import io
import json
import os
import pickle
import threading
import zipfile
from concurrent.futures import ThreadPoolExecutor
from functools import cache

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pyarrow import feather, ipc

import segmint
from segmint import KMeans, MiniBatchKMeans, NotFittedError, RuleSet, Segmenter
from segmint.errors import DataError, SourceConsumedError, UnknownColumnError
from segmint.pipeline import FeatureSpec, ModelFormatError
from segmint.pipeline.model_file import MANIFEST, VERSION

AS_OF = "2026-10-01"  # the synthetic customers' own as-of date
DTYPES = [np.float32, np.float64]
N = 6000

SPEC = [
    {"column": "recency_days", "impute": "median", "log1p": True, "indicator": True},
    {"column": "frequency", "log1p": True},
    {"column": "monetary", "log1p": True, "clip": [0.01, 0.99], "scale": "robust"},
    "sessions_30d",
    {"column": "email_opt_in", "scale": None},
    {"column": "region", "one_hot": True, "max_categories": 5},
]
# Waterfall: the first true rule wins; a null comparison is not true.
RULES = [("no_consent", "not email_opt_in"), ("lapsed", "recency_days > 365"),
         ("never_bought", "frequency = 0")]
DEFAULT = "active"
COLUMNS = ["customer_id", "recency_days", "frequency", "monetary", "sessions_30d", "email_opt_in",
           "region", "last_order_date"]


@cache
def customers(n=N, seed=11):
    return segmint.make_customers(n, random_state=seed).select(COLUMNS)


def ruleset(default=DEFAULT):
    return RuleSet(RULES, default=default)


def kmeans(k=4, **kw):
    return KMeans(n_clusters=k, random_state=0, **kw)


def minibatch(k=4, **kw):
    return MiniBatchKMeans(n_clusters=k, random_state=0, batch_size=256, **kw)


CLUSTERERS = {"KMeans": kmeans, "MiniBatchKMeans": minibatch}


# ----------------------------------------------------------------------------- slow twins
def naive_waterfall(table):
    """Rule segment name of every row of ``table`` for RULES, in plain NumPy."""
    def values(name):
        col = table.column(name)
        valid = np.asarray(col.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
        if pa.types.is_boolean(col.type):
            col = col.cast(pa.int8())
        vals = np.asarray(col.fill_null(0).to_numpy(zero_copy_only=False))
        return vals, valid

    opt, opt_ok = values("email_opt_in")
    rec, rec_ok = values("recency_days")
    freq, freq_ok = values("frequency")
    matches = [opt_ok & ~opt.astype(bool), rec_ok & (rec > 365), freq_ok & (freq == 0)]
    out = np.full(table.num_rows, DEFAULT, dtype=object)
    taken = np.zeros(table.num_rows, dtype=bool)
    for (name, _), m in zip(RULES, matches):
        out[m & ~taken] = name
        taken |= m
    return out


def reference_matrix(table, dtype, fit_on=None):
    """The feature matrix from a separately fitted FeatureSpec (fitted on every row)."""
    spec = FeatureSpec(SPEC).fit(fit_on if fit_on is not None else table)
    return spec.transform(table, dtype=dtype)


def naive_nearest(X, centers):
    """(labels, squared distances to every center), brute force in float64."""
    X = np.asarray(X, dtype=np.float64)
    C = np.asarray(centers, dtype=np.float64)
    d2 = ((X[:, None, :] - C[None, :, :]) ** 2).sum(axis=2)
    return d2.argmin(axis=1), d2


def assert_nearest(labels, distance, X, centers, dtype):
    """Labels are the nearest centers (up to exact ties at the dtype's rounding); distances
    are the square roots of the squared distances."""
    labels = np.asarray(labels, dtype=np.int64)
    ref, d2 = naive_nearest(X, centers)
    rows = np.arange(len(labels))
    best = d2[rows, ref]
    size = (np.asarray(X, np.float64) ** 2).sum(axis=1) + (np.asarray(centers, np.float64) ** 2).sum(axis=1).max()
    tol = (2e-6 if np.dtype(dtype) == np.float32 else 1e-13) * (size + 1.0)
    differ = labels != ref
    assert differ.mean() <= 0.002, f"{differ.sum()} labels differ from the brute-force nearest"
    # where the labels differ, the chosen center is as near as the best one, within rounding
    np.testing.assert_array_less(d2[rows[differ], labels[differ]] - best[differ], tol[differ] + 1e-300)
    dist = np.asarray(distance, dtype=np.float64)
    assert np.all(np.abs(dist ** 2 - d2[rows, labels]) <= tol * 4)


def names_of(column):
    """Decoded Python strings of a (dictionary) column."""
    col = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if pa.types.is_dictionary(col.type):
        col = col.dictionary_decode()
    return np.asarray(col.to_pylist(), dtype=object)


def expected_ids(rule_names, cluster_labels, k, within, labels_order):
    """Segment ids from the rule segment of each row and, in scope, the cluster label."""
    rule_only = [n for n in labels_order if n not in within]
    out = np.empty(len(rule_names), dtype=np.int64)
    scope = np.isin(rule_names, list(within))
    out[scope] = cluster_labels
    for i, name in enumerate(rule_only):
        out[rule_names == name] = k + i
    return out


def check_result_schema(result, dtype, id_column="customer_id", rules=True):
    names = ([id_column] if id_column else []) + ["segment_id", "segment", "distance"] + (["rule"] if rules else [])
    assert result.column_names == names
    assert result.schema.field("segment_id").type == pa.int16()
    assert result.schema.field("segment").type == pa.dictionary(pa.int16(), pa.string())
    assert result.schema.field("distance").type == pa.from_numpy_dtype(np.dtype(dtype))
    if rules:
        assert result.schema.field("rule").type == pa.dictionary(pa.int16(), pa.string())


# ------------------------------------------------------------------- 1. clusters only
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("algo", sorted(CLUSTERERS))
def test_clusters_only_match_brute_force(dtype, algo):
    table = customers()
    model = Segmenter(SPEC, clusterer=CLUSTERERS[algo](), id_column="customer_id", dtype=dtype)
    assert model.fit(table) is model
    result = model.score(table)
    check_result_schema(result, dtype, rules=False)
    X = reference_matrix(table, dtype)
    np.testing.assert_array_equal(model.transform(table), X)  # bit for bit
    centers = model.clusterer_.cluster_centers_
    assert centers.dtype == np.dtype(dtype) and centers.shape == (4, X.shape[1])
    seg = result.column("segment_id").to_numpy()
    assert result.column("distance").null_count == 0
    assert_nearest(seg, result.column("distance").to_numpy(), X, centers, dtype)
    assert list(names_of(result.column("segment"))) == [f"segment_{i}" for i in seg]
    assert model.segment_names_ == [f"segment_{i}" for i in range(4)]
    assert result.column("customer_id").equals(table.column("customer_id"))
    predicted = model.predict(table)
    assert predicted.dtype == np.int32
    np.testing.assert_array_equal(predicted, seg)
    assert model.n_clusters_ == 4 and model.n_rows_fit_ == table.num_rows


@pytest.mark.parametrize("dtype", DTYPES)
def test_clusterer_is_fitted_on_the_reference_matrix(dtype):
    table = customers()
    model = Segmenter(SPEC, clusterer=kmeans(), dtype=dtype).fit(table)
    direct = kmeans().fit(reference_matrix(table, dtype))
    np.testing.assert_array_equal(model.clusterer_.cluster_centers_, direct.cluster_centers_)


def test_tiny_hand_computed_case():
    # two obvious groups; no scaling, so the feature space is the raw values
    table = pa.table({"id": [1, 2, 3, 4, 5], "x": [0.0, 0.0, 10.0, 10.0, 4.0], "y": [0.0, 2.0, 10.0, 12.0, 1.0]})
    spec = [{"column": "x", "scale": None}, {"column": "y", "scale": None}]
    init = np.array([[0.0, 0.0], [10.0, 10.0]])
    model = Segmenter(spec, clusterer=KMeans(2, init=init, n_init=1), id_column="id", dtype=np.float64)
    model.fit(table.slice(0, 4))
    np.testing.assert_array_equal(model.clusterer_.cluster_centers_, [[0.0, 1.0], [10.0, 11.0]])
    result = model.score(table)
    assert result.column("segment_id").to_pylist() == [0, 0, 1, 1, 0]
    assert result.column("distance").to_pylist() == [1.0, 1.0, 1.0, 1.0, 4.0]
    assert result.column("id").to_pylist() == [1, 2, 3, 4, 5]


def test_batch_size_does_not_change_the_bits():
    table = customers()
    a = Segmenter(SPEC, clusterer=kmeans(), rules=ruleset(), id_column="customer_id").fit(table, as_of=AS_OF)
    b = Segmenter(SPEC, clusterer=kmeans(), rules=ruleset(), id_column="customer_id").fit(
        table, as_of=AS_OF, batch_size=777)
    np.testing.assert_array_equal(a.clusterer_.cluster_centers_, b.clusterer_.cluster_centers_)
    assert a.score(table, as_of=AS_OF).equals(a.score(table, as_of=AS_OF, batch_size=513))
    assert a.score(table, as_of=AS_OF).equals(b.score(table, as_of=AS_OF, batch_size=97))


# ------------------------------------------------------------------------ 2. rules only
@pytest.mark.parametrize("as_dict", [False, True])
def test_rules_only_equal_the_waterfall(as_dict):
    table = customers()
    rules = ruleset().to_dict() if as_dict else RULES
    model = Segmenter(rules=rules, id_column="customer_id").fit(table)
    assert model.n_clusters_ == 0 and model.n_rows_fit_ == 0
    labels = [n for n, _ in RULES] + (["unassigned"] if not as_dict else [DEFAULT])
    assert model.segment_names_ == labels
    result = model.score(table)
    check_result_schema(result, np.float32)
    expected = RuleSet(RULES, default=labels[-1]).evaluate(table, as_of=AS_OF).table.column("segment")
    segment = names_of(result.column("segment"))
    np.testing.assert_array_equal(segment, names_of(expected))
    naive = naive_waterfall(table)
    naive[naive == DEFAULT] = labels[-1]
    np.testing.assert_array_equal(segment, naive)
    np.testing.assert_array_equal(result.column("segment_id").to_numpy(), [labels.index(s) for s in segment])
    np.testing.assert_array_equal(names_of(result.column("rule")), segment)
    assert result.column("distance").null_count == table.num_rows
    with pytest.raises(DataError, match="no features"):
        model.transform(table)


def test_rules_only_with_features_transforms():
    table = customers()
    model = Segmenter(SPEC, rules=RULES).fit(table)
    np.testing.assert_array_equal(model.transform(table), reference_matrix(table, np.float32))
    # scoring a rules-only model needs only the rule columns
    assert model.score(table.select(["email_opt_in", "recency_days", "frequency"])).num_rows == table.num_rows


def test_rules_with_dates_use_as_of_and_fit_predict_passes_it_on():
    table = customers()
    rules = [("recent", "days_since(last_order_date) <= 90")]
    model = Segmenter(SPEC, clusterer=kmeans(3), rules=rules)
    early = model.fit_predict(table, as_of="2026-07-01")
    assert np.array_equal(early, model.predict(table, as_of="2026-07-01"))
    late = Segmenter(SPEC, clusterer=kmeans(3), rules=rules).fit(table, as_of=AS_OF).predict(table, as_of=AS_OF)
    assert (early == 3).sum() != (late == 3).sum()  # 'recent' depends on as_of


# ------------------------------------------------------------------- 3. rules + clusters
@pytest.mark.parametrize("dtype", DTYPES)
def test_rules_then_clusters_in_the_default_segment(dtype):
    table = customers()
    seen = []
    km = kmeans()
    fit = km.fit
    km.fit = lambda X, *a, **kw: (seen.append(X.copy()), fit(X, *a, **kw))[1]
    model = Segmenter(SPEC, clusterer=km, rules=ruleset(), id_column="customer_id", dtype=dtype)
    model.fit(table, as_of=AS_OF)
    rule = naive_waterfall(table)
    scope = rule == DEFAULT
    X = reference_matrix(table, dtype)
    # the clusterer saw exactly the in-scope rows of the reference matrix, in order
    assert model.n_rows_fit_ == scope.sum() > 0
    np.testing.assert_array_equal(seen[0], X[scope])
    direct = kmeans().fit(X[scope])
    np.testing.assert_array_equal(model.clusterer_.cluster_centers_, direct.cluster_centers_)

    result = model.score(table, as_of=AS_OF)
    check_result_schema(result, dtype)
    k = 4
    assert model.segment_names_ == [f"segment_{i}" for i in range(k)] + [n for n, _ in RULES]
    seg = result.column("segment_id").to_numpy()
    dist = result.column("distance")
    np.testing.assert_array_equal(names_of(result.column("rule")), rule)
    # rule segments: ids k, k+1, ... in rule order, null distance
    for i, (name, _) in enumerate(RULES):
        assert np.all(seg[rule == name] == k + i)
    valid = np.asarray(dist.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
    np.testing.assert_array_equal(valid, scope)
    assert_nearest(seg[scope], dist.to_numpy(zero_copy_only=False)[scope], X[scope],
                   model.clusterer_.cluster_centers_, dtype)
    names = names_of(result.column("segment"))
    np.testing.assert_array_equal(names, np.asarray(model.segment_names_, dtype=object)[seg])


def test_cluster_within_one_rule_segment():
    table = customers()
    model = Segmenter(SPEC, clusterer=kmeans(3), rules=ruleset(), cluster_within="lapsed",
                      id_column="customer_id", dtype=np.float64).fit(table, as_of=AS_OF)
    rule = naive_waterfall(table)
    scope = rule == "lapsed"
    assert model.n_rows_fit_ == scope.sum()
    X = reference_matrix(table, np.float64)
    np.testing.assert_array_equal(model.clusterer_.cluster_centers_, kmeans(3).fit(X[scope]).cluster_centers_)
    # the default segment is now a rule segment, last
    rule_only = ["no_consent", "never_bought", DEFAULT]
    assert model.segment_names_ == ["segment_0", "segment_1", "segment_2"] + rule_only
    result = model.score(table, as_of=AS_OF)
    seg = result.column("segment_id").to_numpy()
    ref_labels, _ = naive_nearest(X[scope], model.clusterer_.cluster_centers_)
    np.testing.assert_array_equal(seg, expected_ids(rule, ref_labels, 3, ["lapsed"],
                                                    [n for n, _ in RULES] + [DEFAULT]))
    assert result.column("distance").null_count == (~scope).sum()


def test_cluster_within_several_segments():
    table = customers()
    within = ["active", "lapsed"]
    model = Segmenter(SPEC, clusterer=kmeans(5), rules=ruleset(), cluster_within=within,
                      dtype=np.float64).fit(table, as_of=AS_OF)
    rule = naive_waterfall(table)
    scope = np.isin(rule, within)
    assert model.n_rows_fit_ == scope.sum()
    X = reference_matrix(table, np.float64)
    np.testing.assert_array_equal(model.clusterer_.cluster_centers_, kmeans(5).fit(X[scope]).cluster_centers_)
    assert model.segment_names_[5:] == ["no_consent", "never_bought"]
    seg = model.predict(table, as_of=AS_OF)
    ref_labels, _ = naive_nearest(X[scope], model.clusterer_.cluster_centers_)
    np.testing.assert_array_equal(seg, expected_ids(rule, ref_labels, 5, within, [n for n, _ in RULES] + [DEFAULT]))


def test_a_rule_named_like_a_cluster_keeps_its_name(tmp_path):
    table = customers()
    model = Segmenter(SPEC, clusterer=kmeans(2), rules=[("segment_1", "not email_opt_in")]).fit(table)
    assert model.segment_names_ == ["segment_0", "cluster_1", "segment_1"]
    # ... and the moved name stays unique, so the model can be renamed, saved and loaded
    rules = [("segment_1", "frequency = 0"), ("cluster_1", "frequency = 1"), ("cluster_1_2", "frequency = 2")]
    model = Segmenter(SPEC, clusterer=kmeans(2), rules=rules).fit(table)
    assert model.segment_names_ == ["segment_0", "cluster_1_3", "segment_1", "cluster_1", "cluster_1_2"]
    model.rename({0: "first"})
    model.save(tmp_path / "m.seg")
    assert segmint.load(tmp_path / "m.seg").segment_names_ == model.segment_names_


# ------------------------------------------------------------------------- 4. fit_rows
def test_fit_rows_is_deterministic_and_about_right():
    table = customers()
    a = Segmenter(SPEC, clusterer=kmeans(), fit_rows=1500, random_state=7).fit(table)
    b = Segmenter(SPEC, clusterer=kmeans(), fit_rows=1500, random_state=7).fit(table, batch_size=1000)
    c = Segmenter(SPEC, clusterer=kmeans(), fit_rows=1500, random_state=8).fit(table)
    assert a.n_rows_fit_ == b.n_rows_fit_
    np.testing.assert_array_equal(a.clusterer_.cluster_centers_, b.clusterer_.cluster_centers_)
    assert a.n_rows_fit_ != c.n_rows_fit_ or not np.array_equal(a.clusterer_.cluster_centers_,
                                                                 c.clusterer_.cluster_centers_)
    p = 1500 / N
    assert abs(a.n_rows_fit_ - 1500) <= 5 * np.sqrt(N * p * (1 - p))


def test_fit_rows_counts_customers_in_scope():
    table = customers()
    scope = naive_waterfall(table) == DEFAULT
    n_scope = int(scope.sum())
    want = n_scope // 2
    seen = []
    km = kmeans()
    fit = km.fit
    km.fit = lambda X, *a, **kw: (seen.append(X.copy()), fit(X, *a, **kw))[1]
    model = Segmenter(SPEC, clusterer=km, rules=ruleset(), fit_rows=want).fit(table, as_of=AS_OF)
    p = want / n_scope
    assert abs(model.n_rows_fit_ - want) <= 5 * np.sqrt(n_scope * p * (1 - p)), (model.n_rows_fit_, want)
    # every sampled row is an in-scope row
    X = reference_matrix(table, np.float32)[scope]
    in_scope = {row.tobytes() for row in X}
    assert all(row.tobytes() in in_scope for row in seen[0])


def test_fit_rows_above_the_scope_takes_every_row_in_scope():
    table = customers()
    n_scope = int((naive_waterfall(table) == DEFAULT).sum())
    assert n_scope < N - 100
    full = Segmenter(SPEC, clusterer=kmeans(), rules=ruleset()).fit(table, as_of=AS_OF)
    capped = Segmenter(SPEC, clusterer=kmeans(), rules=ruleset(), fit_rows=n_scope + 50).fit(table, as_of=AS_OF)
    assert capped.n_rows_fit_ == full.n_rows_fit_ == n_scope
    np.testing.assert_array_equal(capped.clusterer_.cluster_centers_, full.clusterer_.cluster_centers_)
    whole = Segmenter(SPEC, clusterer=kmeans(), fit_rows=N).fit(table)
    assert whole.n_rows_fit_ == N


@pytest.mark.parametrize("bad", [0, -5])
def test_fit_rows_must_be_positive(bad):
    with pytest.raises(ValueError, match="fit_rows"):
        Segmenter(SPEC, clusterer=kmeans(), fit_rows=bad).fit(customers())


# --------------------------------------------------------------------------- 5. rename
@pytest.fixture(scope="module")
def fitted():
    return Segmenter(SPEC, clusterer=kmeans(3), rules=ruleset(), id_column="customer_id").fit(
        customers(), as_of=AS_OF)


def clone(model):
    fresh = Segmenter(**model.get_params())
    fresh.__dict__.update({k: v for k, v in model.__dict__.items() if k.endswith("_")})
    fresh.segment_names_ = list(model.segment_names_)
    return fresh


def test_rename_by_id_and_by_name(fitted):
    model = clone(fitted)
    before = model.score(customers(), as_of=AS_OF)
    assert model.rename({0: "Weekend bargain hunters", "no_consent": "Do not contact"}) is model
    assert model.segment_names_ == ["Weekend bargain hunters", "segment_1", "segment_2", "Do not contact",
                                    "lapsed", "never_bought"]
    after = model.score(customers(), as_of=AS_OF)
    assert after.column("segment_id").equals(before.column("segment_id"))
    np.testing.assert_array_equal(names_of(after.column("segment")),
                                  np.asarray(model.segment_names_, dtype=object)[after.column("segment_id").to_numpy()])
    assert after.column("rule").equals(before.column("rule"))  # the rule column keeps the rule names
    # keys are the names before the call, so swaps work; np.integer ids work
    model.rename({np.int64(1): "segment_2", "segment_2": "segment_1"})
    assert model.segment_names_[1:3] == ["segment_2", "segment_1"]
    model.rename({"lapsed": "never_bought", "never_bought": "lapsed"})
    assert model.segment_names_[4:] == ["never_bought", "lapsed"]


def test_rename_errors_leave_names_unchanged(fitted):
    model = clone(fitted)
    names = list(model.segment_names_)
    with pytest.raises(KeyError, match="ids run from 0 to 5"):
        model.rename({6: "x"})
    with pytest.raises(KeyError, match="ids run from 0 to 5"):
        model.rename({-1: "x"})
    with pytest.raises(KeyError, match="did you mean 'no_consent'"):
        model.rename({"no_consnt": "x"})
    with pytest.raises(ValueError, match="unique.*'lapsed'"):
        model.rename({0: "lapsed"})
    for empty in ["", "   ", None, 3]:
        with pytest.raises(ValueError, match="non-empty string"):
            model.rename({0: "ok", 1: empty})
    assert model.segment_names_ == names
    with pytest.raises(NotFittedError):
        Segmenter(SPEC, clusterer=kmeans()).rename({0: "x"})


# ---------------------------------------------------------------------------- 6. errors
def test_needs_a_clusterer_or_rules():
    with pytest.raises(DataError, match="clusterer, rules, or both"):
        Segmenter(SPEC).fit(customers())


def test_clusterer_needs_features():
    with pytest.raises(DataError, match="features="):
        Segmenter(clusterer=kmeans()).fit(customers())


def test_multi_mode_rules_refused():
    with pytest.raises(DataError, match="waterfall"):
        Segmenter(SPEC, clusterer=kmeans(), rules=RuleSet(RULES, mode="multi")).fit(customers())


def test_unknown_cluster_within_suggests_the_nearest():
    with pytest.raises(DataError, match="did you mean 'lapsed'"):
        Segmenter(SPEC, clusterer=kmeans(), rules=ruleset(), cluster_within="lapsd").fit(customers())
    with pytest.raises(DataError, match="needs both"):
        Segmenter(SPEC, clusterer=kmeans(), cluster_within="lapsed").fit(customers())


def test_unknown_columns_name_the_nearest():
    table = customers()
    with pytest.raises(UnknownColumnError, match="'monetry'.*did you mean 'monetary'"):
        Segmenter(["frequency", "monetry"], clusterer=kmeans()).fit(table)
    with pytest.raises(UnknownColumnError, match="did you mean 'customer_id'"):
        Segmenter(SPEC, clusterer=kmeans(), id_column="customer_idd").fit(table)
    with pytest.raises(KeyError):  # UnknownColumnError is also a KeyError
        Segmenter(SPEC, clusterer=kmeans(), id_column="customer_idd").fit(table)
    model = Segmenter(SPEC, clusterer=kmeans(), id_column="customer_id").fit(table)
    with pytest.raises(UnknownColumnError, match="'monetary'"):
        model.score(table.drop_columns(["monetary"]))
    with pytest.raises(UnknownColumnError, match="'customer_id'"):
        model.score(table.drop_columns(["customer_id"]))
    with pytest.raises(segmint.RuleError, match="did you mean 'monetary'"):
        Segmenter(SPEC, clusterer=kmeans(), rules={"big": "monetry > 3"}).fit(table)


def test_not_fitted(tmp_path):
    model = Segmenter(SPEC, clusterer=kmeans())
    for call in (lambda: model.score(customers()), lambda: model.predict(customers()),
                 lambda: model.transform(customers()), lambda: model.save(tmp_path / "never.seg")):
        with pytest.raises(NotFittedError, match="not fitted"):
            call()
    assert os.listdir(tmp_path) == []


def test_a_non_segmint_clusterer_is_refused():
    from sklearn.cluster import KMeans as SkKMeans
    with pytest.raises(TypeError, match="segmint.KMeans or segmint.MiniBatchKMeans.*sklearn"):
        Segmenter(SPEC, clusterer=SkKMeans(3)).fit(customers())
    with pytest.raises(TypeError, match="segmint.KMeans"):
        Segmenter(SPEC, clusterer="kmeans").fit(customers())


def test_bad_dtype():
    with pytest.raises(ValueError, match="float32 or float64"):
        Segmenter(SPEC, clusterer=kmeans(), dtype=np.float16).fit(customers())


def test_estimator_contract():
    rules = ruleset()
    model = Segmenter(SPEC, clusterer=kmeans(), rules=rules, fit_rows=-1)  # checked at fit, not here
    assert model.get_params()["rules"] is rules and model.get_params()["fit_rows"] == -1
    assert "Segmenter(" in repr(model)
    assert not hasattr(model, "segment_names_")


def test_a_failed_refit_leaves_the_model_unfitted():
    table = customers()
    model = Segmenter(SPEC, clusterer=kmeans(), rules=ruleset()).fit(table, as_of=AS_OF)
    nobody_default = table.filter(pa.compute.equal(table.column("email_opt_in"), False))
    with pytest.raises(DataError, match="no customer to cluster"):
        model.fit(nobody_default, as_of=AS_OF)
    with pytest.raises(NotFittedError):
        model.score(table, as_of=AS_OF)


# ----------------------------------------------------------------------- 7. save / load
def model_cases():
    return {
        "kmeans-f32": lambda: Segmenter(SPEC, clusterer=kmeans(), id_column="customer_id"),
        "kmeans-f64": lambda: Segmenter(SPEC, clusterer=kmeans(), id_column="customer_id", dtype=np.float64),
        "minibatch-f32": lambda: Segmenter(SPEC, clusterer=minibatch(), id_column="customer_id"),
        "minibatch-f64": lambda: Segmenter(SPEC, clusterer=minibatch(), dtype=np.float64),
        "rules+kmeans": lambda: Segmenter(SPEC, clusterer=kmeans(3), rules=ruleset(),
                                          cluster_within=["active", "lapsed"], fit_rows=1000,
                                          random_state=3, dtype=np.float64),
        "rules-only": lambda: Segmenter(rules=ruleset(), id_column="customer_id"),
        "rules-only+features": lambda: Segmenter(SPEC, rules=ruleset()),
        "renamed": lambda: Segmenter(SPEC, clusterer=kmeans(3), rules=ruleset(), id_column="customer_id"),
    }


@pytest.mark.parametrize("case", sorted(model_cases()))
def test_loaded_model_scores_bit_identically(case, tmp_path):
    table = customers()
    model = model_cases()[case]().fit(table, as_of=AS_OF)
    if case == "renamed":
        model.rename({0: "Weekend bargain hunters", "lapsed": "Lapsed (win back)", 2: "Üñíçødé ✓"})
    path = tmp_path / "model.seg"
    assert model.save(path) == path
    assert os.listdir(tmp_path) == ["model.seg"]  # no temporary file left behind
    loaded = segmint.load(path)
    assert isinstance(loaded, Segmenter)
    assert loaded.segment_names_ == model.segment_names_
    assert loaded.n_rows_fit_ == model.n_rows_fit_ and loaded.n_clusters_ == model.n_clusters_
    assert loaded.id_column == model.id_column and np.dtype(loaded.dtype) == np.dtype(model.dtype)
    a, b = model.score(table, as_of=AS_OF), loaded.score(table, as_of=AS_OF)
    assert b.equals(a)
    if model.clusterer_ is not None:
        np.testing.assert_array_equal(loaded.clusterer_.cluster_centers_, model.clusterer_.cluster_centers_)
        assert loaded.clusterer_.cluster_centers_.dtype == model.clusterer_.cluster_centers_.dtype
        assert type(loaded.clusterer_) is type(model.clusterer_)
    if model.feature_spec_ is not None:
        np.testing.assert_array_equal(loaded.transform(table), model.transform(table))
    # saving the loaded model writes the same description
    loaded.save(tmp_path / "again.seg")
    with zipfile.ZipFile(path) as z1, zipfile.ZipFile(tmp_path / "again.seg") as z2:
        assert json.loads(z1.read(MANIFEST)) == json.loads(z2.read(MANIFEST))


PICKLE_MARKERS = [b"\x80\x02", b"\x80\x03", b"\x80\x04\x95", b"\x80\x05\x95", b"cnumpy", b"c__builtin__",
                  b"numpy.core.multiarray", b"numpy._core"]


@pytest.mark.parametrize("case", ["rules+kmeans", "rules-only"])
def test_model_file_is_plain_data(case, tmp_path):
    model = model_cases()[case]().fit(customers(), as_of=AS_OF)
    path = tmp_path / "m.seg"
    model.save(path)
    with zipfile.ZipFile(path) as z:
        names = sorted(z.namelist())
        assert names == ([MANIFEST] if case == "rules-only" else ["centers.npy", MANIFEST])
        doc = json.loads(z.read(MANIFEST).decode("utf-8"))
        assert doc["format"] == "segmint-model" and doc["version"] == VERSION
        for name in names:
            data = z.read(name)
            for marker in PICKLE_MARKERS:
                assert marker not in data, (name, marker)
            if name.endswith(".npy"):
                array = np.load(io.BytesIO(data), allow_pickle=False)
                assert array.dtype.kind == "f" and array.ndim == 2
                np.testing.assert_array_equal(array, model.clusterer_.cluster_centers_)
    if case == "rules+kmeans":
        assert doc["clusterer"]["type"] == "KMeans" and doc["cluster_within"] == ["active", "lapsed"]
        assert doc["params"]["fit_rows"] == 1000 and doc["params"]["dtype"] == "float64"


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """(bytes of a saved rules+clusters model, its manifest dict, its centers)."""
    model = Segmenter(SPEC, clusterer=kmeans(3), rules=ruleset(), id_column="customer_id").fit(
        customers(), as_of=AS_OF)
    path = tmp_path_factory.mktemp("saved") / "m.seg"
    model.save(path)
    data = path.read_bytes()
    with zipfile.ZipFile(path) as z:
        return data, json.loads(z.read(MANIFEST)), np.load(io.BytesIO(z.read("centers.npy")))


def write_zip(path, members):
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for name, value in members.items():
            if isinstance(value, np.ndarray):
                buf = io.BytesIO()
                np.save(buf, value, allow_pickle=value.dtype.kind == "O")
                value = buf.getvalue()
            elif isinstance(value, dict):
                value = json.dumps(value)
            z.writestr(name, value)
    return path


def test_newer_version_is_refused(saved, tmp_path):
    _, doc, centers = saved
    path = write_zip(tmp_path / "new.seg", {MANIFEST: {**doc, "version": VERSION + 1}, "centers.npy": centers})
    with pytest.raises(ModelFormatError, match="newer"):
        segmint.load(path)


@pytest.mark.parametrize("cut", ["empty", 1, 22, "half", 30])
def test_truncated_file_is_refused(saved, tmp_path, cut):
    data = saved[0]
    keep = {"empty": 0, "half": len(data) // 2}.get(cut, None)
    keep = len(data) - cut if keep is None else keep
    path = tmp_path / "cut.seg"
    path.write_bytes(data[:keep])
    with pytest.raises(ModelFormatError):
        segmint.load(path)


def test_damaged_bytes_are_refused(saved, tmp_path):
    data = saved[0]
    info = zipfile.ZipFile(io.BytesIO(data)).getinfo(MANIFEST)
    start = info.header_offset + 30 + len(MANIFEST.encode())  # the compressed manifest
    for pos in range(start, start + info.compress_size, max(1, info.compress_size // 25)):
        damaged = bytearray(data)
        damaged[pos] ^= 0xFF
        path = tmp_path / "damaged.seg"
        path.write_bytes(bytes(damaged))
        with pytest.raises(ModelFormatError):
            segmint.load(path)


def test_not_a_zip_and_missing_file(tmp_path):
    path = tmp_path / "notes.seg"
    path.write_text("hello, I am not a model")
    with pytest.raises(ModelFormatError, match="not a readable segmint model"):
        segmint.load(path)
    with pytest.raises(FileNotFoundError):
        segmint.load(tmp_path / "nowhere.seg")
    with pytest.raises(segmint.SourceNotFoundError):
        segmint.load(str(tmp_path / "nowhere.seg"))


@pytest.mark.parametrize("shape_case", ["more-features", "more-clusters", "fewer-clusters", "1-d", "ints",
                                        "nan", "empty", "other-float"])
def test_wrong_centers_are_refused(saved, tmp_path, shape_case):
    _, doc, centers = saved
    k, d = centers.shape
    bad = {"more-features": np.zeros((k, d + 1), centers.dtype),
           "more-clusters": np.zeros((k + 1, d), centers.dtype),
           "fewer-clusters": centers[:1].copy(),
           "1-d": centers.ravel(),
           "ints": centers.astype(np.int64),
           "nan": np.where(np.arange(d) == 1, np.nan, centers).astype(centers.dtype),
           "empty": np.zeros((0, d), centers.dtype),
           "other-float": centers.astype(np.float64 if centers.dtype == np.float32 else np.float32)}[shape_case]
    path = write_zip(tmp_path / "bad.seg", {MANIFEST: doc, "centers.npy": bad})
    with pytest.raises(ModelFormatError, match="centers|segment_names"):
        segmint.load(path)


BROKEN = ["no manifest", "no centers", "bad json", "not a Segmenter", "no version", "no rules key",
          "manifest is a list", "unknown clusterer", "bad clusterer params", "bad feature spec",
          "unknown cluster_within", "duplicate names", "too few names"]


@pytest.mark.parametrize("what", BROKEN)
def test_missing_or_damaged_parts_are_refused(saved, tmp_path, what):
    _, doc, centers = saved
    cases = {
        "no manifest": ({"centers.npy": centers}, "no segmint-model.json"),
        "no centers": ({MANIFEST: doc}, "centers array 'centers.npy' is missing"),
        "bad json": ({MANIFEST: "{not json", "centers.npy": centers}, "damaged"),
        "not a Segmenter": ({MANIFEST: {**doc, "format": "something.else"}, "centers.npy": centers}, "not a segmint"),
        "no version": ({MANIFEST: {k: v for k, v in doc.items() if k != "version"}, "centers.npy": centers},
                       "version"),
        "no rules key": ({MANIFEST: {k: v for k, v in doc.items() if k != "rules"}, "centers.npy": centers},
                         "'rules'"),
        "manifest is a list": ({MANIFEST: "[1, 2]", "centers.npy": centers}, "not a segmint"),
        "unknown clusterer": ({MANIFEST: {**doc, "clusterer": {**doc["clusterer"], "type": "Evil"}},
                               "centers.npy": centers}, "unknown clusterer type"),
        "bad clusterer params": ({MANIFEST: {**doc, "clusterer": {**doc["clusterer"], "params": {"x": 1}}},
                                  "centers.npy": centers}, "clusterer parameters"),
        "bad feature spec": ({MANIFEST: {**doc, "features": {"format": "nope"}}, "centers.npy": centers},
                             "feature spec"),
        "unknown cluster_within": ({MANIFEST: {**doc, "cluster_within": ["nope"]}, "centers.npy": centers},
                                   "cluster_within"),
        "duplicate names": ({MANIFEST: {**doc, "segment_names": ["a"] * len(doc["segment_names"])},
                             "centers.npy": centers}, "segment_names"),
        "too few names": ({MANIFEST: {**doc, "segment_names": doc["segment_names"][:-1]},
                           "centers.npy": centers}, "segment_names"),
    }
    assert sorted(cases) == sorted(BROKEN)
    members, message = cases[what]
    path = write_zip(tmp_path / "part.seg", members)
    with pytest.raises(ModelFormatError, match=message):
        segmint.load(path)


class _Evil:
    """Unpickling this creates a folder: proof that code ran."""

    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return (os.mkdir, (self.target,))


def test_pickled_arrays_are_refused_without_running_them(saved, tmp_path):
    _, doc, centers = saved
    sentinel = tmp_path / "pwned"
    evil = np.array([_Evil(str(sentinel))], dtype=object)
    path = write_zip(tmp_path / "evil.seg", {MANIFEST: doc, "centers.npy": evil})
    with pytest.raises(ModelFormatError, match="not plain numeric data"):
        segmint.load(path)
    # a raw pickle in place of the array, and an npz archive disguised as .npy
    path = write_zip(tmp_path / "evil2.seg", {MANIFEST: doc, "centers.npy": pickle.dumps(_Evil(str(sentinel)))})
    with pytest.raises(ModelFormatError):
        segmint.load(path)
    buf = io.BytesIO()
    np.savez(buf, centers=centers)
    path = write_zip(tmp_path / "npz.seg", {MANIFEST: doc, "centers.npy": buf.getvalue()})
    with pytest.raises(ModelFormatError):
        segmint.load(path)
    assert not sentinel.exists()


def test_save_is_atomic(tmp_path, monkeypatch):
    table = customers()
    first = Segmenter(SPEC, clusterer=kmeans(3)).fit(table)
    second = Segmenter(SPEC, clusterer=kmeans(5)).fit(table)
    path = tmp_path / "m.seg"
    first.save(path)
    second.save(path)  # replaces
    assert segmint.load(path).n_clusters_ == 5
    assert os.listdir(tmp_path) == ["m.seg"]
    before = path.read_bytes()

    def boom(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "save", boom)
    with pytest.raises(KeyboardInterrupt):
        first.save(path)
    monkeypatch.undo()
    assert path.read_bytes() == before  # untouched
    assert os.listdir(tmp_path) == ["m.seg"]  # and no temporary file
    with pytest.raises(OSError):
        first.save(tmp_path / "no such folder" / "m.seg")


def test_save_parameters_as_plain_data(tmp_path):
    table = customers()
    model = Segmenter(SPEC, clusterer=kmeans(3), fit_rows=np.int64(2000), random_state=np.int64(4)).fit(table)
    model.save(tmp_path / "m.seg")
    assert segmint.load(tmp_path / "m.seg").fit_rows == 2000
    odd = Segmenter(SPEC, clusterer=KMeans(3, random_state=np.random.default_rng(0))).fit(table)
    with pytest.raises(TypeError, match="plain data") as info:
        odd.save(tmp_path / "odd.seg")
    assert isinstance(info.value, segmint.errors.ParameterError)  # a segmint error, not a bug
    assert sorted(os.listdir(tmp_path)) == ["m.seg"]


# ------------------------------------------------------------------ 8. score to a file
def read_back(path):
    if str(path).endswith(".parquet"):
        return pq.read_table(path)
    return feather.read_table(path)


@pytest.mark.parametrize("suffix", [".arrow", ".parquet"])
def test_score_to_file_equals_the_table(fitted, tmp_path, suffix):
    table = customers()
    expected = fitted.score(table, as_of=AS_OF)
    out = tmp_path / f"scores{suffix}"
    done = []
    assert fitted.score(table, out=out, as_of=AS_OF, batch_size=1000, progress=done.append) is None
    assert sum(done) == table.num_rows and len(done) == 6
    assert read_back(out).equals(expected)
    assert os.listdir(tmp_path) == [out.name]


@pytest.mark.parametrize("suffix", [".arrow", ".parquet"])
@pytest.mark.parametrize("existing", [False, True])
def test_interrupted_score_leaves_nothing(fitted, tmp_path, suffix, existing):
    table = customers()
    out = tmp_path / f"scores{suffix}"
    if existing:
        out.write_bytes(b"yesterday's scores")
    calls = []

    def progress(rows):
        calls.append(rows)
        raise KeyboardInterrupt  # Ctrl-C after the first batch

    with pytest.raises(KeyboardInterrupt):
        fitted.score(table, out=out, as_of=AS_OF, batch_size=500, progress=progress)
    assert calls == [500]
    if existing:
        assert out.read_bytes() == b"yesterday's scores"
        assert os.listdir(tmp_path) == [out.name]
    else:
        assert os.listdir(tmp_path) == []


def test_score_error_mid_way_leaves_nothing(fitted, tmp_path):
    # a null in a column the spec cannot impute, late in the data: the batch fails mid-way
    table = customers()
    sessions = table.column("sessions_30d").to_pylist()
    sessions[-3] = None
    broken = table.set_column(table.column_names.index("sessions_30d"), "sessions_30d",
                              pa.array(sessions, pa.int32()))
    out = tmp_path / "scores.arrow"
    with pytest.raises(segmint.FeatureError, match="sessions_30d"):
        fitted.score(broken, out=out, as_of=AS_OF, batch_size=500)
    assert os.listdir(tmp_path) == []


# ----------------------------------------------------------------- 9. input kinds
@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("inputs")
    table = customers()
    paths = {"ipc": folder / "c.arrow", "parquet": folder / "c.parquet", "stream": folder / "c.arrows"}
    feather.write_feather(table, paths["ipc"], compression="uncompressed", chunksize=1000)
    pq.write_table(table, paths["parquet"], row_group_size=1500)
    with ipc.new_stream(str(paths["stream"]), table.schema) as w:
        for b in table.to_batches(max_chunksize=700):
            w.write_batch(b)
    return paths


def inputs(files):
    table = customers()
    return {
        "table": lambda: table,
        "chunked table": lambda: pa.Table.from_batches(table.to_batches(max_chunksize=333)),
        "pandas": lambda: table.to_pandas(),
        "ipc file": lambda: files["ipc"],
        "parquet file": lambda: str(files["parquet"]),
        "ipc stream": lambda: files["stream"],
        "reader": lambda: pa.RecordBatchReader.from_batches(table.schema, table.to_batches(max_chunksize=900)),
    }


def test_every_input_kind_scores_the_same(fitted, files):
    expected = fitted.score(customers(), as_of=AS_OF)
    for kind, make in inputs(files).items():
        got = fitted.score(make(), as_of=AS_OF, batch_size=1024)
        assert got.equals(expected), kind


def test_every_re_readable_input_kind_fits_the_same(files):
    ref = Segmenter(SPEC, clusterer=kmeans(3), rules=ruleset()).fit(customers(), as_of=AS_OF)
    for kind, make in inputs(files).items():
        if kind == "reader":
            continue
        model = Segmenter(SPEC, clusterer=kmeans(3), rules=ruleset()).fit(make(), as_of=AS_OF)
        np.testing.assert_array_equal(model.clusterer_.cluster_centers_, ref.clusterer_.cluster_centers_,
                                      err_msg=kind)
        assert model.n_rows_fit_ == ref.n_rows_fit_, kind


def test_fit_on_a_one_shot_reader(files):
    """Fitting a clusterer reads the source twice (feature statistics, then the rows to
    cluster), so a RecordBatchReader is refused up front with a clear error; rules-only
    models (no pass, or one for the feature statistics) fit on a reader."""
    make = inputs(files)["reader"]
    with pytest.raises(SourceConsumedError, match="read only once.*twice"):
        Segmenter(SPEC, clusterer=kmeans(3)).fit(make())
    with pytest.raises(SourceConsumedError):
        Segmenter(SPEC, clusterer=kmeans(3), rules=ruleset()).fit(segmint.open(make()), as_of=AS_OF)
    rules_only = Segmenter(SPEC, rules=ruleset()).fit(make())
    np.testing.assert_array_equal(rules_only.transform(customers()), reference_matrix(customers(), np.float32))
    assert rules_only.reference_ is None  # a stream cannot be read again for reference statistics
    # and a reader already read once says so
    reader = segmint.open(make())
    fitted_model = Segmenter(rules=ruleset()).fit(customers())
    fitted_model.score(reader)
    with pytest.raises(SourceConsumedError, match="already read once"):
        fitted_model.score(reader)


# ------------------------------------------------------------------------- 10. threads
def test_thread_count_does_not_change_the_bits():
    table = customers()
    results = []
    for n in (1, 2):
        with segmint.threads(n):
            model = Segmenter(SPEC, clusterer=minibatch(), rules=ruleset(), id_column="customer_id")
            model.fit(table, as_of=AS_OF, batch_size=1000)
            results.append((model.clusterer_.cluster_centers_, model.score(table, as_of=AS_OF, batch_size=700)))
    np.testing.assert_array_equal(results[0][0], results[1][0])
    assert results[0][1].equals(results[1][1])


def test_concurrent_scoring_from_python_threads(fitted):
    table = customers()
    expected = fitted.score(table, as_of=AS_OF)
    with segmint.threads(2), ThreadPoolExecutor(2) as pool:
        futures = [pool.submit(fitted.score, table, as_of=AS_OF, batch_size=600) for _ in range(6)]
        for f in futures:
            assert f.result().equals(expected)


def test_concurrent_scoring_of_sources_with_different_schemas(fitted):
    # the result schema depends on the source (the id column's type): each call must use its own
    table = customers()
    as_text = table.set_column(0, "customer_id", table.column("customer_id").cast(pa.string()))
    expected = {id(table): fitted.score(table, as_of=AS_OF), id(as_text): fitted.score(as_text, as_of=AS_OF)}
    barrier = threading.Barrier(2)

    def run(source):
        barrier.wait()
        return [fitted.score(source, as_of=AS_OF, batch_size=400) for _ in range(4)]

    with segmint.threads(2), ThreadPoolExecutor(2) as pool:
        futures = {id(s): pool.submit(run, s) for s in (table, as_text)}
        for key, f in futures.items():
            for got in f.result():
                assert got.equals(expected[key])


def per_chunk_dictionaries(table, rows=250, seed=0):
    """``table`` with its region column re-encoded chunk by chunk, each chunk with its own
    dictionary (other strings, other order), as Parquet row groups or Arrow streams may give."""
    rng = np.random.default_rng(seed)
    region = table.column("region").cast(pa.string()).combine_chunks()
    chunks = []
    for lo in range(0, table.num_rows, rows):
        piece = region.slice(lo, rows)
        strings = rng.permutation(piece.drop_null().unique().to_pylist()).tolist() + ["never used"]
        dictionary = pa.array(strings, pa.string())
        chunks.append(pa.DictionaryArray.from_arrays(pa.compute.index_in(piece, value_set=dictionary), dictionary))
    return table.set_column(table.column_names.index("region"), "region", pa.chunked_array(chunks))


@pytest.mark.parametrize("with_rules", [False, True])
def test_string_columns_with_changing_dictionaries_on_many_threads(with_rules):
    # Each batch's string codes go through one shared dictionary unifier per pass; when
    # workers built the views themselves they raced in it (wrong one-hot columns, segfaults).
    table = customers()
    mixed = per_chunk_dictionaries(table)
    model = Segmenter(SPEC, clusterer=kmeans(3), rules=ruleset() if with_rules else None,
                      id_column="customer_id").fit(table, as_of=AS_OF)
    expected = model.score(table, as_of=AS_OF)
    with segmint.threads(1):
        assert model.score(mixed, as_of=AS_OF, batch_size=250).equals(expected)
    with segmint.threads(4):
        for _ in range(15):
            assert model.score(mixed, as_of=AS_OF, batch_size=250).equals(expected)
    refit = Segmenter(SPEC, clusterer=kmeans(3), rules=ruleset() if with_rules else None).fit(mixed, as_of=AS_OF)
    np.testing.assert_array_equal(refit.clusterer_.cluster_centers_, model.clusterer_.cluster_centers_)


# ------------------------------------------------------------------------ 11. edge cases
@pytest.mark.parametrize("dtype", DTYPES)
def test_one_row(fitted, dtype):
    table = customers()
    model = Segmenter(SPEC, clusterer=kmeans(3), dtype=dtype).fit(table)
    for i in (0, 17):
        row = table.slice(i, 1)
        result = model.score(row)
        assert result.num_rows == 1
        assert result.column("segment_id")[0].as_py() == model.predict(table)[i]
    # a 1-row fit: one cluster, at the row itself (a row with a recency: the median of one
    # null is undefined)
    i = table.column("recency_days").is_valid().to_pylist().index(True)
    one = Segmenter(SPEC, clusterer=KMeans(1), dtype=dtype).fit(table.slice(i, 1))
    result = one.score(table.slice(i, 1))
    assert result.column("segment_id").to_pylist() == [0] and result.column("distance").to_pylist() == [0.0]
    assert fitted.score(table.slice(3, 1), as_of=AS_OF).equals(fitted.score(table, as_of=AS_OF).slice(3, 1))


def test_empty_input(fitted, tmp_path):
    empty = customers().slice(0, 0)
    for model in (fitted, Segmenter(SPEC, clusterer=kmeans(3)).fit(customers()),
                  Segmenter(rules=ruleset()).fit(customers())):
        result = model.score(empty, as_of=AS_OF)
        assert result.num_rows == 0
        assert result.schema.equals(model.score(customers().slice(0, 5), as_of=AS_OF).schema)
        assert model.predict(empty, as_of=AS_OF).shape == (0,)
    out = tmp_path / "empty.arrow"
    fitted.score(empty, out=out, as_of=AS_OF)
    got = feather.read_table(out)
    assert got.num_rows == 0 and got.column_names == ["customer_id", "segment_id", "segment", "distance", "rule"]
    assert fitted.transform(empty).shape == (0, fitted.feature_spec_.n_features_out_)
    with pytest.raises(segmint.FeatureError, match="no rows"):
        Segmenter(SPEC, clusterer=kmeans()).fit(empty)


def test_rules_leaving_nobody_in_scope():
    table = customers()
    everyone = [("everyone", "frequency >= 0"), ("never", "frequency < 0")]
    with pytest.raises(DataError, match="no customer to cluster.*'unassigned'"):
        Segmenter(SPEC, clusterer=kmeans(), rules=everyone).fit(table)
    with pytest.raises(DataError, match="no customer to cluster.*'never'"):
        Segmenter(SPEC, clusterer=kmeans(), rules=everyone, cluster_within="never").fit(table)


def test_fewer_rows_in_scope_than_clusters():
    table = customers()
    rules = [("rest", "customer_id > 1000003")]
    with pytest.raises(ValueError, match="n_clusters|n_samples|rows"):
        Segmenter(SPEC, clusterer=kmeans(4), rules=rules).fit(table)


def test_the_fit_rows_sample_is_uniform_on_customers_the_generator_made_with_the_same_seed(monkeypatch):
    # default_rng(seed) is the generator's own stream for its first block (numpy's SeedSequence
    # ignores trailing zeros): a sample keyed by it picked synthetic customers by persona
    import segmint
    t = segmint.make_customers(100_000, random_state=0)
    seen = {}
    fit = segmint.MiniBatchKMeans.fit

    def spy(self, X, *args, **kwargs):
        seen["X"] = np.asarray(X)
        return fit(self, X, *args, **kwargs)

    monkeypatch.setattr(segmint.MiniBatchKMeans, "fit", spy)
    segmint.Segmenter([{"column": "true_segment", "scale": None}], clusterer=segmint.MiniBatchKMeans(3, random_state=0),
                      fit_rows=20_000, random_state=0).fit(t)
    truth = t.column("true_segment").to_numpy().astype(np.int64)
    drawn = np.bincount(np.rint(seen["X"][:, 0]).astype(np.int64), minlength=7) / len(seen["X"])
    assert np.abs(drawn - np.bincount(truth, minlength=7) / len(truth)).max() < 0.02


# ------------------------------------------------------------ 9. reference statistics of fit
def score_counts(model, table):
    """Rows per segment id as score() assigns them: the slow twin of reference_.segments."""
    ids = model.score(table, as_of=AS_OF).column("segment_id").to_numpy()
    return np.bincount(ids, minlength=len(model.segment_names_)).tolist()


@pytest.mark.parametrize("case", ["clusters", "rules+clusters", "fit_rows sample", "rules only",
                                  "cluster_within", "no labels"])
def test_fit_records_the_exact_rows_of_every_segment(case):
    table = customers()
    params = {"clusters": dict(clusterer=kmeans(3)),
              "rules+clusters": dict(clusterer=minibatch(3), rules=ruleset()),
              "fit_rows sample": dict(clusterer=minibatch(3), rules=ruleset(), fit_rows=900),
              "rules only": dict(rules=ruleset()),
              "cluster_within": dict(clusterer=kmeans(2), rules=ruleset(), cluster_within=["lapsed", "active"]),
              "no labels": dict(clusterer=minibatch(3, compute_labels=False))}[case]
    model = Segmenter(SPEC, id_column="customer_id", **params).fit(table, as_of=AS_OF)
    seg = model.reference_.segments
    assert seg.name == "segment" and seg.null_count == 0
    assert list(seg.categories) == model.segment_names_
    assert list(seg.counts) == score_counts(model, table)
    assert model.reference_.n_rows == table.num_rows


def test_fit_reference_features_equal_the_public_reference_statistics():
    """The one-pass reference (ranges from the spec) equals reference_statistics' two passes."""
    from segmint.monitor.reference import reference_statistics
    table = customers()
    model = Segmenter(SPEC, clusterer=kmeans(3), rules=ruleset()).fit(table, as_of=AS_OF)
    numeric = ["recency_days", "frequency", "monetary", "sessions_30d", "email_opt_in"]
    twin = reference_statistics(table, features=numeric, categories=["region"])
    ref = model.reference_
    assert list(ref.features) == numeric and list(ref.categories) == ["region"]
    assert ref.to_dict()["features"] == twin.to_dict()["features"]
    assert ref.to_dict()["categories"] == twin.to_dict()["categories"]
    # the batch size changes nothing
    other = Segmenter(SPEC, clusterer=kmeans(3), rules=ruleset()).fit(table, as_of=AS_OF, batch_size=777)
    assert other.reference_ == ref


def test_a_one_hot_column_of_too_many_categories_is_left_out_of_the_reference():
    from segmint.monitor.reference import MAX_CATEGORIES
    n = 3 * MAX_CATEGORIES
    table = pa.table({"x": np.arange(n, dtype=np.float64), "code": [f"c{i}" for i in range(n)]})
    model = Segmenter(["x", {"column": "code", "one_hot": True}], clusterer=kmeans(2)).fit(table)
    assert list(model.reference_.features) == ["x"] and model.reference_.categories == {}
    assert sum(model.reference_.segments.counts) == n


def test_rename_renames_the_reference_segments_too(fitted):
    model = clone(fitted)
    before = model.reference_
    model.rename({0: "Weekend bargain hunters", "lapsed": "Gone quiet"})
    assert list(model.reference_.segments.categories) == model.segment_names_
    assert model.reference_.segments.counts == before.segments.counts
    assert list(fitted.reference_.segments.categories) == fitted.segment_names_  # the original untouched


def test_the_reference_costs_one_more_pass_at_most(monkeypatch):
    """With every row clustered, the segment counts come from the fit's labels: no scoring."""
    calls = []
    original = Segmenter._assign_batch
    monkeypatch.setattr(Segmenter, "_assign_batch", lambda self, *a, **k: calls.append(1) or original(self, *a, **k))
    Segmenter(SPEC, clusterer=kmeans(3), rules=ruleset()).fit(customers(), as_of=AS_OF)
    assert calls == []


def test_a_one_hot_column_dropped_from_the_reference_is_no_longer_counted():
    """Past MAX_CATEGORIES categories a column is left out: later batches must not count it."""
    from segmint.io import open as open_source
    from segmint.monitor.reference import MAX_CATEGORIES, _KnownRangePass
    n = MAX_CATEGORIES + 500
    table = pa.table({"code": pa.array([f"c{i}" for i in range(2 * n)]).dictionary_encode()})
    counter = _KnownRangePass([], ["code"], [])
    partials = []
    for batch in open_source(table).batches(columns=["code"], batch_size=n):
        views = {"code": batch["code"]}
        partial = counter.count(batch.num_rows, views)
        partials.append(partial[2][0])
        counter.add(partial, [views["code"].dictionary])
    assert partials[0] is not None and partials[1] is None  # dropped after the first batch
    ref = counter.finish()
    assert ref.n_rows == 2 * n and ref.categories == {}
