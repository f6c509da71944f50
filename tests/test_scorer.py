"""The in-process Scorer: one record at a time, bit for bit the batch path's answer."""
import datetime as dt
import decimal
import json
import math
import os
import subprocess
import sys
import textwrap
import zipfile
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import segmint
from segmint.errors import UnknownColumnError, UnsupportedTypeError
from segmint.kernels import record as kr
from segmint.kernels import rules as vm
from segmint.serve import Score, Scorer
from test_rules_record import TIME_AS_OF, TIME_RULES, iso_object, time_batch, time_probes, time_record

AS_OF = "2026-10-01"
SPEC = [{"column": "recency_days", "impute": "median", "indicator": True},
        {"column": "frequency", "log1p": True},
        {"column": "monetary", "log1p": True, "clip": [0.0, 0.995]},
        {"column": "sessions_30d", "log1p": True},
        {"column": "tenure_days", "scale": "robust"},
        {"column": "income_k", "impute": "median", "clip": [0.01, 0.99]},    # float32
        {"column": "pages_per_session", "impute": "median", "indicator": True},  # float32 with nulls
        {"column": "discount_share", "impute": 0.0},
        {"column": "email_opt_in"},                                         # boolean
        {"column": "region", "one_hot": True, "max_categories": 4},
        {"column": "channel", "one_hot": True, "null": "other"}]
RULES = [("no_consent", "not email_opt_in and not sms_opt_in"),
         ("never_bought", "frequency = 0"),
         ("lapsed_big", "monetary >= 2000 and days_since(last_order_date) > 365")]


def _fit(dtype, n=3000, rules=True, seed=0):
    table = segmint.make_customers(n, random_state=seed)
    model = segmint.Segmenter(SPEC, clusterer=segmint.MiniBatchKMeans(n_clusters=8, random_state=0),
                              rules=segmint.RuleSet(RULES, default="customers") if rules else None,
                              id_column="customer_id", dtype=dtype)
    return model.fit(table, as_of=AS_OF), table


@pytest.fixture(scope="module", params=[np.float32, np.float64], ids=["float32", "float64"])
def fitted(request):
    model, table = _fit(request.param)
    return model, table, model.scorer()


def _edge_records(model, table):
    """Hand-made customers: nulls, unseen categories, clip bounds, rule constants, log1p of 0,
    huge values."""
    base = table.slice(0, 1).to_pylist()[0]
    stats = model.feature_spec_.stats_
    lo, hi = stats["income_k"]["clip_low"], stats["income_k"]["clip_high"]
    edits = [
        {"recency_days": None, "pages_per_session": None},
        {"region": "Atlantis", "channel": "pigeon"},                   # unseen: __other
        {"channel": None, "region": None},                              # null: other / indicator
        {"income_k": float(np.float32(lo))}, {"income_k": float(np.float32(hi))},
        {"income_k": lo}, {"income_k": hi},                             # rounded to float32 as the column is
        {"frequency": 0}, {"frequency": 1, "monetary": 0.0, "sessions_30d": 0},   # rule constant, log1p(0)
        {"monetary": 2000.0, "last_order_date": dt.date(2025, 9, 30)},  # at the rule's constants
        {"monetary": 2000.0, "last_order_date": dt.date(2025, 10, 1)},
        {"monetary": 1e30, "frequency": 10 ** 9, "tenure_days": 2 ** 31 - 1},   # huge, within limits
        {"email_opt_in": False, "sms_opt_in": False},
        {"email_opt_in": True, "sms_opt_in": None},
        {"discount_share": -0.0},
    ]
    return [dict(base, **e) for e in edits]


def _batch_rows(model, records, schema, batch_size=97):
    table = pa.Table.from_pylist(records, schema=schema)
    return model.score(table, as_of=AS_OF, batch_size=batch_size)


def _same(score, table, i, dtype):
    """The score equals row ``i`` of a batch result: id, name, rule, the distance's bits."""
    if score.segment_id != table["segment_id"][i].as_py() or score.segment != table["segment"][i].as_py():
        return False
    if score.rule != (table["rule"][i].as_py() if "rule" in table.column_names else None):
        return False
    d = table["distance"][i].as_py()
    if d is None or score.distance is None:
        return d is None and score.distance is None
    return np.array(d, dtype).tobytes() == np.array(score.distance, dtype).tobytes()


def test_random_and_hand_made_customers_at_random_batch_positions_score_bit_identically(fitted):
    model, table, scorer = fitted
    rng = np.random.default_rng(1)
    records = segmint.make_customers(1500, random_state=7).to_pylist()
    for rec in _edge_records(model, table):
        records.insert(int(rng.integers(0, len(records) + 1)), rec)
    result = _batch_rows(model, records, table.schema)
    dtype = np.dtype(model.dtype)
    equal = sum(_same(scorer.score_one(r, as_of=AS_OF), result, i, dtype) for i, r in enumerate(records))
    assert equal == len(records)
    assert result["distance"].null_count > 0  # rules took some: both kinds of rows compared


value_of = {
    "recency_days": st.one_of(st.none(), st.integers(0, 5000)),
    "frequency": st.integers(0, 10 ** 6),
    "monetary": st.one_of(st.just(0.0), st.floats(0, 1e12), st.sampled_from([2000.0, 1999.999])),
    # float32 columns: float32 values, and float64 ones the Scorer must round as the column does
    "income_k": st.one_of(st.floats(0, 1e4, width=32), st.floats(0, 1e4)),
    "pages_per_session": st.one_of(st.none(), st.floats(0, 100, width=32), st.floats(0, 100)),
    "discount_share": st.floats(-1e6, 1e6),
    "region": st.one_of(st.none(), st.sampled_from(["CA", "NY", "TX", "FL", "Mars", ""])),
    "channel": st.one_of(st.none(), st.sampled_from(["email", "push", "sms", "carrier pigeon"])),
    "email_opt_in": st.booleans(),
    "sms_opt_in": st.one_of(st.none(), st.booleans()),
    "last_order_date": st.one_of(st.none(), st.dates(dt.date(2020, 1, 1), dt.date(2026, 12, 31))),
}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(edits=st.fixed_dictionaries({}, optional=value_of), position=st.integers(0, 150))
def test_generated_customers_score_as_the_batch_path_scores_them_at_any_position(fitted, edits, position):
    model, table, scorer = fitted
    records = table.slice(0, 150).to_pylist()
    records.insert(position, dict(records[position % 150], **edits))
    result = _batch_rows(model, records, table.schema, batch_size=64)
    assert _same(scorer.score_one(records[position], as_of=AS_OF), result, position, np.dtype(model.dtype))


def test_many_threads_sharing_one_scorer_each_get_the_batch_paths_answer(fitted):
    model, table, scorer = fitted
    records = segmint.make_customers(2000, random_state=3).to_pylist()
    result = _batch_rows(model, records, table.schema, batch_size=500)
    dtype = np.dtype(model.dtype)
    order = np.random.default_rng(0).permutation(len(records) * 3) % len(records)

    def check(i):
        return _same(scorer.score_one(records[i], as_of=AS_OF), result, i, dtype)

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(check, order.tolist(), chunksize=16))
    assert all(answers) and len(answers) == len(order)


def test_score_many_returns_the_batch_paths_table_for_lists_and_arrow_batches(fitted):
    model, table, scorer = fitted
    small = segmint.make_customers(200, random_state=5)
    expected = model.score(small, as_of=AS_OF)
    for records in (small.to_pylist(), small, small.to_batches()[0]):
        got = scorer.score_many(records, as_of=AS_OF)
        assert got.column_names == expected.column_names
        for name in got.column_names:
            assert got[name].to_pylist() == expected[name].to_pylist(), name
        assert got["distance"].type == expected["distance"].type


def test_a_scorer_compiles_nothing_once_built(fitted):
    model, table, scorer = fitted
    before = (len(kr.score_customer.signatures), len(vm.run_record.signatures))
    assert scorer.ready
    # called through the compiled entry point of the signature loaded at build (no dispatch)
    assert scorer._kernel is not segmint.serve.scorer._python_kernel
    for rec in _edge_records(model, table) + table.slice(0, 50).to_pylist():
        scorer.score_one(rec, as_of=AS_OF)
    assert (len(kr.score_customer.signatures), len(vm.run_record.signatures)) == before


def test_a_missing_field_is_named_with_the_nearest_field_given(fitted):
    model, table, scorer = fitted
    rec = table.slice(0, 1).to_pylist()[0]
    rec["monetry"] = rec.pop("monetary")
    with pytest.raises(UnknownColumnError, match=r"'monetary'.*did you mean 'monetry'"):
        scorer.score_one(rec, as_of=AS_OF)
    for missing in ("region", "tenure_days", "sms_opt_in"):  # one-hot, numeric, rule-only
        rec = table.slice(0, 1).to_pylist()[0]
        del rec[missing]
        with pytest.raises(UnknownColumnError, match=f"'{missing}'"):
            scorer.score_one(rec, as_of=AS_OF)


def test_a_partial_record_is_told_every_missing_field_at_once(fitted):
    model, table, scorer = fitted
    full = table.slice(0, 1).to_pylist()[0]
    kept = scorer.columns[:2]
    with pytest.raises(UnknownColumnError) as info:
        scorer.score_one({k: full[k] for k in kept}, as_of=AS_OF)
    gaps = [c for c in scorer.columns if c not in kept]
    message = str(info.value)
    assert f"{len(gaps) - 1} more fields the model reads are missing" in message
    assert all(repr(c) in message for c in gaps[:9])  # the named one and the first eight others
    rec = dict(full)
    del rec[gaps[0]]  # one gap alone: no list
    with pytest.raises(UnknownColumnError) as info:
        scorer.score_one(rec, as_of=AS_OF)
    assert "more fields" not in str(info.value)


@pytest.mark.parametrize("field, value, expected", [
    ("tenure_days", "365", "a number"), ("income_k", True, "a number"),
    ("region", 3, "a string"), ("email_opt_in", 1, "True or False"),
    ("sessions_30d", [1], "a number")])
def test_a_mistyped_field_is_named_with_the_type_expected(fitted, field, value, expected):
    model, table, scorer = fitted
    rec = dict(table.slice(0, 1).to_pylist()[0], frequency=5, email_opt_in=True)
    rec[field] = value
    with pytest.raises(UnsupportedTypeError, match=rf"{field}.*{expected}"):
        scorer.score_one(rec, as_of=AS_OF)


def test_values_the_batch_path_refuses_are_refused_never_scored(fitted):
    model, table, scorer = fitted
    base = dict(table.slice(0, 1).to_pylist()[0], frequency=5, email_opt_in=True)
    for edit, words in [({"discount_share": float("nan")}, "NaN"), ({"tenure_days": None}, "null"),
                        ({"frequency": -3}, "negative")]:
        with pytest.raises(segmint.FeatureError, match=words):
            scorer.score_one(dict(base, **edit), as_of=AS_OF)
    # a whole float beyond an integer column's type: pyarrow cannot build the column either
    # (values too large to cluster: test_an_int_beyond_2_53_in_a_float64_column_...)
    with pytest.raises(Exception):
        pa.Table.from_pylist([dict(base, tenure_days=1e300)], schema=table.schema)
    with pytest.raises(UnsupportedTypeError, match=r"'tenure_days'.*int32.*-2147483648\.\.2147483647"):
        scorer.score_one(dict(base, tenure_days=1e300), as_of=AS_OF)


def test_extra_fields_are_ignored_and_numpy_scalars_accepted(fitted):
    model, table, scorer = fitted
    rec = table.slice(3, 1).to_pylist()[0]
    plain = scorer.score_one(rec, as_of=AS_OF)
    numpy_rec = {k: (np.float64(v) if isinstance(v, float) else np.int64(v) if type(v) is int else
                     np.str_(v) if isinstance(v, str) else v) for k, v in rec.items()}
    assert scorer.score_one(dict(numpy_rec, unused="x", another=[1, 2]), as_of=AS_OF) == plain
    assert isinstance(plain, Score) and plain.segment == model.segment_names_[plain.segment_id]


def test_a_record_that_is_not_a_mapping_is_refused():
    model, _ = _fit(np.float32, n=400, rules=False)
    with pytest.raises(UnsupportedTypeError, match="mapping"):
        model.scorer().score_one([("frequency", 3)])


def test_a_rule_set_alone_scores_as_its_batch_engine():
    rules = segmint.RuleSet(RULES, default="customers")
    table = segmint.make_customers(800, random_state=2)
    schema = pa.schema([table.schema.field(c) for c in
                        ("email_opt_in", "sms_opt_in", "frequency", "monetary", "last_order_date")])
    scorer = Scorer(rules, schema=schema)
    codes = np.concatenate([b.codes for b in rules.stream(table, as_of=AS_OF)])
    names = list(rules.names) + [rules.default]
    got = [scorer.score_one(r, as_of=AS_OF) for r in table.to_pylist()]
    assert [g.segment_id for g in got] == codes.tolist()
    assert all(g.segment == names[c] == g.rule and g.distance is None for g, c in zip(got, codes.tolist()))


def test_a_saved_model_keeps_its_input_types_and_an_older_file_without_them_still_scores(tmp_path):
    model, table = _fit(np.float32, n=1500)
    path = str(tmp_path / "m.seg")
    model.save(path)
    loaded = segmint.load(path)
    # dictionary columns are saved as their value type (what a record holds: a string)
    plain = pa.schema([pa.field(f.name, f.type.value_type if pa.types.is_dictionary(f.type) else f.type)
                       for f in model.input_schema_])
    assert loaded.input_schema_.equals(plain)
    # an older file: the same manifest without "input_schema"
    old = str(tmp_path / "old.seg")
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(old, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename == "segmint-model.json":
                doc = json.loads(data)
                assert "input_schema" in doc
                del doc["input_schema"]
                data = json.dumps(doc).encode()
            dst.writestr(info.filename, data)
    older = segmint.load(old)
    assert older.input_schema_ is None
    records = table.slice(0, 300).to_pylist()
    result = model.score(table.slice(0, 300), as_of=AS_OF)
    for scorer in (loaded.scorer(), older.scorer()):
        assert all(_same(scorer.score_one(r, as_of=AS_OF), result, i, np.float32) for i, r in enumerate(records))


def test_an_unfitted_segmenter_has_no_scorer():
    with pytest.raises(segmint.NotFittedError):
        segmint.Segmenter(SPEC, clusterer=segmint.KMeans(n_clusters=3)).scorer()


def test_a_scorer_built_on_a_cold_cache_says_it_compiled_and_a_warm_one_does_not(tmp_path):
    model, _ = _fit(np.float64, n=400, rules=False)
    path = str(tmp_path / "m.seg")
    model.save(path)
    child = textwrap.dedent(f"""
        import segmint
        s = segmint.load({path!r}).scorer()
        print(s.ready, s.compiled, round(s.warm_seconds, 3))
    """)
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"))
    runs = [subprocess.run([sys.executable, "-c", child], env=env, capture_output=True, text=True,
                           timeout=300) for _ in range(2)]
    for run in runs:
        assert run.returncode == 0, run.stderr
    cold, warm = (run.stdout.split() for run in runs)
    assert cold[:2] == ["True", "True"]
    assert warm[:2] == ["True", "False"]


def _twin_row(model, record, float32_columns):
    """Slow twin of the record transform: the spec's statistics applied by hand, in float64."""
    spec = model.feature_spec_
    names = spec.feature_names_out_
    row = np.zeros(len(names))
    for f in spec.entries:
        s, c, v = spec.stats_[f.column], f.column, record[f.column]
        if f.kind == "numeric":
            if v is None:
                x = s["impute_value"]
            else:
                x = float(np.float32(v)) if c in float32_columns else float(v)
            if f.indicator:
                row[names.index(f"{c}__missing")] = 1.0 if v is None else 0.0
            if f.log1p:
                x = math.log1p(x)  # the C library's, as the kernels call it (numpy's may differ by an ulp)
            if s["clip_low"] is not None:
                x = min(max(x, s["clip_low"]), s["clip_high"])
            row[names.index(c)] = (x - s["center"]) / s["scale"]
        elif v is None:
            row[names.index(f"{c}__missing" if f"{c}__missing" in names else f"{c}__other")] = 1.0
        else:
            row[names.index(f"{c}={v}" if v in s["categories"] else f"{c}__other")] = 1.0
    return row


def test_the_record_kernel_matches_a_slow_twin_on_random_customers(fitted):
    model, table, scorer = fitted
    dtype = np.dtype(model.dtype)
    float32_columns = {f.name for f in table.schema if f.type == pa.float32()}
    centers = model.clusterer_.cluster_centers_.astype(np.float64)
    records = segmint.make_customers(300, random_state=11).to_pylist() + _edge_records(model, table)
    checked = 0
    for rec in records:
        score = scorer.score_one(rec, as_of=AS_OF)
        row = _twin_row(model, rec, float32_columns)
        X = scorer._local.buffers[2]  # this thread's feature row of the last call
        assert X.tobytes() == row.astype(dtype)[None, :].tobytes()
        if score.distance is None:
            continue
        d2 = ((centers - row.astype(dtype).astype(np.float64)) ** 2).sum(axis=1)
        best, second = np.sort(d2)[:2]
        if second - best > 1e-3 * max(best, 1.0):  # no near tie: the label is certain
            assert score.segment_id == int(np.argmin(d2))
            assert score.distance == pytest.approx(np.sqrt(best), rel=1e-3, abs=1e-3)
            checked += 1
    assert checked > 100


def test_a_first_record_of_wrong_types_is_refused_and_teaches_the_scorer_nothing():
    rules = segmint.RuleSet([("a", "x > 1 and starts_with(s, 'a')")], default="r")
    scorer = Scorer(rules)
    with pytest.raises(segmint.rules.errors.RuleTypeError):
        scorer.score_one({"x": "2", "s": "ab"})
    assert scorer.score_one({"x": 2.0, "s": "ab"}) == Score(0, "a", None, "a")
    assert scorer.score_one({"x": 0.5, "s": "ab"}) == Score(1, "r", None, "r")


def test_a_rule_set_without_schema_and_an_old_model_compile_nothing_on_their_first_call(tmp_path):
    # a fresh process: in this one, earlier tests have loaded the kernels already
    child = textwrap.dedent(f"""
        import numpy as np, segmint
        from segmint.serve import Scorer
        from segmint.kernels import record as kr, rules as vm
        def counts():
            return (len(kr.score_customer.signatures), len(vm.run_record.signatures))
        rules = segmint.RuleSet([("a", "x > 1 and starts_with(s, 'a')")], default="r")
        scorer = Scorer(rules)
        before = counts()
        assert scorer.ready and before[1] == 1, before
        assert scorer.score_one({{"x": 2.0, "s": "ab"}}).segment == "a"
        assert counts() == before, (before, counts())
        t = segmint.make_customers(600, random_state=0)
        model = segmint.Segmenter({SPEC!r}, rules=segmint.RuleSet({RULES!r}, default="customers"),
                                  clusterer=segmint.MiniBatchKMeans(n_clusters=4, random_state=0))
        model.fit(t, as_of={AS_OF!r})
        model.input_schema_ = None  # as a model saved before the types were recorded
        old = model.scorer()
        before = counts()
        for r in t.slice(0, 20).to_pylist():
            old.score_one(r, as_of={AS_OF!r})
        assert counts() == before, (before, counts())
        print("ok")
    """)
    run = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["ok"]
    # and in this process: the old model's answers are the batch path's
    model, table = _fit(np.float64, n=600)
    model.input_schema_ = None
    old = model.scorer()
    records = table.slice(0, 40).to_pylist()
    result = model.score(table.slice(0, 40), as_of=AS_OF)
    assert all(_same(old.score_one(r, as_of=AS_OF), result, i, np.float64) for i, r in enumerate(records))


def test_a_loaded_model_with_a_duration_rule_column_keeps_its_float32_rounding(tmp_path):
    n = 400
    rng = np.random.default_rng(0)
    table = pa.table({"f": pa.array((rng.random(n) * 100).astype(np.float32)),
                      "dur": pa.array([dt.timedelta(days=int(i)) for i in rng.integers(0, 90, n)],
                                      pa.duration("s")),
                      "amount": pa.array([decimal.Decimal(i) for i in range(n)], pa.decimal128(10, 2))})
    model = segmint.Segmenter([{"column": "f"}], clusterer=segmint.MiniBatchKMeans(n_clusters=3, random_state=0),
                              rules=segmint.RuleSet([("long", "dur > 30d")], default="rest"),
                              dtype=np.float64).fit(table)
    path = str(tmp_path / "d.seg")
    model.save(path)
    loaded = segmint.load(path)
    assert loaded.input_schema_.field("f").type == pa.float32()
    assert loaded.input_schema_.field("dur").type == pa.duration("s")
    # a column of a type the file cannot name is left out alone, the others kept
    from segmint.pipeline.model_file import schema_from_data, schema_to_data
    kept = schema_from_data(schema_to_data(table.schema))
    assert kept.names == ["f", "dur"] and kept.field("f").type == pa.float32()
    records = [{"f": 33.333333333, "dur": dt.timedelta(days=d)} for d in (3, 30, 31)]
    result = model.score(pa.Table.from_pylist(records, schema=table.schema.remove(2)))
    for scorer in (model.scorer(), loaded.scorer()):
        assert all(_same(scorer.score_one(r), result, i, np.float64) for i, r in enumerate(records))


def test_a_fraction_for_an_integer_column_and_an_inexact_int_for_float32_are_refused(fitted):
    model, table, scorer = fitted
    assert table.schema.field("tenure_days").type == pa.int64() or pa.types.is_integer(
        table.schema.field("tenure_days").type)
    base = dict(table.slice(0, 1).to_pylist()[0], frequency=5, email_opt_in=True)
    with pytest.raises(UnsupportedTypeError, match="tenure_days"):
        scorer.score_one(dict(base, tenure_days=7.5), as_of=AS_OF)
    # a whole float is the integer it stands for
    assert scorer.score_one(dict(base, tenure_days=7.0), as_of=AS_OF) == scorer.score_one(
        dict(base, tenure_days=7), as_of=AS_OF)
    with pytest.raises(UnsupportedTypeError, match="income_k.*float32"):
        scorer.score_one(dict(base, income_k=16_777_217), as_of=AS_OF)
    assert scorer.score_one(dict(base, income_k=16_777_216), as_of=AS_OF).segment_id >= 0


def test_an_as_of_per_call_answers_as_a_fixed_one_and_keeps_one_evaluator():
    model, table = _fit(np.float64, n=600)
    scorer = model.scorer()
    records = table.slice(0, 60).to_pylist()
    days = [dt.date(2026, 1, 1) + dt.timedelta(days=3 * i) for i in range(len(records))]
    for rec, day in zip(records, days):
        expected = model.score(pa.Table.from_pylist([rec], schema=table.schema), as_of=day).to_pylist()[0]
        got = scorer.score_one(rec, as_of=day)
        assert (got.segment_id, got.rule) == (expected["segment_id"], expected["rule"])
    assert scorer._rule_evaluator is not None and not hasattr(scorer, "_evaluators")


def test_score_many_fills_a_missing_id_with_null_and_the_segmenter_passes_a_schema():
    model, table = _fit(np.float64, n=600)
    records = table.slice(0, 3).to_pylist()
    del records[1]["customer_id"]
    got = model.scorer().score_many(records, as_of=AS_OF)
    assert got["customer_id"].to_pylist() == [records[0]["customer_id"], None, records[2]["customer_id"]]
    model.input_schema_ = None
    scorer = model.scorer(schema=table.schema)
    assert scorer.score_one(table.slice(0, 1).to_pylist()[0], as_of=AS_OF).segment_id >= 0


def test_a_rule_set_scorer_tells_a_numpy_datetime_for_a_timestamp_column():
    rules = segmint.RuleSet([("recent", "days_since(seen) < 30")], default="old")
    scorer = Scorer(rules)
    assert scorer.score_one({"seen": np.datetime64("2026-09-20T00:00")}, as_of=AS_OF).segment == "recent"
    assert scorer.score_one({"seen": np.datetime64("2026-01-20T00:00")}, as_of=AS_OF).segment == "old"


def test_a_scorer_works_with_the_jit_disabled(tmp_path):
    child = textwrap.dedent("""
        import segmint
        from segmint.serve import Scorer
        rules = segmint.RuleSet([("a", "x > 1 and starts_with(s, 'a')")], default="r")
        t = segmint.make_customers(300, random_state=0)
        m = segmint.Segmenter([{"column": "monetary"}], rules=segmint.RuleSet([("big", "monetary > 900")], default="o"),
                              clusterer=segmint.MiniBatchKMeans(n_clusters=2, random_state=0)).fit(t)
        print(Scorer(rules).score_one({"x": 2.0, "s": "ab"}).segment, m.scorer().score_one({"monetary": 3.0}).rule)
    """)
    env = dict(os.environ, NUMBA_DISABLE_JIT="1")
    run = subprocess.run([sys.executable, "-c", child], env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["a", "o"]


# -- one pass over the record: rule and feature columns shared, float32 rule columns, ISO dates --
OVERLAP_SPEC = [{"column": "income_k", "impute": "median", "indicator": True},     # float32, also a rule column
                {"column": "pages_per_session", "impute": "median"},               # float32 with nulls, rules too
                {"column": "tenure_days", "scale": "robust"},                      # int32, rules too
                {"column": "monetary", "log1p": True},                             # float64, rules too
                {"column": "email_opt_in"},                                        # boolean, rules too
                {"column": "region", "one_hot": True, "max_categories": 4}]        # one-hot, rules too
OVERLAP_RULES = [("cheap", "income_k < 30 and pages_per_session >= 2.5"),
                 ("tenure", "tenure_days between 100 and 101"),
                 ("early", "signup_date < date '2024-01-01' and email_opt_in"),
                 ("ca", "region = 'CA' and monetary >= 500"),
                 ("seen", "days_since(last_order_date) <= 3")]


@pytest.fixture(scope="module", params=[np.float32, np.float64], ids=["float32", "float64"])
def overlapping(request):
    table = segmint.make_customers(2000, random_state=4)
    model = segmint.Segmenter(OVERLAP_SPEC, clusterer=segmint.MiniBatchKMeans(n_clusters=5, random_state=0),
                              rules=segmint.RuleSet(OVERLAP_RULES, default="rest"), id_column="customer_id",
                              dtype=request.param).fit(table, as_of=AS_OF)
    return model, table, model.scorer()


overlap_value_of = {
    # float64 values that round to the rule's constant in float32 (29.999999 -> 30.0) and others
    "income_k": st.one_of(st.none(), st.sampled_from([30.0, 29.999999, 29.99999, 30.000001]),
                          st.floats(0, 1e4, width=32), st.floats(0, 1e4)),
    "pages_per_session": st.one_of(st.none(), st.sampled_from([2.5, 2.4999999, 2.49999]), st.floats(0, 50)),
    "tenure_days": st.one_of(st.sampled_from([99, 100, 101, 102]), st.integers(0, 10_000)),
    "monetary": st.one_of(st.sampled_from([500.0, 499.99999999999994, 500]), st.floats(0, 1e9)),
    "email_opt_in": st.booleans(),
    "region": st.one_of(st.none(), st.sampled_from(["CA", "NY", "TX", "Mars", ""])),
    "signup_date": st.one_of(st.none(), st.dates(dt.date(2023, 12, 25), dt.date(2024, 1, 5))),
    "last_order_date": st.one_of(st.none(), st.dates(dt.date(2026, 9, 25), dt.date(2026, 10, 3))),
}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(edits=st.fixed_dictionaries({}, optional=overlap_value_of), position=st.integers(0, 80), iso=st.booleans())
def test_fields_read_by_rules_and_features_score_as_the_batch_path_in_one_pass(overlapping, edits, position, iso):
    model, table, scorer = overlapping
    records = table.slice(0, 80).to_pylist()
    records.insert(position, dict(records[position % 80], **edits))
    result = _batch_rows(model, records, table.schema, batch_size=32)
    record = records[position]
    if iso:  # dates as a JSON body carries them: ISO strings, the same answer
        record = {k: v.isoformat() if isinstance(v, dt.date) else v for k, v in record.items()}
    assert _same(scorer.score_one(record, as_of=AS_OF), result, position, np.dtype(model.dtype))


def test_dates_as_iso_strings_score_as_the_dates_and_a_bad_string_names_the_field(overlapping):
    model, table, scorer = overlapping
    records = table.slice(0, 300).to_pylist()
    result = _batch_rows(model, records, table.schema)
    dtype = np.dtype(model.dtype)
    forms = [lambda d: d.isoformat(), lambda d: f"{d.isoformat()}T13:45:00",
             lambda d: f"{d.isoformat()}T23:59:59Z", lambda d: f"{d.isoformat()}T00:00:00+02:00",
             lambda d: f"{d.isoformat()}T23:30:00-05:00"]
    iso_records, object_records = [], []
    for i, rec in enumerate(records):
        form = forms[i % len(forms)]
        iso_records.append({k: form(v) if isinstance(v, dt.date) else v for k, v in rec.items()})
        object_records.append({k: (iso_object(v) if isinstance(rec[k], dt.date) else v)
                               for k, v in iso_records[-1].items()})
    # every form against the batch path, on the table pyarrow builds from the date/datetime
    # objects (a datetime in a date32 column: its own calendar date)
    by_objects = _batch_rows(model, object_records, table.schema)
    for i, iso in enumerate(iso_records):
        assert _same(scorer.score_one(iso, as_of=AS_OF), by_objects, i, dtype)
        assert _same(scorer.score_one(object_records[i], as_of=AS_OF), by_objects, i, dtype)
        if i % len(forms) == 0:  # the plain dates: the original table's answer too
            assert _same(scorer.score_one(iso, as_of=AS_OF), result, i, dtype)
    for bad in ("2026-02-30", "yesterday", "2026-10-01T25:00", "x" * 100):
        with pytest.raises(UnsupportedTypeError, match=r"'last_order_date'.*ISO 8601.*'2026-10-01'"):
            scorer.score_one(dict(records[0], last_order_date=bad), as_of=AS_OF)


def test_a_rule_set_scorer_without_schema_takes_iso_strings_of_date_columns_as_dates():
    rules = segmint.RuleSet([("recent", "days_since(seen) < 30"), ("old", "signed < date '2020-01-01'")],
                            default="other")
    scorer = Scorer(rules)
    assert scorer.score_one({"seen": "2026-09-20T10:00:00Z", "signed": "2019-05-01"}, as_of=AS_OF).segment == "recent"
    assert scorer.score_one({"seen": "2026-01-20", "signed": "2019-05-01"}, as_of=AS_OF).segment == "old"
    assert scorer.score_one({"seen": None, "signed": dt.date(2021, 1, 1)}, as_of=AS_OF).segment == "other"


def test_an_int_beyond_2_53_in_a_float64_column_is_refused_as_pyarrow_refuses_it():
    table = segmint.make_customers(600, random_state=0)
    model = segmint.Segmenter([{"column": "monetary"}, {"column": "avg_order_value", "impute": "median"}],
                              clusterer=segmint.MiniBatchKMeans(n_clusters=3, random_state=0),
                              rules=segmint.RuleSet([("big", "monetary > 1e15")], default="rest"),
                              dtype=np.float64).fit(table)
    scorer = model.scorer()
    base = {"monetary": 10.0, "avg_order_value": 5.0}
    schema = pa.schema([("monetary", pa.float64()), ("avg_order_value", pa.float64())])
    for big in (2 ** 53 + 1, -(2 ** 53) - 2, 2 ** 63, 10 ** 400):
        with pytest.raises(Exception):  # the batch path: pyarrow refuses the value
            pa.Table.from_pylist([dict(base, avg_order_value=big)], schema=schema)
        with pytest.raises(UnsupportedTypeError, match=r"'avg_order_value'.*2\*\*53.*float64"):
            scorer.score_one(dict(base, avg_order_value=big))
        with pytest.raises(segmint.DataError, match=r"'monetary'.*2\*\*53"):  # a rule column too
            scorer.score_one(dict(base, monetary=big))
    # a float too large to cluster: refused as the batch path refuses it
    with pytest.raises(segmint.FeatureError, match="record's features"):
        scorer.score_one(dict(base, avg_order_value=1e300))
    with pytest.raises(segmint.FeatureError):
        model.score(pa.Table.from_pylist([dict(base, avg_order_value=1e300)] * 2, schema=schema))
    # up to 2**53 an int is exact: the batch path's bits
    for exact in (2 ** 53, -(2 ** 53), 2 ** 40 + 1, np.int64(2 ** 53)):
        record = dict(base, avg_order_value=exact)
        result = model.score(pa.Table.from_pylist([record], schema=schema))
        assert _same(scorer.score_one(record), result, 0, np.float64)


def test_a_rule_set_scorer_without_schema_answers_the_same_whatever_record_came_first():
    rules = segmint.RuleSet(TIME_RULES, default="other")
    probes = time_probes()
    expected = time_batch(rules, probes)  # s date32, t and d timestamp[us, tz=UTC]
    firsts = [time_record(0), time_record(1), time_record(0, objects=True), time_record(4, objects=True),
              dict.fromkeys(time_record(0))]  # dates, offset datetimes, as objects, naive, nulls
    for first in firsts:
        scorer = Scorer(rules)
        scorer.score_one(first, as_of=TIME_AS_OF)
        assert [scorer.score_one(r, as_of=TIME_AS_OF).segment for r in probes] == expected
    # a time column of a model saved without its input types: the same typing
    scorer = Scorer(rules)
    assert [scorer.score_one(r, as_of=TIME_AS_OF).segment for r in probes[::-1]] == expected[::-1]


def test_a_model_saved_without_input_types_takes_ints_beyond_2_53_as_the_batch_path():
    rng = np.random.default_rng(0)
    table = pa.table({"x": pa.array(rng.integers(0, 1000, 400), pa.int64()), "y": pa.array(rng.random(400))})
    model = segmint.Segmenter([{"column": "x"}, {"column": "y"}],
                              clusterer=segmint.MiniBatchKMeans(n_clusters=3, random_state=0),
                              dtype=np.float64).fit(table)
    model.input_schema_ = None  # as a model saved before segmint recorded its input types
    scorer = model.scorer()
    for big in (2 ** 53 + 1, -(2 ** 53) - 3, 2 ** 62 + 1, -(2 ** 63), 2 ** 63 - 1, np.int64(2 ** 60 + 1)):
        record = {"x": big, "y": 0.5}
        result = model.score(pa.Table.from_pylist([record], schema=table.schema))  # an int64 column
        assert _same(scorer.score_one(record), result, 0, np.float64)


INT_TYPES = [pa.int8(), pa.int16(), pa.int32(), pa.int64(), pa.uint8(), pa.uint16(), pa.uint32(), pa.uint64()]


@pytest.fixture(scope="module")
def integer_models():
    rng = np.random.default_rng(0)
    table = pa.table({f"c_{t}": pa.array(rng.integers(0, 100, 400), t) for t in INT_TYPES})
    names = table.column_names
    rules = segmint.RuleSet([(f"r{i}", f"{c} > 95") for i, c in enumerate(names)], default="rest")
    models = [segmint.Segmenter([{"column": c} for c in names], rules=r, dtype=np.float64,
                                clusterer=segmint.MiniBatchKMeans(n_clusters=3, random_state=0)).fit(table)
              for r in (rules, None)]
    return table, models, rules


@pytest.mark.parametrize("arrow_type", INT_TYPES, ids=str)
def test_an_int_outside_an_integer_columns_type_is_refused_naming_the_field_and_range(integer_models, arrow_type):
    table, models, rules = integer_models
    schema = table.schema
    name = f"c_{arrow_type}"
    info = np.iinfo(arrow_type.to_pandas_dtype())
    lo, hi = int(info.min), int(info.max)
    # features and rules sharing each field, features alone, rules alone
    scorers = [(m.scorer(), m.score) for m in models]
    scorers.append((Scorer(rules, schema=schema), lambda t, **kw: rules.evaluate(t, **kw).table))
    base = dict.fromkeys(table.column_names, 1)
    for value in (lo - 1, lo, hi, hi + 1, float(hi + 1), float(lo) - 2 ** 12):
        record = dict(base, **{name: value})
        try:
            batch_table = pa.Table.from_pylist([record], schema=schema)
        except (pa.ArrowInvalid, OverflowError):  # pyarrow refuses it: so does the Scorer
            for scorer, _ in scorers:
                with pytest.raises(UnsupportedTypeError, match=rf"'{name}'.*{arrow_type}.*{lo}\.\.{hi}"):
                    scorer.score_one(record, as_of=AS_OF)
            continue
        for scorer, batch in scorers:
            try:
                result = batch(batch_table, as_of=AS_OF)
            except segmint.DataError as exc:  # rules refuse ints beyond 2**53, both paths
                with pytest.raises(type(exc)):
                    scorer.score_one(record, as_of=AS_OF)
                continue
            got = scorer.score_one(record, as_of=AS_OF)
            if "distance" in result.column_names:
                assert _same(got, result, 0, np.float64)
            else:
                assert got.segment == result.column("segment")[0].as_py()


def test_a_rule_taken_customer_with_a_bad_feature_is_refused_as_a_batch_with_a_clustered_one_refuses_it():
    table = segmint.make_customers(600, random_state=0)
    model = segmint.Segmenter([{"column": "frequency", "log1p": True}, {"column": "discount_share", "impute": 0.0},
                               {"column": "monetary"}],
                              clusterer=segmint.MiniBatchKMeans(n_clusters=3, random_state=0),
                              rules=segmint.RuleSet([("vip", "monetary >= 2000")], default="rest")).fit(table)
    scorer = model.scorer()
    schema = pa.schema([(c, table.schema.field(c).type) for c in ("frequency", "discount_share", "monetary")])
    clustered = {"frequency": 3, "discount_share": 0.1, "monetary": 50.0}
    for edit in ({"discount_share": float("nan")}, {"frequency": None}, {"frequency": -1}):
        vip = dict(clustered, monetary=5000.0, **edit)
        # the batch path: a batch whose customers rules all took is not transformed (not checked)
        alone = model.score(pa.Table.from_pylist([vip, vip], schema=schema), as_of=AS_OF)
        assert alone.column("rule").to_pylist() == ["vip", "vip"]
        # a batch with a clustered customer checks every row's features, the rule-taken ones too
        with pytest.raises(segmint.FeatureError):
            model.score(pa.Table.from_pylist([vip, clustered], schema=schema), as_of=AS_OF)
        # the Scorer: always the stricter, whatever the neighbours
        with pytest.raises(segmint.FeatureError):
            scorer.score_one(vip, as_of=AS_OF)


def test_field_names_never_enter_the_generated_reader_source():
    name = "a'b\"\n) or __import__('os') #"
    table = pa.table({name: pa.array(np.arange(200, dtype=np.float64)),
                      "r": pa.array(["x", "y"] * 100)})
    model = segmint.Segmenter([{"column": name}, {"column": "r", "one_hot": True}],
                              clusterer=segmint.MiniBatchKMeans(n_clusters=2, random_state=0)).fit(table)
    scorer = model.scorer()
    assert name not in scorer._plan.source and "os" not in scorer._plan.source
    records = table.slice(0, 20).to_pylist()
    result = model.score(table.slice(0, 20))
    assert all(_same(scorer.score_one(r), result, i, np.float32) for i, r in enumerate(records))
    with pytest.raises(UnknownColumnError, match="no field"):
        scorer.score_one({"r": "x"})
