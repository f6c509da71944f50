"""FeatureSpec: fit statistics and transforms against slow NumPy / pure-Python twins."""
import json
import math
import zlib
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyarrow import feather

import segmint
from segmint.cluster import FeatureError, NotFittedError
from segmint.kernels import transform as kt
from segmint.pipeline import FeatureSpec, FeatureSpecError
from segmint.pipeline.features import BLOCK_ROWS
from segmint.pipeline.features.stats import _quantiles

DTYPES = [np.float32, np.float64]
NO_BITS = np.zeros(0, dtype=np.uint8)


# ----------------------------------------------------------------------------- slow twins
M64 = (1 << 64) - 1


def naive_priority(row):
    z = (row + 0x9E3779B97F4A7C15) & M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return z ^ (z >> 31)


def naive_priorities(rows):
    """The same mix, vectorised (uint64 arithmetic wraps like the kernel's)."""
    with np.errstate(over="ignore"):
        z = rows.astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def column_of(table, name):
    """(float64 values, valid mask) of a numeric column, or (str list, valid) of a string column."""
    col = table.column(name).combine_chunks() if isinstance(table, pa.Table) else table[name]
    if pa.types.is_dictionary(col.type):
        col = col.dictionary_decode()
    valid = np.asarray(col.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
    if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
        return col.to_pylist(), valid
    if pa.types.is_boolean(col.type):
        col = col.cast(pa.float64())
    values = np.asarray(col.fill_null(0).to_numpy(zero_copy_only=False), dtype=np.float64)
    return values, valid


def naive_numeric_stats(x, valid, spec):
    """Full-data statistics in plain NumPy, step after step: impute, log1p, clip, scale."""
    impute = spec.get("impute")
    xs = x[valid]
    if impute == "median":
        v = float(np.median(xs))
    elif impute is not None:
        v = float(impute)
    else:
        v = None
    a = np.where(valid, x, v) if v is not None else xs
    if spec.get("log1p"):
        a = np.array([math.log1p(t) for t in a])
    out = {"impute_value": v, "count": int(valid.sum()), "nulls": int((~valid).sum()),
           "min": float(xs.min()) if xs.size else None, "max": float(xs.max()) if xs.size else None}
    if spec.get("clip"):
        lo, hi = np.quantile(a, spec["clip"])
        a = np.clip(a, lo, hi)
        out["clip_low"], out["clip_high"] = float(lo), float(hi)
    else:
        out["clip_low"] = out["clip_high"] = None
    scale = spec.get("scale", "standard")
    if scale == "standard":
        if a.min() == a.max():
            out["center"], out["scale"] = float(a[0]), 1.0
        else:
            out["center"], out["scale"] = float(a.mean()), float(a.std())
    elif scale == "robust":
        q25, q50, q75 = np.quantile(a, [0.25, 0.5, 0.75])
        out["center"], out["scale"] = float(q50), float(q75 - q25) if q75 > q25 else 1.0
    else:
        out["center"], out["scale"] = 0.0, 1.0
    return out


def naive_categories(strings, valid, max_categories):
    counts = Counter(s for s, ok in zip(strings, valid) if ok)
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:max_categories]
    return [s for s, _ in ranked], [c for _, c in ranked]


def naive_apply_value(x, is_valid, st, log1p):
    """One numeric value through the fitted chain, in Python floats (IEEE double)."""
    if not is_valid:
        if st["impute_value"] is None:
            return None
        x = st["impute_value"]
    x = float(x)
    if not math.isfinite(x) or (log1p and x < 0):
        return None
    if log1p:
        x = math.log1p(x)
    if st["clip_low"] is not None:
        if x < st["clip_low"]:
            x = st["clip_low"]
        elif x > st["clip_high"]:
            x = st["clip_high"]
    return (x - st["center"]) / st["scale"]


def naive_transform(table, spec, dtype):
    """The feature matrix, element by element, from the spec's fitted statistics."""
    d = spec.to_dict()
    n = table.num_rows
    rows = [[] for _ in range(n)]
    for f, fitted in zip(d["columns"], d["fitted"]["columns"]):
        values, valid = column_of(table, f["column"])
        if f.get("one_hot"):
            kept = fitted["categories"]
            for i in range(n):
                block = [0.0] * (len(kept) + 1 + (f["null"] == "indicator"))
                if not valid[i]:
                    if f["null"] == "error":
                        raise AssertionError("null under 'error'")
                    block[len(kept) + (f["null"] == "indicator")] = 1.0
                else:
                    block[kept.index(values[i]) if values[i] in kept else len(kept)] = 1.0
                rows[i] += block
        else:
            for i in range(n):
                y = naive_apply_value(values[i], valid[i], fitted, f["log1p"])
                assert y is not None
                rows[i].append(y)
                if f["indicator"]:
                    rows[i].append(0.0 if valid[i] else 1.0)
    width = len(d["fitted"]["feature_names_out"])
    return np.array(rows, dtype=np.float64).astype(dtype).reshape(n, width)


def same_bits(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return a.shape == b.shape and a.dtype == b.dtype and a.tobytes() == b.tobytes()


def assert_close_stats(got, expected, rtol=1e-10):
    for key, e in expected.items():
        g = got[key]
        if e is None or isinstance(e, (int, str, bool)):
            assert g == e, (key, g, e)
        else:
            assert g == pytest.approx(e, rel=rtol, abs=rtol), (key, g, e)


# ----------------------------------------------------------------------------- data
def random_numeric(n, rng, kind="float64", null_rate=0.2, skew=False):
    if kind == "int":
        x = rng.integers(0, 1000, n)
    elif kind == "bool":
        x = rng.random(n) < 0.3
    else:
        x = rng.lognormal(2, 2 if skew else 1, n) if skew else rng.normal(10, 3, n)
        x = x.astype(kind)
    mask = rng.random(n) < null_rate if null_rate else None
    return pa.array(x, mask=mask)


def random_strings(n, rng, n_distinct=12, null_rate=0.1):
    words = [f"c{j:02d}" for j in range(n_distinct)]
    p = np.geomspace(1, 0.05, n_distinct)
    idx = rng.choice(n_distinct, n, p=p / p.sum())
    return pa.array([words[i] for i in idx], mask=rng.random(n) < null_rate if null_rate else None)


def customers(n, seed=0, null_rate=0.2):
    rng = np.random.default_rng(seed)
    return pa.table({
        "monetary": random_numeric(n, rng, "float64", null_rate, skew=True),
        "f32": random_numeric(n, rng, "float32", null_rate),
        "orders": random_numeric(n, rng, "int", null_rate),
        "opt_in": random_numeric(n, rng, "bool", 0.0),
        "region": random_strings(n, rng),
    })


FULL_SPEC = [
    {"column": "monetary", "log1p": True, "clip": [0.01, 0.99], "impute": "median", "indicator": True},
    {"column": "f32", "scale": "robust", "impute": 0.5, "clip": [0.05, 0.9]},
    {"column": "orders", "impute": "median", "scale": None},
    "opt_in",
    {"column": "region", "one_hot": True, "max_categories": 5},
]


# ----------------------------------------------------------------------------- kernels vs twins
def random_bits(n, rng, offset, null_rate):
    valid = rng.random(n) >= null_rate
    bits = np.packbits(np.concatenate([np.zeros(offset, bool), valid]), bitorder="little")
    return valid, bits


@pytest.mark.parametrize("in_dtype", DTYPES)
@pytest.mark.parametrize("out_dtype", DTYPES)
@pytest.mark.parametrize("n", [0, 1, 7, 257])
def test_apply_numeric_matches_twin(in_dtype, out_dtype, n):
    rng = np.random.default_rng(n)
    for trial in range(6):
        offset = int(rng.integers(0, 8))
        values = (rng.lognormal(1, 2, n) * (1 if trial % 2 else -1) ** (rng.random(n) < 0.1)).astype(in_dtype)
        values[rng.random(n) < 0.05] = np.nan if trial == 5 else 1.0
        valid, bits = random_bits(n, rng, offset, 0.3)
        has_bits = trial != 1
        impute = float(rng.normal()) if trial != 2 else 0.0
        st_ = {"impute_value": abs(impute) if trial != 2 else None,
               "clip_low": 0.3 if trial % 3 else None, "clip_high": 2.5 if trial % 3 else None,
               "center": float(rng.normal()), "scale": float(rng.uniform(0.1, 3))}
        log1p = trial in (0, 3, 5)
        out = np.full((n, 3), -7.0, dtype=out_dtype)
        problems = np.zeros(3, dtype=np.int64)
        lo, hi = (1, n - 1) if n > 2 else (0, n)
        kt.apply_numeric(values, bits if has_bits else NO_BITS, offset if has_bits else 0, lo, hi,
                         st_["impute_value"] or 0.0, st_["impute_value"] is not None, log1p,
                         st_["clip_low"] or 0.0, st_["clip_high"] or 0.0, st_["clip_low"] is not None,
                         st_["center"], st_["scale"], 2, 0, out, problems)
        expected_problems = [0, 0, 0]
        for i in range(n):
            if not lo <= i < hi:
                assert out[i, 2] == -7 and out[i, 0] == -7
                continue
            ok = valid[i] or not has_bits
            assert out[i, 0] == (0.0 if ok else 1.0)
            y = naive_apply_value(values[i], ok, st_, log1p)
            if y is None:
                assert np.isnan(out[i, 2])
                x = values[i]
                if not ok:
                    expected_problems[0] += 1
                elif not np.isfinite(x):
                    expected_problems[1] += 1
                else:
                    expected_problems[2] += 1
            else:
                assert same_bits(out[i, 2], out_dtype(y)), (i, out[i, 2], y)
        assert problems.tolist() == expected_problems


@pytest.mark.parametrize("out_dtype", DTYPES)
@pytest.mark.parametrize("n", [0, 1, 9, 300])
@pytest.mark.parametrize("null_col", ["indicator", "other", "error"])
def test_apply_one_hot_matches_twin(out_dtype, n, null_col):
    rng = np.random.default_rng(n)
    offset = int(rng.integers(0, 8))
    n_dict, width = 6, 4
    codes = rng.integers(0, n_dict, n).astype(np.int32)
    valid, bits = random_bits(n, rng, offset, 0.25)
    codes[~valid] = 99  # null slots may hold anything
    lookup = rng.integers(0, width - 1, n_dict).astype(np.int32)
    first = 2
    col = {"indicator": first + width - 1, "other": first + width - 2, "error": -1}[null_col]
    out = np.full((n, first + width + 1), 5.0, dtype=out_dtype)
    problems = np.zeros(1, dtype=np.int64)
    kt.apply_one_hot(codes, bits, offset, 0, n, lookup, first, width, col, out, problems)
    expected = np.full_like(out, 5.0)
    expected[:, first:first + width] = 0
    for i in range(n):
        if valid[i]:
            expected[i, first + lookup[codes[i]]] = 1
        elif col >= 0:
            expected[i, col] = 1
    assert same_bits(out, expected)
    assert problems[0] == (0 if col >= 0 else int((~valid).sum()))


@pytest.mark.parametrize("in_dtype", DTYPES)
@pytest.mark.parametrize("n", [0, 1, BLOCK_ROWS - 1, BLOCK_ROWS + 3, 3 * BLOCK_ROWS + 17])
@pytest.mark.parametrize("log1p", [False, True])
def test_moments_match_numpy_and_ignore_batch_edges(in_dtype, n, log1p):
    rng = np.random.default_rng(n + log1p)
    offset = 3
    values = rng.lognormal(5, 2, n).astype(in_dtype)
    valid, bits = random_bits(n, rng, offset, 0.2)
    results = []
    for step in (n or 1, 1000, 333, 1):
        buf = np.empty(BLOCK_ROWS)
        state = np.array([-1, 0, 0], dtype=np.int64)
        moments = np.array([0.0, 0.0, np.inf, -np.inf])
        problems = np.zeros(2, dtype=np.int64)
        for lo in range(0, n, step):
            hi = min(n, lo + step)
            # a batch as a view sees its own slice of the bitmap, at bit offset (offset + lo) % 8
            k = offset + lo
            kt.accumulate_moments(values[lo:hi], bits[k // 8:], k % 8, lo, log1p, buf, state, moments,
                                  problems)
        kt.merge_block(buf, state, moments)
        results.append((state.copy(), moments.copy()))
    x = values[valid].astype(np.float64)
    t = np.log1p(x) if log1p else x
    state, moments = results[0]
    assert state[2] == x.size
    if x.size:
        assert moments[0] == pytest.approx(t.mean(), rel=1e-12)
        assert moments[1] / x.size == pytest.approx(t.var(), rel=1e-10)
        assert (moments[2], moments[3]) == (x.min(), x.max())
    for s, m in results[1:]:
        assert same_bits(s, state) and same_bits(m, moments)


@pytest.mark.parametrize("n,k,step", [(0, 5, 3), (10, 20, 3), (1000, 50, 77), (5000, 300, 1024), (5000, 300, 5000)])
def test_sample_is_the_k_smallest_priorities(n, k, step):
    from segmint.pipeline.features import NumericFeature
    from segmint.pipeline.features.stats import _NumericStats
    rng = np.random.default_rng(n)
    values = rng.normal(size=n)
    valid = rng.random(n) > 0.3
    table = pa.table({"x": pa.array(values, mask=~valid)})
    acc = _NumericStats(NumericFeature("x", clip=(0.1, 0.9)), k)
    for batch in segmint.open(table).batches(batch_size=step):
        acc.update(batch["x"], batch.start)
    acc._compact()
    got = np.sort(acc.values[:acc.fill[0]])
    rows = np.flatnonzero(valid)
    keys = [naive_priority(int(r)) for r in rows]
    assert keys == naive_priorities(rows).tolist()
    chosen = rows[np.argsort(np.array(keys, dtype=np.uint64), kind="stable")[:k]]
    assert same_bits(got, np.sort(values[chosen]))


@given(st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=40), st.integers(0, 30),
       st.floats(-1e6, 1e6), st.lists(st.floats(0, 1), min_size=1, max_size=5))
@settings(max_examples=200, deadline=None)
def test_quantiles_with_fill_match_numpy(values, m, fill, qs):
    T = np.sort(np.asarray(values))
    full = np.sort(np.concatenate([T, np.full(m, fill)]))
    np.testing.assert_allclose(_quantiles(T, fill, m, qs), np.quantile(full, qs), rtol=1e-13, atol=1e-9)


# ----------------------------------------------------------------------------- fit vs full-data twin
@pytest.mark.parametrize("n,batch_size", [(1, 1), (2, 1), (37, 1), (37, 10), (1001, 10), (1001, 1 << 20)])
def test_fit_statistics_exact_below_sample_size(n, batch_size):
    table = customers(n, seed=n, null_rate=0.2 if n > 10 else 0.0)
    spec = FeatureSpec(FULL_SPEC).fit(table, batch_size=batch_size)
    stats = spec.stats_
    for f in spec.to_dict()["columns"]:
        if f.get("one_hot"):
            strings, valid = column_of(table, f["column"])
            cats, counts = naive_categories(strings, valid, f["max_categories"])
            s = stats[f["column"]]
            assert (s["categories"], s["category_counts"]) == (cats, counts)
            assert s["nulls"] == int((~valid).sum())
            assert s["other_count"] == int(valid.sum()) - sum(counts)
        else:
            x, valid = column_of(table, f["column"])
            assert_close_stats(stats[f["column"]], naive_numeric_stats(x, valid, f))
            assert stats[f["column"]]["sampled"] is False


@pytest.mark.parametrize("scale", ["standard", "robust", None])
@pytest.mark.parametrize("clip", [None, [0.0, 1.0], [0.1, 0.8]])
@pytest.mark.parametrize("impute", [None, "median", 3.0])
@pytest.mark.parametrize("log1p", [False, True])
def test_every_option_combination_against_twin(scale, clip, impute, log1p):
    rng = np.random.default_rng(zlib.crc32(repr((scale, clip, impute, log1p)).encode()))
    n = 523
    x = rng.lognormal(1, 1.5, n)
    null_rate = 0.15 if impute is not None else 0.0
    table = pa.table({"x": pa.array(x, mask=rng.random(n) < null_rate)})
    f = {"column": "x", "log1p": log1p, "clip": clip, "scale": scale, "impute": impute,
         "indicator": impute is not None}
    spec = FeatureSpec([f]).fit(table, batch_size=100)
    values, valid = column_of(table, "x")
    assert_close_stats(spec.stats_["x"], naive_numeric_stats(values, valid, f))
    for dtype in DTYPES:
        X = spec.transform(table, dtype=dtype, batch_size=77)
        assert X.flags.c_contiguous and X.dtype == dtype
        assert same_bits(X, naive_transform(table, spec, dtype))


@pytest.mark.parametrize("source", ["table", "chunked", "ipc", "parquet", "reader"])
def test_statistics_identical_for_any_batch_size_and_format(source, tmp_path):
    n = 9000
    table = customers(n, seed=5)
    if source == "chunked":
        data = pa.Table.from_batches(table.to_batches(max_chunksize=1234))
    elif source == "ipc":
        data = tmp_path / "c.arrow"
        feather.write_feather(table, data, compression="uncompressed", chunksize=2000)
    elif source == "parquet":
        data = tmp_path / "c.parquet"
        pq.write_table(table, data, row_group_size=1500)
    elif source == "reader":
        data = None  # one pass only: a fresh reader for every fit
    else:
        data = table
    # sample_size below the column sizes: the sampled statistics must not move either
    reference = FeatureSpec(FULL_SPEC, sample_size=500).fit(table, batch_size=1 << 20).to_dict()
    for batch_size in (1, 4095, 4096, 777) if source == "table" else (1000, 1 << 20):
        if batch_size == 1:
            small = table.slice(0, 300)
            one = FeatureSpec(FULL_SPEC, sample_size=50).fit(small, batch_size=1).to_dict()
            assert one == FeatureSpec(FULL_SPEC, sample_size=50).fit(small, batch_size=300).to_dict()
            continue
        fresh = data if data is not None else pa.RecordBatchReader.from_batches(
            table.schema, table.to_batches(max_chunksize=2500))
        spec = FeatureSpec(FULL_SPEC, sample_size=500).fit(fresh, batch_size=batch_size)
        assert spec.to_dict() == reference
        if data is None:  # a reader has no row count: transform collects its batches
            fresh = pa.RecordBatchReader.from_batches(table.schema, table.to_batches(max_chunksize=2500))
            assert same_bits(spec.transform(fresh), spec.transform(table))
    assert reference["fitted"]["columns"][0]["sampled"] is True


def test_sampled_statistics_are_the_statistics_of_the_sample():
    """Above sample_size, quantiles are those of the k rows of smallest priority (plus nulls
    in proportion), and unclipped moments stay exact."""
    n, k = 20_000, 1500
    rng = np.random.default_rng(3)
    x = rng.lognormal(3, 1.2, n)
    valid = rng.random(n) > 0.1
    table = pa.table({"x": pa.array(x, mask=~valid)})
    f = {"column": "x", "log1p": True, "impute": "median", "scale": "robust", "clip": [0.02, 0.97]}
    s = FeatureSpec([f], sample_size=k).fit(table).stats_["x"]
    rows = np.flatnonzero(valid)
    chosen = np.sort(x[rows[np.argsort(naive_priorities(rows))[:k]]])
    med = float(np.median(chosen))
    assert s["impute_value"] == pytest.approx(med, rel=1e-14) and s["sampled"]
    n_fill = round((~valid).sum() * k / valid.sum())
    a = np.log1p(np.concatenate([chosen, np.full(n_fill, med)]))
    lo, hi = np.quantile(a, f["clip"])
    a = np.clip(a, lo, hi)
    q25, q50, q75 = np.quantile(a, [0.25, 0.5, 0.75])
    assert_close_stats(s, {"clip_low": lo, "clip_high": hi, "center": q50, "scale": q75 - q25}, rtol=1e-12)
    # standard scaling without clip: exact streaming moments whatever the sample
    g = FeatureSpec([{"column": "x", "log1p": True, "impute": "median"}], sample_size=k).fit(table).stats_["x"]
    full = np.log1p(np.where(valid, x, g["impute_value"]))
    assert_close_stats(g, {"center": full.mean(), "scale": full.std()}, rtol=1e-11)


def test_sampled_clipped_standardisation_is_close_on_heavy_skew():
    """Above sample_size, clip bounds are quantiles of the sample (a rank error of about
    sqrt(q (1 - q) / k)) and the mean/std of clipped values are the sample's: check both
    errors on heavily skewed spend."""
    n, k = 200_000, 20_000
    rng = np.random.default_rng(11)
    x = rng.lognormal(2, 2.0, n)  # heavy tail: max/median ~ e^9
    valid = rng.random(n) > 0.05
    table = pa.table({"spend": pa.array(x, mask=~valid)})
    for log1p in (False, True):
        f = {"column": "spend", "log1p": log1p, "clip": [0.01, 0.99], "impute": "median"}
        spec = FeatureSpec([f], sample_size=k).fit(table)
        s = spec.stats_["spend"]
        assert s["sampled"]
        a = np.where(valid, x, s["impute_value"])
        a = np.log1p(a) if log1p else a
        # the median and the bounds are where they should be in rank
        assert abs(np.mean(x[valid] <= s["impute_value"]) - 0.5) < 4 * math.sqrt(0.25 / k)
        for q, bound in ((0.01, s["clip_low"]), (0.99, s["clip_high"])):
            assert abs(np.mean(a <= bound) - q) < 4 * math.sqrt(q * (1 - q) / k)
        # given those bounds, the sample's mean and std of clipped values are those of all rows
        # within 5 standard errors: sqrt(1 / k) for the mean (in stds), sqrt((kurtosis - 1) / 4k)
        # for the std (relative): 9 % at k = 20,000 for raw lognormal(2, 2) spend, 2.4 % with log1p
        c = np.clip(a, s["clip_low"], s["clip_high"])
        kurtosis = np.mean((c - c.mean()) ** 4) / c.var() ** 2
        rel = 5 * math.sqrt((kurtosis - 1) / (4 * k))
        assert rel < (0.1 if not log1p else 0.03)
        assert abs(s["center"] - c.mean()) < 5 * c.std() / math.sqrt(k)
        assert s["scale"] == pytest.approx(c.std(), rel=rel)
        X = spec.transform(table)
        assert X[:, 0].std() == pytest.approx(1.0, rel=rel)


# ----------------------------------------------------------------------------- transform
@pytest.mark.parametrize("n", [0, 1, 2, 37, 1001])
@pytest.mark.parametrize("dtype", DTYPES)
def test_transform_matches_twin_bit_for_bit(n, dtype):
    table = customers(max(n, 50), seed=n)
    spec = FeatureSpec(FULL_SPEC).fit(table)
    part = table.slice(0, n)
    X = spec.transform(part, dtype=dtype, batch_size=13)
    assert X.shape == (n, spec.n_features_out_) and X.dtype == dtype and X.flags.c_contiguous
    assert same_bits(X, naive_transform(part, spec, dtype))


def test_float32_output_is_float64_output_rounded_once():
    table = customers(3000, seed=2)
    spec = FeatureSpec(FULL_SPEC).fit(table)
    assert same_bits(spec.transform(table, dtype=np.float32),
                     spec.transform(table, dtype=np.float64).astype(np.float32))


def test_feature_names_and_slices():
    table = customers(500, seed=1)
    spec = FeatureSpec(FULL_SPEC).fit(table)
    cats = spec.stats_["region"]["categories"]
    assert spec.feature_names_out_ == (["monetary", "monetary__missing", "f32", "orders", "opt_in"]
                                       + [f"region={c}" for c in cats] + ["region__other", "region__missing"])
    assert spec.feature_slices_["monetary"] == slice(0, 2)
    assert spec.feature_slices_["region"] == slice(5, 5 + len(cats) + 2)
    assert spec.n_features_out_ == len(spec.feature_names_out_)
    assert spec.input_columns == ["monetary", "f32", "orders", "opt_in", "region"]


def test_transform_batch_into_preallocated_output_and_threads():
    table = customers(5000, seed=4)
    spec = FeatureSpec(FULL_SPEC).fit(table)
    expected = spec.transform(table)
    src = segmint.open(table)
    out = np.full((table.num_rows + 5, spec.n_features_out_), np.nan)
    batches = list(src.batches(columns=spec.input_columns, batch_size=700))
    for b in batches:
        got = spec.transform_batch(b, buffer=out[b.start:b.start + b.num_rows])
        assert got.base is out or got.base is out.base
    assert same_bits(out[:table.num_rows], expected)
    assert np.isnan(out[table.num_rows:]).all()
    with ThreadPoolExecutor(2) as pool:
        parts = list(pool.map(lambda b: spec.transform_batch(b), batches))
    assert same_bits(np.concatenate(parts), expected)
    assert same_bits(spec.transform(batches[2]), expected[batches[2].start:batches[2].start + 700])
    with pytest.raises(ValueError, match="at least 700 rows and exactly"):
        spec.transform_batch(batches[0], buffer=np.empty((10, spec.n_features_out_)))
    with pytest.raises(ValueError, match="C-contiguous"):
        spec.transform_batch(batches[0], buffer=np.empty((spec.n_features_out_, 700)).T)
    with pytest.raises(ValueError, match="float32 or float64"):
        spec.transform_batch(batches[0], buffer=np.empty((700, spec.n_features_out_), dtype=np.int64))


def test_one_hot_cap_ties_unseen_and_codes_of_other_sources(tmp_path):
    fit_data = pa.table({"r": pa.array(["b", "a", "c", "a", "b", "d", "c", "e", None], type=pa.string())})
    spec = FeatureSpec([{"column": "r", "one_hot": True, "max_categories": 3}]).fit(fit_data)
    # a, b, c tie at 2: kept by name; d and e (1 each) go to other
    s = spec.stats_["r"]
    assert s["categories"] == ["a", "b", "c"] and s["category_counts"] == [2, 2, 2]
    assert (s["other_count"], s["nulls"]) == (2, 1)
    assert spec.feature_names_out_ == ["r=a", "r=b", "r=c", "r__other", "r__missing"]
    # another source: other dictionary order, an unseen category, dictionary-encoded, in parquet
    new = pa.table({"r": pa.array(["zz", "c", None, "a", "d", "b"]).dictionary_encode()})
    path = tmp_path / "new.parquet"
    pq.write_table(new, path, row_group_size=2)
    expected = np.array([[0, 0, 0, 1, 0], [0, 0, 1, 0, 0], [0, 0, 0, 0, 1],
                         [1, 0, 0, 0, 0], [0, 0, 0, 1, 0], [0, 1, 0, 0, 0]], dtype=np.float64)
    for data in (new, path, new.to_pandas()):
        assert same_bits(spec.transform(data, batch_size=4), expected)


def test_one_hot_null_modes():
    data = pa.table({"r": pa.array(["x", None, "y", "x"])})
    other = FeatureSpec([{"column": "r", "one_hot": True, "null": "other"}]).fit(data)
    assert other.feature_names_out_ == ["r=x", "r=y", "r__other"]
    assert other.transform(data).tolist() == [[1, 0, 0], [0, 0, 1], [0, 1, 0], [1, 0, 0]]
    strict = FeatureSpec([{"column": "r", "one_hot": True, "null": "error"}])
    with pytest.raises(FeatureError, match=r"column 'r' has 1 null and \"null\": \"error\""):
        strict.fit(data)
    strict.fit(data.slice(2))
    assert strict.transform(data.slice(2)).tolist() == [[0, 1, 0], [1, 0, 0]]
    with pytest.raises(FeatureError, match="1 null"):
        strict.transform(data)
    # all-null string column: only the other and missing columns
    empty = pa.table({"r": pa.array([None, None], type=pa.string())})
    spec = FeatureSpec([{"column": "r", "one_hot": True}]).fit(empty)
    assert spec.feature_names_out_ == ["r__other", "r__missing"]
    assert spec.transform(data).tolist() == [[1, 0], [0, 1], [1, 0], [1, 0]]


def test_edge_columns_constant_all_null_one_row():
    data = pa.table({"c": [5.0] * 7, "z": pa.array([None] * 7, type=pa.float64()),
                     "i": pa.array([3] * 7, type=pa.int8())})
    spec = FeatureSpec(["c", {"column": "z", "impute": 2.0, "indicator": True},
                        {"column": "i", "scale": "robust", "clip": [0.1, 0.9]}]).fit(data)
    for col in ("c", "z", "i"):
        assert spec.stats_[col]["scale"] == 1.0  # constant: std/IQR 0 -> scale 1
    X = spec.transform(data)
    assert X.tolist() == [[0.0, 0.0, 1.0, 0.0]] * 7
    assert spec.stats_["z"]["min"] is None and spec.stats_["z"]["count"] == 0
    with pytest.raises(FeatureError, match="'z' has only nulls .7.*median is undefined"):
        FeatureSpec([{"column": "z", "impute": "median"}]).fit(data)
    row = customers(1, seed=9, null_rate=0.0)
    one = FeatureSpec(FULL_SPEC).fit(row)
    X = one.transform(row)
    # constant columns give 0 under standard and robust scaling; 'orders' is unscaled
    assert X[0, :5].tolist() == [0.0, 0.0, 0.0, column_of(row, "orders")[0][0], 0.0]
    with pytest.raises(FeatureError, match="no rows"):
        FeatureSpec(["c"]).fit(data.slice(0, 0))


def test_inverse_transform_recovers_input_units():
    table = customers(800, seed=6, null_rate=0.0)
    spec = FeatureSpec([{"column": "monetary", "log1p": True}, {"column": "orders", "scale": "robust"},
                        {"column": "region", "one_hot": True}]).fit(table)
    X = spec.transform(table)
    back = spec.inverse_transform(X)
    np.testing.assert_allclose(back[:, 0], column_of(table, "monetary")[0], rtol=1e-10)
    np.testing.assert_allclose(back[:, 1], column_of(table, "orders")[0], rtol=1e-12)
    assert same_bits(back[:, 2:], X[:, 2:])


# ----------------------------------------------------------------------------- save / load
def test_round_trip_through_json_is_bit_identical(tmp_path):
    table = customers(4000, seed=8)
    spec = FeatureSpec(FULL_SPEC, sample_size=1000).fit(table)
    d = spec.to_dict()
    text = json.dumps(d)
    loaded = FeatureSpec.from_dict(json.loads(text))
    assert loaded.to_dict() == d
    for dtype in DTYPES:
        assert same_bits(loaded.transform(table, dtype=dtype), spec.transform(table, dtype=dtype))
    unfitted = FeatureSpec.from_dict(json.loads(json.dumps(FeatureSpec(FULL_SPEC).to_dict())))
    with pytest.raises(NotFittedError, match="not fitted"):
        unfitted.transform(table)
    assert not hasattr(unfitted, "feature_names_out_")


def _saved():
    return FeatureSpec(FULL_SPEC).fit(customers(300, seed=1)).to_dict()


@pytest.mark.parametrize("mutate,message", [
    (lambda d: d.pop("columns"), "missing 'columns'"),
    (lambda d: d.update(format="pickle"), "not a saved feature spec"),
    (lambda d: d.update(version=99), "version 99"),
    (lambda d: d.update(colums=[]), "unknown key 'colums'; did you mean 'columns'"),
    (lambda d: d["fitted"]["columns"].pop(), "expected a list of 5 entries"),
    (lambda d: d["fitted"]["columns"][0].update(scale=-1.0), r"columns\[0\].*scale: expected a positive"),
    (lambda d: d["fitted"]["columns"][0].update(center="1"), "center: expected a finite number"),
    (lambda d: d["fitted"]["columns"][0].pop("clip_low"), "missing 'clip_low'"),
    (lambda d: d["fitted"]["columns"][2].update(clip_low=0.0), "does not clip"),
    (lambda d: d["fitted"]["columns"][4].update(category_counts=[1]), "category_counts: expected 5"),
    (lambda d: d["fitted"]["columns"][4].update(categories=["a"] * 5), "categories repeat"),
    (lambda d: d["fitted"].update(n_rows=-3), "n_rows: expected a non-negative integer"),
    (lambda d: d["fitted"].update(feature_names_out=["x"]), "does not match"),
    (lambda d: d["columns"][0].update(clip=[0.9, 0.1]), "0 <= low < high <= 1"),
])
def test_from_dict_rejects_malformed_input(mutate, message):
    d = _saved()
    mutate(d)
    with pytest.raises(FeatureSpecError, match=message):
        FeatureSpec.from_dict(d)


# ----------------------------------------------------------------------------- errors
@pytest.mark.parametrize("features,message", [
    ([{"column": "m", "scael": "robust"}], "column 'm': unknown key 'scael'; did you mean 'scale'"),
    ([{"column": "m", "scale": "robus"}], "did you mean 'robust'"),
    ([{"column": "m", "clip": [0.5, 1.5]}], "0 <= low < high <= 1"),
    ([{"column": "m", "clip": [5, 95]}], "quantiles, not values"),
    ([{"column": "m", "clip": 0.99}], "two quantiles"),
    ([{"column": "m", "indicator": True}], "needs 'impute'"),
    ([{"column": "m", "impute": "mean"}], "'impute' must be 'median', a number or None"),
    ([{"column": "m", "log1p": True, "impute": -1}], "log1p needs values >= 0"),
    ([{"column": "m", "log1p": 1}], "'log1p' must be True or False"),
    ([{"column": "r", "one_hot": True, "log1p": True}], "'log1p' applies to numeric columns"),
    ([{"column": "r", "max_categories": 3}], "add \"one_hot\": True"),
    ([{"column": "r", "one_hot": True, "max_categories": 0}], "positive integer"),
    ([{"column": "r", "one_hot": True, "null": "drop"}], "'null' must be one of"),
    ([{"log1p": True}], "missing 'column'"),
    (["m", "m"], "appears more than once"),
    ([], "at least one column"),
    ("monetary", "list of column specs"),
    ([3], "expected a column name or a dict"),
])
def test_spec_errors_are_eager_and_name_the_column(features, message):
    with pytest.raises(FeatureSpecError, match=message):
        FeatureSpec(features)


def test_data_errors_name_column_and_count():
    data = pa.table({"m": pa.array([1.0, -2.0, -3.0, 4.0]), "n": pa.array([1.0, None, None, None]),
                     "f": pa.array([1.0, np.nan, np.inf, 2.0], from_pandas=False),
                     "r": pa.array(["a", "b", "c", "d"]), "d": pa.array([1, 2, 3, 4], type=pa.int32()).cast(pa.date32())})
    with pytest.raises(FeatureError, match=r"'m' has 2 negative values, which log1p cannot take"):
        FeatureSpec([{"column": "m", "log1p": True}]).fit(data)
    with pytest.raises(FeatureError, match=r"'n' has 3 nulls and no imputation; add \"impute\""):
        FeatureSpec(["n"]).fit(data)
    with pytest.raises(FeatureError, match=r"'f' has 2 NaN or infinite values.*'n' has 3 nulls"):
        FeatureSpec(["f", "n"]).fit(data)
    with pytest.raises(FeatureError, match=r"'r' holds strings.*'one_hot': True"):
        FeatureSpec(["r"]).fit(data)
    with pytest.raises(FeatureError, match="'d' has type date32"):
        FeatureSpec(["d"]).fit(data)
    with pytest.raises(FeatureError, match="one_hot needs strings"):
        FeatureSpec([{"column": "m", "one_hot": True}]).fit(data)
    with pytest.raises(segmint.UnknownColumnError, match="did you mean 'm'"):
        FeatureSpec(["mm"]).fit(data)
    spec = FeatureSpec(["m"]).fit(data)
    with pytest.raises(FeatureError, match=r"cannot transform .*'m' has 1 null and no imputation"):
        spec.transform(pa.table({"m": pa.array([1.0, None])}))
    batch = next(segmint.open(pa.table({"m": pa.array([np.inf, 1.0, None])})).batches())
    with pytest.raises(FeatureError, match=r"rows 0..2: column 'm' has 1 null.*1 NaN or infinite value"):
        spec.transform_batch(batch)
    with pytest.raises(NotFittedError):
        FeatureSpec(["m"]).transform(data)


# ----------------------------------------------------------------------------- hypothesis
@st.composite
def numeric_cases(draw):
    n = draw(st.integers(1, 60))
    kind = draw(st.sampled_from(["float64", "float32", "int64", "uint8", "bool"]))
    if kind == "bool":
        values = draw(st.lists(st.booleans(), min_size=n, max_size=n))
    elif kind.startswith("float"):
        values = draw(st.lists(st.floats(0, 1e6, width=32 if kind == "float32" else 64), min_size=n, max_size=n))
    else:
        values = draw(st.lists(st.integers(0, 255), min_size=n, max_size=n))
    nulls = draw(st.lists(st.booleans(), min_size=n, max_size=n))
    impute = draw(st.sampled_from([None, "median", 0.0, 7.5]))
    if impute is None:
        nulls = [False] * n
    if impute == "median" and all(nulls):
        nulls[0] = False
    spec = {"column": "x", "log1p": draw(st.booleans()),
            "clip": draw(st.sampled_from([None, [0.0, 1.0], [0.1, 0.9], [0.25, 0.5]])),
            "scale": draw(st.sampled_from(["standard", "robust", None])), "impute": impute,
            "indicator": impute is not None and draw(st.booleans())}
    array = pa.array(np.asarray(values, dtype=kind if kind != "bool" else bool), mask=np.asarray(nulls))
    return pa.table({"x": array}), spec, draw(st.integers(1, 70))


@given(numeric_cases())
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_numeric_column_properties(case):
    table, f, batch_size = case
    spec = FeatureSpec([f]).fit(table, batch_size=batch_size)
    values, valid = column_of(table, "x")
    assert_close_stats(spec.stats_["x"], naive_numeric_stats(values, valid, f), rtol=1e-9)
    assert spec.to_dict() == FeatureSpec([f]).fit(table, batch_size=1 << 20).to_dict()
    for dtype in DTYPES:
        assert same_bits(spec.transform(table, dtype=dtype, batch_size=batch_size),
                         naive_transform(table, spec, dtype))


@given(st.lists(st.one_of(st.none(), st.sampled_from(["a", "b", "c", "d", "", "é", "other"])), min_size=1,
                max_size=50),
       st.integers(1, 5), st.sampled_from(["indicator", "other"]), st.integers(1, 60))
@settings(max_examples=60, deadline=None)
def test_one_hot_properties(strings, max_categories, null, batch_size):
    table = pa.table({"r": pa.array(strings, type=pa.string())})
    f = {"column": "r", "one_hot": True, "max_categories": max_categories, "null": null}
    spec = FeatureSpec([f]).fit(table, batch_size=batch_size)
    cats, counts = naive_categories(strings, [s is not None for s in strings], max_categories)
    assert spec.stats_["r"]["categories"] == cats and spec.stats_["r"]["category_counts"] == counts
    X = spec.transform(table, batch_size=batch_size)
    assert same_bits(X, naive_transform(table, spec, np.float64))
    assert (X.sum(axis=1) == 1).all()


def test_the_spec_is_passed_as_features_and_kept_as_given():
    import inspect
    given = ["frequency", {"column": "monetary", "log1p": True}]
    spec = FeatureSpec(features=given)
    assert list(inspect.signature(FeatureSpec).parameters) == ["features", "sample_size"]
    assert spec.features is given and [e.column for e in spec.entries] == ["frequency", "monetary"]
    assert spec.input_columns == ["frequency", "monetary"]
    assert repr(spec) == f"FeatureSpec({given!r})"
    assert FeatureSpec(spec.features).to_dict() == spec.to_dict()
