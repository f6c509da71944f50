"""Segment profiles (segmint.explain.profile) against a pandas groupby twin, and their words."""
import argparse
import json
import math
import re
import warnings

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import segmint
from segmint.errors import ParameterError, SegmintError, UnknownColumnError, UnsupportedTypeError
from segmint.explain import describe as words
from segmint.explain.profile import profile
from segmint.kernels import profile as kp
from segmint.kernels import sketch as ks

BOUND = ks.RELATIVE_ERROR * (1 + 1e-12)


# -- data -----------------------------------------------------------------------------------------
def customers(n=400, seed=0):
    """Random customers with nulls, NaN, a constant column, several dtypes, a one-customer segment."""
    rng = np.random.default_rng(seed)
    seg = rng.choice(["a", "b", "c"], n, p=[0.6, 0.3, 0.1]).astype(object)
    seg[n // 2] = "solo"
    money = rng.lognormal(4, 1, n)
    money[rng.random(n) < 0.1] = np.nan
    big = 1e9 + rng.integers(-1, 2, n).astype(np.float64)
    visits = rng.integers(0, 50, n).astype(np.int32)
    score = rng.normal(0, 1, n).astype(np.float32)
    region = rng.choice(["north", "south", "east"], n, p=[0.5, 0.3, 0.2]).astype(object)
    region[rng.random(n) < 0.05] = None
    return pa.table({
        "customer_id": pa.array(np.arange(n, dtype=np.int64) * 3 + 1),
        "money": pa.array(money, mask=rng.random(n) < 0.1),          # nulls and NaN
        "big": pa.array(big),
        "visits": pa.array(visits, mask=rng.random(n) < 0.2),
        "score": pa.array(score),
        "constant": pa.array(np.full(n, 7.0)),
        "opt_in": pa.array(rng.random(n) < 0.3, mask=rng.random(n) < 0.05),
        "region": pa.array(region, pa.string()).dictionary_encode(),
        "segment": pa.array(seg, pa.string()),
    })


FEATURES = ["money", "big", "visits", "score", "constant", "opt_in"]


def twin(table, labels, names):
    """Per segment name then the base: rows, and per feature (mean, std ddof=0, null share, values)."""
    df = pd.DataFrame({f: table.column(f).to_pandas().astype("float64") for f in FEATURES})
    df["money"] = df["money"].where(np.isfinite(df["money"]))
    out = {}
    for name in list(names) + [None]:
        part = df if name is None else df[labels == name]
        stats = {}
        for f in FEATURES:
            v = part[f].dropna().to_numpy()
            stats[f] = (v.mean() if v.size else np.nan, v.std(ddof=0) if v.size else np.nan,
                        1 - v.size / len(part) if len(part) else np.nan, v)
        out[name] = (len(part), stats)
    return out


def value(p, segment, feature, statistic, category=None):
    t = p.table.to_pandas()
    seg = t.segment.isna() if segment is None else t.segment == segment
    feat = t.feature.isna() if feature is None else t.feature == feature
    cat = t.category.isna() if category is None else t.category == category
    hit = t[seg & feat & cat & (t.statistic == statistic)]
    assert len(hit) == 1, (segment, feature, statistic, category)
    v = hit.value.iloc[0]
    return np.nan if v is None else v


def check_against_twin(p, table, labels):
    expected = twin(table, labels, p.segments)
    for name in p.segments + [None]:
        rows, stats = expected[name]
        assert value(p, name, None, "count") == rows
        for f in FEATURES:
            mean, std, null_share, v = stats[f]
            np.testing.assert_allclose(value(p, name, f, "mean"), mean, rtol=1e-9, atol=1e-12)
            np.testing.assert_allclose(value(p, name, f, "std"), std, rtol=1e-6, atol=1e-9)
            np.testing.assert_allclose(value(p, name, f, "null_share"), null_share, rtol=1e-12)
            for stat, q in (("median", 0.5), ("p10", 0.1), ("p90", 0.9)):
                got = value(p, name, f, stat)
                if v.size == 0:
                    assert np.isnan(got)
                else:
                    exact = np.quantile(v, q, method="lower")
                    tiny = ks.MIN_MAGNITUDE if abs(exact) < ks.MIN_MAGNITUDE else 0.0  # reported as 0
                    assert abs(got - exact) <= BOUND * abs(exact) + tiny


# -- statistics ---------------------------------------------------------------------------------
@pytest.mark.parametrize("batch_size", [1, 7, 1000])
def test_statistics_match_a_pandas_groupby_twin_for_any_batch_size(batch_size):
    table = customers(n=150 if batch_size == 1 else 400)
    p = profile(table, segments="segment", features=FEATURES, categories=["region"], batch_size=batch_size)
    labels = table.column("segment").to_numpy(zero_copy_only=False)
    assert p.segments == ["a", "b", "c", "solo"]
    check_against_twin(p, table, labels)
    assert p.counts.tolist() == [int((labels == s).sum()) for s in p.segments]


def test_a_table_of_segments_gives_empty_segments_and_unassigned_rows():
    table = customers()
    ids = table.column("customer_id").to_numpy()
    labels = np.where(ids % 2 == 1, "odd", "even").astype(object)
    keep = np.arange(len(ids)) % 5 != 0  # every fifth customer is missing from the table
    seg_table = pa.table({"customer_id": pa.array(np.append(ids[keep], [10**12])),
                          "segment": pa.array(list(labels[keep]) + ["ghost"])})
    p = profile(table, segments=seg_table, id_column="customer_id", features=FEATURES, categories=["region"])
    assert p.segments == ["even", "ghost", "odd"]
    assert p.n_unassigned == int((~keep).sum())
    assert p.counts[1] == 0
    labels[~keep] = None
    check_against_twin(p, table, labels)
    assert p.descriptions["ghost"] == "no customers"
    assert np.isnan(p.std_diff[1]).all()


def test_values_near_1e9_keep_their_small_variance():
    table = customers(n=1000)
    p = profile(table, segments="segment", features=["big"], categories=[], batch_size=64)
    v = table.column("big").to_numpy()
    assert value(p, None, "big", "std") == pytest.approx(v.std(), rel=1e-9)


def test_constant_columns_have_nan_std_diff_which_never_ranks_as_a_trait():
    p = profile(customers(), segments="segment", features=FEATURES, categories=["region"])
    j = p.features.index("constant")
    assert np.isnan(p.std_diff[:, j]).all()
    for s in p.segments:
        assert all(t[0] != "constant" for t in p.traits(s, top=100))


def test_revenue_and_reachable_shares_match_the_twin():
    table = customers()
    p = profile(table, segments="segment", features=["visits"], categories=[], revenue="money",
                reachable="opt_in")
    df = table.select(["money", "opt_in", "segment"]).to_pandas()
    money = df.money.where(np.isfinite(df.money)).fillna(0.0)
    total = money.sum()
    for s in p.segments:
        part = df.segment == s
        assert value(p, s, None, "revenue") == pytest.approx(money[part].sum(), rel=1e-12)
        assert value(p, s, None, "revenue_share") == pytest.approx(money[part].sum() / total, rel=1e-12)
        assert value(p, s, None, "revenue_per_customer") == pytest.approx(money[part].sum() / part.sum())
        reached = df.opt_in[part].fillna(False).astype(bool).sum()
        assert value(p, s, None, "reachable_share") == pytest.approx(reached / part.sum())
    assert value(p, None, None, "revenue_share") == 1.0


def test_category_shares_count_nulls_as_a_category_and_lift_is_share_over_base_share():
    table = customers()
    p = profile(table, segments="segment", features=[], categories=["region"], top=10)
    df = table.select(["region", "segment"]).to_pandas()
    df["region"] = df.region.astype(object).fillna("(null)")
    base = df.region.value_counts(normalize=True)
    for s in ["a", "b"]:
        shares = df.region[df.segment == s].value_counts(normalize=True)
        for cat, share in shares.items():
            assert value(p, s, "region", "share", cat) == pytest.approx(share)
            assert value(p, s, "region", "lift", cat) == pytest.approx(share / base[cat])


def test_the_same_profile_with_one_or_two_threads_is_bit_identical():
    table = customers(n=3000)
    with segmint.threads(1):
        one = profile(table, segments="segment", revenue="money", batch_size=97)
    with segmint.threads(2):
        two = profile(table, segments="segment", revenue="money", batch_size=97)
    assert one.table.equals(two.table)
    assert one.descriptions == two.descriptions


def test_an_empty_source_gives_a_profile_of_zero_counts():
    table = customers().slice(0, 0)
    seg_table = pa.table({"customer_id": pa.array([1], pa.int64()), "segment": ["x"]})
    p = profile(table, segments=seg_table, id_column="customer_id")
    assert p.n_rows == 0 and p.counts.tolist() == [0]
    assert math.isnan(value(p, "x", "money", "mean"))
    json.loads(p.to_json())  # NaN written as null


# -- the kernels against slow twins ---------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_profile_numeric_matches_a_slow_numpy_twin(dtype):
    rng = np.random.default_rng(1)
    n, n_seg = 333, 4
    values = rng.normal(10, 3, n).astype(dtype)
    values[rng.random(n) < 0.05] = np.nan
    valid = rng.random(n) > 0.1
    bits = np.packbits(np.concatenate([[False] * 3, valid]), bitorder="little")
    codes = rng.integers(-1, n_seg, n).astype(np.int32)
    moments = np.zeros((n_seg + 1, 4))
    sketches = np.zeros((n_seg + 1, ks.N_BUCKETS), dtype=np.int64)
    kp.profile_numeric(values, bits, 3, codes, np.zeros((0, 0), np.uint64), moments, sketches)
    ok = valid & np.isfinite(values)
    for s in range(n_seg + 1):
        v = values[ok & (np.where(codes < 0, n_seg, codes) == s)].astype(np.float64)
        assert moments[s, 0] == v.size
        np.testing.assert_allclose(moments[s, 1] + moments[s, 2], v.mean(), rtol=1e-11, atol=1e-13)
        np.testing.assert_allclose(moments[s, 3], ((v - v.mean()) ** 2).sum(), rtol=1e-10)
        assert sketches[s].sum() == v.size


def test_memberships_count_a_row_in_every_segment_it_is_in_and_once_in_the_base():
    n = 130
    rng = np.random.default_rng(2)
    member = rng.random((3, n)) < 0.5
    words_ = np.zeros((3, (n + 63) // 64), dtype=np.uint64)
    for s in range(3):
        for i in np.flatnonzero(member[s]):
            words_[s, i // 64] |= np.uint64(1) << np.uint64(i % 64)
    values = rng.normal(size=n)
    moments = np.zeros((4, 4))
    kp.profile_numeric(values, np.zeros(0, np.uint8), 0, np.zeros(0, np.int32), words_, moments,
                       np.zeros((0, ks.N_BUCKETS), np.int64))
    assert moments[:3, 0].tolist() == member.sum(axis=1).tolist()
    assert moments[3, 0] == n
    rows = np.zeros(4, dtype=np.int64)
    kp.count_rows(np.zeros(0, np.int32), words_, n, rows)
    assert rows[:3].tolist() == member.sum(axis=1).tolist() and rows[3] == (~member.any(axis=0)).sum()


# -- each form of segments= ----------------------------------------------------------------------
def test_a_segmenter_profile_has_centroids_in_original_units():
    table = customers(n=600)
    model = segmint.Segmenter(features=["score", "big"], clusterer=segmint.KMeans(n_clusters=3, random_state=0))
    model.fit(table)
    p = profile(table, segments=model, features=["score", "big", "money"], categories=["region"])
    scored = model.score(table)
    labels = np.asarray(scored.column("segment").to_pylist(), dtype=object)
    centers = model.feature_spec_.inverse_transform(model.clusterer_.cluster_centers_)
    for i in range(3):
        assert value(p, p.segments[i], "score", "centroid") == pytest.approx(centers[i, 0])
        assert math.isnan(value(p, p.segments[i], "money", "centroid"))
        assert p.counts[i] == (labels == p.segments[i]).sum()


def test_waterfall_and_multi_rule_sets_are_profiled_on_the_fly():
    table = customers()
    rules = {"busy": "visits >= 25", "rich": "money > 100"}
    water = profile(table, segments=segmint.RuleSet(rules, default="rest"), features=["visits"], categories=[])
    multi = profile(table, segments=segmint.RuleSet(rules, mode="multi"), features=["visits"], categories=[])
    visits = table.column("visits").to_pandas()
    money = table.column("money").to_pandas()
    busy, rich = (visits >= 25).to_numpy(), (money > 100).fillna(False).to_numpy()
    assert water.counts.tolist() == [busy.sum(), (rich & ~busy).sum(), (~busy & ~rich).sum()]
    assert multi.counts.tolist() == [busy.sum(), rich.sum()]
    assert multi.n_unassigned == (~busy & ~rich).sum()
    assert value(multi, None, None, "count") == table.num_rows
    assert value(multi, "rich", "visits", "mean") == pytest.approx(visits[rich].mean())
    assert value(multi, None, "visits", "mean") == pytest.approx(visits.mean())


# -- words ----------------------------------------------------------------------------------------
def test_numbers_read_with_thousands_separators_and_three_significant_digits():
    assert [words.format_number(x) for x in (1298.7, 12.345, 0.04567, 3.0, -2500000, 0)] == \
        ["1,300", "12.3", "0.0457", "3", "-2,500,000", "0"]


def test_known_feature_names_have_their_own_words():
    assert words.numeric_trait_text("recency_days", 12, 120, -1.0) == "recent (12 days vs 120)"
    assert words.numeric_trait_text("monetary", 1300, 180, 2.0) == "high spend (1,300 vs 180)"
    assert words.numeric_trait_text("basket_size", 2, 5, -0.5) == "low basket size (2 vs 5)"


def test_traits_rank_by_strength_and_break_ties_by_feature_order():
    traits = words.rank_traits(["x", "y", "z"], np.array([0.5, -0.5, 0.1]), np.ones(3), np.ones(3),
                               [("region", "north", 0.5, 0.2, 2.5)])
    assert [t[0] for t in traits] == ["region", "x", "y"]
    text = words.describe(traits, 0.146, 0.38)
    assert text.endswith("; 14.6% of customers, 38% of revenue")


def test_descriptions_are_the_same_for_the_same_input():
    table = segmint.make_customers(3000, random_state=1)
    one = profile(table, segments="true_segment", revenue="monetary")
    two = profile(table, segments="true_segment", revenue="monetary", batch_size=500)
    assert one.descriptions == two.descriptions
    assert "of customers" in one.descriptions["0"]


# -- output ---------------------------------------------------------------------------------------
def test_exports_are_json_markdown_and_a_readable_table(tmp_path):
    p = profile(customers(), segments="segment", revenue="money", reachable="opt_in")
    doc = json.loads(p.to_json(tmp_path / "p.json"))
    assert doc == json.loads((tmp_path / "p.json").read_text())
    assert doc["segments"] == p.segments and doc["summary"]["segment"][-1] is None
    md = p.to_markdown()
    assert md.count("\n| a |") == 2 and "## Means" in md  # summary and means
    text = str(p)
    assert all(len(line) <= 100 for line in text.splitlines())
    assert all(s in text for s in p.segments)
    assert repr(p).startswith("<Profile: 4 segments")
    assert p.summary.column_names == ["segment", "count", "share", "revenue", "revenue_share",
                                      "revenue_per_customer", "reachable_share", "description"]


def cli_args(data, segments, **kw):
    base = dict(data=str(data), segments=segments, features=None, categories=None, id_column=None,
                revenue=None, reachable=None, as_of=None, output=None, batch_size=None, quiet=True)
    base.update(kw)
    return argparse.Namespace(**base)


def test_the_command_prints_the_profile_and_writes_each_format(tmp_path, capsys):
    from segmint.cli.profile import run
    data = tmp_path / "c.parquet"
    pq.write_table(customers(), data)
    run(cli_args(data, "segment", features="money, visits", categories="region", revenue="money"))
    assert "description" in capsys.readouterr().out
    for name in ("p.json", "p.md", "p.parquet", "p.arrow"):
        run(cli_args(data, "segment", features="money", output=str(tmp_path / name)))
        assert (tmp_path / name).stat().st_size > 0
    assert pq.read_table(tmp_path / "p.parquet").column_names == ["segment", "feature", "category",
                                                                  "statistic", "value"]
    with pytest.raises(ParameterError, match=r"\.json, \.md"):
        run(cli_args(data, "segment", output=str(tmp_path / "p.csv")))
    with pytest.raises(SegmintError, match="input"):
        run(cli_args(data, "segment", output=str(data)))


# -- errors ---------------------------------------------------------------------------------------
def test_unknown_columns_name_the_nearest_one():
    with pytest.raises(UnknownColumnError, match="did you mean 'money'"):
        profile(customers(), segments="segment", features=["mony"])
    with pytest.raises(UnknownColumnError, match="revenue="):
        profile(customers(), segments="segment", revenue="revenu")


@pytest.mark.parametrize("kw, message", [
    (dict(revenue="region"), "revenue= column 'region'.*numeric"),
    (dict(reachable="region"), "reachable= column 'region'"),
    (dict(categories=["money"]), "categories= column 'money'.*string"),
    (dict(features=["region"]), "features= column 'region'.*categories="),
])
def test_columns_of_the_wrong_kind_are_refused_with_the_column_named(kw, message):
    with pytest.raises(UnsupportedTypeError, match=message):
        profile(customers(), segments="segment", **kw)


@pytest.mark.parametrize("kw", [dict(top=0), dict(top=1.5), dict(features="money"), dict(batch_size=0),
                                dict(revenue=3)])
def test_bad_parameters_are_parameter_errors(kw):
    with pytest.raises(ParameterError):
        profile(customers(), segments="segment", **kw)


def test_dates_are_left_out_by_default_and_refused_by_name():
    table = customers().append_column("signup", pa.array(np.arange(400, dtype=np.int32), pa.date32()))
    assert "signup" not in profile(table, segments="segment").features
    with pytest.raises(UnsupportedTypeError, match="dates and times"):
        profile(table, segments="segment", features=["signup"])


def test_a_dictionary_that_grows_between_batches_keeps_its_counts():
    first = pa.record_batch({"segment": pa.array(["a", "b", "a"]),
                             "city": pa.array(["x", "y", None]).dictionary_encode()})
    second = pa.record_batch({"segment": pa.array(["b", "b", "a", "a"]),
                              "city": pa.array(["z", "x", "z", "w"]).dictionary_encode()})
    table = pa.Table.from_batches([first, second])
    p = profile(table, segments="segment", categories=["city"], top=10, batch_size=3)
    assert value(p, "a", "city", "share", "z") == pytest.approx(1 / 4)
    assert value(p, "a", "city", "share", "(null)") == pytest.approx(1 / 4)
    assert value(p, "b", "city", "share", "z") == pytest.approx(1 / 3)
    assert value(p, None, "city", "share", "x") == pytest.approx(2 / 7)
    assert value(p, "b", "city", "lift", "y") == pytest.approx((1 / 3) / (1 / 7))


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(st.integers(-1, 3), st.one_of(st.none(), st.floats(-1e6, 1e6))), min_size=0, max_size=60),
       st.integers(1, 70))
def test_counts_and_means_match_numpy_for_any_rows_and_batch_size(rows, batch_size):
    codes = [c for c, _ in rows]
    table = pa.table({"customer_id": pa.array(range(len(rows)), pa.int64()),
                      "x": pa.array([x for _, x in rows], pa.float64())})
    seg = pa.table({"customer_id": pa.array([i for i, c in enumerate(codes) if c >= 0], pa.int64()),
                    "segment": pa.array([f"s{c}" for c in codes if c >= 0], pa.string())})
    p = profile(table, segments=seg, id_column="customer_id", features=["x"], batch_size=batch_size)
    for name in p.segments + [None]:
        v = np.array([x for c, x in rows if (name is None or f"s{c}" == name) and x is not None])
        n = sum(1 for c, _ in rows if name is None or f"s{c}" == name)
        assert value(p, name, None, "count") == n
        if v.size:
            assert value(p, name, "x", "mean") == pytest.approx(v.mean(), rel=1e-9, abs=1e-6)
            assert value(p, name, "x", "std") == pytest.approx(v.std(), rel=1e-6, abs=1e-5)
        else:
            assert math.isnan(value(p, name, "x", "mean"))


def test_progress_is_called_with_each_batch_row_count():
    seen = []
    profile(customers(), segments="segment", features=["money"], batch_size=150, progress=seen.append)
    assert seen == [150, 150, 100]


def test_the_command_takes_a_rule_file_as_segments(tmp_path, capsys):
    from segmint.cli.profile import run
    data = tmp_path / "c.arrow"
    segmint.write_table(customers(), str(data))
    rules = tmp_path / "rules.json"
    segmint.RuleSet({"busy": "visits >= 25"}, default="quiet").save(str(rules))
    run(cli_args(data, str(rules), features="visits", categories="", output=str(tmp_path / "p.md")))
    out = capsys.readouterr().out
    assert "busy" in out and "quiet" in out
    assert "| busy |" in (tmp_path / "p.md").read_text()
    with pytest.raises(UnknownColumnError, match="did you mean 'segment'"):
        run(cli_args(data, "segmnt"))


def test_a_boolean_feature_reads_as_shares_in_the_description():
    n = 1_000
    flag = np.zeros(n, dtype=bool)
    flag[:100] = True  # segment "a" (the first 100 rows) all opted in, the rest never
    t = pa.table({"seg": ["a"] * 100 + ["b"] * (n - 100), "email_opt_in": flag})
    p = segmint.profile(t, segments="seg")
    assert p.descriptions["a"] == "email opt in 100% (vs 10.0%); 10.0% of customers"
    assert p.descriptions["b"] == "email opt in 0.0% (vs 10.0%); 90% of customers"


# -- review fixes: extreme values, reach, inputs, cardinality, types, words -----------------------
EXTREMES = {
    "float64 9.2e18": (np.float64, 9.2e18),
    "int64 max": (np.int64, np.iinfo(np.int64).max),
    "float32 3e38": (np.float32, 3e38),
}


@pytest.mark.parametrize("name", sorted(EXTREMES))
def test_an_extreme_first_value_leaves_the_other_segments_statistics_exact(name):
    dtype, big = EXTREMES[name]
    rng = np.random.default_rng(0)
    x = rng.normal(5, 1, 1000) if dtype != np.int64 else rng.integers(0, 10, 1000)
    x = x.astype(dtype)
    x[0] = big  # the first value of the pass, alone in segment "a"
    seg = np.array(["b"] * 1000, dtype=object)
    seg[0] = "a"
    p = profile(pa.table({"seg": seg, "x": x, "money": x}), segments="seg", revenue="money", batch_size=100)
    rest = x[1:].astype(np.float64)
    assert value(p, "b", "x", "mean") == pytest.approx(rest.mean(), rel=1e-12)
    assert value(p, "b", "x", "std") == pytest.approx(rest.std(), rel=1e-9)
    assert value(p, "b", None, "revenue") == pytest.approx(rest.sum(), rel=1e-12)
    assert value(p, "a", "x", "mean") == float(x[0])
    assert value(p, None, "x", "mean") == pytest.approx(x.astype(np.float64).mean(), rel=1e-12)


def test_values_near_the_float64_limit_give_finite_means_and_no_warnings():
    x = np.linspace(1e300, 1.7e308, 100)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a RuntimeWarning (overflow) would fail the test
        p = profile(pa.table({"seg": ["a", "b"] * 50, "x": x}), segments="seg", revenue="x")
        text = str(p) + p.to_markdown() + p.to_json()
    assert value(p, "a", "x", "mean") == pytest.approx((x[::2] / 50).sum(), rel=1e-12)
    assert value(p, "a", "x", "std") == np.inf  # the squares overflow: said, not hidden
    assert value(p, "a", "x", "median") == np.inf  # beyond the sketch's 2^64
    assert "8.41e+307" in text and "e+30" not in text.replace("e+307", "")


def test_reachable_counts_only_finite_non_zero_values():
    t = pa.table({"seg": ["a"] * 6, "consent": [1.0, 0.0, np.nan, np.nan, np.inf, None]})
    p = profile(t, segments="seg", reachable="consent", features=[])
    assert value(p, "a", None, "reachable_share") == pytest.approx(1 / 6)


def test_to_json_refuses_to_write_over_the_file_it_profiled(tmp_path):
    from segmint.errors import OutputError
    data = tmp_path / "copy.arrow"
    segmint.write_table(customers(), str(data))
    before = data.read_bytes()
    p = profile(str(data), segments="segment", features=["money"], categories=[])
    with pytest.raises(OutputError):
        p.to_json(data)
    assert data.read_bytes() == before
    p.to_json(tmp_path / "p.json")  # elsewhere: fine
    assert json.loads((tmp_path / "p.json").read_text())["segments"] == p.segments
    table = segmint.open(str(data)).read(["customer_id", "segment"])
    seg_path = tmp_path / "segments.parquet"
    pq.write_table(table, seg_path)
    before = seg_path.read_bytes()
    p = profile(customers(), segments=segmint.open(str(seg_path)), id_column="customer_id", features=["money"])
    with pytest.raises(OutputError):
        p.to_json(seg_path)  # the segments table is an input too
    assert seg_path.read_bytes() == before


def test_a_default_string_column_with_too_many_values_is_left_out_with_a_note():
    from segmint.explain.profile import MAX_CATEGORIES
    n = MAX_CATEGORIES + 500
    t = pa.table({"seg": ["a", "b"] * (n // 2), "email": [f"c{i}@x.org" for i in range(n)],
                  "region": ["north", "south"] * (n // 2)})
    p = profile(t, segments="seg", batch_size=300)
    assert p.categories == ["region"]
    assert len(p.notes) == 1 and "'email'" in p.notes[0] and "1,000" in p.notes[0]
    assert "email" in str(p) and "Note: left out" in p.to_markdown()
    assert json.loads(p.to_json())["notes"] == p.notes
    with pytest.raises(segmint.DataError, match=r"categories= column 'email' has more than 1,000"):
        profile(t, segments="seg", categories=["email"], batch_size=300)


def test_integer_segment_values_are_looked_up_by_name_before_code():
    t = pa.table({"seg": pa.array([1, 2, 2, 1, 2, 2], pa.int64()),
                  "x": [10.0, 0.0, 0.0, 10.0, 1.0, 0.0]})
    p = profile(t, segments="seg")
    assert p.segments == ["1", "2"]
    assert p.traits(1) == p.traits("1") and p.traits(2) == p.traits("2")
    assert p.traits(1)[0][2] > 0  # segment "1" is the high one, not code 1 ("2")
    assert p.traits(0) == p.traits("1")  # 0 is no name: a code
    with pytest.raises(ParameterError, match="no segment 5"):
        p.traits(5)


def test_a_segmenter_own_id_column_is_not_a_default_feature():
    table = customers(n=300).rename_columns(
        ["cust_no" if c == "customer_id" else c for c in customers(n=1).column_names])
    model = segmint.Segmenter(features=["score", "big"], id_column="cust_no",
                              clusterer=segmint.KMeans(n_clusters=2, random_state=0)).fit(table)
    p = profile(table, segments=model)
    assert "cust_no" not in p.features and "score" in p.features


def test_decimal_and_float16_columns_are_read_as_float64():
    import decimal
    money = [decimal.Decimal("19.99"), decimal.Decimal("5.01"), None, decimal.Decimal("100.00")]
    t = pa.table({"seg": ["a", "b", "a", "b"], "rev128": pa.array(money, pa.decimal128(12, 2)),
                  "rev256": pa.array(money, pa.decimal256(50, 2)),
                  "half": pa.array(np.array([1.5, 2.0, 3.0, 4.0], np.float16))})
    p = profile(t, segments="seg", revenue="rev128")
    assert p.features == ["rev128", "rev256", "half"]
    assert value(p, "a", None, "revenue") == pytest.approx(19.99)
    assert value(p, "b", "rev256", "mean") == pytest.approx(52.505)
    assert value(p, "a", "half", "mean") == 2.25
    assert value(p, "a", "rev128", "null_share") == 0.5
    t = t.append_column("label", pa.array(["p", "q", "r", "s"]))
    with pytest.raises(UnsupportedTypeError, match="revenue= column 'label'.*is string: expected a numeric"):
        profile(t, segments="seg", revenue="label")


@pytest.mark.parametrize("batch_size", [1, 3, 1000])
def test_decimal_columns_stay_row_aligned_across_chunks_and_batches(tmp_path, batch_size):
    import decimal
    rng = np.random.default_rng(batch_size)
    cents = rng.integers(0, 10**6, 50)
    seg = rng.choice(["a", "b", "c"], 50)
    table = pa.table({"seg": seg, "money": pa.array([decimal.Decimal(int(c)) / 100 for c in cents],
                                                    pa.decimal128(12, 2))})
    chunked = pa.Table.from_batches(table.to_batches(max_chunksize=7))
    path = tmp_path / "d.parquet"
    pq.write_table(chunked, path, row_group_size=11)
    for source in (chunked, str(path)):
        p = profile(source, segments="seg", revenue="money", batch_size=batch_size)
        for s in ["a", "b", "c"]:
            assert value(p, s, None, "revenue") == pytest.approx(cents[seg == s].sum() / 100, rel=1e-12)
            assert value(p, s, "money", "mean") == pytest.approx(cents[seg == s].mean() / 100, rel=1e-12)


def test_names_with_newlines_keep_the_tables_one_line_per_segment():
    t = pa.table({"seg": ["first\nline", "pipe|d"] * 50, "city": ["x\r\ny", "z"] * 50,
                  "x": np.arange(100.0) % 2})
    p = profile(t, segments="seg", revenue="x")
    lines = str(p).splitlines()
    assert lines[0].startswith("segment") and "rev share" in lines[0]
    assert sum(line.startswith("first line") for line in lines) == 1
    md = p.to_markdown()
    assert "| first line |" in md and "| pipe\\|d |" in md
    assert all(line.count(" | ") >= 1 for line in md.splitlines() if line.startswith("| "))
    assert all("\n" not in d for d in p.descriptions.values())
    assert p.segments == ["first\nline", "pipe|d"]  # the data keeps the real names


def test_the_terminal_table_labels_the_revenue_share_as_such():
    head = str(profile(customers(), segments="segment", revenue="money")).splitlines()[0]
    assert "rev share" in head and " revenue " not in head


def test_shares_read_with_one_decimal_below_20_percent_and_alike_when_they_round_alike():
    assert [words.format_share(x) for x in (0.0996, 0.1, 0.146, 0.1996, 0.2, 0.38, 0.0004, 1.0)] == \
        ["10.0%", "10.0%", "14.6%", "20%", "20%", "38%", "0.0%", "100%"]


def test_huge_numbers_read_in_scientific_notation():
    assert [words.format_number(x) for x in (3e20, -1.234e15, 9.99e14, float("inf"), float("nan"))] == \
        ["3.00e+20", "-1.23e+15", "999,000,000,000,000", "inf", "n/a"]


def test_units_are_given_only_for_names_that_say_days():
    assert words.numeric_trait_text("frequency", 12, 3, 1.0) == "frequent (12 vs 3)"
    assert words.numeric_trait_text("recency", 12, 120, -1.0) == "recent (12 vs 120)"
    assert words.numeric_trait_text("tenure", 900, 300, 1.0) == "long-standing (900 vs 300)"
    assert words.numeric_trait_text("tenure_days", 900, 300, 1.0) == "long-standing (900 days a customer vs 300)"


# -- profile_category against a numpy twin --------------------------------------------------------
def member_words(member):
    n_seg, n = member.shape
    out = np.zeros((n_seg, (n + 63) // 64), dtype=np.uint64)
    for s in range(n_seg):
        for i in np.flatnonzero(member[s]):
            out[s, i // 64] |= np.uint64(1) << np.uint64(i % 64)
    return out


@pytest.mark.parametrize("bit_offset", [0, 3, 7])
@pytest.mark.parametrize("mode", ["codes", "members"])
def test_profile_category_matches_a_numpy_twin(mode, bit_offset):
    rng = np.random.default_rng(bit_offset)
    n, n_seg, n_cat = 200, 3, 5
    cat = rng.integers(0, n_cat, n).astype(np.int32)
    valid = rng.random(n) > 0.15
    bits = np.packbits(np.concatenate([np.ones(bit_offset, bool), valid]), bitorder="little")
    col = np.where(valid, cat + 1, 0)
    expected = np.zeros((n_seg + 1, n_cat + 1), dtype=np.int64)
    counts = np.zeros((n_seg + 1, n_cat + 1), dtype=np.int64)
    if mode == "codes":
        codes = rng.integers(-1, n_seg, n).astype(np.int32)
        np.add.at(expected, (np.where(codes < 0, n_seg, codes), col), 1)
        kp.profile_category(cat, bits, bit_offset, codes, np.zeros((0, 0), np.uint64), counts)
    else:
        member = rng.random((n_seg, n)) < 0.4
        for s in range(n_seg):
            np.add.at(expected[s], col[member[s]], 1)
        np.add.at(expected[n_seg], col, 1)  # the base: every row once
        kp.profile_category(cat, bits, bit_offset, np.zeros(0, np.int32), member_words(member), counts)
    np.testing.assert_array_equal(counts, expected)


@pytest.mark.parametrize("kind", ["file with dictionary deltas", "stream with replaced dictionaries"])
def test_ipc_batches_with_their_own_dictionaries_are_counted_by_string(tmp_path, kind):
    import pyarrow.ipc as ipc
    rng = np.random.default_rng(4)
    batches, cities, segs = [], [], []
    pool = ["x", "y", "z", "w", "v"]
    for b in range(4):
        seg = list(rng.choice(["a", "b"], 30))
        if kind.startswith("file"):  # each batch's dictionary extends the last one
            dictionary = pa.array(pool[:b + 2])
        else:  # each batch's own dictionary, in its own order
            dictionary = pa.array(list(rng.permutation(pool)[:3]))
        idx = rng.integers(0, len(dictionary), 30).astype(np.int32)
        city = pa.DictionaryArray.from_arrays(pa.array(idx), dictionary)
        batches.append(pa.record_batch({"segment": pa.array(seg), "city": city}))
        cities += city.to_pylist()
        segs += seg
    path = tmp_path / ("c.arrow" if kind.startswith("file") else "c.arrows")
    if kind.startswith("file"):
        with ipc.new_file(path, batches[0].schema, options=ipc.IpcWriteOptions(emit_dictionary_deltas=True)) as w:
            for b in batches:
                w.write_batch(b)
    else:
        with ipc.new_stream(path, batches[0].schema) as w:
            for b in batches:
                w.write_batch(b)
    p = profile(str(path), segments="segment", categories=["city"], top=10, batch_size=17)
    df = pd.DataFrame({"segment": segs, "city": cities})
    for s in ["a", "b", None]:
        part = df if s is None else df[df.segment == s]
        for city, share in part.city.value_counts(normalize=True).items():
            assert value(p, s, "city", "share", city) == pytest.approx(share)


def test_a_real_null_string_category_does_not_merge_with_the_nulls():
    t = pa.table({"seg": ["a"] * 4, "city": ["(null)", None, None, "x"]})
    p = profile(t, segments="seg", categories=["city"], top=10)
    assert value(p, "a", "city", "share", "(null)") == 0.25
    assert value(p, "a", "city", "share", "((null))") == 0.5


# -- the same bits however the rows are read --------------------------------------------------------
def assert_same_profile(a, b, inputs=True):
    """Two profiles equal field by field: floats bit for bit (NaN equal to NaN)."""
    def same(x, y, what):
        if isinstance(x, np.ndarray) or isinstance(y, np.ndarray):
            np.testing.assert_array_equal(x, y, err_msg=what, strict=True)
        else:
            assert x == y or (x is None and y is None), what

    for name in ("segments", "features", "categories", "notes", "n_rows", "n_unassigned", "quantiles",
                 "descriptions", "_booleans", "_top", "_traits"):
        assert getattr(a, name) == getattr(b, name), name
    for name in ("counts", "means", "std_diff", "_std", "_null_share", "_quantiles", "_share", "_reach",
                 "_centroid"):
        same(getattr(a, name), getattr(b, name), name)
    for k in range(3):
        same(a._revenue[k], b._revenue[k], f"revenue {k}")
    assert a.summary.equals(b.summary) and a.table.equals(b.table)
    if inputs:
        assert a.inputs == b.inputs


def layout_customers(n, seed=0):
    """Customers over several row blocks: nulls, NaN, values near 1e9 (whose variance shows
    any change in the order of additions), a string column whose values first appear late."""
    rng = np.random.default_rng(seed)
    seg = rng.choice(["a", "b", "c", "d"], n, p=[0.4, 0.3, 0.2, 0.1]).astype(object)
    seg[rng.random(n) < 0.01] = None
    money = rng.lognormal(4, 1, n)
    money[rng.random(n) < 0.05] = np.nan
    city = rng.choice(["paris", "lyon", "nice"], n).astype(object)
    city[n - 300:] = rng.choice(["brest", "metz", "paris"], 300)  # first seen in the last rows
    city[rng.random(n) < 0.03] = None
    return pa.table({
        "customer_id": pa.array(np.arange(n, dtype=np.int64)),
        "money": pa.array(money, mask=rng.random(n) < 0.05),
        "big": pa.array(1e9 + rng.normal(0, 1, n)),
        "score": pa.array(rng.normal(0, 1, n).astype(np.float32), mask=rng.random(n) < 0.1),
        "visits": pa.array(rng.integers(0, 50, n).astype(np.int32)),
        "opt_in": pa.array(rng.random(n) < 0.3),
        "city": pa.array(city, pa.string()),
        "segment": pa.array(seg, pa.string()),
    })


def write_layout(table, folder, cuts, row_group_size):
    folder.mkdir()
    edges = [0, *cuts, table.num_rows]
    for i in range(len(edges) - 1):
        pq.write_table(table.slice(edges[i], edges[i + 1] - edges[i]), folder / f"part-{i}.parquet",
                       row_group_size=row_group_size)
    return str(folder)


def test_block_rows_are_the_clustering_chunk():
    from segmint.cluster._passes import CHUNK
    from segmint.explain.profile import BLOCK_ROWS
    assert BLOCK_ROWS == CHUNK == 65_536


def test_the_same_data_gives_the_same_bits_for_any_batch_size_and_file_layout(tmp_path):
    table = layout_customers(2 * 65_536 + 5_003)
    one = write_layout(table, tmp_path / "one", [], 1 << 20)
    several = write_layout(table, tmp_path / "several", [50_001, 70_000, 131_072], 9_999)
    kw = dict(segments="segment", id_column="customer_id", revenue="money", reachable="opt_in")
    want = profile(table, **kw, batch_size=65_536)
    assert want.categories == ["city"] and want.n_rows == table.num_rows
    for source in (table, one, several):
        for batch_size in (1_000, 65_536, 1_000_000):
            assert_same_profile(profile(source, **kw, batch_size=batch_size), want, inputs=False)


def test_multi_mode_memberships_cut_at_any_row_give_the_same_bits():
    from segmint.rules import RuleSet
    table = layout_customers(65_536 + 3_001, seed=1)
    rules = RuleSet({"rich": "money > 60", "loyal": "visits >= 25", "odd": "score < 0"}, mode="multi")
    kw = dict(segments=rules, id_column="customer_id", revenue="money")
    want = profile(table, **kw, batch_size=65_536)
    for batch_size in (999, 4_096, 100_000):  # cuts inside a 64-row membership word, and on one
        assert_same_profile(profile(table, **kw, batch_size=batch_size), want)


def test_the_note_of_a_dropped_category_column_does_not_depend_on_the_batch_size(tmp_path):
    n = 70_000
    t = pa.table({"seg": pa.array(np.where(np.arange(n) % 3 == 0, "a", "b")),
                  "email": pa.array([f"c{i % 30_000}@x.org" for i in range(n)])})
    pq.write_table(t, tmp_path / "t.parquet", row_group_size=1_000)  # a dictionary per row group
    notes = {tuple(profile(source, segments="seg", batch_size=b).notes)
             for source in (t, str(tmp_path / "t.parquet")) for b in (300, 65_536, 100_000)}
    assert notes == {("left out of categories: 'email' (more than 1,000 distinct values; 30,000 when "
                      "dropped)",)}


def test_equal_shares_rank_in_the_order_the_rows_first_show_them_whatever_the_dictionary():
    rows = ["y", "x", "z", "x", "y", "z"]
    for dictionary in (["x", "y", "z"], ["z", "y", "x"], ["y", "x", "z", "unused"]):
        idx = pa.array([dictionary.index(v) for v in rows], pa.int32())
        t = pa.table({"seg": ["a"] * 6, "city": pa.DictionaryArray.from_arrays(idx, pa.array(dictionary))})
        p = profile(t, segments="seg", categories=["city"], top=10)
        assert [c for c, _, _ in p._top[0][0]] == ["y", "x", "z"], dictionary


@pytest.mark.parametrize("bit_offset", [0, 3])
def test_first_seen_matches_a_python_twin(bit_offset):
    rng = np.random.default_rng(bit_offset)
    n, size = 500, 40
    codes = rng.integers(0, size, n).astype(np.int32)
    valid = rng.random(n) > 0.2
    bits = np.packbits(np.concatenate([np.zeros(bit_offset, bool), valid]), bitorder="little")
    mapping = np.full(size, -1, np.int32)
    seen = np.zeros(n, np.int32)
    n_seen = 0
    for lo, hi in [(0, 123), (123, 124), (124, n)]:
        n_seen = kp.first_seen(codes, bits, bit_offset, lo, hi, mapping, seen, n_seen)
    order = list(dict.fromkeys(codes[valid].tolist()))
    assert seen[:n_seen].tolist() == order
    assert [int(mapping[c]) for c in order] == list(range(len(order)))
    assert (mapping[[c for c in range(size) if c not in order]] == -1).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("mode", ["codes", "members"])
def test_the_numeric_passes_part_by_part_give_the_bits_of_one_call(mode, dtype):
    from segmint.explain.profile import _block_moments, _member_words
    rng = np.random.default_rng(len(mode))
    n, n_seg = 1_000, 3
    values = (1e9 if dtype == np.float64 else 1e4) + rng.normal(0, 1, n)
    if dtype == np.float64:
        values[rng.random(n) < 0.02] = 1.5e308  # sums beyond 1.8e308: the means by parts
    values[rng.random(n) < 0.02] = np.nan
    values = values.astype(dtype)
    values.flags.writeable = False  # as Arrow's buffers
    valid = rng.random(n) > 0.1
    bits = np.packbits(valid, bitorder="little")
    if mode == "codes":
        codes, member = rng.integers(-1, n_seg, n).astype(np.int32), None
        members = np.zeros((0, 0), np.uint64)
    else:
        codes, member = np.zeros(0, np.int32), rng.random((n_seg, n)) < 0.4
        members = _member_words(member)
    one, one_sketch = np.zeros((n_seg + 1, 4)), np.zeros((n_seg + 1, ks.N_BUCKETS), np.int64)
    kp.profile_numeric(values, bits, 0, codes, members, one, one_sketch)
    parts = []
    for lo, hi in [(0, 333), (333, 334), (334, 700), (700, n)]:
        parts.append(((values[lo:hi], bits, lo), codes[lo:hi] if mode == "codes" else codes,
                      members if member is None else _member_words(member[:, lo:hi])))
    cut, cut_sketch = np.zeros((n_seg + 1, 4)), np.zeros((n_seg + 1, ks.N_BUCKETS), np.int64)
    _block_moments(parts, cut, cut_sketch)
    assert np.isinf(one[:, 1] + one[:, 2]).sum() == 0
    assert (one[:, 3] == np.inf).any() == (dtype == np.float64)  # the overflow path was taken
    np.testing.assert_array_equal(cut, one)
    np.testing.assert_array_equal(cut_sketch, one_sketch)
