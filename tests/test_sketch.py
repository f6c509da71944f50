"""The quantile sketch (kernels/sketch.py) against numpy's exact quantiles."""
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from segmint.kernels import sketch as ks

QS = np.array([0.0, 0.1, 0.25, 0.5, 0.9, 0.99, 1.0])
BOUND = ks.RELATIVE_ERROR * (1 + 1e-12)


def sketch_of(values):
    counts = np.zeros(ks.N_BUCKETS, dtype=np.int64)
    ks.sketch_values(np.asarray(values, dtype=np.float64), counts)
    return counts


def quantiles(counts, qs=QS):
    out = np.empty(len(qs))
    ks.sketch_quantiles(counts, np.asarray(qs, dtype=np.float64), out)
    return out


def assert_within_bound(values, got, qs=QS):
    exact = np.quantile(np.asarray(values, dtype=np.float64), qs, method="lower")
    for q, e, g in zip(qs, exact, got):
        if abs(e) < ks.MIN_MAGNITUDE:
            assert g == 0.0, (q, e, g)
        else:
            assert abs(g - e) <= BOUND * abs(e), (q, e, g)


DISTRIBUTIONS = {
    "normal": lambda rng, n: rng.normal(100.0, 15.0, n),
    "lognormal": lambda rng, n: rng.lognormal(3.0, 2.0, n),
    "negatives": lambda rng, n: rng.normal(-5.0, 50.0, n),
    "zeros_and_values": lambda rng, n: np.where(rng.random(n) < 0.4, 0.0, rng.exponential(10.0, n)),
    "constant": lambda rng, n: np.full(n, 42.5),
    "heavy_ties": lambda rng, n: rng.integers(0, 4, n).astype(np.float64),
    "huge_around_1e9": lambda rng, n: 1e9 + rng.integers(-1, 2, n),
    "tiny": lambda rng, n: rng.normal(0.0, 1e-3, n),
}


@pytest.mark.parametrize("name", sorted(DISTRIBUTIONS))
@pytest.mark.parametrize("n", [1, 2, 7, 1000])
def test_quantiles_are_within_the_stated_relative_error_of_numpy_lower(name, n):
    rng = np.random.default_rng(n)
    values = DISTRIBUTIONS[name](rng, n)
    assert_within_bound(values, quantiles(sketch_of(values)))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(min_value=-1e12, max_value=1e12, allow_nan=False), min_size=1, max_size=200),
       st.floats(min_value=0.0, max_value=1.0))
def test_any_quantile_of_any_values_is_within_the_bound(values, q):
    assert_within_bound(values, quantiles(sketch_of(values), [q]), [q])


def test_merging_two_sketches_by_addition_equals_sketching_the_union():
    rng = np.random.default_rng(3)
    a, b = rng.lognormal(0, 3, 500), -rng.lognormal(1, 1, 300)
    merged = sketch_of(a) + sketch_of(b)
    np.testing.assert_array_equal(merged, sketch_of(np.concatenate([a, b])))
    np.testing.assert_array_equal(quantiles(merged), quantiles(sketch_of(np.concatenate([b, a]))))


def test_buckets_keep_the_order_of_values():
    rng = np.random.default_rng(5)
    values = np.sort(np.concatenate([rng.normal(0, 1e6, 2000), rng.normal(0, 1e-4, 500), [0.0, -0.0]]))
    buckets = [ks.bucket_of(float(x)) for x in values]
    assert buckets == sorted(buckets)


def test_magnitudes_beyond_the_range_are_reported_as_infinities_and_nan_is_skipped():
    counts = sketch_of([1e20, -1e20, 2e200, np.nan, np.inf])
    assert counts.sum() == 3
    low, median, high = quantiles(counts, [0.0, 0.5, 1.0])
    assert (low, median, high) == (-np.inf, np.inf, np.inf)
    assert ks.MAX_MAGNITUDE == 2.0 ** 64


@pytest.mark.parametrize("x", [2.0 ** 63, float(np.iinfo(np.int64).max), 9.2e18, -9.2e18,
                               float(np.iinfo(np.int64).min), 1.8e19, 2.0 ** 64 * (1 - 2 ** -53)])
def test_every_int64_magnitude_is_inside_the_range_and_within_the_bound(x):
    got = quantiles(sketch_of([x]), [0.5])[0]
    assert math.isfinite(got) and abs(got - x) <= BOUND * abs(x)


def test_large_values_keep_their_median_instead_of_a_clamped_edge():
    values = [1e15, 3e15, 5e18]
    assert quantiles(sketch_of(values), [0.5])[0] == pytest.approx(3e15, rel=BOUND)
    assert quantiles(sketch_of([1e200, 2e200]), [0.5])[0] == np.inf  # beyond 2^64: inf, not 2^64


def test_an_empty_sketch_has_nan_quantiles():
    assert np.isnan(quantiles(np.zeros(ks.N_BUCKETS, dtype=np.int64))).all()
