"""Segmenter.refit: a refresh that keeps segment ids and names, and says what changed.

Planted data: well-separated Gaussian blobs whose true blob of every row is known, so "the same
cluster" is checked against the truth (each name must cover the same blob before and after),
never against the code under test. Splits and merges are planted by moving blobs apart or
together; the report must name them.
"""
import json
import zipfile

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import segmint
from segmint import KMeans, MiniBatchKMeans, RuleSet, Segmenter
from segmint.cli import main
from segmint.monitor import refit as refit_module
from segmint.monitor.refit import MAX_SHIFT, Refit
from segmint.errors import OutputError, ParameterError

FEATURES = ["a", "b", "c"]
BLOBS = np.array([[0, 0, 0], [12, 0, 0], [0, 12, 0], [0, 0, 12], [12, 12, 12]], dtype=float)


def blobs(centers, n_per, seed, spread=0.5):
    """A table of shuffled rows around ``centers`` (``truth``: each row's blob), ids unsorted."""
    rng = np.random.default_rng(seed)
    X = np.concatenate([c + rng.normal(0, spread, (n_per, len(c))) for c in centers])
    truth = np.repeat(np.arange(len(centers)), n_per)
    order = rng.permutation(len(X))
    X, truth = X[order], truth[order]
    return pa.table({"customer_id": rng.permutation(len(X)).astype(np.int64) * 7 + 3,
                     "a": X[:, 0], "b": X[:, 1], "c": X[:, 2], "truth": truth})


def fitted(table, k=5, clusterer=KMeans, **kw):
    model = Segmenter(FEATURES, clusterer=clusterer(n_clusters=k, random_state=0), id_column="customer_id", **kw)
    return model.fit(table)


def name_of_blob(model, table):
    """{true blob: the segment name that holds most of its rows} (and check it holds them all)."""
    names = np.asarray(model.score(table).column("segment").to_pylist(), dtype=object)
    truth = table.column("truth").to_numpy()
    out = {}
    for b in np.unique(truth):
        values, counts = np.unique(names[truth == b], return_counts=True)
        out[int(b)] = values[np.argmax(counts)]
        assert counts.max() >= 0.98 * counts.sum()
    return out


def statuses(result):
    return dict(zip(result.table.column("segment").to_pylist(), result.table.column("status").to_pylist()))


def score_counts(model, table):
    ids = model.score(table).column("segment_id").to_numpy()
    return np.bincount(ids, minlength=len(model.segment_names_)).tolist()


# ------------------------------------------------------------------ planted permutations
@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), order=st.permutations(range(5)),
       clusterer=st.sampled_from([KMeans, MiniBatchKMeans]))
def test_every_name_comes_back_on_its_cluster_when_the_data_are_generated_again(seed, order, clusterer):
    old = fitted(blobs(BLOBS, 300, seed), clusterer=clusterer)
    old.rename({i: f"persona {chr(65 + i)}" for i in range(5)})
    # the same clusters, rows generated again, blobs listed in another order
    table = blobs(BLOBS[list(order)], 300, seed + 1)
    table = table.set_column(4, "truth", pa.array(np.asarray(order)[table.column("truth").to_numpy()]))
    new = old.refit(table)
    assert name_of_blob(new, table) == name_of_blob(old, table)
    # k unchanged: ids carry over with the names
    old_ids = dict(zip(old.segment_names_, range(5)))
    assert {n: i for i, n in enumerate(new.segment_names_)} == old_ids
    assert set(statuses(new.refit_).values()) == {"matched"}
    assert min(new.refit_.table.column("overlap").to_pylist()) > 0.98


@pytest.mark.parametrize("statistics", ["frozen", "refit"])
def test_names_follow_the_clusters_even_when_the_new_fit_numbers_them_otherwise(monkeypatch, statistics):
    """The matching, not the warm start, carries the names: start the new fit from the old
    centers in reverse order (and shift and stretch the data for statistics="refit")."""
    old = fitted(blobs(BLOBS, 300, 1))
    old.rename({0: "weekend bargain hunters"})
    real = refit_module._start_centers
    monkeypatch.setattr(refit_module, "_start_centers", lambda X, mapped, k, seed: real(X, mapped, k, seed)[::-1])
    table = blobs(BLOBS * (1.5 if statistics == "refit" else 1.0) + 3.0, 300, 2)
    new = old.refit(table, statistics=statistics)
    truth_table = blobs(BLOBS, 300, 2)  # the same rows before the shift: what the old model knew
    assert name_of_blob(new, table) == name_of_blob(old, truth_table)
    assert new.refit_.statistics == statistics
    assert set(statuses(new.refit_).values()) <= {"matched", "changed"}
    if statistics == "refit":  # fitted again: the new spec's statistics are the new data's
        assert new.feature_spec_.stats_["a"]["max"] == max(table.column("a").to_pylist())
    else:
        assert new.feature_spec_.to_dict() == old.feature_spec_.to_dict()


def test_the_model_refitted_is_left_untouched():
    table = blobs(BLOBS, 200, 3)
    old = fitted(table)
    before = (old._state(), old.clusterer_.cluster_centers_.copy(), list(old.segment_names_))
    old.refit(blobs(BLOBS + 1.0, 200, 4), n_clusters=6)
    assert old.clusterer_.cluster_centers_.tobytes() == before[1].tobytes()
    assert old.segment_names_ == before[2]
    assert old.reference_ == before[0].reference
    assert old.feature_spec_.to_dict() == before[0].features.to_dict()
    assert not hasattr(old, "refit_")


# ------------------------------------------------------------------ splits and merges
def test_a_split_with_one_more_cluster_names_the_segment_split_and_never_calls_the_new_one_a_merge():
    old = fitted(blobs(BLOBS[:4], 300, 5), k=4)
    # blob 3 becomes two far-apart blobs
    moved = np.array([[0, 0, 0], [12, 0, 0], [0, 12, 0], [-6, -6, 12], [6, 6, 12]], dtype=float)
    table = blobs(moved, 300, 6)
    new = old.refit(table, n_clusters=5)
    status = statuses(new.refit_)
    assert sorted(status.values()).count("new") == 1 and "vanished" not in status.values()
    split = old.segment_names_[int(np.argmin(np.abs(old.feature_spec_.inverse_transform(
        old.clusterer_.cluster_centers_)[:, 2] - 12)))]
    fresh = [n for n, s in status.items() if s == "new"][0]
    assert fresh not in old.segment_names_ and fresh.startswith("segment_")
    # the split names the old segment and the new one its customers went to
    assert any(f"of {split}'s customers are now in {fresh} (" in f and f"stayed in {split})" in f
               for f in new.refit_.findings)
    # the new segment says where its customers were, and is no merge of anything
    is_new = [f for f in new.refit_.findings if f.startswith(f"{fresh} is new")]
    assert len(is_new) == 1 and f"had its customers in {split} (100%)" in is_new[0]
    assert not any("merged" in f or f"of {fresh}'s customers were in" in f for f in new.refit_.findings)
    # the three untouched blobs keep their names
    kept = name_of_blob(new, table)
    old_names = name_of_blob(old, blobs(BLOBS[:4], 300, 6))
    assert [kept[b] for b in range(3)] == [old_names[b] for b in range(3)]


def test_a_split_while_two_others_merge_reports_vanished_new_split_and_merge():
    old = fitted(blobs(BLOBS[:4], 300, 7), k=4)
    # blobs 0 and 1 merge (both move to the middle); blob 3 splits in two
    moved = np.array([[6, 0, 0], [6, 0, 0], [0, 12, 0], [-6, -6, 12], [6, 6, 12]], dtype=float)
    table = blobs(moved, 300, 8)
    new = old.refit(table)
    status = statuses(new.refit_)
    assert "vanished" in status.values() and "new" in status.values()
    was = name_of_blob(old, blobs(BLOBS[:4], 300, 8))
    findings = new.refit_.findings
    # blob 3 split: its old segment keeps one half and names the new segment holding the other
    fresh = [n for n, s in status.items() if s == "new"]
    assert status[was[3]] in ("matched", "changed") and len(fresh) == 1
    assert any(f"of {was[3]}'s customers are now in {fresh[0]}" in f for f in findings)
    # blobs 0 and 1 merged: one keeps its name and says it took the other's customers, which vanished
    a, b = (was[0], was[1]) if status[was[0]] != "vanished" else (was[1], was[0])
    assert status[b] == "vanished" and status[a] in ("matched", "changed")
    assert any(f"of {a}'s customers were in {b} under the previous model" in f for f in findings)
    assert any(f.startswith(f"{b} vanished (") and f"went 100% to {a}" in f for f in findings)
    assert not any(f"{n}'s customers were in {n} " in f for n in new.segment_names_ for f in findings)
    # k unchanged: ids 0..3 still, fresh names never reuse a name of the old model
    assert sorted(new.refit_.table.column("id").drop_null().to_pylist()) == [0, 1, 2, 3]
    for name, s in status.items():
        if s == "new":
            assert name not in old.segment_names_


def test_a_planted_merge_with_one_cluster_less_keeps_compact_ids():
    old = fitted(blobs(BLOBS, 300, 9))
    old.rename({i: f"p{i}" for i in range(5)})
    moved = BLOBS.copy()
    moved[1] = moved[2] = [9, 9, 0]  # blobs 1 and 2 meet, nearer to both than to any other
    table = blobs(moved, 300, 10)
    new = old.refit(table, n_clusters=4)
    t = new.refit_.table.to_pylist()
    assert [r["id"] for r in t if r["id"] is not None] == [0, 1, 2, 3]
    assert sum(r["status"] == "vanished" for r in t) == 1
    was = name_of_blob(old, blobs(BLOBS, 300, 10))
    kept, gone = (was[1], was[2]) if statuses(new.refit_)[was[2]] == "vanished" else (was[2], was[1])
    assert statuses(new.refit_)[gone] == "vanished"
    merged = [f for f in new.refit_.findings if "customers were in" in f]
    assert len(merged) == 1 and merged[0].startswith(f"50% of {kept}'s customers were in {gone} ")
    # matched clusters keep their names, in the order of their old ids
    matched = [r for r in t if r["status"] in ("matched", "changed")]
    assert [r["previous_id"] for r in matched] == sorted(r["previous_id"] for r in matched)
    assert all(r["segment"] == f"p{r['previous_id']}" for r in matched)


# four corners of a tetrahedron and its center, equally far from all four
CORNERS = np.array([[0, 0, 0], [12, 0, 0], [0, 12, 0], [0, 0, 12]], dtype=float)
CENTER = np.array([6.0, 6.0, 6.0])


def test_a_segment_gone_while_another_appears_with_the_same_k_is_vanished_and_new():
    """Corner 3 goes, a blob appears at the center: the old model spreads the center's rows
    over all four corners, so corner 3 keeps a quarter of them and sends all of those to the
    new cluster. That is no reason to pass its name on: it held a quarter of the customers at
    the last fit and holds a sixteenth now."""
    old = fitted(blobs(CORNERS, 300, 40), k=4)
    old.rename({i: n for i, n in enumerate(["alpha", "beta", "gamma", "delta"])})
    was = name_of_blob(old, blobs(CORNERS, 300, 41))
    table = blobs(np.vstack([CORNERS[:3], CENTER]), 300, 41)
    new = old.refit(table)
    status = statuses(new.refit_)
    gone = was[3]
    assert status[gone] == "vanished"
    fresh = [n for n, s in status.items() if s == "new"]
    assert len(fresh) == 1 and fresh[0] not in old.segment_names_
    assert [status[was[b]] for b in range(3)] == ["matched"] * 3
    # k unchanged: the new cluster takes the vanished one's id, and a finding says so
    gone_id = old.segment_names_.index(gone)
    assert new.segment_names_[gone_id] == fresh[0]
    assert f"id {gone_id} now holds {fresh[0]}, was {gone}" in new.refit_.findings
    # vanished with its share at the last fit (a quarter), not under the previous model now
    line = [f for f in new.refit_.findings if f.startswith(f"{gone} vanished")]
    assert len(line) == 1 and "(25.0% of customers at the last fit)" in line[0]
    assert f"went 100% to {fresh[0]}" in line[0]
    assert not any("merged" in f or f"of {fresh[0]}'s customers were in" in f for f in new.refit_.findings)
    assert new.refit_.findings[-1] == "3 of 4 segments kept their names (1 vanished, 1 new)"
    # without reference statistics the share at the last fit is unknown: the row test alone
    old.reference_ = None
    assert statuses(old.refit(table).refit_)[gone] in ("matched", "changed")


def test_when_every_new_customer_is_one_point_the_segment_holding_them_keeps_its_name():
    """Equal distances (all new centers on one point) go to the pair sharing the customers."""
    old = fitted(blobs(BLOBS, 200, 42))
    old.rename({i: f"p{i}" for i in range(5)})
    point = BLOBS[2] + 0.1
    table = pa.table({"customer_id": np.arange(100), "a": [point[0]] * 100, "b": [point[1]] * 100,
                      "c": [point[2]] * 100})
    holder = old.segment_names_[int(old.predict(table)[0])]
    with pytest.warns(Warning):  # fewer distinct points than clusters, as a fresh fit says
        new = old.refit(table)
    rows = {r["segment"]: r for r in new.refit_.table.to_pylist()}
    assert rows[holder]["status"] == "matched" and rows[holder]["share_current"] == 1.0
    assert rows[holder]["id"] == old.segment_names_.index(holder)
    assert new.refit_.findings[-1].startswith("1 of 5 segments kept their names")


def test_a_frozen_refit_reference_is_the_new_data_s_own_even_outside_the_old_range():
    """The frozen spec's statistics are the old data's: the reference must not use its ranges."""
    from segmint.monitor.reference import reference_statistics
    rng = np.random.default_rng(43)
    old_table = pa.table({"x": rng.uniform(0, 1, 3000), "y": rng.normal(0, 1, 3000),
                          "flag": rng.random(3000) < 0.3})
    new_table = pa.table({"x": rng.uniform(-1.0, 0.5, 3000), "y": rng.normal(5, 3, 3000),
                          "flag": rng.random(3000) < 0.8})
    features = ["x", "y", "flag"]
    twin = reference_statistics(new_table, features=features).to_dict()["features"]
    for model in (Segmenter(features, clusterer=KMeans(n_clusters=2, random_state=0)),
                  Segmenter(features, clusterer=MiniBatchKMeans(n_clusters=2, random_state=0), fit_rows=500,
                            rules=RuleSet([("big", "y > 4")], default="rest")),
                  Segmenter(features, rules=RuleSet([("big", "y > 4")], default="rest"))):
        new = model.fit(old_table).refit(new_table)
        assert new.feature_spec_.to_dict() == model.feature_spec_.to_dict()  # frozen
        assert new.reference_.to_dict()["features"] == twin
        # so the data it was fitted on shows no feature drift against it
        drift = segmint.drift(new_table, model=new)
        assert drift.findings[0].startswith("no feature drifted"), drift.findings


def test_the_starts_are_compared_on_a_sample_and_the_winner_is_fitted_on_every_row(monkeypatch):
    monkeypatch.setattr(refit_module, "START_ROWS", 300)
    seen = []
    real = KMeans.fit
    monkeypatch.setattr(KMeans, "fit", lambda self, X, *a, **k: seen.append(X.shape[0]) or real(self, X, *a, **k))
    old = fitted(blobs(BLOBS, 300, 44))
    seen.clear()
    table = blobs(BLOBS, 300, 45)
    new = old.refit(table)
    # two starts on the sample, then one fit on all 1,500 rows
    assert seen == [300, 300, 1500]
    assert new.n_rows_fit_ == 1500 and len(new.clusterer_.labels_) == 1500
    assert new.clusterer_.get_params()["n_init"] == old.clusterer_.get_params()["n_init"]
    doc = new.refit_.to_dict()
    assert isinstance(doc["warm_start"], bool) and len(doc["start_inertia"]) == 2
    assert name_of_blob(new, table) == name_of_blob(old, table)
    # the same data and seed draw the same sample: the same model
    again = old.refit(table)
    assert again.clusterer_.cluster_centers_.tobytes() == new.clusterer_.cluster_centers_.tobytes()


def test_equal_inertia_of_both_starts_is_said_as_such():
    old = fitted(blobs(BLOBS, 200, 46))
    new = old.refit(blobs(BLOBS, 200, 47))
    warm, cold = new.refit_.inertia
    assert warm == cold  # well-separated blobs: both starts end in the same partition
    line = [f for f in new.refit_.findings if "warm start" in f]
    assert line == [f"the warm start from the previous centers fitted as well as a fresh start (inertia {warm:.6g})"]
    assert new.refit_.warm_start is True  # a tie keeps the previous centers
    assert new.refit_.findings[-1] == "5 of 5 segments kept their names"


def test_the_report_of_a_loaded_model_never_writes_over_its_model_file(tmp_path):
    path = fitted(blobs(BLOBS, 100, 48)).save(tmp_path / "m.seg")
    before = path.read_bytes()
    for old in (segmint.load(path), Segmenter.load(str(path))):
        result = old.refit(blobs(BLOBS, 100, 49)).refit_
        with pytest.raises(OutputError):
            result.to_json(path)
        assert path.read_bytes() == before


def test_a_moved_center_is_changed_and_the_shift_names_the_feature():
    old = fitted(blobs(BLOBS, 300, 11))
    moved = BLOBS.copy()
    moved[3, 1] += 4.0  # blob 3 moves along b only
    new = old.refit(blobs(moved, 300, 12))
    rows = {r["segment"]: r for r in new.refit_.table.to_pylist()}
    changed = [r for r in rows.values() if r["status"] == "changed"]
    assert len(changed) == 1 and changed[0]["feature"] == "b" and changed[0]["shift"] > MAX_SHIFT
    assert all(r["shift"] < MAX_SHIFT for r in rows.values() if r["status"] == "matched")
    assert any(f.startswith(f"{changed[0]['segment']} changed") for f in new.refit_.findings)


# ------------------------------------------------------------------ the new model's numbers
@pytest.mark.parametrize("case", ["frozen", "refit", "fit_rows sample", "more clusters"])
def test_the_new_reference_and_shares_agree_with_scoring(case):
    table = blobs(BLOBS, 300, 13)
    kw = {"fit_rows": 600} if case == "fit_rows sample" else {}
    old = fitted(blobs(BLOBS, 300, 14), clusterer=MiniBatchKMeans, **kw)
    new = old.refit(table, statistics="refit" if case == "refit" else "frozen",
                    n_clusters=6 if case == "more clusters" else None)
    counts = score_counts(new, table)
    assert list(new.reference_.segments.counts) == counts
    assert list(new.reference_.segments.categories) == new.segment_names_
    by_id = {r["id"]: r for r in new.refit_.table.to_pylist() if r["id"] is not None}
    assert [round(by_id[i]["share_current"] * table.num_rows) for i in range(len(counts))] == counts
    old_counts = score_counts(old, table)
    for r in new.refit_.table.to_pylist():
        if r["previous_id"] is not None:
            assert round(r["share_previous"] * table.num_rows) == old_counts[r["previous_id"]]
    assert new.refit_.n_rows == table.num_rows


def test_rule_segments_keep_their_names_and_come_after_the_clusters():
    table = blobs(BLOBS, 200, 15)
    vip = table.column("a").to_numpy() > 10
    table = table.append_column("vip", pa.array(vip))
    rules = RuleSet([("vip", "vip")], default="everyone")
    old = Segmenter(FEATURES, clusterer=KMeans(n_clusters=3, random_state=0), rules=rules).fit(table)
    old.rename({"vip": "VIP customers", 1: "middle"})
    for k in (None, 4):
        new = old.refit(table, n_clusters=k)
        n = new.n_clusters_
        assert new.segment_names_[n:] == ["VIP customers"]
        assert "middle" in new.segment_names_[:n]
        row = [r for r in new.refit_.table.to_pylist() if r["segment"] == "VIP customers"][0]
        assert row["status"] == "matched" and row["id"] == n and row["previous_id"] == 3 and row["overlap"] == 1.0
        assert list(new.reference_.segments.counts) == score_counts(new, table)


def test_a_rules_only_model_refits_to_the_same_segments():
    table = blobs(BLOBS, 100, 16).append_column("vip", pa.array(np.arange(500) % 3 == 0))
    old = Segmenter(rules=RuleSet([("vip", "vip")], default="others")).fit(table)
    new = old.refit(table)
    assert new.segment_names_ == old.segment_names_
    assert set(statuses(new.refit_).values()) == {"matched"}
    with pytest.raises(ParameterError, match="rules only"):
        old.refit(table, n_clusters=3)


def test_a_version_1_model_without_reference_refits_and_the_new_one_has_a_reference(tmp_path):
    table = blobs(BLOBS, 200, 17)
    path = fitted(table).save(tmp_path / "model.seg")
    with zipfile.ZipFile(path) as z:
        members = {n: z.read(n) for n in z.namelist()}
    doc = json.loads(members["segmint-model.json"])
    doc["version"] = 1
    del doc["reference"]
    members["segmint-model.json"] = json.dumps(doc).encode()
    with zipfile.ZipFile(tmp_path / "v1.seg", "w") as z:
        for n, data in members.items():
            z.writestr(n, data)
    old = segmint.load(tmp_path / "v1.seg")
    assert old.reference_ is None
    new = old.refit(blobs(BLOBS, 200, 18))
    assert new.reference_ is not None and list(new.reference_.segments.categories) == new.segment_names_
    loaded = segmint.load(new.save(tmp_path / "new.seg"))
    assert loaded.reference_ == new.reference_ and loaded.segment_names_ == new.segment_names_


def test_the_saved_refit_loads_and_scores_as_the_refit_model(tmp_path):
    table = blobs(BLOBS, 200, 19)
    old = fitted(blobs(BLOBS, 200, 20), clusterer=MiniBatchKMeans)
    new = old.refit(table, n_clusters=4)
    loaded = segmint.load(new.save(tmp_path / "new.seg"))
    assert loaded.score(table).equals(new.score(table))
    # saved with the clusterer's own parameters (usual init, full budget), not the starts'
    assert loaded.clusterer_.get_params()["init"] == "k-means++"
    assert new.clusterer_.get_params() == {**old.clusterer_.get_params(), "n_clusters": 4}


# ------------------------------------------------------------------ parameters and documents
def test_bad_parameters_are_refused_with_the_valid_choices():
    old = fitted(blobs(BLOBS, 100, 21))
    table = blobs(BLOBS, 100, 22)
    with pytest.raises(ParameterError, match="did you mean 'frozen'"):
        old.refit(table, statistics="froze")
    with pytest.raises(ParameterError, match="n_clusters"):
        old.refit(table, n_clusters=0)
    with pytest.raises(ParameterError, match="batch_size"):
        old.refit(table, batch_size=-1)
    with pytest.raises(segmint.NotFittedError):
        Segmenter(FEATURES, clusterer=KMeans(n_clusters=2)).refit(table)
    with pytest.raises(segmint.UnknownColumnError, match="'c'"):
        old.refit(table.drop_columns(["c"]))
    with pytest.raises(segmint.SourceConsumedError, match="read only once"):
        old.refit(pa.RecordBatchReader.from_batches(table.schema, table.to_batches()))
    rules_only = Segmenter(rules=RuleSet([("big", "a > 5")], default="small")).fit(table)
    with pytest.raises(segmint.SourceConsumedError):
        rules_only.refit(pa.RecordBatchReader.from_batches(table.schema, table.to_batches()))


def test_the_report_as_json_markdown_and_text(tmp_path):
    data = tmp_path / "new.arrow"
    segmint.write_table(blobs(BLOBS, 100, 23), data)
    old = fitted(blobs(BLOBS, 100, 24))
    result = old.refit(data, n_clusters=4).refit_
    assert isinstance(result, Refit)
    doc = json.loads(result.to_json(tmp_path / "refit.json"))
    assert doc == json.loads((tmp_path / "refit.json").read_text())
    assert doc["format"] == "segmint-refit" and doc["statistics"] == "frozen" and doc["max_shift"] == MAX_SHIFT
    assert [r["segment"] for r in doc["segments"]] == result.table.column("segment").to_pylist()
    assert doc["findings"] == result.findings
    with pytest.raises(OutputError):
        result.to_json(data)  # never over the data read
    md = result.to_markdown()
    assert "| segment | previous id | id | status |" in md and "vanished" in md
    text = str(result)
    assert text.startswith("Refit on 500 customers") and "vanished" in text
    assert "1 vanished" in repr(result)
    assert result.table.schema.names == ["segment", "previous_id", "id", "status", "shift", "feature",
                                         "share_previous", "share_current", "overlap"]


# ------------------------------------------------------------------ the command line
def test_the_command_line_writes_a_new_model_and_never_touches_the_old(tmp_path, capsys):
    old_path, data = tmp_path / "model.seg", tmp_path / "new.arrow"
    fitted(blobs(BLOBS, 200, 25)).rename({0: "weekend"}).save(old_path)
    segmint.write_table(blobs(BLOBS, 200, 26), data)
    before = old_path.read_bytes()
    out = tmp_path / "model-2.seg"
    assert main(["refit", str(old_path), str(data), "-o", str(out), "--statistics", "refit", "-k", "5",
                 "--random-state", "3"]) == 0
    text = capsys.readouterr().out
    assert "Refit on 1,000 customers (feature statistics refit)" in text and str(out) in text
    assert old_path.read_bytes() == before
    new = segmint.load(out)
    assert "weekend" in new.segment_names_ and new.reference_ is not None
    assert new.random_state == 3
    # never over the model or the data
    assert main(["refit", str(old_path), str(data), "-o", str(old_path)]) == 1
    assert main(["refit", str(old_path), str(data), "-o", str(data)]) == 1
    assert old_path.read_bytes() == before
    err = capsys.readouterr().err
    assert err.count("segmint: error:") == 2
