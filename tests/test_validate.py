"""segmint.explain.validate: each check on data built to pass it and to fail it, the figures
against slow twins, thresholds at their boundary, every form of segments=, the CLI."""
import json
import math

import numpy as np
import pyarrow as pa
import pyarrow.feather as feather
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from segmint import KMeans, MiniBatchKMeans, RuleSet, Segmenter
from segmint.cli import main
from segmint.errors import ParameterError, SegmintError, UnknownColumnError, UnsupportedTypeError
from segmint.explain.validate import MAX_OVERLAP_SHARE, Validation, best_jaccard, stability_band, validate

CENTERS = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
# s0 and s1 0.6 standard deviations apart (heavy overlap: a separation near 0.6), s2 far away
OVERLAPPING = np.array([[0.0, 0.0], [0.6, 0.0], [12.0, 12.0]])


def blobs(n=3000, centers=CENTERS, scale=1.0, seed=0):
    """Gaussian blobs: ``a``, ``b`` the coordinates, ``seg`` the true blob (s0, s1, ...)."""
    rng = np.random.default_rng(seed)
    lab = rng.integers(0, len(centers), n)
    X = centers[lab] + rng.normal(scale=scale, size=(n, centers.shape[1]))
    return pa.table({"id": np.arange(n), "a": X[:, 0], "b": X[:, 1],
                     "seg": pa.array([f"s{v}" for v in lab], pa.string()), "lab": lab.astype(np.int32)})


def row(v, name):
    return next(r for r in v.table.to_pylist() if r["segment"] == name)


# -- slow twins ----------------------------------------------------------------------------------
def naive_separation(X, labels, names, standardize=True):
    """Separation of every segment from its nearest, from the formula on the whole data: Cohen's d
    of the two segments projected on the line joining their centroids (X without missing values)."""
    if standardize:
        X = X / X.std(axis=0)
    members = {s: (labels == s) if not isinstance(labels, dict) else labels[s] for s in names}
    cents = {s: X[m].mean(axis=0) for s, m in members.items()}
    covs = {s: np.atleast_2d(np.cov(X[m], rowvar=False, bias=True)) for s, m in members.items()}
    out = {}
    for s in names:
        seps = {}
        for t in names:
            if t != s:
                diff = cents[s] - cents[t]
                u = diff / np.linalg.norm(diff)
                seps[t] = np.linalg.norm(diff) / math.sqrt((u @ covs[s] @ u + u @ covs[t] @ u) / 2)
        t = min(seps, key=seps.get)
        out[s] = (seps[t], t)
    return out


def old_separation(X, labels, a, b):
    """The earlier measure, centroid distance / mean RMS spread (standardized): it shrinks as
    features in which the segments agree are added."""
    X = X / X.std(axis=0)
    cents = {s: X[labels == s].mean(axis=0) for s in (a, b)}
    spread = {s: math.sqrt(((X[labels == s] - cents[s]) ** 2).sum(axis=1).mean()) for s in (a, b)}
    return np.linalg.norm(cents[a] - cents[b]) / ((spread[a] + spread[b]) / 2)


def naive_best_jaccard(a, b, ka):
    out = []
    for c in range(ka):
        C = set(np.flatnonzero(a == c))
        if not C:
            out.append(math.nan)
            continue
        out.append(max(len(C & set(np.flatnonzero(b == d))) / len(C | set(np.flatnonzero(b == d)))
                       for d in np.unique(b)))
    return np.array(out)


# -- substantial ---------------------------------------------------------------------------------
def test_a_tiny_segment_is_too_small_and_the_finding_names_its_figure_and_threshold():
    t = blobs(3000)
    seg = np.asarray(t.column("seg").to_pylist(), dtype=object)
    seg[:12] = "tiny"
    t = t.set_column(3, "seg", pa.array(seg.tolist()))
    v = validate(t, segments="seg", id_column="id", features=["a", "b"], min_count=100)
    assert row(v, "tiny")["substantial"] == "fail"
    assert row(v, "s1")["substantial"] == "pass"
    tiny = [f for f in v.findings if f.startswith("tiny is too small")]
    assert tiny == ["tiny is too small to act on: 12 customers (0.4%) < min_count 100 and < min_share 2%"]


def test_substantial_thresholds_hold_exactly_at_the_boundary():
    seg = ["a"] * 20 + ["b"] * 980
    t = pa.table({"seg": seg, "x": np.arange(1000.0)})
    at = validate(t, segments="seg", min_count=20, min_share=0.02)
    assert row(at, "a")["substantial"] == "pass"
    above = validate(t, segments="seg", min_count=21, min_share=0.02)
    assert row(above, "a")["substantial"] == "fail" and "< min_count 21" in above.findings[0]
    share = validate(t, segments="seg", min_count=0, min_share=0.0201)
    assert row(share, "a")["substantial"] == "fail" and "min_share 2.01%" in share.findings[0]


# -- measurable ----------------------------------------------------------------------------------
def test_null_share_counts_missing_values_among_the_defining_features():
    rng = np.random.default_rng(1)
    n = 2000
    seg = rng.choice(["p", "q"], n)
    x = rng.normal(size=n)
    y = rng.normal(size=n)
    x_null = (seg == "q") & (rng.random(n) < 0.6)
    y[rng.random(n) < 0.1] = np.nan  # NaN counts as missing too
    t = pa.table({"seg": seg, "x": pa.array(x, mask=x_null), "y": y})
    v = validate(t, segments="seg", features=["x", "y"], min_count=0)
    for name in ("p", "q"):
        m = seg == name
        expected = (x_null[m].sum() + np.isnan(y[m]).sum()) / (2 * m.sum())
        assert row(v, name)["null_share"] == pytest.approx(expected, abs=1e-12)
    assert row(v, "p")["measurable"] == "pass"
    assert row(v, "q")["measurable"] == "fail"
    assert any(f.startswith("q is hard to measure") and "max_null_share 20%" in f for f in v.findings)


def test_max_null_share_holds_exactly_at_the_boundary():
    x = pa.array([1.0, None, 3.0, 4.0, 5.0] * 20)  # 20% missing
    t = pa.table({"seg": ["s"] * 100, "x": x})
    assert row(validate(t, segments="seg", min_count=0, max_null_share=0.2), "s")["measurable"] == "pass"
    assert row(validate(t, segments="seg", min_count=0, max_null_share=0.19), "s")["measurable"] == "fail"


def test_a_rule_on_a_column_with_nulls_reports_its_unknown_share():
    rng = np.random.default_rng(2)
    n = 1000
    spend = rng.normal(100, 30, n)
    null = rng.random(n) < 0.3
    t = pa.table({"spend": pa.array(spend, mask=null), "visits": rng.integers(0, 5, n)})
    rules = RuleSet({"big": "spend > 100", "busy": "visits >= 3"}, default="rest")
    v = validate(t, segments=rules, min_count=0)
    big = row(v, "big")
    matched = int(((spend > 100) & ~null).sum())
    unknown = int(null.sum())
    assert big["count"] == matched
    assert big["unknown_share"] == pytest.approx(unknown / (matched + unknown))
    assert big["measurable"] == "fail"
    assert any(f.startswith("big leaves out") and "rule was unknown" in f for f in v.findings)
    assert row(v, "busy")["unknown_share"] == 0.0
    assert v.table.column("stability").to_pylist() == ["not checked"] * 3
    assert any("rules are deterministic" in note for note in v.notes)


# -- accessible ----------------------------------------------------------------------------------
def test_reachable_share_is_the_share_of_true_consent_with_null_as_not_reachable():
    seg = ["a"] * 10 + ["b"] * 10
    ok = pa.array([True] * 5 + [False] * 5 + [True] * 4 + [None] * 3 + [False] * 3)
    t = pa.table({"seg": seg, "x": np.arange(20.0), "ok": ok})
    v = validate(t, segments="seg", reachable="ok", min_count=0)
    assert row(v, "a")["reachable_share"] == 0.5 and row(v, "a")["accessible"] == "pass"  # at the boundary
    assert row(v, "b")["reachable_share"] == 0.4 and row(v, "b")["accessible"] == "fail"
    assert "b is hard to reach: 40.0% of its customers are reachable < min_reachable_share 50%" in v.findings
    plain = validate(t, segments="seg", min_count=0)
    assert plain.table.column("accessible").to_pylist() == ["not checked"] * 2
    assert plain.table.column("reachable_share").null_count == 2


def test_a_zero_one_integer_consent_column_works_as_a_boolean():
    t = pa.table({"seg": ["a"] * 4, "x": [1.0, 2, 3, 4], "ok": np.array([1, 0, 1, 1], np.int8)})
    assert row(validate(t, segments="seg", reachable="ok", min_count=0), "a")["reachable_share"] == 0.75


# -- distinct ------------------------------------------------------------------------------------
def test_well_separated_blobs_pass_and_match_the_separation_twin():
    t = blobs(3000)
    v = validate(t, segments="seg", features=["a", "b"], batch_size=257)  # moments merged across batches
    X = np.column_stack([t.column("a").to_numpy(), t.column("b").to_numpy()])
    labels = np.asarray(t.column("seg").to_pylist())
    twin = naive_separation(X, labels, ["s0", "s1", "s2"])
    for name, (sep, nearest) in twin.items():
        r = row(v, name)
        assert r["separation"] == pytest.approx(sep, rel=1e-10)
        assert r["nearest"] == nearest
        assert r["distinct"] == "pass"
    assert v.merge_suggestions == []


def test_two_overlapping_clusters_are_flagged_with_a_merge_suggestion():
    centers = OVERLAPPING
    v = validate(blobs(3000, centers), segments="seg", features=["a", "b"])
    assert row(v, "s0")["distinct"] == "fail" and row(v, "s1")["distinct"] == "fail"
    assert row(v, "s2")["distinct"] == "pass"
    assert [(a, b) for a, b, _ in v.merge_suggestions] == [("s0", "s1")]
    assert v.merge_suggestions[0][2] == pytest.approx(row(v, "s0")["separation"])
    assert any(f.startswith("s0 is too close to s1: separation") for f in v.findings)


def test_min_separation_holds_exactly_at_the_boundary():
    t = blobs(600)
    sep = row(validate(t, segments="seg", features=["a", "b"]), "s0")["separation"]
    assert row(validate(t, segments="seg", features=["a", "b"], min_separation=sep), "s0")["distinct"] == "pass"
    assert row(validate(t, segments="seg", features=["a", "b"],
                        min_separation=np.nextafter(sep, np.inf)), "s0")["distinct"] == "fail"


def test_the_result_does_not_depend_on_the_batch_size():
    t = blobs(2000)
    a = validate(t, segments="seg", features=["a", "b"])
    b = validate(t, segments="seg", features=["a", "b"], batch_size=97)
    for name in ("s0", "s1", "s2"):
        assert row(a, name)["separation"] == pytest.approx(row(b, name)["separation"], rel=1e-12)


def test_irrelevant_noise_features_do_not_change_the_verdict_of_segments_apart_in_one_feature():
    rng = np.random.default_rng(5)
    n = 4000
    lab = np.repeat(np.array(["p", "q"]), n // 2)
    x = np.where(lab == "p", 0.0, 3.0) + rng.normal(size=n)  # three standard deviations apart in x
    noise = rng.normal(size=(n, 20))  # 20 features in which p and q agree
    t = pa.table({"seg": lab, "x": x, **{f"z{j}": noise[:, j] for j in range(20)}})
    alone = validate(t, segments="seg", features=["x"], min_count=0)
    crowded = validate(t, segments="seg", min_count=0, batch_size=333)
    assert alone.table.column("distinct").to_pylist() == ["pass", "pass"]
    assert crowded.table.column("distinct").to_pylist() == ["pass", "pass"]
    assert row(alone, "p")["separation"] == pytest.approx(3.0, rel=0.05)
    assert row(crowded, "p")["separation"] == pytest.approx(row(alone, "p")["separation"], rel=0.05)
    X = np.column_stack([x, noise])
    twin = naive_separation(X, lab, ["p", "q"])
    assert row(crowded, "p")["separation"] == pytest.approx(twin["p"][0], rel=1e-10)
    # the earlier measure (distance / mean RMS spread) flipped the verdict: the reason for this one
    assert old_separation(X[:, :1], lab, "p", "q") >= 1.0 > old_separation(X, lab, "p", "q")


def pairwise_covariance(X):
    """Population covariance of each pair of columns over the rows where both are present (0
    where never both)."""
    d = X.shape[1]
    out = np.zeros((d, d))
    for i in range(d):
        for j in range(d):
            ok = ~np.isnan(X[:, i]) & ~np.isnan(X[:, j])
            if ok.any():
                xi, xj = X[ok, i], X[ok, j]
                out[i, j] = np.mean((xi - xi.mean()) * (xj - xj.mean()))
    return out


def test_missing_values_are_left_out_pair_by_pair_as_in_the_pairwise_twin():
    rng = np.random.default_rng(6)
    n = 3000
    lab = rng.choice(np.array(["p", "q", "r"]), n)
    base = {"p": [0.0, 0.0, 0.0], "q": [2.0, 1.0, 0.0], "r": [0.0, 3.0, 1.0]}
    X = np.array([base[s] for s in lab]) + rng.normal(size=(n, 3)) @ np.array(
        [[1.0, 0.5, 0.0], [0.0, 1.0, 0.3], [0.0, 0.0, 0.7]])
    X[rng.random((n, 3)) < np.array([0.05, 0.2, 0.4])] = np.nan
    X[lab == "r", 2] = np.nan  # a feature a segment never has is left out of that pair
    t = pa.table({"seg": lab, **{f"x{j}": pa.array(X[:, j], from_pandas=True) for j in range(3)}})
    v = validate(t, segments="seg", min_count=0, batch_size=211)
    Z = X / np.nanstd(X, axis=0)
    cents = {s: np.nanmean(Z[lab == s], axis=0) for s in "pq"}
    cents["r"] = np.r_[np.nanmean(Z[lab == "r", :2], axis=0), np.nan]  # r has no x2
    covs = {s: pairwise_covariance(Z[lab == s]) for s in "pqr"}
    for s in "pqr":
        seps = {}
        for o in "pqr":
            if o != s:
                diff = np.nan_to_num(cents[s] - cents[o])
                q = (diff @ covs[s] @ diff + diff @ covs[o] @ diff) / 2
                seps[o] = (diff @ diff) / math.sqrt(q)
        o = min(seps, key=seps.get)
        assert row(v, s)["nearest"] == o
        assert row(v, s)["separation"] == pytest.approx(seps[o], rel=1e-9)


def test_separation_is_cohens_d_along_the_line_and_ignores_spread_across_it():
    # p: x in {0, 2}, q: x in {4, 6} (one standard deviation 1, centres 4 apart); y spreads
    # both widely but only across the line joining the centres
    t = pa.table({"seg": ["p"] * 4 + ["q"] * 4, "x": [0.0, 2, 0, 2, 4, 6, 4, 6],
                  "y": [-50.0, -50, 50, 50, -50, -50, 50, 50]})
    v = validate(t, segments="seg", min_count=0)
    assert row(v, "p")["separation"] == pytest.approx(4.0, rel=1e-12)
    assert row(v, "q")["separation"] == pytest.approx(4.0, rel=1e-12)
    at = validate(t, segments="seg", min_count=0, min_separation=row(v, "p")["separation"])
    assert at.table.column("distinct").to_pylist() == ["pass", "pass"]


def test_segments_that_do_not_vary_along_the_line_are_infinitely_separated_and_equal_ones_are_not():
    # p and q spread in y only, and differ in x only
    t = pa.table({"seg": ["p"] * 3 + ["q"] * 3, "x": [1.0] * 3 + [2.0] * 3, "y": [0.0, 1, 2] * 2})
    v = validate(t, segments="seg", min_count=0)
    assert v.table.column("separation").to_pylist() == [None, None]
    assert v.table.column("nearest").to_pylist() == ["q", "p"]
    assert v.table.column("distinct").to_pylist() == ["pass", "pass"]
    constant = pa.table({"seg": ["p", "p", "q", "q"], "x": [1.0, 1, 3, 3]})
    apart = validate(constant, segments="seg", min_count=0)
    assert apart.table.column("separation").to_pylist() == [None, None]
    assert apart.table.column("distinct").to_pylist() == ["pass", "pass"]
    same = validate(pa.table({"seg": ["p", "p", "q", "q"], "x": [1.0, 1, 1, 1], "y": [0.0, 1, 0, 1]}),
                    segments="seg", min_count=0)
    assert same.table.column("separation").to_pylist() == [0.0, 0.0]
    assert same.table.column("distinct").to_pylist() == ["fail", "fail"]


def test_the_separation_does_not_depend_on_the_thread_count():
    import segmint
    t = blobs(3000, np.array([[0.0, 0.0], [1.0, 0.5], [6.0, 6.0]]))
    rules = RuleSet({"right": "a > 0.5", "up": "b > 3", "left": "a < 3"}, mode="multi")
    with segmint.threads(1):
        one = [validate(t, segments="seg", min_count=0, batch_size=128).to_dict(),
               validate(t, segments=rules, min_count=0, batch_size=128).to_dict()]
    with segmint.threads(2):
        two = [validate(t, segments="seg", min_count=0, batch_size=128).to_dict(),
               validate(t, segments=rules, min_count=0, batch_size=128).to_dict()]
    assert one == two


@settings(max_examples=15, deadline=None)
@given(st.integers(1, 400), st.floats(0.0, 0.5), st.integers(0, 2**16))
def test_covariances_merged_batch_by_batch_match_one_batch_with_any_batch_size_and_nulls(batch, nulls, seed):
    rng = np.random.default_rng(seed)
    n = 600
    lab = rng.integers(0, 3, n)
    X = np.array([[0.0, 0, 0], [1, 2, 0], [0, 1, 3]])[lab] + rng.normal(size=(n, 3)) * [1.0, 0.5, 2.0] + 1e6
    X[rng.random((n, 3)) < nulls] = np.nan  # far from 0: the merge must not lose digits
    t = pa.table({"seg": lab.astype(np.int32),
                  **{f"x{j}": pa.array(X[:, j], from_pandas=True) for j in range(3)}})
    one = validate(t, segments="seg", min_count=0, batch_size=n)
    many = validate(t, segments="seg", min_count=0, batch_size=batch)
    assert many.table.column("nearest").to_pylist() == one.table.column("nearest").to_pylist()
    np.testing.assert_allclose(np.array(many.table.column("separation").to_pylist(), dtype=float),
                               np.array(one.table.column("separation").to_pylist(), dtype=float), rtol=1e-9)


def test_covariances_beyond_the_memory_cap_leave_the_separation_out_with_a_note(monkeypatch):
    import importlib
    module = importlib.import_module("segmint.explain.validate")
    t = blobs(600)
    need = 3 * 3 * 2 * 2 * 8  # three (k, d, d) float64 arrays for 3 segments in 2 features
    monkeypatch.setattr(module, "MAX_COVARIANCE_BYTES", need)
    assert row(validate(t, segments="seg", features=["a", "b"]), "s0")["separation"] is not None
    monkeypatch.setattr(module, "MAX_COVARIANCE_BYTES", need - 1)
    v = validate(t, segments="seg", features=["a", "b"])
    assert v.table.column("separation").to_pylist() == [None] * 3
    assert v.table.column("distinct").to_pylist() == ["not checked"] * 3
    assert any(n.startswith("separation not computed: comparing 3 segments in 2 features") and
               "pass fewer features=" in n for n in v.notes)


def test_multi_mode_overlaps_fail_distinct_beyond_the_constant():
    x = np.arange(100.0)
    t = pa.table({"x": x})
    # low: 0..49; mid: 25..74 (half in low: exactly the limit); wide: 0..89 (all of low)
    rules = RuleSet({"low": "x < 50", "mid": "x >= 25 and x < 75", "wide": "x < 90"}, mode="multi")
    v = validate(t, segments=rules, min_count=0)
    assert MAX_OVERLAP_SHARE == 0.5
    assert row(v, "low")["overlap_share"] == 1.0 and row(v, "low")["distinct"] == "fail"
    assert row(v, "mid")["overlap_share"] == 50 / 50 and row(v, "mid")["distinct"] == "fail"
    assert row(v, "wide")["overlap_share"] == pytest.approx(50 / 90)
    assert [r["count"] for r in v.table.to_pylist()] == [50, 50, 90]
    assert any(f.startswith("low overlaps wide: 100.0%") for f in v.findings)


def test_an_overlap_of_exactly_half_passes():
    t = pa.table({"x": np.arange(100.0)})
    rules = RuleSet({"low": "x < 50", "mid": "x >= 25 and x < 75"}, mode="multi")
    v = validate(t, segments=rules, min_count=0, min_separation=0)
    assert row(v, "low")["overlap_share"] == 0.5 and row(v, "low")["distinct"] == "pass"


# -- stability -----------------------------------------------------------------------------------
@settings(max_examples=60, deadline=None)
@given(st.integers(1, 5), st.integers(1, 5), st.integers(0, 60), st.integers(0, 2**16))
def test_best_jaccard_from_the_contingency_table_matches_the_set_twin(ka, kb, m, seed):
    rng = np.random.default_rng(seed)
    a = rng.integers(0, ka, m)
    b = rng.integers(0, kb, m)
    np.testing.assert_allclose(best_jaccard(a, b, ka, kb), naive_best_jaccard(a, b, ka), rtol=1e-12)


def test_hennigs_bands_start_at_their_thresholds():
    assert [stability_band(j) for j in (0.5999, 0.6, 0.7499, 0.75, 0.8499, 0.85, 1.0, math.nan)] == [
        "not trustworthy", "doubtful", "doubtful", "valid", "valid", "highly stable", "highly stable",
        "not checked"]


def test_the_right_k_is_highly_stable_and_too_many_clusters_are_not():
    t = blobs(4000, scale=1.5)
    good = Segmenter(["a", "b"], clusterer=MiniBatchKMeans(n_clusters=3, random_state=0)).fit(t)
    v = validate(t, segments=good, n_bootstrap=8, sample_size=2000)
    assert v.table.column("stability").to_pylist() == ["highly stable"] * 3
    assert min(v.table.column("jaccard").to_pylist()) >= 0.85
    bad = Segmenter(["a", "b"], clusterer=MiniBatchKMeans(n_clusters=6, random_state=0)).fit(t)
    w = validate(t, segments=bad, n_bootstrap=8, sample_size=2000)
    jac = w.table.column("jaccard").to_pylist()
    assert min(jac) < 0.75
    assert sum(f.count("is unstable: bootstrap Jaccard") for f in w.findings) == sum(j < 0.75 for j in jac)
    assert set(w.table.column("stability").to_pylist()) & {"doubtful", "not trustworthy"}


def test_stability_is_seeded():
    t = blobs(1500)
    model = Segmenter(["a", "b"], clusterer=KMeans(n_clusters=4, random_state=0, n_init=1)).fit(t)
    a = validate(t, segments=model, n_bootstrap=4, sample_size=800, random_state=3)
    b = validate(t, segments=model, n_bootstrap=4, sample_size=800, random_state=3, batch_size=101)
    assert a.table.column("jaccard").to_pylist() == b.table.column("jaccard").to_pylist()


def test_a_segmenter_is_judged_in_its_feature_space_and_its_rule_segments_are_not_refitted():
    t = blobs(3000)
    rules = RuleSet([("far_up", "b > 5")])
    model = Segmenter(["a", "b"], clusterer=KMeans(n_clusters=2, random_state=0, n_init=1),
                      rules=rules).fit(t)
    v = validate(t, segments=model, n_bootstrap=3, sample_size=1000)
    assert v.segments == model.segment_names_
    stab = dict(zip(v.segments, v.table.column("stability").to_pylist()))
    assert stab["far_up"] == "not checked"
    assert all(stab[name] != "not checked" for name in model.segment_names_[:2])
    assert all(r["distinct"] == "pass" for r in v.table.to_pylist())
    X = model.transform(t)
    labels = np.asarray(model.predict(t))
    names = list(range(len(model.segment_names_)))
    twin = naive_separation(X, labels, names, standardize=False)  # the model's own space
    for s, name in enumerate(model.segment_names_):
        assert row(v, name)["separation"] == pytest.approx(twin[s][0], rel=1e-6)


# -- every segments= form ------------------------------------------------------------------------
def test_every_segments_form_gives_the_same_verdicts(tmp_path):
    t = blobs(1200)
    column = validate(t, segments="seg", id_column="id", features=["a", "b"], min_count=0)
    ints = validate(t, segments="lab", id_column="id", features=["a", "b"], min_count=0)
    assignments = pa.table({"id": t.column("id"), "segment": t.column("seg")})
    feather.write_feather(assignments, tmp_path / "assign.arrow")
    table = validate(t, segments=assignments, id_column="id", features=["a", "b"], min_count=0)
    path = validate(t, segments=str(tmp_path / "assign.arrow"), id_column="id", features=["a", "b"],
                    min_count=0)
    assert ints.segments == ["0", "1", "2"]
    for other in (table, path, ints):
        assert other.table.column("count").to_pylist() == column.table.column("count").to_pylist()
        assert other.table.column("separation").to_pylist() == pytest.approx(
            column.table.column("separation").to_pylist(), rel=1e-12)
    rules = RuleSet([("s1", "a > 5"), ("s2", "b > 5")], default="s0")
    by_rules = validate(t, segments=rules, features=["a", "b"], min_count=0)
    assert sorted(by_rules.table.column("count").to_pylist()) == sorted(column.table.column("count").to_pylist())


def test_rows_without_a_segment_are_counted_apart():
    t = pa.table({"seg": pa.array(["a", None, "a", "b", None]), "x": [1.0, 2, 3, 4, 5]})
    v = validate(t, segments="seg", min_count=0)
    assert v.n_rows == 5 and v.n_unassigned == 2
    assert row(v, "a")["share"] == 0.4
    assert "2 in no segment" in str(v)


# -- errors --------------------------------------------------------------------------------------
@pytest.mark.parametrize("name, value", [
    ("min_share", 1.5), ("min_share", -0.1), ("max_null_share", "0.2"), ("min_jaccard", 2),
    ("min_reachable_share", math.nan), ("min_separation", -1.0), ("min_separation", math.inf),
    ("min_count", -1), ("min_count", 2.5), ("min_count", True), ("n_bootstrap", -1), ("sample_size", 1),
    ("random_state", None)])
def test_bad_thresholds_raise_a_parameter_error_naming_them(name, value):
    t = pa.table({"seg": ["a", "b"], "x": [1.0, 2.0]})
    with pytest.raises(ParameterError, match=name):
        validate(t, segments="seg", **{name: value})


def test_unknown_and_unsupported_columns_are_named():
    t = pa.table({"seg": ["a", "b"], "x": [1.0, 2.0], "note": ["n", "m"]})
    with pytest.raises(UnknownColumnError, match="'y'"):
        validate(t, segments="seg", features=["y"])
    with pytest.raises(UnknownColumnError, match="'consent'"):
        validate(t, segments="seg", reachable="consent")
    with pytest.raises(UnsupportedTypeError, match="'note'"):
        validate(t, segments="seg", features=["note"])
    with pytest.raises(UnsupportedTypeError, match="reachable column 'note'"):
        validate(t, segments="seg", reachable="note")
    with pytest.raises(ParameterError, match="list of column names"):
        validate(t, segments="seg", features="x")
    with pytest.raises(UnknownColumnError, match="'sgm'"):
        validate(t, segments="sgm")


def test_features_with_a_segmenter_are_refused():
    t = blobs(300)
    model = Segmenter(["a", "b"], clusterer=KMeans(n_clusters=2, random_state=0, n_init=1)).fit(t)
    with pytest.raises(ParameterError, match="own feature space"):
        validate(t, segments=model, features=["a"])


# -- the result object and the CLI -------------------------------------------------------------
def test_the_result_exports_to_json_markdown_and_text(tmp_path):
    centers = OVERLAPPING
    v = validate(blobs(900, centers), segments="seg", features=["a", "b"])
    assert isinstance(v, Validation)
    doc = json.loads(v.to_json())
    assert doc == v.to_dict()
    assert [s["segment"] for s in doc["segments"]] == ["s0", "s1", "s2"]
    assert doc["merge_suggestions"][0][:2] == ["s0", "s1"]
    assert doc["findings"] == v.findings
    v.to_json(tmp_path / "v.json")
    assert json.loads((tmp_path / "v.json").read_text()) == doc
    md = v.to_markdown()
    assert md.startswith("| segment | count |") and "**Merge suggestions**" in md and "s0 + s1" in md
    text = str(v)
    assert all(name in text for name in ("s0", "s1", "s2")) and "merge? s0 + s1" in text
    assert v.table.schema.names == ["segment", "count", "share", "null_share", "separation", "nearest",
                                    "jaccard", "reachable_share", "unknown_share", "overlap_share",
                                    "measurable", "substantial", "accessible", "distinct", "stability"]


def test_the_cli_prints_the_verdicts_writes_every_format_and_exits_zero_with_findings(tmp_path, capsys):
    data = tmp_path / "customers.arrow"
    t = blobs(1500, OVERLAPPING).drop_columns(["lab"])
    t = t.append_column("ok", pa.array(np.arange(1500) % 3 == 0))
    feather.write_feather(t, data)
    for suffix in (".json", ".md", ".parquet", ".arrow"):
        out = tmp_path / f"v{suffix}"
        code = main(["--quiet", "validate", str(data), "--segments", "seg", "--id-column", "id",
                     "--reachable", "ok", "--min-share", "0.1", "--min-count", "10", "-o", str(out)])
        assert code == 0 and out.exists()
    printed = capsys.readouterr().out
    assert "s0 is too close to s1" in printed and "is hard to reach" in printed
    doc = json.loads((tmp_path / "v.json").read_text())
    assert doc["thresholds"]["min_share"] == 0.1 and doc["thresholds"]["min_count"] == 10
    assert feather.read_table(tmp_path / "v.arrow").column("segment").to_pylist() == ["s0", "s1", "s2"]
    assert "| s2 |" in (tmp_path / "v.md").read_text()


def test_the_cli_refuses_a_bad_output_suffix_and_a_bad_column_in_one_line(tmp_path, capsys):
    data = tmp_path / "c.arrow"
    feather.write_feather(blobs(200).drop_columns(["lab"]), data)
    assert main(["validate", str(data), "--segments", "seg", "-o", str(tmp_path / "v.txt")]) == 1
    assert main(["validate", str(data), "--segments", "seg", "--features", "a,zz"]) == 1
    assert main(["validate", str(data), "--segments", "seg", "--min-share", "2"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert ".json, .md, .arrow or .parquet" in err and "'zz'" in err and "min_share" in err
    assert not (tmp_path / "v.txt").exists()


def test_every_failure_is_a_segmint_error():
    assert issubclass(ParameterError, SegmintError) and issubclass(UnknownColumnError, SegmintError)


def test_multi_mode_segments_are_compared_on_each_segments_own_rows():
    t = blobs(1000)
    rules = RuleSet({"right": "a > 5", "up": "b > 5", "left": "a < 5"}, mode="multi")
    v = validate(t, segments=rules, min_count=0)
    a, b = t.column("a").to_numpy(), t.column("b").to_numpy()
    members = {"right": a > 5, "up": b > 5, "left": a < 5}
    twin = naive_separation(np.column_stack([a, b]), members, list(members))
    for name, (sep, nearest) in twin.items():
        assert row(v, name)["nearest"] == nearest
        assert row(v, name)["separation"] == pytest.approx(sep, rel=1e-10)
    assert row(v, "up")["overlap_share"] == pytest.approx(((b > 5) & (a < 5)).sum() / (b > 5).sum())


def test_a_given_profile_lends_its_counts_and_must_describe_the_same_segments():
    from types import SimpleNamespace
    t = pa.table({"seg": ["a"] * 3 + ["b"] * 7, "x": np.arange(10.0)})
    stand_in = SimpleNamespace(segments=["a", "b"], counts=np.array([3, 7]))
    v = validate(t, segments="seg", min_count=0, profile=stand_in)
    assert v.table.column("count").to_pylist() == [3, 7]
    with pytest.raises(ParameterError, match="profile= describes segments"):
        validate(t, segments="seg", profile=SimpleNamespace(segments=["a", "c"], counts=np.array([3, 7])))


def test_huge_values_end_in_figures_not_exceptions():
    t = pa.table({"seg": ["a", "b"] * 50, "x": np.tile([1e300, -1e300], 50), "y": np.arange(100.0)})
    v = validate(t, segments="seg", min_count=0)
    assert v.table.num_rows == 2
    assert set(v.table.column("distinct").to_pylist()) <= {"pass", "fail", "not checked"}
    json.loads(v.to_json())


def test_the_cli_takes_a_model_file_and_a_rule_file(tmp_path, capsys):
    data = tmp_path / "c.arrow"
    t = blobs(900).drop_columns(["lab"])
    feather.write_feather(t, data)
    Segmenter(["a", "b"], clusterer=KMeans(n_clusters=3, random_state=0, n_init=1)).fit(t).save(
        tmp_path / "m.seg")
    RuleSet([("right", "a > 5"), ("up", "b > 5")]).save(tmp_path / "r.json")
    assert main(["validate", str(data), "--segments", str(tmp_path / "m.seg"), "--min-count", "10",
                 "-o", str(tmp_path / "m.json")]) == 0
    doc = json.loads((tmp_path / "m.json").read_text())
    assert [s["stability"] for s in doc["segments"]] == ["highly stable"] * 3
    assert main(["validate", str(data), "--segments", str(tmp_path / "r.json"), "--min-count", "10"]) == 0
    out = capsys.readouterr().out
    assert "right" in out and "unassigned" in out


def test_a_saved_validation_loads_again_from_its_document():
    centers = OVERLAPPING
    v = validate(blobs(600, centers), segments="seg", features=["a", "b"], min_count=0)
    again = Validation(json.loads(v.to_json()))
    assert again.to_dict() == v.to_dict() and str(again) == str(v)
    assert again.table.equals(v.table)
    with pytest.raises(ParameterError, match="validation document"):
        Validation({"format": "segmint-rules"})
    with pytest.raises(ParameterError, match="'findings'"):
        Validation({k: val for k, val in v.to_dict().items() if k != "findings"})
    with pytest.raises(ParameterError, match="does not hold a validation"):
        Validation({**v.to_dict(), "segments": [{"segment": 3, "count": "many"}]})


def test_to_json_never_writes_over_the_data_it_read(tmp_path):
    import hashlib

    import segmint
    from segmint.errors import OutputError
    path = str(tmp_path / "customers.arrow")
    segmint.write_customers(path, 2_000, random_state=0)
    before = hashlib.sha256(open(path, "rb").read()).hexdigest()
    v = segmint.validate(path, segments="true_segment", id_column="customer_id", min_count=10)
    with pytest.raises(OutputError):
        v.to_json(path)
    assert hashlib.sha256(open(path, "rb").read()).hexdigest() == before
    v.to_json(str(tmp_path / "v.json"))  # anywhere else is fine


def test_the_stability_sample_is_uniform_on_customers_the_generator_made_with_the_same_seed():
    # numpy's SeedSequence ignores trailing zeros: default_rng(0) is default_rng([0, 0, 0]), the
    # generator's stream for block 0; a sample keyed by it followed the generator's persona draws
    import sys

    import segmint
    V = sys.modules["segmint.explain.validate"]
    truth = segmint.make_customers(20_000, random_state=0).column("true_segment").to_numpy().astype(np.int64)
    sample = V._Sample(10_000, 0)
    rows = np.arange(len(truth))
    sample.add(rows[:, None].astype(np.float64), truth, len(truth), rows)
    population = np.bincount(truth, minlength=7) / len(truth)
    drawn = np.bincount(sample.labels, minlength=7) / len(sample.labels)
    assert np.abs(drawn - population).max() < 0.02
