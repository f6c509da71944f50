"""One way to save and load: ``obj.save(path)`` and ``segmint.load(path)`` for every learned or
authored object (Segmenter, RuleSet, RFMScorer), the errors for files of another kind, and
what ``import segmint`` / ``from segmint import *`` bring in."""
import ast
import json
import pathlib
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import segmint
from segmint import MiniBatchKMeans, RFMScorer, RuleSet, Segmenter
from segmint.errors import CorruptFileError

AS_OF = "2026-10-01"
RULES = {"mode": "waterfall", "default": "everyone_else", "segments": [
    {"name": "vip", "rule": "monetary >= 2000 and frequency >= 8", "owner": "crm"},
    {"name": "lapsed", "rule": "days_since(last_order_date) > 300"}]}
FEATURES = [{"column": "recency_days", "impute": "median", "log1p": True},
            {"column": "frequency", "log1p": True}, "monetary"]
SRC = pathlib.Path(segmint.__file__).parent


@pytest.fixture(scope="module")
def customers():
    return segmint.make_customers(2000, random_state=3)


@pytest.fixture(scope="module")
def scorer(customers):
    return RFMScorer(bins=4).fit(customers)


# ------------------------------------------------------------------ round trips
def test_a_saved_segmenter_loads_through_segmint_load_and_scores_the_same(tmp_path, customers):
    model = Segmenter(FEATURES, clusterer=MiniBatchKMeans(n_clusters=3, batch_size=256, random_state=0),
                      rules=RULES, id_column="customer_id").fit(customers, as_of=AS_OF)
    model.rename({0: "weekend bargain hunters"})
    path = model.save(tmp_path / "model.seg")
    for loaded in (segmint.load(path), Segmenter.load(path)):
        assert type(loaded) is Segmenter
        assert loaded.segment_names_ == model.segment_names_
        assert loaded.score(customers, as_of=AS_OF).equals(model.score(customers, as_of=AS_OF))


def test_a_rules_only_segmenter_round_trips(tmp_path, customers):
    model = Segmenter(rules=RULES).fit(customers)
    loaded = segmint.load(model.save(tmp_path / "rules-only.seg"))
    assert loaded.clusterer_ is None and loaded.rules_.to_dict() == model.rules_.to_dict()
    assert loaded.predict(customers, as_of=AS_OF).tolist() == model.predict(customers, as_of=AS_OF).tolist()


@pytest.mark.parametrize("suffix", [".json", ".yaml", ".yml"])
def test_a_saved_rule_set_loads_through_segmint_load(tmp_path, suffix):
    rules = RuleSet.from_dict({**RULES, "description": "the CRM's waterfall"})
    path = tmp_path / f"rules{suffix}"
    rules.save(path)
    loaded = segmint.load(path)
    assert type(loaded) is RuleSet
    assert loaded.to_dict() == rules.to_dict() == RuleSet.load(path).to_dict()


def test_a_hand_written_rule_file_without_format_loads_as_a_rule_set(tmp_path):
    path = tmp_path / "mine.json"
    path.write_text(json.dumps(RULES))
    assert segmint.load(path).names == ["vip", "lapsed"]
    yaml_path = tmp_path / "mine.yaml"
    yaml_path.write_text("segments:\n  - name: big\n    rule: monetary > 100\n")
    assert segmint.load(yaml_path).names == ["big"]


def test_a_saved_rfm_scorer_loads_through_segmint_load_and_scores_the_same(tmp_path, customers, scorer):
    path = scorer.save(tmp_path / "rfm.json")
    doc = json.loads(pathlib.Path(path).read_text())
    assert doc["format"] == "segmint-rfm-boundaries" and doc["version"] == 1
    for loaded in (segmint.load(path), RFMScorer.load(path)):
        assert type(loaded) is RFMScorer and loaded.get_params() == scorer.get_params()
        assert loaded.transform(customers).equals(scorer.transform(customers))
    unfitted = segmint.load(RFMScorer(bins=7, monetary="spend").save(tmp_path / "unfitted.json"))
    assert unfitted.get_params()["bins"] == 7 and unfitted.monetary == "spend"
    assert not hasattr(unfitted, "boundaries_")


def test_an_rfm_document_written_before_the_format_field_still_loads(tmp_path, scorer):
    old = {k: v for k, v in scorer.to_dict().items() if k != "format"}
    old["kind"] = "segmint.RFMScorer"
    path = tmp_path / "old.json"
    path.write_text(json.dumps(old))
    for loaded in (RFMScorer.load(path), RFMScorer.from_dict(old)):
        assert {r: b.tolist() for r, b in loaded.boundaries_.items()} == \
            {r: b.tolist() for r, b in scorer.boundaries_.items()}
    # segmint.load dispatches on "format" only: an old document is read by its typed loader
    with pytest.raises(CorruptFileError, match="without 'format'.*'kind'"):
        segmint.load(path)


@settings(max_examples=40, deadline=None)
@given(bins=st.integers(2, 12), data=st.data())
def test_rfm_boundaries_round_trip_bit_for_bit(tmp_path_factory, bins, data):
    floats = st.floats(-1e300, 1e300, allow_nan=False, allow_infinity=False)
    boundaries = {role: sorted(data.draw(st.lists(floats, min_size=bins - 1, max_size=bins - 1)),
                               reverse=role == "recency") for role in ("recency", "frequency", "monetary")}
    doc = {"format": "segmint-rfm-boundaries", "version": 1, "bins": bins, "boundaries": boundaries,
           "n_customers": data.draw(st.integers(0, 2 ** 62))}
    scorer = RFMScorer.from_dict(doc)
    path = tmp_path_factory.mktemp("rfm") / "b.json"
    back = segmint.load(scorer.save(path))
    for role, values in boundaries.items():
        assert back.boundaries_[role].tobytes() == np.asarray(values, dtype=np.float64).tobytes()
    assert back.to_dict() == scorer.to_dict()


# ------------------------------------------------------------------ files of another kind
@pytest.mark.parametrize("content, words", [
    ({"format": "segmint-parquet-dataset", "version": 1}, "format 'segmint-parquet-dataset'"),
    ({"format": "segmint-model", "version": 1}, "description of a model, not a model file"),
    ({"name": "x", "bins": 5}, r"without 'format' \(keys: 'bins', 'name'\)"),
    ([1, 2, 3], "holding a list"),
    ("just a string", "holding a str"),
])
def test_a_document_of_another_kind_is_refused_naming_what_was_found(tmp_path, content, words):
    path = tmp_path / "thing.json"
    path.write_text(json.dumps(content))
    with pytest.raises(CorruptFileError, match=words) as info:
        segmint.load(path)
    assert str(path) in str(info.value) and "segmint-rules" in str(info.value)


def test_a_damaged_rfm_document_names_the_file_and_the_field(tmp_path, scorer):
    doc = scorer.to_dict()
    doc["boundaries"]["frequency"] = [3, 1, 2]
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(doc))
    for load in (segmint.load, RFMScorer.load):
        with pytest.raises(CorruptFileError, match=r"bad\.json: frequency boundaries must be ascending"):
            load(path)


@pytest.mark.parametrize("make, error, words", [
    (lambda p: None, segmint.SourceNotFoundError, "no file"),
    (lambda p: p.mkdir(), segmint.ModelFormatError, "folder"),
    (lambda p: p.write_bytes(b""), segmint.ModelFormatError, "empty"),
    (lambda p: p.write_bytes(b"\xff\xfe{\x00"), CorruptFileError, "UTF-8"),
    (lambda p: p.write_text("{not json"), CorruptFileError, "not valid JSON"),
])
def test_missing_and_unreadable_files_end_in_segmint_errors(tmp_path, make, error, words):
    path = tmp_path / "thing.json"
    make(path)
    with pytest.raises(error, match=words):
        segmint.load(path)


# ------------------------------------------------------------------ the package's surface
def test_import_segmint_imports_no_optional_library():
    optional = ["pandas", "polars", "matplotlib", "dask", "sklearn", "duckdb", "faiss", "yaml", "scipy",
                "threadpoolctl", "lifetimes"]
    probe = "import sys, json; {}; print(json.dumps([m for m in {!r} if m in sys.modules]))"

    def loaded(statement):
        out = subprocess.run([sys.executable, "-c", probe.format(statement, optional)],
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr
        return set(json.loads(out.stdout))

    ours = loaded("import segmint")
    # numba itself imports yaml (its config) and scipy when present: those are not ours to avoid
    assert ours <= loaded("import numba"), ours
    assert not ours & {"pandas", "polars", "matplotlib", "dask", "sklearn", "duckdb", "faiss"}


def test_star_import_does_not_shadow_the_builtin_open():
    scope = {}
    exec("from segmint import *", scope)
    assert "open" not in scope and "load" in scope and "ParameterError" in scope
    assert segmint.open is segmint.io.open
    assert all(hasattr(segmint, name) for name in segmint.__all__)


def test_the_model_file_does_not_import_the_segmenter():
    """One direction only: the Segmenter builds itself from the state the model file reads."""
    def imports(name):
        tree = ast.parse((SRC / "pipeline" / name).read_text())
        found = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                found.add(node.module or "")
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
        return found

    assert not any("segmenter" in name for name in imports("model_file.py"))
    assert "model_file" in imports("segmenter.py")


def test_segmenter_state_builds_a_model_that_saves_the_same_document(tmp_path, customers):
    model = Segmenter(FEATURES, clusterer=MiniBatchKMeans(n_clusters=2, batch_size=256, random_state=0),
                      id_column="customer_id").fit(customers)
    rebuilt = Segmenter._from_state(model._state())
    assert rebuilt.segment_names_ == model.segment_names_
    a, b = model.save(tmp_path / "a.seg"), rebuilt.save(tmp_path / "b.seg")
    assert segmint.load(a).score(customers).equals(segmint.load(b).score(customers))
    table = pa.table({"customer_id": [1], "recency_days": [3], "frequency": [2], "monetary": [10.0]})
    assert rebuilt.predict(table).tolist() == model.predict(table).tolist()


# ------------------------------------------------------------------ reference statistics (format 2)
def _rewrite_manifest(src, dst, change):
    """Copy a model file, passing its description through ``change``."""
    import zipfile
    with zipfile.ZipFile(src) as z:
        members = {name: z.read(name) for name in z.namelist()}
    doc = json.loads(members["segmint-model.json"])
    change(doc)
    members["segmint-model.json"] = json.dumps(doc).encode()
    with zipfile.ZipFile(dst, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return dst


def _fitted(customers):
    return Segmenter(FEATURES, clusterer=MiniBatchKMeans(n_clusters=3, batch_size=256, random_state=0),
                     rules=RULES, id_column="customer_id").fit(customers, as_of=AS_OF)


def test_the_reference_statistics_round_trip_through_the_model_file(tmp_path, customers):
    model = _fitted(customers).rename({1: "Weekend bargain hunters"})
    path = model.save(tmp_path / "model.seg")
    import zipfile
    with zipfile.ZipFile(path) as z:
        doc = json.loads(z.read("segmint-model.json"))
    assert doc["version"] == 2 and doc["reference"] == model.reference_.to_dict()
    loaded = segmint.load(path)
    assert loaded.reference_ == model.reference_
    assert list(loaded.reference_.segments.categories) == loaded.segment_names_
    assert loaded.reference_.n_rows == customers.num_rows


def test_a_version_1_model_file_still_loads_without_reference(tmp_path, customers):
    model = _fitted(customers)
    path = model.save(tmp_path / "model.seg")

    def to_version_1(doc):
        doc["version"] = 1
        del doc["reference"]

    old = _rewrite_manifest(path, tmp_path / "old.seg", to_version_1)
    loaded = segmint.load(old)
    assert loaded.reference_ is None
    assert loaded.score(customers, as_of=AS_OF).equals(model.score(customers, as_of=AS_OF))
    loaded.rename({0: "still renames"})  # a model without reference is a normal model
    again = segmint.load(loaded.save(tmp_path / "again.seg"))
    assert again.reference_ is None and again.segment_names_[0] == "still renames"


def test_a_model_saved_with_a_null_reference_loads_and_a_hand_built_state_keeps_it(tmp_path, customers):
    model = _fitted(customers)
    path = _rewrite_manifest(model.save(tmp_path / "m.seg"), tmp_path / "null.seg",
                             lambda doc: doc.update(reference=None))
    assert segmint.load(path).reference_ is None
    assert Segmenter._from_state(model._state()).reference_ == model.reference_


@pytest.mark.parametrize("change,words", [
    (lambda d: d["reference"]["segments"]["categories"].reverse(), "reference.segments"),
    (lambda d: d["reference"]["features"].reverse(), "reference.features"),
    (lambda d: d["reference"]["features"][0]["counts"].append(0), "features\\[0\\].counts"),
    (lambda d: d.pop("reference"), "'reference'"),
])
def test_a_reference_that_does_not_fit_the_model_is_refused_naming_the_field(tmp_path, customers, change, words):
    path = _rewrite_manifest(_fitted(customers).save(tmp_path / "m.seg"), tmp_path / "bad.seg", change)
    with pytest.raises(segmint.ModelFormatError, match=words) as info:
        segmint.load(path)
    assert "bad.seg" in str(info.value)
