"""RFM scores against slow plain-Python and pandas twins; the named RFM segments on the full grid."""
import json
import math

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import segmint
from segmint.cluster import NotFittedError
from segmint.errors import DataError, ParameterError, UnknownColumnError, UnsupportedTypeError
from segmint.events import RFMScorer, rfm_segments
from segmint.rules import RuleSet, Segment

ROLES = {"recency": "recency_days", "frequency": "frequency", "monetary": "monetary"}


# -- slow twins ------------------------------------------------------------------------------
def missing(v):
    return v is None or (isinstance(v, float) and math.isnan(v))


def ref_boundaries(sample, bins, reverse):
    """Boundary j: the smallest value with at least j/bins of the sample at or below it (for
    recency, the largest value with at least j/bins at or above it). Quadratic on purpose."""
    n = len(sample)
    out = []
    for j in range(1, bins):
        if reverse:
            fits = [x for x in sample if bins * sum(1 for u in sample if u >= x) >= j * n]
            out.append(max(fits))
        else:
            fits = [x for x in sample if bins * sum(1 for u in sample if u <= x) >= j * n]
            out.append(min(fits))
    return out


def ref_fit(rows, bins):
    buyers = [row for row in rows if not missing(row["recency_days"])]
    return {role: ref_boundaries([row[col] for row in buyers if not missing(row[col])], bins, role == "recency")
            for role, col in ROLES.items()}


def ref_score(value, boundaries, reverse):
    if missing(value):
        return 1
    return 1 + sum(1 for b in boundaries if (b > value if reverse else b < value))


def ref_transform(rows, boundaries):
    return [tuple(ref_score(row[col], boundaries[role], role == "recency") for role, col in ROLES.items())
            for row in rows]


def pandas_scores(table, bins):
    """The documented property on the fitted rows: 1 + floor(bins * share strictly worse)."""
    pytest.importorskip("pandas")
    df = table.to_pandas()
    buyers = df["recency_days"].notna()
    out = {}
    for role, col in ROLES.items():
        s = df.loc[buyers, col].dropna()
        ranks = s.rank(method="min", ascending=role != "recency")  # 1 + number strictly worse
        out[role] = (1 + (bins * (ranks - 1)) // len(s)).astype(int)
    return out


def random_rows(rng, n, spread=30):
    """Customers with ties (small ranges), null recency (prospects), nulls and NaN."""
    rows = []
    for _ in range(n):
        bought = rng.random() > 0.2
        freq = int(rng.integers(1, 6)) if rng.random() < 0.6 else int(rng.integers(1, spread))
        money = float(np.round(rng.gamma(2, 40), 0)) if rng.random() < 0.7 else float(rng.integers(0, 5) * 10)
        if rng.random() < 0.05:
            money = float("nan")
        rows.append({"recency_days": int(rng.integers(0, spread)) if bought else None,
                     "frequency": freq if bought else (0 if rng.random() < 0.9 else None),
                     "monetary": money if bought else 0.0})
    return rows


def table_of(rows, recency_type=None):
    return pa.table({"recency_days": pa.array([r["recency_days"] for r in rows], recency_type or pa.int64()),
                     "frequency": pa.array([r["frequency"] for r in rows], pa.int64()),
                     "monetary": pa.array([r["monetary"] for r in rows], pa.float64())})


def scores_of(table):
    return list(zip(*(table.column(c).to_pylist() for c in ("r_score", "f_score", "m_score"))))


# -- scores against the twins ----------------------------------------------------------------
@pytest.mark.parametrize("bins", [2, 3, 5, 10])
@pytest.mark.parametrize("n,seed", [(1, 0), (2, 1), (7, 2), (101, 3), (997, 4)])
def test_scores_match_references(n, seed, bins):
    rows = random_rows(np.random.default_rng(seed), n)
    rows[0]["recency_days"] = 3  # at least one buyer
    table = table_of(rows)
    scorer = RFMScorer(bins).fit(table)
    expected = ref_fit(rows, bins)
    for role in ROLES:
        assert scorer.boundaries_[role].tolist() == expected[role], role
    got = scorer.transform(table)
    assert scores_of(got) == ref_transform(rows, expected)
    by_pandas = pandas_scores(table, bins)
    for role, name in zip(ROLES, ("r_score", "f_score", "m_score")):
        column = np.asarray(got.column(name).to_pylist())
        assert column[by_pandas[role].index.to_numpy()].tolist() == by_pandas[role].tolist(), role
    assert scorer.n_customers_ == sum(not missing(r["recency_days"]) for r in rows)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.one_of(st.none(), st.integers(0, 6)),
                          st.one_of(st.none(), st.integers(0, 4)),
                          st.one_of(st.none(), st.sampled_from([0.0, 1.5, 2.0, 7.25, float("nan"), 1e9]))),
                min_size=1, max_size=40),
       st.integers(2, 8), st.randoms(use_true_random=False))
def test_scores_property(data, bins, random):
    rows = [{"recency_days": r, "frequency": f, "monetary": m} for r, f, m in data]
    table = table_of(rows)
    buyers = [r for r in rows if r["recency_days"] is not None]
    if not buyers or any(all(missing(r[c]) for r in buyers) for c in ROLES.values()):
        with pytest.raises(DataError, match="cannot learn RFM boundaries"):
            RFMScorer(bins).fit(table)
        return
    expected_bounds = ref_fit(rows, bins)
    scorer = RFMScorer(bins).fit(table)
    got = scores_of(scorer.transform(table))
    assert got == ref_transform(rows, expected_bounds)
    assert all(1 <= s <= bins for triple in got for s in triple)
    # value-based: the same rows in another order get the same scores
    order = list(range(len(rows)))
    random.shuffle(order)
    shuffled = scorer.fit(table.take(order)).transform(table.take(order))
    assert scores_of(shuffled) == [got[i] for i in order]


def test_heavy_ties_collapse_boundaries():
    # 60 of 100 customers bought once: quantiles 1/5..3/5 are all 1
    freq = [1] * 60 + [2] * 20 + [3] * 10 + [7] * 10
    table = pa.table({"recency_days": list(range(100)), "frequency": freq, "monetary": [10.0] * 100})
    scorer = RFMScorer().fit(table)
    assert scorer.boundaries_["frequency"].tolist() == [1, 1, 1, 2]
    f = dict(zip(freq, scores_of(scorer.transform(table))))
    assert {k: v[1] for k, v in f.items()} == {1: 1, 2: 4, 3: 5, 7: 5}
    # everyone spent the same: nobody is beaten, all score 1
    assert {s[2] for s in scores_of(scorer.transform(table))} == {1}


def test_recency_reversed_and_ordered():
    table = pa.table({"recency_days": [0, 10, 20, 30, 40, 50, 60, 70, 80, 90],
                      "frequency": list(range(1, 11)), "monetary": [float(x) for x in range(10)]})
    got = scores_of(RFMScorer().fit_transform(table))
    assert [s[0] for s in got] == [5, 5, 4, 4, 3, 3, 2, 2, 1, 1]
    assert [s[1] for s in got] == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]


def test_single_customer_and_prospects():
    table = pa.table({"recency_days": pa.array([5, None], pa.int64()), "frequency": [3, 0],
                      "monetary": [50.0, 0.0]})
    out = RFMScorer().fit_transform(table)
    assert scores_of(out) == [(1, 1, 1), (1, 1, 1)]
    assert out.column("rfm").to_pylist() == ["111", "111"]


def test_empty_input():
    table = table_of([])
    with pytest.raises(DataError, match="no customer has a purchase"):
        RFMScorer().fit(table)
    scorer = RFMScorer().fit(table_of([{"recency_days": 1, "frequency": 1, "monetary": 1.0}]))
    out = scorer.transform(table)
    assert out.num_rows == 0
    assert out.schema.field("r_score").type == pa.int8()
    assert out.column_names == ["recency_days", "frequency", "monetary", "r_score", "f_score", "m_score", "rfm"]


def test_score_new_customers_on_last_quarters_boundaries():
    rng = np.random.default_rng(7)
    last = random_rows(rng, 300, spread=60)
    now = random_rows(rng, 211, spread=120)  # wider: values beyond last quarter's range
    scorer = RFMScorer().fit(table_of(last))
    saved = json.loads(json.dumps(scorer.to_dict()))
    reloaded = RFMScorer.from_dict(saved)
    expected = ref_transform(now, ref_fit(last, 5))
    assert scores_of(reloaded.transform(table_of(now))) == expected
    assert scores_of(scorer.transform(table_of(now))) == expected


def test_rfm_label_and_output_columns():
    table = pa.table({"recency_days": list(range(20)), "frequency": list(range(20)),
                      "monetary": [float(x) for x in range(20)], "customer_id": list(range(20))})
    out = RFMScorer(10).fit_transform(table)
    assert out.column_names[:4] == ["recency_days", "frequency", "monetary", "customer_id"]
    assert pa.types.is_dictionary(out.schema.field("rfm").type)
    labels = out.column("rfm").to_pylist()
    assert labels[0] == "10-1-1" and labels[-1] == "1-10-10"
    for (r, f, m), label in zip(scores_of(out), labels):
        assert label == f"{r}-{f}-{m}"
    # scoring a scored table replaces the score columns instead of adding twins
    again = RFMScorer(5).fit_transform(out)
    assert again.column_names == out.column_names
    assert again.column("rfm").to_pylist()[0] == "511"


def test_inputs_of_every_kind(tmp_path):
    rows = random_rows(np.random.default_rng(3), 50)
    rows[0]["recency_days"] = 1
    table = table_of(rows)
    expected = scores_of(RFMScorer().fit_transform(table))
    pq.write_table(table, tmp_path / "customers.parquet")
    assert scores_of(RFMScorer().fit_transform(tmp_path / "customers.parquet")) == expected
    assert scores_of(RFMScorer().fit_transform(table.to_batches()[0])) == expected
    chunked = pa.concat_tables([table.slice(0, 17), table.slice(17)])
    assert scores_of(RFMScorer().fit_transform(chunked)) == expected
    pd = pytest.importorskip("pandas")
    assert scores_of(RFMScorer().fit_transform(pd.DataFrame(rows))) == expected
    # float recency with NaN counts as null
    as_float = table_of(rows, pa.float64())
    assert scores_of(RFMScorer().fit_transform(as_float)) == expected


def test_custom_column_names():
    table = pa.table({"days": [1, 5, 9], "orders": [4, 2, 1], "spend": [30.0, 20.0, 10.0]})
    out = RFMScorer(3, recency="days", frequency="orders", monetary="spend").fit_transform(table)
    assert out.column("rfm").to_pylist() == ["333", "222", "111"]


# -- saving and loading ----------------------------------------------------------------------
def test_to_dict_round_trip_json_and_yaml():
    yaml = pytest.importorskip("yaml")
    rows = random_rows(np.random.default_rng(11), 120)
    rows[0]["recency_days"] = 2
    scorer = RFMScorer(4, monetary="monetary").fit(table_of(rows))
    doc = scorer.to_dict()
    assert doc["bins"] == 4 and doc["columns"] == {"recency": "recency_days", "frequency": "frequency",
                                                   "monetary": "monetary"}
    for text, load in ((json.dumps(doc), json.loads), (yaml.safe_dump(doc), yaml.safe_load)):
        back = RFMScorer.from_dict(load(text))
        assert back.get_params() == scorer.get_params()
        for role in ROLES:
            assert back.boundaries_[role].tolist() == scorer.boundaries_[role].tolist()
        assert back.n_customers_ == scorer.n_customers_
        assert back.to_dict() == doc
    unfitted = RFMScorer.from_dict(RFMScorer(7).to_dict())
    assert unfitted.bins == 7 and not hasattr(unfitted, "boundaries_")


@pytest.mark.parametrize("change,message", [
    (lambda d: d.update(kind="something"), "not an RFMScorer document"),
    (lambda d: d.update(version=99), "version 99"),
    (lambda d: d.update(extra=1), "unknown keys"),
    (lambda d: d.update(bins=1), "bins must be an integer"),
    (lambda d: d["columns"].update(recenzy="x"), "'columns' must map"),
    (lambda d: d["boundaries"].pop("monetary"), "must hold exactly"),
    (lambda d: d["boundaries"].update(frequency=[1, 2]), "list of 4 numbers"),
    (lambda d: d["boundaries"].update(frequency=[1, 2, "3", 4]), "list of 4 numbers"),
    (lambda d: d["boundaries"].update(frequency=[1, 3, 2, 4]), "ascending"),
    (lambda d: d["boundaries"].update(recency=[1, 2, 3, 4]), "descending"),
    (lambda d: d["boundaries"].update(monetary=[1, float("nan"), 3, 4]), "finite"),
    (lambda d: d["boundaries"].update(monetary=[1, 2, 3, float("inf")]), "finite"),
    (lambda d: d["boundaries"].update(monetary=[1, 2, 3, 10 ** 400]), "finite"),
    (lambda d: d.update(n_customers="many"), "n_customers"),
    (lambda d: d.update(n_customers=1e400), "n_customers"),
    (lambda d: d.update(version=[1]), "version \\[1\\]"),
    (lambda d: d.update(bins=10 ** 5000), "about 5,000 digits"),
    (lambda d: d["columns"].update(recency=["a"]), "column name"),
])
def test_from_dict_rejects_bad_documents(change, message):
    table = pa.table({"recency_days": list(range(10)), "frequency": list(range(10)),
                      "monetary": [float(x) for x in range(10)]})
    doc = RFMScorer().fit(table).to_dict()
    change(doc)
    with pytest.raises(ParameterError, match=message):  # and so a ValueError
        RFMScorer.from_dict(doc)


# -- errors ----------------------------------------------------------------------------------
TABLE = pa.table({"recency_days": [1, 2], "frequency": [1, 2], "monetary": [1.0, 2.0],
                  "region": ["a", "b"]})


@pytest.mark.parametrize("bins", [1, 0, -5, 128, 2.5, "5", True, None])
def test_bad_bins(bins):
    with pytest.raises(ValueError, match="bins must be an integer from 2 to 127"):
        RFMScorer(bins).fit(TABLE)


def test_missing_column_names_the_closest():
    with pytest.raises(UnknownColumnError, match="'recency_day'.*did you mean 'recency_days'"):
        RFMScorer(recency="recency_day").fit(TABLE)
    with pytest.raises(KeyError):
        RFMScorer(monetary="money").fit(TABLE)


def test_wrong_type():
    with pytest.raises(UnsupportedTypeError, match="monetary column 'region' must hold numbers.*string"):
        RFMScorer(monetary="region").fit(TABLE)
    with pytest.raises(TypeError):
        RFMScorer(frequency="region").fit(TABLE)


def test_not_fitted():
    with pytest.raises(NotFittedError, match="not fitted"):
        RFMScorer().transform(TABLE)
    assert issubclass(NotFittedError, segmint.SegmintError)


def test_no_valid_value_among_buyers():
    table = pa.table({"recency_days": [1, None], "frequency": [2, 3], "monetary": [float("nan"), 5.0]})
    with pytest.raises(DataError, match="monetary column 'monetary' is null or NaN for all 1"):
        RFMScorer().fit(table)


def test_params_contract():
    scorer = RFMScorer(4, frequency="orders")
    assert scorer.get_params() == {"bins": 4, "recency": "recency_days", "frequency": "orders",
                                   "monetary": "monetary"}
    assert repr(scorer) == "RFMScorer(bins=4, frequency='orders')"
    with pytest.raises(ValueError, match="did you mean 'bins'"):
        scorer.set_params(bin=3)
    assert scorer.fit(TABLE.rename_columns(["recency_days", "orders", "monetary", "region"])) is scorer


# -- the named segments ----------------------------------------------------------------------
NAMES = ["Champions", "Loyal Customers", "Potential Loyalists", "New Customers", "Promising",
         "Need Attention", "About to Sleep", "At Risk", "Can't Lose Them", "Hibernating", "Lost"]
# The same table of definitions, as data: R -> the segment of each FM band
# (FM < 2, 2 <= FM < 3, 3 <= FM < 4, 4 <= FM < 5, FM = 5).
GRID = {
    5: ["New Customers", "Potential Loyalists", "Potential Loyalists", "Champions", "Champions"],
    4: ["Promising", "Potential Loyalists", "Potential Loyalists", "Loyal Customers", "Loyal Customers"],
    3: ["About to Sleep", "About to Sleep", "Need Attention", "Loyal Customers", "Loyal Customers"],
    2: ["Hibernating", "Hibernating", "At Risk", "At Risk", "Can't Lose Them"],
    1: ["Lost", "Hibernating", "At Risk", "At Risk", "Can't Lose Them"],
}


def ref_segment(r, f, m):
    if r is None or f is None or m is None or not all(1 <= s <= 5 for s in (r, f, m)):
        return "Other"
    return GRID[r][int((f + m) / 2) - 1]


def grid_table():
    cells = [(r, f, m) for r in range(1, 6) for f in range(1, 6) for m in range(1, 6)]
    return pa.table({name: pa.array([c[j] for c in cells], pa.int8())
                     for j, name in enumerate(("r_score", "f_score", "m_score"))}), cells


def test_segments_cover_the_grid_like_the_reference():
    rules = rfm_segments()
    assert rules.names == NAMES and rules.mode == "waterfall" and rules.default == "Other"
    table, cells = grid_table()
    got = rules.evaluate(table).table.column("segment").to_pylist()
    assert got == [ref_segment(*c) for c in cells]
    assert "Other" not in got
    assert set(got) == set(NAMES)  # every named segment is non-empty on the grid
    # the rules do not overlap: in multi mode every cell is in exactly one segment
    multi = RuleSet(rules.segments, mode="multi").evaluate(table).table
    membership = np.column_stack([multi.column(n).to_numpy(zero_copy_only=False) for n in NAMES])
    assert membership.sum(axis=1).tolist() == [1] * len(cells)


def test_segments_off_grid_go_to_default():
    table = pa.table({"r_score": pa.array([None, 6, 5, 0], pa.int8()), "f_score": pa.array([5, 5, None, 1], pa.int8()),
                      "m_score": pa.array([5, 5, 5, 1], pa.int8())})
    assert rfm_segments().evaluate(table).table.column("segment").to_pylist() == ["Other"] * 4


def test_segments_end_to_end_from_scores():
    rows = random_rows(np.random.default_rng(5), 500, spread=90)
    rows[0]["recency_days"] = 0
    scored = RFMScorer().fit_transform(table_of(rows))
    got = rfm_segments().evaluate(scored).table.column("segment").to_pylist()
    assert got == [ref_segment(*s) for s in scores_of(scored)]


def test_segments_are_readable_editable_extensible():
    yaml = pytest.importorskip("yaml")
    rules = rfm_segments()
    doc = rules.to_dict()
    assert all(s["description"] and s["purpose"] for s in doc["segments"])
    assert doc["segments"][0]["rule"] == "r_score = 5 and (f_score + m_score) / 2 >= 4"
    assert rfm_segments().to_dict() == doc  # a fresh copy each call
    back = RuleSet.from_yaml(yaml.safe_dump(doc, sort_keys=False))
    assert back.to_dict() == doc
    # add a segment in front and tighten an existing one
    doc["segments"].insert(0, {"name": "Whales", "rule": "m_score = 5 and f_score = 5 and r_score >= 4"})
    doc["segments"][1]["rule"] = "r_score = 5 and f_score = 5"
    edited = RuleSet.from_dict(doc)
    table, cells = grid_table()
    got = edited.evaluate(table).table.column("segment").to_pylist()
    for c, seg in zip(cells, got):
        r, f, m = c
        if m == 5 and f == 5 and r >= 4:
            assert seg == "Whales"
        elif r == 5 and f == 5:
            assert seg == "Champions"
        elif seg == "Champions":
            pytest.fail(f"{c} is no longer a champion")
    extended = RuleSet([Segment("Big spenders", "m_score = 5"), *rules.segments], default=rules.default)
    assert extended.names[0] == "Big spenders" and len(extended.names) == 12
