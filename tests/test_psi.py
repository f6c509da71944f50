"""Reference statistics (monitor/reference.py), the PSI and its verdict (monitor/psi.py) and their
kernels (kernels/psi.py), each against a slow, obviously correct twin written here."""
import json
import math

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import segmint
from segmint.monitor.psi import PSIResult, band, feature_drift, psi, psi_terms
from segmint.monitor.reference import (CategoryReference, NumericReference, ReferenceStatistics,
                                     bucket_upper_edge, reference_statistics)
from segmint.errors import DataError, ParameterError, SegmintError, UnknownColumnError, UnsupportedTypeError
from segmint.kernels import psi as kpsi
from segmint.kernels import sketch as ks
from segmint.pipeline.model_file import ModelFormatError

NO_BITS = np.zeros(0, dtype=np.uint8)


# -- slow twins ---------------------------------------------------------------------------------
def naive_psi(expected, actual, epsilon=1e-4):
    """PSI as the module docstring writes it, one bin at a time."""
    e = [x / sum(expected) for x in expected]
    a = [x / sum(actual) for x in actual]
    e = [max(x, epsilon) for x in e]
    a = [max(x, epsilon) for x in a]
    se, sa = sum(e), sum(a)
    return sum((ai / sa - ei / se) * math.log((ai / sa) / (ei / se)) for ei, ai in zip(e, a))


def naive_statistic(expected, actual, n, m):
    """The verdict's statistic as the module docstring writes it: the PSI of the counts each
    plus one half (bins empty on both sides left out), times (1/n + 1/m)^-1."""
    e = [x / sum(expected) * n for x in expected]
    a = [x / sum(actual) * m for x in actual]
    pairs = [(ei + 0.5, ai + 0.5) for ei, ai in zip(e, a) if ei + ai > 0]
    se, sa = sum(p[0] for p in pairs), sum(p[1] for p in pairs)
    value = sum((ai / sa - ei / se) * math.log((ai / sa) / (ei / se)) for ei, ai in pairs)
    return max(0.0, value) / (1 / n + 1 / m)


def naive_bins(values, valid, edges):
    """Left-closed bins by searchsorted; missing (null or NaN) in the last slot."""
    values = np.asarray(values, dtype=np.float64)
    counts = np.zeros(len(edges) + 2, dtype=np.int64)
    missing = ~valid | np.isnan(values)
    counts[-1] = missing.sum()
    idx = np.searchsorted(np.asarray(edges, dtype=np.float64), values[~missing], side="right")
    counts[:-1] = np.bincount(idx, minlength=len(edges) + 1)
    return counts


def packed(valid, offset=0):
    bits = np.concatenate([np.zeros(offset, dtype=bool), valid])
    return np.packbits(bits, bitorder="little")


def kernel_bins(values, valid, edges, offset=0):
    counts = np.zeros(len(edges) + 2, dtype=np.int64)
    bits = packed(valid, offset) if not valid.all() else NO_BITS
    kpsi.bin_counts(values, bits, offset if bits.size else 0, np.asarray(edges, dtype=np.float64), counts)
    return counts


def within_bound(d, lo, hi):
    """The bound EDGE_METHOD states: d < edge <= d + (d - lo) / 64 + (hi - lo) * 2^-23, or the
    float right after d; a spread below 2^-1022 (subnormals) counts as 2^-1022 (the module
    docstring: the sketch's scale is capped)."""
    return max(d + (d - lo) / 64 + max(hi - lo, 2.0 ** -1022) * 2.0 ** -23, math.nextafter(d, math.inf))


def decile_values(x):
    kept = np.sort(x[~np.isnan(x)])
    return kept[np.floor(np.arange(1, 10) / 10 * (kept.size - 1)).astype(int)]


def assert_edges_bound_their_deciles(x, ref):
    """Every decile d has an edge e with d < e <= bound (the first edge above d), and every edge
    is the first edge above some decile: the edges are the deciles', nothing else."""
    x = np.asarray(x, dtype=np.float64)
    finite = x[np.isfinite(x)]
    lo, hi = finite.min(), finite.max()
    edges = np.asarray(ref.edges)
    firsts = set()
    for d in decile_values(x):
        if not np.isfinite(d):
            continue
        i = int(np.searchsorted(edges, d, side="right"))
        if i == len(edges):  # no edge above d: only when d's bucket reaches past the maximum
            assert within_bound(d, lo, hi) >= hi
            continue
        assert d < edges[i] <= within_bound(d, lo, hi), (d, edges[i])
        firsts.add(i)
    assert firsts == set(range(len(edges))) or np.isinf(decile_values(x)).any()


# -- psi() --------------------------------------------------------------------------------------

@settings(max_examples=150, deadline=None)
@given(st.data())
def test_psi_matches_the_plain_python_twin_on_random_bins_with_empty_ones(data):
    bins = data.draw(st.integers(1, 30))
    expected = data.draw(st.lists(st.sampled_from([0.0, 0.0, 1.0, 3.5, 1e-9, 250.0]) | st.floats(0, 1e3),
                                  min_size=bins, max_size=bins).filter(lambda x: sum(x) > 0))
    actual = data.draw(st.lists(st.sampled_from([0.0, 2.0, 1e-7]) | st.floats(0, 1e3),
                                min_size=bins, max_size=bins).filter(lambda x: sum(x) > 0))
    got = psi(expected, actual)
    assert got.psi == pytest.approx(naive_psi(expected, actual), rel=1e-9, abs=1e-12)
    assert got.psi >= 0 and got.bins == bins and got.band == band(got.psi)
    assert got.statistic is None and got.verdict is None


def test_psi_of_identical_bins_is_zero_and_of_swapped_bins_symmetric():
    e = [0.1, 0.2, 0.3, 0.4]
    assert psi(e, e).psi == 0.0
    assert psi(e, e[::-1]).psi == pytest.approx(psi(e[::-1], e).psi)


def test_an_empty_bin_is_floored_at_epsilon_and_the_shares_renormalised():
    got = psi([0.5, 0.5, 0.0], [0.4, 0.4, 0.2], epsilon=1e-3).psi
    e = np.array([0.5, 0.5, 1e-3]) / 1.001
    a = np.array([0.4, 0.4, 0.2])
    assert got == pytest.approx(float(np.sum((a - e) * np.log(a / e))))


def test_counts_are_normalised_to_shares_first():
    assert psi([10, 30, 60], [20, 20, 60]).psi == pytest.approx(psi([0.1, 0.3, 0.6], [0.2, 0.2, 0.6]).psi)


@pytest.mark.parametrize("value, expected", [(0.0, "stable"), (0.0999, "stable"), (0.1, "moderate"),
                                             (0.25, "moderate"), (0.2501, "major"), (3.0, "major")])
def test_bands_are_stable_below_0_1_moderate_to_0_25_and_major_above(value, expected):
    assert band(value) == expected


def test_the_verdict_compares_psi_scaled_by_the_sample_sizes_with_the_chi_square_quantile():
    from scipy.stats import chi2
    e, a = [0.25] * 4, [0.24, 0.26, 0.25, 0.25]
    small = psi(e, a, n_reference=1000, n_current=1000)
    large = psi(e, a, n_reference=10**7, n_current=10**7)
    assert small.psi == large.psi < 0.1 and small.band == "stable"
    assert small.statistic == pytest.approx(naive_statistic(e, a, 1000, 1000))
    assert small.statistic == pytest.approx(small.psi / (2 / 1000), rel=0.01)  # no empty bin: about the PSI
    assert small.threshold == pytest.approx(chi2.ppf(0.95, 3)) == large.threshold
    assert (small.verdict, large.verdict) == ("within noise", "drifted")
    stricter = psi(e, a, n_reference=10**5, n_current=10**5, alpha=1e-9)
    assert stricter.threshold > small.threshold
    assert isinstance(small, PSIResult)


def test_a_single_bin_never_drifts():
    got = psi([1.0], [5.0], n_reference=10, n_current=10)
    assert (got.psi, got.threshold, got.verdict) == (0.0, None, "within noise")


@pytest.mark.parametrize("kwargs, words", [
    (dict(expected=[0.5, 0.5], actual=[1.0]), "same bins"),
    (dict(expected=[], actual=[]), "non-empty"),
    (dict(expected=[0.5, -0.1], actual=[0.5, 0.5]), r"expected\[1\]"),
    (dict(expected=[0.5, float("nan")], actual=[0.5, 0.5]), r"expected\[1\]"),
    (dict(expected=[0.0, 0.0], actual=[0.5, 0.5]), "adds up to 0"),
    (dict(expected=["a", "b"], actual=[0.5, 0.5]), "shares"),
    (dict(expected=[0.5, 0.5], actual=[0.5, 0.5], epsilon=0.0), "epsilon"),
    (dict(expected=[0.5, 0.5], actual=[0.5, 0.5], epsilon=0.6), "epsilon"),
    (dict(expected=[0.5, 0.5], actual=[0.5, 0.5], alpha=1.0), "alpha"),
    (dict(expected=[0.5, 0.5], actual=[0.5, 0.5], n_reference=0, n_current=5), "n_reference"),
    (dict(expected=[0.5, 0.5], actual=[0.5, 0.5], n_reference=5), "n_current"),
])
def test_bad_arguments_to_psi_are_refused_naming_the_argument(kwargs, words):
    with pytest.raises(ParameterError, match=words):
        psi(**kwargs)


# -- the kernels --------------------------------------------------------------------------------
@settings(max_examples=120, deadline=None)
@given(st.data())
def test_the_binning_kernel_matches_searchsorted_with_values_on_edges_nulls_and_nan(data):
    n = data.draw(st.integers(0, 300))
    dtype = data.draw(st.sampled_from([np.float32, np.float64]))
    pool = data.draw(st.lists(st.floats(-1e6, 1e6, allow_nan=False, width=32), min_size=1, max_size=40))
    values = np.array(data.draw(st.lists(st.sampled_from(pool + [np.nan, np.inf, -np.inf, 0.0]),
                                         min_size=n, max_size=n)), dtype=dtype)
    # edges drawn from the values themselves, so many values sit exactly on an edge
    many = data.draw(st.booleans())  # more than 32 edges: the binary search
    edges = sorted(set(float(x) for x in pool) | ({float(i) for i in range(-40, 40)} if many else set()))
    valid = np.array(data.draw(st.lists(st.booleans(), min_size=n, max_size=n)), dtype=bool)
    offset = data.draw(st.integers(0, 7))
    got = kernel_bins(values, valid, edges, offset)
    assert got.tolist() == naive_bins(values, valid, edges).tolist()


def test_a_value_exactly_on_an_edge_goes_to_the_bin_above_it():
    counts = kernel_bins(np.array([1.0, 2.0, 2.0 - 1e-12, 3.0]), np.ones(4, bool), [1.0, 2.0, 3.0])
    assert counts.tolist() == [0, 2, 1, 1, 0]


def test_the_category_kernel_counts_codes_and_nulls_like_bincount():
    rng = np.random.default_rng(2)
    codes = rng.integers(0, 7, 1001).astype(np.int32)
    valid = rng.random(1001) < 0.8
    counts = np.zeros(8, dtype=np.int64)
    kpsi.code_counts(codes, packed(valid, 5), 5, counts)
    assert counts[:-1].tolist() == np.bincount(codes[valid], minlength=7).tolist()
    assert counts[-1] == (~valid).sum()


def test_every_bucket_edge_lies_above_its_bucket_and_at_or_below_the_next():
    rng = np.random.default_rng(3)
    values = np.concatenate([rng.lognormal(0, 6, 3000) * rng.choice([-1, 1], 3000),
                             [2.0 ** -24, -(2.0 ** -24), 2.0 ** -24 * (1 + 1 / 64), 1.0, -1.0, 2.0 ** 63]])
    for x in values:
        b = ks.bucket_of(x)
        edge = bucket_upper_edge(b)
        assert x < edge
        assert ks.bucket_of(edge) == b + 1  # the edge itself opens the next bucket


# -- reference statistics -----------------------------------------------------------------------
def test_reference_edges_sit_at_the_deciles_within_the_stated_bound_and_bin_counts_are_exact():
    rng = np.random.default_rng(0)
    x = rng.lognormal(3, 1, 100_001)
    ref = reference_statistics({"x": x}, features=["x"]).features["x"]
    deciles = np.quantile(x, np.arange(1, 10) / 10, method="lower")
    assert len(ref.edges) == 9
    for d, e in zip(deciles, ref.edges):
        assert d < e <= within_bound(d, x.min(), x.max())
    assert list(ref.counts) == np.bincount(np.searchsorted(ref.edges, x, side="right"), minlength=10).tolist()
    assert ref.null_count == 0 and sum(ref.shares) == pytest.approx(1.0)


def test_a_subnormal_spread_keeps_exact_counts_and_edges_within_the_capped_bound():
    # found by hypothesis: 0.0 and 2.2e-313 (a spread below 2^-1022)
    x = np.array([0.0] * 30 + [2.2250738585e-313] * 13)
    ref = reference_statistics(pa.table({"x": x}), features=["x"]).features["x"]
    assert list(ref.counts) + [ref.null_count] == naive_bins(x, np.ones(x.size, bool), np.asarray(ref.edges)).tolist()
    assert_edges_bound_their_deciles(x, ref)


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_reference_bins_count_exactly_what_searchsorted_finds_for_any_data(data):
    n = data.draw(st.integers(0, 400))
    pool = data.draw(st.lists(st.floats(-1e12, 1e12, allow_nan=False, allow_infinity=False),
                              min_size=1, max_size=12))
    x = np.array(data.draw(st.lists(st.sampled_from(pool + [np.nan, np.inf, -np.inf, 0.0]),
                                    min_size=n, max_size=n)), dtype=np.float64)
    valid = np.array(data.draw(st.lists(st.booleans(), min_size=n, max_size=n)), dtype=bool)
    ref = reference_statistics(pa.table({"x": pa.array(x, mask=~valid)}), features=["x"],
                               batch_size=data.draw(st.integers(1, 64))).features["x"]
    edges = np.asarray(ref.edges)
    assert len(edges) <= 9 and np.all(np.isfinite(edges)) and np.all(np.diff(edges) > 0)
    assert list(ref.counts) + [ref.null_count] == naive_bins(x, valid, edges).tolist()
    kept = x[valid & ~np.isnan(x)]
    if np.isfinite(kept).any():  # every edge within the stated bound of its decile
        assert_edges_bound_their_deciles(kept, ref)
    if kept.size:
        assert ref.counts[0] > 0


def test_reference_statistics_read_parquet_files_and_their_dictionary_strings(tmp_path):
    import pyarrow.parquet as pq
    rng = np.random.default_rng(8)
    t = pa.table({"a": rng.normal(size=3000), "c": pa.array(rng.choice(["x", "y", "z"], 3000))})
    pq.write_table(t, tmp_path / "old.parquet", row_group_size=700)
    from_file = reference_statistics(tmp_path / "old.parquet", features=["a"], categories=["c"])
    in_memory = reference_statistics(t, features=["a"], categories=["c"])
    assert from_file.features == in_memory.features
    assert from_file.categories["c"].shares == in_memory.categories["c"].shares
    row = feature_drift(from_file, tmp_path / "old.parquet").to_pylist()
    assert [r["psi"] for r in row] == [0.0, 0.0]


def test_ties_and_constant_columns_give_fewer_distinct_edges():
    n = 1000
    data = {"constant": np.full(n, 7.0), "three": np.repeat([1, 2, 3], [500, 300, 200]),
            "negative": np.repeat([-2.5, -1.0], [400, 600]), "empty": pa.nulls(n, pa.float64())}
    ref = reference_statistics(data, features=list(data)).features
    assert len(ref["constant"].edges) == 1 and ref["constant"].counts == (n, 0)
    assert len(ref["three"].edges) == 3 and ref["three"].counts == (500, 300, 200, 0)
    assert ref["negative"].counts == (400, 600, 0)
    assert -2.5 < ref["negative"].edges[0] <= -2.5 + 1.5 * 2.0 ** -23  # -2.5 itself stays below
    assert ref["empty"].edges == () and ref["empty"].counts == (0,) and ref["empty"].null_count == n


def test_nulls_and_nan_are_missing_and_infinities_are_values_in_the_outer_bins():
    x = pa.array([1.0, None, float("nan"), float("inf"), float("-inf")] + [float(i) for i in range(95)])
    ref = reference_statistics(pa.table({"x": x}), features=["x"]).features["x"]
    assert ref.null_count == 2 and ref.null_share == pytest.approx(0.02)
    assert ref.counts[0] >= 1 and ref.counts[-1] >= 1 and sum(ref.counts) == 98


def test_booleans_and_integers_are_numeric_features():
    t = pa.table({"flag": pa.array([True, False, None, True]), "n": pa.array([1, 2, 3, None], pa.int16())})
    ref = reference_statistics(t, features=["flag", "n"])
    # 0/1: edges just above 0 and just above 1; the top bin is empty in the reference
    assert ref.features["flag"].counts == (1, 2, 0) and ref.features["flag"].null_count == 1
    assert ref.features["n"].null_count == 1 and sum(ref.features["n"].counts) == 3


def test_category_and_segment_shares_count_every_row_with_nulls_apart():
    t = pa.table({"region": pa.array(["n", "s", None, "n", "e", "n"]),
                  "seg": pa.array([1, 2, 2, None, 1, 1]),
                  "label": pa.array(["a", "b", "a", "a", None, "b"]).dictionary_encode()})
    ref = reference_statistics(t, features=[], categories=["region", "label"], segments="seg", batch_size=2)
    assert ref.categories["region"].shares == {"n": 0.5, "s": 1 / 6, "e": 1 / 6}
    assert ref.categories["region"].null_count == 1
    assert dict(zip(ref.categories["label"].categories, ref.categories["label"].counts)) == {"a": 3, "b": 2}
    assert ref.segments.name == "seg"
    assert dict(zip(ref.segments.categories, ref.segments.counts)) == {"1": 3, "2": 2}
    assert ref.segments.null_count == 1
    strings = reference_statistics(t, features=[], segments="region")
    assert strings.segments.null_count == 1 and sum(strings.segments.counts) == 5


def test_reference_statistics_do_not_depend_on_threads_or_batch_size():
    rng = np.random.default_rng(9)
    t = pa.table({"a": rng.normal(size=20_000), "b": rng.integers(0, 9, 20_000),
                  "c": pa.array(rng.choice(["x", "y", "z"], 20_000))})
    with segmint.threads(1):
        one = reference_statistics(t, features=["a", "b"], categories=["c"], batch_size=4096)
    with segmint.threads(2):
        two = reference_statistics(t, features=["a", "b"], categories=["c"], batch_size=777)
    assert one.to_dict() == two.to_dict()


def test_a_reference_round_trips_through_json():
    rng = np.random.default_rng(1)
    t = pa.table({"a": rng.normal(size=5000), "c": pa.array(rng.choice(["x", "y", None], 5000)),
                  "s": rng.integers(0, 3, 5000)})
    ref = reference_statistics(t, features=["a"], categories=["c"], segments="s")
    data = json.loads(json.dumps(ref.to_dict(), allow_nan=False))
    assert data["format"] == "segmint-reference" and data["version"] == 1
    back = ReferenceStatistics.from_dict(data)
    assert back == ref and back.features["a"].edges == ref.features["a"].edges
    assert back.segments == ref.segments


@pytest.mark.parametrize("kwargs, error, words", [
    (dict(features=["nope"]), UnknownColumnError, "'nope'"),
    (dict(features=["name"]), UnsupportedTypeError, "categories="),
    (dict(features=[], categories=["x"]), UnsupportedTypeError, "features="),
    (dict(features="x"), ParameterError, "list of column names"),
    (dict(features=["x"], categories=["x"]), ParameterError, "named twice"),
    (dict(features=["x"], segments="x2"), UnknownColumnError, "segments="),
    (dict(features=["x"], segments="x"), UnsupportedTypeError, "string or integer"),
    (dict(features=["when"]), UnsupportedTypeError, "numeric"),
    (dict(features=["x"], batch_size=0), ParameterError, "batch_size"),
])
def test_bad_columns_are_refused_naming_the_column(kwargs, error, words):
    t = pa.table({"x": [1.0, 2.0], "name": ["a", "b"],
                  "when": pa.array([0, 1], pa.timestamp("s"))})
    with pytest.raises(error, match=words):
        reference_statistics(t, **kwargs)


def test_a_category_or_segment_column_with_too_many_distinct_values_is_refused():
    t = pa.table({"email": [f"{i}@x" for i in range(1500)], "id": np.arange(1500)})
    with pytest.raises(DataError, match="email"):
        reference_statistics(t, features=[], categories=["email"])
    with pytest.raises(DataError, match="'id'"):
        reference_statistics(t, features=[], segments="id")


# -- hostile documents --------------------------------------------------------------------------
def good_document():
    return {"format": "segmint-reference", "version": 1, "n_rows": 10,
            "features": [{"name": "a", "edges": [1.0, 2.0], "counts": [3, 3, 3], "null_count": 1}],
            "categories": [{"name": "c", "categories": ["x", "y"], "counts": [6, 4], "null_count": 0}],
            "segments": {"name": "s", "categories": ["0"], "counts": [9], "null_count": 1}}


def edit(path, value):
    def change(doc):
        target = doc
        for key in path[:-1]:
            target = target[key]
        if value is KeyError:
            del target[path[-1]]
        else:
            target[path[-1]] = value
        return doc
    return change


@pytest.mark.parametrize("change, words", [
    (lambda d: [], "mapping"),
    (edit(["format"], "segmint-model"), "format"),
    (edit(["version"], 2), "newer"),
    (edit(["version"], "1"), "version"),
    (edit(["n_rows"], -1), "n_rows"),
    (edit(["n_rows"], True), "n_rows"),
    (edit(["features"], KeyError), "features"),
    (edit(["features", 0, "edges", 1], float("nan")), r"features\[0\].edges\[1\]"),
    (edit(["features", 0, "edges", 1], float("inf")), r"features\[0\].edges\[1\]"),
    (edit(["features", 0, "edges", 1], "2"), r"features\[0\].edges\[1\]"),
    (edit(["features", 0, "edges"], [2.0, 1.0]), "strictly increasing"),
    (edit(["features", 0, "edges"], [1.0, 1.0]), "strictly increasing"),
    (edit(["features", 0, "edges"], {"a": 1}), r"features\[0\].edges"),
    (edit(["features", 0, "counts"], [3, 6]), "2 edges make 3"),
    (edit(["features", 0, "counts", 0], 3.5), r"features\[0\].counts\[0\]"),
    (edit(["features", 0, "counts", 0], -3), r"features\[0\].counts\[0\]"),
    (edit(["features", 0, "null_count"], 0), "add up to 9"),
    (edit(["features", 0, "name"], ""), r"features\[0\].name"),
    (edit(["features", 0, "extra"], 1), "unknown field"),
    (edit(["categories", 0, "categories"], ["x", "x"]), "twice"),
    (edit(["categories", 0, "categories"], ["x", 3]), r"categories\[0\].categories\[1\]"),
    (edit(["categories", 0, "name"], "a"), "described twice"),
    (edit(["segments"], [1, 2]), "segments"),
    (edit(["edges"], 3), "edges"),
    (edit(["features", 0, "edges"], list(range(2000))), "at most"),
])
def test_hostile_documents_are_refused_naming_the_field(change, words):
    doc = change(good_document())
    with pytest.raises(ModelFormatError, match=words) as info:
        ReferenceStatistics.from_dict(doc)
    assert isinstance(info.value, SegmintError) and isinstance(info.value, DataError)


def test_the_good_document_loads():
    ref = ReferenceStatistics.from_dict(good_document())
    assert ref.features["a"] == NumericReference("a", (1.0, 2.0), (3, 3, 3), 1)
    assert ref.categories["c"] == CategoryReference("c", ("x", "y"), (6, 4), 0)


# -- feature drift ------------------------------------------------------------------------------
def drift_of(n, shift, seed):
    rng = np.random.default_rng(seed)
    ref = reference_statistics({"x": rng.normal(size=n)}, features=["x"])
    table = feature_drift(ref, {"x": rng.normal(size=n) + shift})
    return table.to_pylist()[0]


@pytest.mark.parametrize("n", [1_000, 1_000_000])
def test_no_shift_is_in_the_stable_band_and_within_noise_at_any_sample_size(n):
    row = drift_of(n, 0.0, seed=11)
    assert (row["band"], row["verdict"]) == ("stable", "within noise")
    assert row["n_reference"] == row["n_current"] == n


def test_a_small_shift_is_drifted_at_a_million_rows_though_its_psi_is_below_0_1():
    row = drift_of(1_000_000, 0.05, seed=12)
    assert row["psi"] < 0.1 and row["band"] == "stable"
    assert row["verdict"] == "drifted" and row["statistic"] > row["threshold"]


def test_the_same_small_shift_is_within_noise_at_a_thousand_rows():
    row = drift_of(1_000, 0.05, seed=12)
    assert row["verdict"] == "within noise" and row["statistic"] < row["threshold"]


def test_feature_drift_matches_the_twin_on_reference_bins_with_nulls_and_nan():
    rng = np.random.default_rng(4)
    old = rng.normal(size=3000)
    old[rng.random(3000) < 0.05] = np.nan
    new = pa.array(rng.normal(0.3, 1.2, 2000), mask=rng.random(2000) < 0.2)
    ref = reference_statistics({"x": old}, features=["x"])
    row = feature_drift(ref, pa.table({"x": new})).to_pylist()[0]
    f = ref.features["x"]
    current = naive_bins(np.nan_to_num(new.to_numpy(zero_copy_only=False), nan=np.nan),
                         ~np.asarray(new.is_null()), f.edges)
    assert row["psi"] == pytest.approx(naive_psi(list(f.counts) + [f.null_count], current.tolist()))
    assert row["bins"] == len(f.edges) + 2  # the missing bin too
    assert row["null_share_reference"] == pytest.approx(f.null_count / 3000)
    assert row["null_share_current"] == pytest.approx(current[-1] / 2000)


def test_constant_columns_are_within_noise_when_unchanged_and_major_when_the_value_moves():
    ref = reference_statistics({"c": np.full(500, 3.0)}, features=["c"])
    same = feature_drift(ref, {"c": np.full(800, 3.0)}).to_pylist()[0]
    moved = feature_drift(ref, {"c": np.full(800, 4.0)}).to_pylist()[0]
    assert (same["psi"], same["verdict"], same["bins"]) == (0.0, "within noise", 2)
    assert moved["band"] == "major" and moved["verdict"] == "drifted"


def test_a_category_unseen_in_the_reference_gets_its_own_bin_at_epsilon():
    ref = reference_statistics({"c": np.array(["a"] * 60 + ["b"] * 40)}, features=[], categories=["c"])
    cur = pa.table({"c": pa.array(["b"] * 50 + ["new"] * 10 + ["a"] * 40)})
    row = feature_drift(ref, cur).to_pylist()[0]
    assert row["kind"] == "category" and row["bins"] == 3
    assert row["psi"] == pytest.approx(naive_psi([60, 40, 0], [40, 50, 10]))


def test_a_reference_category_absent_now_counts_as_an_empty_bin():
    ref = reference_statistics({"c": np.array(["a", "b", "gone"] * 10)}, features=[], categories=["c"])
    row = feature_drift(ref, {"c": np.array(["a", "b"] * 15)}).to_pylist()[0]
    assert row["bins"] == 3 and row["psi"] == pytest.approx(naive_psi([10, 10, 10], [15, 15, 0]))


def test_feature_drift_is_the_same_for_any_thread_count_and_batch_size():
    rng = np.random.default_rng(6)
    old = pa.table({"a": rng.normal(size=9000), "b": rng.exponential(size=9000),
                    "c": pa.array(rng.choice(["x", "y"], 9000))})
    new = pa.table({"a": rng.normal(0.1, 1, 7000), "b": pa.array(rng.exponential(size=7000),
                                                                 mask=rng.random(7000) < 0.1),
                    "c": pa.array(rng.choice(["x", "y", "z"], 7000))})
    ref = reference_statistics(old, features=["a", "b"], categories=["c"])
    with segmint.threads(1):
        one = feature_drift(ref, new, batch_size=1000)
    with segmint.threads(2):
        two = feature_drift(ref, new, batch_size=333)
    assert one.equals(two)
    assert one.column("feature").to_pylist() == ["a", "b", "c"]
    assert one.schema.names == ["feature", "kind", "bins", "psi", "band", "statistic", "threshold",
                                "verdict", "n_reference", "n_current", "null_share_reference",
                                "null_share_current"]


def test_feature_drift_refuses_missing_columns_wrong_kinds_and_empty_data():
    ref = reference_statistics({"a": np.arange(10.0), "c": np.array(["x"] * 10)}, features=["a"],
                               categories=["c"])
    with pytest.raises(UnknownColumnError, match="'a'"):
        feature_drift(ref, {"b": np.arange(3.0), "c": np.array(["x"] * 3)})
    with pytest.raises(UnsupportedTypeError, match="'c'"):
        feature_drift(ref, {"a": np.arange(3.0), "c": np.arange(3.0)})
    with pytest.raises(DataError, match="no rows"):
        feature_drift(ref, pa.table({"a": pa.array([], pa.float64()), "c": pa.array([], pa.string())}))
    with pytest.raises(ParameterError, match="ReferenceStatistics"):
        feature_drift(ref.to_dict(), {"a": [1.0]})
    empty = ReferenceStatistics(0)
    with pytest.raises(DataError, match="no rows"):
        feature_drift(empty, {"a": [1.0]})


# -- review findings (issue 15): each test failed before its fix -----------------------------------
def test_years_get_one_bin_per_year_and_a_move_to_later_years_is_major_drift():
    rng = np.random.default_rng(21)
    old = rng.integers(2016, 2021, 50_000)
    ref = reference_statistics({"year": old}, features=["year"]).features["year"]
    assert len(ref.edges) == 5  # 2016 | 2017 | 2018 | 2019 | 2020 | above
    assert list(ref.counts) == np.bincount(old - 2016, minlength=5).tolist() + [0]
    assert_edges_bound_their_deciles(old, ref)
    row = feature_drift(ReferenceStatistics(50_000, [ref]), {"year": rng.integers(2021, 2026, 50_000)})
    assert row.column("band").to_pylist() == ["major"]


def test_epoch_seconds_are_binned_within_days_and_a_month_shift_is_drift():
    rng = np.random.default_rng(22)
    start, year = 1_577_836_800, 366 * 86_400  # 2020-01-01, one year of seconds
    old = start + rng.integers(0, year, 200_000)
    ref = reference_statistics({"t": old}, features=["t"]).features["t"]
    assert len(ref.edges) == 9
    assert_edges_bound_their_deciles(old, ref)
    deciles = decile_values(old.astype(np.float64))
    assert np.all(np.asarray(ref.edges) - deciles <= 6 * 86_400)  # within 6 days (was ~315)
    row = feature_drift(ReferenceStatistics(200_000, [ref]),
                        {"t": old + 30 * 86_400}).to_pylist()[0]
    assert row["psi"] > 0.1 and row["verdict"] == "drifted"


@pytest.mark.parametrize("make", [
    lambda rng: 1e-9 * (1 + rng.random(20_001)),               # values around 1e-9
    lambda rng: -1e6 - rng.lognormal(0, 1, 20_001),            # negative values
    lambda rng: rng.normal(0, 1, 20_001) * 1e-12 + 5e-10,      # tiny spread around 5e-10
    lambda rng: np.concatenate([rng.normal(size=20_000), [1e300, -1e300]]),  # a huge spread
])
def test_edges_lie_within_the_stated_bound_of_their_deciles_and_counts_are_exact(make):
    x = make(np.random.default_rng(23))
    ref = reference_statistics({"x": x}, features=["x"]).features["x"]
    assert_edges_bound_their_deciles(x, ref)
    assert list(ref.counts) == np.bincount(np.searchsorted(ref.edges, x, side="right"),
                                           minlength=len(ref.edges) + 1).tolist()
    if np.ptp(x) < 1:  # no outliers: every decile distinct, nine edges
        assert len(ref.edges) == 9


def test_the_scaled_sketch_kernel_matches_its_twin_with_nulls_nan_and_infinities():
    from segmint.monitor.reference import scaled_value, sketch_scale
    rng = np.random.default_rng(24)
    values = np.concatenate([rng.normal(3, 2, 700), [np.nan, np.inf, -np.inf, 3.0, -1.0]])
    valid = rng.random(values.size) < 0.9
    finite = values[valid & np.isfinite(values)]
    out = np.array([np.inf, -np.inf])
    kpsi.finite_range(values, packed(valid, 2), 2, out)
    assert out.tolist() == [finite.min(), finite.max()]
    low_half, scale = sketch_scale(*out)
    counts = np.zeros(ks.N_BUCKETS + 1, dtype=np.int64)
    kpsi.scaled_sketch(values, packed(valid, 2), 2, low_half, scale, counts)
    twin = np.zeros(ks.N_BUCKETS + 1, dtype=np.int64)
    for x, v in zip(values, valid):
        if not v or np.isnan(x):
            twin[-1] += 1
        elif np.isinf(x):
            twin[0 if x < 0 else ks.N_BUCKETS - 1] += 1
        else:
            twin[ks.bucket_of(scaled_value(float(x), low_half, scale))] += 1
    assert counts.tolist() == twin.tolist()


def test_numeric_reference_statistics_refuse_a_stream_that_can_be_read_once():
    reader = pa.RecordBatchReader.from_batches(pa.schema([("x", pa.float64())]),
                                               [pa.record_batch([pa.array([1.0, 2.0])], names=["x"])])
    with pytest.raises(DataError, match="read only once"):
        reference_statistics(reader, features=["x"])


def test_an_edge_too_large_for_a_float_is_refused_not_an_overflow_error():
    doc = edit(["features", 0, "edges", 1], 10 ** 400)(good_document())
    with pytest.raises(ModelFormatError, match=r"features\[0\].edges\[1\]"):
        ReferenceStatistics.from_dict(doc)


@pytest.mark.parametrize("path", [["n_rows"], ["features", 0, "counts", 0], ["features", 0, "null_count"],
                                  ["categories", 0, "counts", 1], ["segments", "null_count"]])
def test_counts_above_2_to_the_53_are_refused(path):
    with pytest.raises(ModelFormatError, match="2\\^53"):
        ReferenceStatistics.from_dict(edit(path, 2 ** 70)(good_document()))


def test_a_categorical_with_many_declared_but_two_used_categories_is_accepted():
    import pandas as pd
    declared = [f"c{i}" for i in range(1500)]
    column = pd.Categorical(["c3", "c7", "c3", None], categories=declared)
    ref = reference_statistics(pd.DataFrame({"c": column, "s": column}), features=[],
                               categories=["c"], segments="s")
    assert ref.categories["c"].categories == ("c3", "c7") and ref.categories["c"].counts == (2, 1)
    assert ref.segments.categories == ("c3", "c7") and ref.segments.null_count == 1


def test_too_many_used_categories_are_refused_naming_the_column():
    t = pa.table({"email": [f"{i}@x" for i in range(1500)]})
    with pytest.raises(DataError, match="column 'email'"):
        reference_statistics(t, features=[], categories=["email"], batch_size=500)


def test_current_categories_unseen_beyond_the_limit_are_pooled_into_one_other_bin():
    from segmint.monitor.psi import category_bins
    from segmint.monitor.reference import MAX_CATEGORIES
    ref = reference_statistics({"c": np.array(["a"] * 60 + ["b"] * 40)}, features=[], categories=["c"])
    new = ["a"] * 30 + [f"n{i}" for i in range(1500)] + ["n5"] * 4  # n5: the largest unseen one
    row = feature_drift(ref, {"c": np.array(new)}).to_pylist()[0]
    current = {k: new.count(k) for k in dict.fromkeys(new)}
    expected, actual = category_bins(ref.categories["c"], current)
    assert len(expected) == MAX_CATEGORIES + 1  # 2 known + 998 unseen + "(other)"
    assert expected[:2] == [60, 40] and actual[:2] == [30, 0]  # a, b, then n0, n1, ... in order
    assert actual[2:9] == [1, 1, 1, 1, 1, 5, 1]  # n5, the largest unseen one, is kept
    assert sum(actual) == len(new) and actual[-1] == 1500 - 998 and expected[-1] == 0
    assert row["bins"] == MAX_CATEGORIES + 1
    assert row["psi"] == pytest.approx(naive_psi(expected, actual))


def test_epsilon_and_alpha_are_checked_before_the_pass():
    ref = reference_statistics({"x": np.arange(10.0)}, features=["x"])
    schema = pa.schema([("x", pa.float64())])
    batch = pa.record_batch([pa.array([1.0, 5.0])], schema=schema)
    reader = pa.RecordBatchReader.from_batches(schema, [batch])
    with pytest.raises(ParameterError, match="epsilon"):
        feature_drift(ref, reader, epsilon=0.5)
    with pytest.raises(ParameterError, match="alpha"):
        feature_drift(ref, reader, alpha=0.0)
    assert feature_drift(ref, reader).num_rows == 1  # the stream was not read by the refusals


def test_psi_of_shares_near_the_float_maximum_does_not_overflow():
    assert psi([1e308, 1e307], [1, 1]).psi == pytest.approx(psi([10, 1], [1, 1]).psi)
    huge = psi([1.5e308, 1e308, 1e307], [1, 1, 1]).psi  # the plain sum is inf
    assert huge == pytest.approx(psi([15, 10, 1], [1, 1, 1]).psi) and huge > 0.3


def test_categories_are_in_dictionary_order_not_first_appearance():
    labels = pa.DictionaryArray.from_arrays(pa.array([2, 1, 0, 2], pa.int32()), pa.array(["z", "y", "x"]))
    ref = reference_statistics(pa.table({"c": labels}), features=[], categories=["c"])
    assert ref.categories["c"].categories == ("z", "y", "x")


def test_a_large_epsilon_pools_new_categories_so_that_every_bin_stays_above_it():
    ref = reference_statistics({"c": np.array(["a"] * 60 + ["b"] * 40)}, features=[], categories=["c"])
    new = np.array(["a"] * 30 + [f"n{i}" for i in range(50)])
    row = feature_drift(ref, {"c": new}, epsilon=0.05).to_pylist()[0]
    assert row["bins"] == 18  # 17 categories (a, b, n0..n14) and "(other)": fewer than 1/0.05
    with pytest.raises(ParameterError, match="epsilon"):
        feature_drift(ref, {"c": new}, epsilon=0.3)  # a, b, "(other)", nulls: up to 4 bins
    assert feature_drift(ref, {"c": new}, epsilon=0.24).column("bins").to_pylist() == [3]  # a, b, (other)


def test_the_verdict_never_says_stable_which_is_a_band_word():
    verdicts = {psi([0.25] * 4, a, n_reference=n, n_current=n).verdict
                for a in ([0.25] * 4, [0.24, 0.26, 0.25, 0.25], [0.1, 0.4, 0.25, 0.25]) for n in (3, 50, 10**7)}
    assert verdicts == {"within noise", "drifted", "too few rows"}


# -- too few rows (Cochran's rule) and many features (Bonferroni) --------------------------------
def naive_too_few(expected, actual, n, m):
    """Cochran's rule as the module docstring writes it, cell by cell of the 2 x bins table."""
    e = [x / sum(expected) * n for x in expected]
    a = [x / sum(actual) * m for x in actual]
    cells = []
    for ei, ai in zip(e, a):
        if ei + ai == 0:
            continue  # empty on both sides: left out
        cells += [n * (ei + ai) / (n + m), m * (ei + ai) / (n + m)]
    # exact limits up to a relative 1e-9 (counts rebuilt from shares round)
    return min(cells) < 1 - 1e-9 or sum(c < 5 * (1 - 1e-9) for c in cells) > 0.2 * len(cells)


@given(st.data())
@settings(max_examples=60, deadline=None)
def test_too_few_rows_follows_cochran_s_rule_on_the_expected_counts(data):
    bins = data.draw(st.integers(2, 10))
    counts = st.lists(st.integers(0, 60), min_size=bins, max_size=bins).filter(lambda x: sum(x) > 0)
    expected, actual = data.draw(counts), data.draw(counts)
    got = psi(expected, actual, n_reference=sum(expected), n_current=sum(actual))
    if sum(1 for e, a in zip(expected, actual) if e + a) < 2:
        assert got.verdict == "within noise"  # one non-empty bin: nothing can move
    elif naive_too_few(expected, actual, sum(expected), sum(actual)):
        assert got.verdict == "too few rows"
        assert got.statistic == pytest.approx(naive_statistic(expected, actual, sum(expected), sum(actual)))
    else:
        assert got.verdict == ("drifted" if got.statistic > got.threshold else "within noise")


def test_small_current_samples_of_an_unchanged_distribution_are_not_called_drifted():
    # the review's reproduction: decile bins of N(0, 1), 20,000 reference rows, fresh samples
    rng = np.random.default_rng(0)
    ref = rng.normal(size=20_000)
    edges = np.quantile(ref, np.linspace(0.1, 0.9, 9))
    e = np.bincount(np.searchsorted(edges, ref, side="right"), minlength=10)

    def verdicts(m, runs):
        out = []
        for _ in range(runs):
            a = np.bincount(np.searchsorted(edges, rng.normal(size=m), side="right"), minlength=10)
            out.append(psi(e, a, n_reference=20_000, n_current=m).verdict)
        return out

    assert set(verdicts(30, 100)) == {"too few rows"}  # was 40% "drifted"
    assert set(verdicts(1, 20)) == {"too few rows"}
    at_200 = verdicts(200, 300)
    assert "too few rows" not in at_200 and at_200.count("drifted") <= 0.09 * 300  # alpha = 0.05


def test_feature_drift_tests_its_features_as_one_family_at_alpha():
    from scipy.stats import chi2
    rng = np.random.default_rng(8)
    cols = {f"x{i}": rng.normal(size=4000) for i in range(4)}
    ref = reference_statistics(cols, features=list(cols))
    table = feature_drift(ref, {k: rng.normal(size=3000) for k in cols}, alpha=0.1).to_pylist()
    for row in table:  # Bonferroni: each of the 4 at 0.1 / 4
        assert row["threshold"] == pytest.approx(chi2.ppf(1 - 0.1 / 4, row["bins"] - 1))
    one = psi(list(ref.features["x0"].counts), list(ref.features["x0"].counts), n_reference=4000,
              n_current=4000, alpha=0.1)
    assert one.threshold == pytest.approx(chi2.ppf(0.9, one.bins - 1))  # a single psi(): alpha as given


def test_a_too_large_epsilon_names_the_feature_with_the_most_bins():
    rng = np.random.default_rng(2)
    ref = reference_statistics({"few": rng.integers(0, 2, 500).astype(float), "many": rng.normal(size=500)},
                               features=["few", "many"])
    bins = len(ref.features["many"].edges) + 2
    with pytest.raises(ParameterError, match=rf"feature 'many' .*has {bins} bins, got 0.2"):
        feature_drift(ref, {"few": np.zeros(3), "many": np.zeros(3)}, epsilon=0.2)


@given(st.data())
@settings(max_examples=40, deadline=None)
def test_the_psi_terms_are_non_negative_and_add_up_to_the_psi(data):
    bins = data.draw(st.integers(1, 12))
    shares = st.lists(st.sampled_from([0.0, 1.0, 7.0]) | st.floats(0, 1e3), min_size=bins,
                      max_size=bins).filter(lambda x: sum(x) > 0)
    expected, actual = data.draw(shares), data.draw(shares)
    terms = psi_terms(expected, actual, epsilon=1e-3)
    assert terms.shape == (bins,) and np.all(terms >= 0)
    assert float(terms.sum()) == pytest.approx(psi(expected, actual, epsilon=1e-3).psi, rel=1e-12, abs=1e-15)
    e = np.maximum(np.asarray(expected) / sum(expected), 1e-3)
    a = np.maximum(np.asarray(actual) / sum(actual), 1e-3)
    e, a = e / e.sum(), a / a.sum()
    assert terms == pytest.approx((a - e) * np.log(a / e), rel=1e-9, abs=1e-15)
