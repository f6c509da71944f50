"""Segment profiles (segmint.explain.profile) against a pandas groupby twin, and their words."""
import argparse
import json
import math
import re

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
    moments = np.zeros((n_seg + 1, 3))
    sketches = np.zeros((n_seg + 1, ks.N_BUCKETS), dtype=np.int64)
    kp.profile_numeric(values, bits, 3, codes, np.zeros((0, 0), np.uint64), 10.0, moments, sketches)
    ok = valid & np.isfinite(values)
    for s in range(n_seg + 1):
        v = values[ok & (np.where(codes < 0, n_seg, codes) == s)].astype(np.float64)
        assert moments[s, 0] == v.size
        np.testing.assert_allclose(moments[s, 1], v.mean() - 10.0, rtol=1e-11, atol=1e-13)
        np.testing.assert_allclose(moments[s, 2], ((v - v.mean()) ** 2).sum(), rtol=1e-10)
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
    moments = np.zeros((4, 3))
    kp.profile_numeric(values, np.zeros(0, np.uint8), 0, np.zeros(0, np.int32), words_, 0.0, moments,
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
    assert text.endswith("; 15% of customers, 38% of revenue")


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
    assert re.match(r"email opt in 100% \(vs 10(\.0)?%\); 10% of customers$", p.descriptions["a"])
    assert re.match(r"email opt in 0\.0% \(vs 10(\.0)?%\); 90% of customers$", p.descriptions["b"])
