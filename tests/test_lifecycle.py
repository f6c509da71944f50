"""Lifecycle stages against a slow plain-Python twin on random customer tables."""
import math

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from segmint.errors import DataError, UnknownColumnError, UnsupportedTypeError
from segmint.events import STAGES, lifecycle_stages

DEFAULTS = {"new_days": 30, "active_days": 90, "at_risk_days": 180, "lapsed_days": 365, "adaptive": False,
                "gap_multiples": (2.0, 4.0, 8.0), "min_gap_days": 7.0}


def missing(v):
    return v is None or (isinstance(v, float) and math.isnan(v))


def ref_stage(row, previous, p):
    """One customer at a time, straight from the documented table."""
    r = row["recency_days"]
    if missing(r):
        return "prospect"
    t = row.get("tenure_days")
    if p["new_days"] is not None and not missing(t) and t <= p["new_days"]:
        stage = "new"
    else:
        limits = (p["active_days"], p["at_risk_days"], p["lapsed_days"])
        g = row.get("mean_gap_days")
        if p["adaptive"] and not missing(g):
            g = max(g, p["min_gap_days"])
            limits = tuple(k * g for k in p["gap_multiples"])
        if r <= limits[0]:
            stage = "active"
        elif r <= limits[1]:
            stage = "at_risk"
        elif r <= limits[2]:
            stage = "lapsed"
        else:
            stage = "lost"
    if previous is not None and stage in ("new", "active") and row["id"] is not None \
            and previous.get(row["id"]) in ("lapsed", "lost"):
        stage = "reactivated"
    return stage


def random_customers(rng, n, string_ids=False, spread=60):
    """Ties on the thresholds (small integer ranges), nulls and NaN in every column."""
    ids = rng.permutation(n * 3)[:n]
    return pa.table({
        "id": pa.array([f"c{i}" for i in ids] if string_ids else ids.astype(np.int64),
                       pa.string() if string_ids else pa.int64(), mask=rng.random(n) < 0.05),
        "recency_days": pa.array(rng.integers(0, spread, n), mask=rng.random(n) < 0.15),
        "tenure_days": pa.array(rng.integers(0, 2 * spread, n), mask=rng.random(n) < 0.05),
        "mean_gap_days": pa.array(np.where(rng.random(n) < 0.1, np.nan, np.round(rng.gamma(1.5, 4, n), 1)),
                                  mask=rng.random(n) < 0.3),
    })


def random_previous(rng, table, string_ids=False):
    ids = [i for i in table.column("id").to_pylist() if i is not None]
    keep = [i for i in ids if rng.random() < 0.7]
    extra = [f"x{j}" if string_ids else -j - 1 for j in range(5)]  # customers gone since
    every = keep + extra
    stages = [STAGES[k] if rng.random() > 0.1 else None for k in rng.integers(0, len(STAGES), len(every))]
    order = rng.permutation(len(every))
    return pa.table({"id": pa.array([every[i] for i in order], pa.string() if string_ids else pa.int64()),
                     "lifecycle_stage": pa.array([stages[i] for i in order], pa.string())})


def check(table, previous=None, **params):
    p = {**DEFAULTS, **params}
    before = None if previous is None else {
        i: s for i, s in zip(previous.column("id").to_pylist(), previous.column("lifecycle_stage").to_pylist())}
    got = lifecycle_stages(table, id_column="id", previous=previous, **params)
    expected = [ref_stage(row, before, p) for row in table.to_pylist()]
    assert got.column("lifecycle_stage").to_pylist() == expected
    assert got.column("id").to_pylist() == table.column("id").to_pylist()
    assert got.schema.field("lifecycle_stage").type == pa.dictionary(pa.int8(), pa.string())
    return expected


@pytest.mark.parametrize("string_ids", [False, True])
@pytest.mark.parametrize("n,seed", [(0, 0), (1, 1), (2, 2), (37, 3), (1001, 4)])
def test_fixed_thresholds_match_reference(n, seed, string_ids):
    rng = np.random.default_rng(seed)
    table = random_customers(rng, n, string_ids)
    check(table, new_days=10, active_days=20, at_risk_days=30, lapsed_days=45)
    check(table, new_days=None, active_days=15, at_risk_days=15, lapsed_days=50)  # no at_risk stage
    check(table, previous=random_previous(rng, table, string_ids), new_days=10, active_days=20,
          at_risk_days=30, lapsed_days=45)


@pytest.mark.parametrize("n,seed", [(0, 5), (1, 6), (53, 7), (999, 8)])
def test_adaptive_matches_reference(n, seed):
    rng = np.random.default_rng(seed)
    table = random_customers(rng, n)
    check(table, adaptive=True, new_days=5)
    check(table, adaptive=True, gap_multiples=(1.5, 1.5, 3.0), min_gap_days=0.0, new_days=5)
    check(table, adaptive=True, previous=random_previous(rng, table), new_days=None, active_days=10,
          at_risk_days=20, lapsed_days=30)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.one_of(st.none(), st.integers(0, 12)), st.one_of(st.none(), st.integers(0, 12)),
                          st.one_of(st.none(), st.sampled_from([0.0, 0.5, 1.0, 2.5, 3.0, float("nan")])),
                          st.one_of(st.none(), st.sampled_from(STAGES))),
                max_size=30),
       st.lists(st.integers(0, 12), min_size=3, max_size=3).map(sorted),
       st.one_of(st.none(), st.integers(0, 6)), st.booleans(),
       st.lists(st.sampled_from([0.5, 1.0, 2.0, 3.0]), min_size=3, max_size=3).map(sorted),
       st.sampled_from([0.0, 1.0, 2.0]), st.booleans())
def test_lifecycle_property(data, days, new_days, adaptive, multiples, min_gap, with_previous):
    table = pa.table({"id": pa.array(range(len(data)), pa.int64()),
                      "recency_days": pa.array([d[0] for d in data], pa.int64()),
                      "tenure_days": pa.array([d[1] for d in data], pa.int64()),
                      "mean_gap_days": pa.array([d[2] for d in data], pa.float64())})
    previous = None
    if with_previous:
        previous = pa.table({"id": pa.array([i for i, d in enumerate(data) if i % 3], pa.int64()),
                             "lifecycle_stage": pa.array([d[3] for i, d in enumerate(data) if i % 3], pa.string())})
    check(table, previous, new_days=new_days, active_days=days[0], at_risk_days=days[1], lapsed_days=days[2],
          adaptive=adaptive, gap_multiples=tuple(multiples), min_gap_days=min_gap)


def test_documented_cases():
    table = pa.table({"id": list(range(9)),
                      "recency_days": pa.array([0, 90, 91, 180, 181, 365, 366, None, 20], pa.int64()),
                      "tenure_days": [30, 400, 400, 400, 400, 400, 400, 3, 31]})
    assert check(table) == ["new", "active", "at_risk", "at_risk", "lapsed", "lapsed", "lost", "prospect",
                            "active"]
    # adaptive: a weekly buyer is lost after 8 weeks, a yearly buyer still active after 300 days
    table = pa.table({"id": [1, 2, 3, 4], "recency_days": [57, 300, 20, 20], "tenure_days": [999] * 4,
                      "mean_gap_days": pa.array([7.0, 365.0, None, 0.0])})
    assert check(table, adaptive=True) == ["lost", "active", "active", "at_risk"]


def test_reactivation_rules():
    now = pa.table({"id": ["a", "b", "c", "d", "e", "f", "g", "h"],
                    "recency_days": pa.array([5, 5, 5, 5, 5, 200, None, 5], pa.int64()),
                    "tenure_days": [400, 400, 400, 400, 400, 400, 400, 10]})
    before = pa.table({"id": ["a", "b", "c", "d", "f", "g", "h", "zz"],
                       "lifecycle_stage": ["lapsed", "lost", "at_risk", "reactivated", "lost", "lost", "lost",
                                           "lapsed"]}).take([3, 0, 7, 1, 2, 6, 4, 5])
    got = lifecycle_stages(now, id_column="id", previous=before).column("lifecycle_stage").to_pylist()
    # e is absent before; f did not come back; g has not bought; h is new but was lost before
    assert got == ["reactivated", "reactivated", "active", "active", "active", "lapsed", "prospect",
                   "reactivated"]


def test_previous_snapshot_as_an_earlier_result_and_other_sources(tmp_path):
    rng = np.random.default_rng(9)
    ids = pa.array(rng.permutation(400)[:200])  # no nulls: pandas would turn the ids into floats
    before_table = random_customers(rng, 200).set_column(0, "id", ids)
    before = lifecycle_stages(before_table, id_column="id")  # a dictionary column
    now = random_customers(rng, 200).set_column(0, "id", ids.take(rng.permutation(200)))
    expected = check(now, before)
    pytest.importorskip("pandas")
    got = lifecycle_stages(now.to_pandas(), id_column="id", previous=before.to_pandas())
    assert got.column("lifecycle_stage").to_pylist() == expected
    # integer ids of other widths still match
    narrow = before.set_column(0, "id", before.column("id").cast(pa.int32()))
    assert lifecycle_stages(now, id_column="id", previous=narrow).column("lifecycle_stage").to_pylist() == expected
    # string ids may be dictionary-encoded on either side
    s_now = now.set_column(0, "id", pa.array([None if i is None else f"c{i}" for i in now.column("id").to_pylist()]))
    s_before = before.set_column(0, "id", pa.array([None if i is None else f"c{i}" for i in
                                                    before.column("id").to_pylist()]).dictionary_encode())
    assert lifecycle_stages(s_now, id_column="id", previous=s_before).column("lifecycle_stage").to_pylist() \
        == expected


def test_fixed_category_order_and_shape():
    for n in (0, 1, 4):
        table = random_customers(np.random.default_rng(n), n)
        out = lifecycle_stages(table)
        assert out.column_names == ["lifecycle_stage"]
        assert out.column("lifecycle_stage").combine_chunks().dictionary.to_pylist() == list(STAGES)
        assert out.column("lifecycle_stage").null_count == 0
    assert STAGES == ("prospect", "new", "active", "reactivated", "at_risk", "lapsed", "lost")


def test_columns_only_read_when_needed():
    table = pa.table({"recency_days": [1, 100]})
    assert lifecycle_stages(table, new_days=None).column("lifecycle_stage").to_pylist() == ["active", "at_risk"]
    with pytest.raises(UnknownColumnError, match="'tenure_days'"):
        lifecycle_stages(table)
    with pytest.raises(UnknownColumnError, match="'mean_gap_days'"):
        lifecycle_stages(table, new_days=None, adaptive=True)


def test_custom_column_names():
    table = pa.table({"r": [1.0, 100.0, float("nan")], "t": [400, 400, 400], "g": [None, 60.0, None]})
    out = lifecycle_stages(table, recency="r", tenure="t", mean_gap="g", adaptive=True)
    assert out.column("lifecycle_stage").to_pylist() == ["active", "active", "prospect"]


# -- errors ----------------------------------------------------------------------------------
TABLE = pa.table({"id": [1, 2], "recency_days": [3, 50], "tenure_days": [300, 300], "region": ["a", "b"]})


@pytest.mark.parametrize("params,message", [
    ({"active_days": 100, "at_risk_days": 50}, "must not decrease"),
    ({"lapsed_days": 100}, "must not decrease"),
    ({"new_days": -1}, "new_days must be a non-negative"),
    ({"active_days": float("nan")}, "active_days must be"),
    ({"lapsed_days": float("inf")}, "lapsed_days must be"),
    ({"at_risk_days": "90"}, "at_risk_days must be"),
    ({"active_days": True}, "active_days must be"),
    ({"adaptive": True, "gap_multiples": (1, 2)}, "gap_multiples must be three"),
    ({"adaptive": True, "gap_multiples": (3, 2, 4)}, "gap_multiples must be three"),
    ({"adaptive": True, "gap_multiples": (0, 2, 4)}, "gap_multiples must be three"),
    ({"adaptive": True, "gap_multiples": "abc"}, "gap_multiples must be three"),
    ({"adaptive": True, "min_gap_days": -1}, "min_gap_days"),
    ({"previous": TABLE}, "pass id_column"),
])
def test_bad_parameters(params, message):
    with pytest.raises(ValueError, match=message):
        lifecycle_stages(TABLE, **params)


def test_bad_columns():
    with pytest.raises(UnknownColumnError, match="'recency_day'.*did you mean 'recency_days'"):
        lifecycle_stages(TABLE, recency="recency_day")
    with pytest.raises(UnsupportedTypeError, match="recency column 'region' must hold numbers"):
        lifecycle_stages(TABLE, recency="region")
    with pytest.raises(UnknownColumnError, match="'ids'.*did you mean 'id'"):
        lifecycle_stages(TABLE, id_column="ids")


def test_bad_previous_snapshots():
    with pytest.raises(DataError, match="unknown stages 'lapsd'.*did you mean 'lapsed'"):
        lifecycle_stages(TABLE, id_column="id", previous=pa.table({"id": [1], "lifecycle_stage": ["lapsd"]}))
    with pytest.raises(DataError, match="more than once.*1"):
        lifecycle_stages(TABLE, id_column="id",
                         previous=pa.table({"id": [1, 1, 2], "lifecycle_stage": ["lost", "lost", "new"]}))
    with pytest.raises(DataError, match="int64 in the customer table but string in the previous"):
        lifecycle_stages(TABLE, id_column="id", previous=pa.table({"id": ["1"], "lifecycle_stage": ["lost"]}))
    with pytest.raises(UnknownColumnError, match="'lifecycle_stage' in the previous snapshot.*'stage'"):
        lifecycle_stages(TABLE, id_column="id", previous=pa.table({"id": [1], "stage": ["lost"]}))
    with pytest.raises(DataError, match="must hold stage names"):
        lifecycle_stages(TABLE, id_column="id", previous=pa.table({"id": [1], "lifecycle_stage": [3]}))
    with pytest.raises(DataError, match="id column 'recency_days' must hold integers or strings"):
        lifecycle_stages(TABLE.set_column(1, "recency_days", pa.array([3.0, 50.0])), id_column="recency_days",
                         previous=pa.table({"recency_days": [1.0], "lifecycle_stage": ["lost"]}))
    # a column of nulls only (Arrow type null, e.g. from an empty list) matches nobody
    none = pa.table({"id": pa.nulls(1), "lifecycle_stage": ["lost"]})
    assert lifecycle_stages(TABLE, id_column="id", previous=none).column("lifecycle_stage").to_pylist() \
        == ["active", "active"]
    # previous ids that are null are ignored, as are stages that are null
    ok = lifecycle_stages(TABLE, id_column="id",
                          previous=pa.table({"id": pa.array([None, None, 1], pa.int64()),
                                             "lifecycle_stage": ["lost", "lost", None]}))
    assert ok.column("lifecycle_stage").to_pylist() == ["active", "active"]


def test_on_aggregated_events():
    import segmint
    _, events = segmint.make_customers(1500, random_state=3, with_events=True)
    features = segmint.aggregate(events, amount="amount", event_type="event_type", qualifying="purchase",
                                 as_of="2026-10-01").table
    table = features.rename_columns(["id" if c == "customer_id" else c for c in features.column_names])
    stages = check(table, adaptive=True)
    assert {"prospect", "active", "lost"} <= set(stages)
    scored = segmint.events.RFMScorer().fit_transform(features)
    segments = segmint.events.rfm_segments().evaluate(scored).counts
    assert dict(zip(segments.column("segment").to_pylist(), segments.column("matched").to_pylist()))["Other"] == 0
