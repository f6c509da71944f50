"""The metrics of choosing k (kernels/metrics.py, segmint.explain.sweep) against slow twins
written here and against scikit-learn's scores, to 1e-9."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import segmint
from segmint.explain import sweep as S
from segmint.kernels.metrics import take_ranks

sklearn_metrics = pytest.importorskip("sklearn.metrics")

DTYPES = (np.float32, np.float64)


# -- slow, obviously correct twins ----------------------------------------------------------------
def naive_label_scores(X, centers):
    """Labels (argmin, lowest index on ties), inertia, sums, counts and the mean simplified
    silhouette, all in float64 from the data's values."""
    X64 = np.asarray(X, dtype=np.float64)
    C = np.asarray(centers, dtype=np.float64)
    d2 = ((X64[:, None, :] - C[None, :, :]) ** 2).sum(axis=2)
    labels = d2.argmin(axis=1)
    order = np.sort(d2, axis=1)
    a, b = np.sqrt(order[:, 0]), np.sqrt(order[:, 1])
    top = np.maximum(a, b)
    s = np.where(top > 0, (b - a) / np.where(top > 0, top, 1), 0.0)
    k = C.shape[0]
    counts = np.bincount(labels, minlength=k)
    s[counts[labels] == 1] = 0.0
    sums = np.zeros((k, X.shape[1]))
    np.add.at(sums, labels, X64)
    return labels, order[:, 0].sum(), sums, counts, s.mean()


def naive_silhouette_values(X, labels):
    """scikit-learn's definition written out: O(n^2) distances, mean own (n-1) and other cluster."""
    X64 = np.asarray(X, dtype=np.float64)
    D = np.sqrt(((X64[:, None, :] - X64[None, :, :]) ** 2).sum(axis=2))
    out = np.zeros(len(X64))
    present = np.unique(labels)
    for i in range(len(X64)):
        own = labels == labels[i]
        if own.sum() == 1:
            continue
        a = D[i, own].sum() / (own.sum() - 1)
        b = min(D[i, labels == c].mean() for c in present if c != labels[i])
        top = max(a, b)
        out[i] = 0.0 if top == 0 else (b - a) / top
    return out


def close(a, b, rel=1e-9):
    return abs(a - b) <= rel * max(abs(a), abs(b), 1e-300)


def data(n, d, dtype, seed):
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(n, d)) * rng.uniform(0.5, 3, size=d)).astype(dtype)


# -- scores of a labeling, against scikit-learn ---------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("k", range(2, 8))
def test_every_score_of_a_labeling_equals_scikit_learns(dtype, k):
    n = 97 + 31 * k  # odd sizes
    X = data(n, 5, dtype, k)
    labels = np.random.default_rng(k).integers(0, k, n)
    X64 = X.astype(np.float64)  # scikit-learn rounds float32 distances to float32: compare exact values
    assert close(S.calinski_harabasz(X, labels), sklearn_metrics.calinski_harabasz_score(X64, labels))
    assert close(S.davies_bouldin(X, labels), sklearn_metrics.davies_bouldin_score(X64, labels))
    assert close(S.silhouette(X, labels), sklearn_metrics.silhouette_score(X64, labels))


def test_an_empty_cluster_is_left_out_as_scikit_learn_never_sees_it():
    X = data(203, 4, np.float64, 1)
    labels = np.random.default_rng(1).choice([0, 2, 3, 5], size=203)  # 1 and 4 empty
    assert close(S.calinski_harabasz(X, labels), sklearn_metrics.calinski_harabasz_score(X, labels))
    assert close(S.davies_bouldin(X, labels), sklearn_metrics.davies_bouldin_score(X, labels))
    assert close(S.silhouette(X, labels), sklearn_metrics.silhouette_score(X, labels))


def test_a_one_row_cluster_scores_as_in_scikit_learn():
    X = data(151, 3, np.float64, 2)
    labels = np.random.default_rng(2).integers(0, 3, 151)
    labels[17] = 3  # alone: its silhouette is 0 by convention
    assert close(S.calinski_harabasz(X, labels), sklearn_metrics.calinski_harabasz_score(X, labels))
    assert close(S.davies_bouldin(X, labels), sklearn_metrics.davies_bouldin_score(X, labels))
    assert close(S.silhouette(X, labels), sklearn_metrics.silhouette_score(X, labels))


def test_identical_points_follow_scikit_learns_conventions():
    X = np.tile([[1.0, 2.0, 3.0]], (40, 1))
    labels = np.arange(40) % 2
    assert S.silhouette(X, labels) == sklearn_metrics.silhouette_score(X, labels) == 0.0
    assert S.calinski_harabasz(X, labels) == sklearn_metrics.calinski_harabasz_score(X, labels) == 1.0
    assert S.davies_bouldin(X, labels) == sklearn_metrics.davies_bouldin_score(X, labels) == 0.0
    two = np.r_[np.zeros((10, 2)), np.tile([[3.0, 4.0]], (7, 1))]  # two groups of identical points
    lab2 = np.r_[np.zeros(10, int), np.ones(7, int)]
    assert S.silhouette(two, lab2) == sklearn_metrics.silhouette_score(two, lab2) == 1.0
    assert S.davies_bouldin(two, lab2) == sklearn_metrics.davies_bouldin_score(two, lab2) == 0.0


def test_a_single_cluster_has_no_score_where_scikit_learn_raises():
    X = data(30, 2, np.float64, 3)
    labels = np.zeros(30, int)
    assert np.isnan(S.calinski_harabasz(X, labels))
    assert np.isnan(S.silhouette(X, labels))
    with pytest.raises(ValueError):
        sklearn_metrics.silhouette_score(X, labels)


# -- the fused pass against its twin -----------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n,k", [(1, 2), (127, 2), (129, 5), (1000, 7), (70_001, 3)])
def test_the_fused_pass_equals_its_slow_twin(dtype, n, k):
    X = data(n, 6, dtype, n)
    centers = data(k, 6, dtype, n + 1)
    labels, inertia, sums, counts, simple = S.label_scores(X, centers)
    t_labels, t_inertia, t_sums, t_counts, t_simple = naive_label_scores(X, centers)
    np.testing.assert_array_equal(labels, t_labels)
    np.testing.assert_array_equal(counts, t_counts)
    np.testing.assert_allclose(sums, t_sums, rtol=1e-12, atol=1e-9)
    rel = 1e-5 if dtype == np.float32 else 1e-12  # distances in the data's dtype
    assert abs(inertia - t_inertia) <= rel * t_inertia
    assert abs(simple - t_simple) <= (1e-4 if dtype == np.float32 else 1e-12)


def test_ties_go_to_the_lowest_center_and_a_row_on_two_centers_scores_zero():
    X = np.array([[0.0, 0.0], [1.0, 0.0]])
    centers = np.array([[0.5, 0.0], [0.5, 0.0], [9.0, 9.0]])
    labels, inertia, _, counts, simple = S.label_scores(X, centers)
    assert labels.tolist() == [0, 0] and counts.tolist() == [2, 0, 0]
    assert inertia == 0.5 and simple == 0.0


def test_several_fits_in_one_pass_give_the_bits_of_one_at_a_time():
    X = data(150_001, 5, np.float32, 4)
    fits = [data(k, 5, np.float32, k) for k in (2, 5, 9)]
    together = S.label_scores_many(X, fits)
    for centers, joint in zip(fits, together):
        alone = S.label_scores(X, centers)
        np.testing.assert_array_equal(alone[0], joint[0])
        assert alone[1] == joint[1] and alone[4] == joint[4]
        np.testing.assert_array_equal(alone[2], joint[2])
    spreads = S.centroid_scores_many(X, [(lab, sums, counts) for lab, _, sums, counts, _ in together])
    for (lab, _, sums, counts, _), pair in zip(together, spreads):
        assert S.centroid_scores(X, lab, sums, counts) == pair


def test_every_figure_is_the_same_bits_on_one_thread_or_two():
    X = data(200_003, 7, np.float32, 5)  # four chunks
    centers = data(6, 7, np.float32, 6)

    def run():
        labels, inertia, sums, counts, simple = S.label_scores(X, centers)
        ch, db = S.centroid_scores(X, labels, sums, counts)
        rows, bounds = S.stratified_sample(labels, counts, 3000, np.random.default_rng(0))
        values = S.silhouette_values(X, rows, bounds)
        table = S.contingency_table(labels, labels[::-1].copy(), 6, 6)
        return labels, inertia, sums, simple, ch, db, values, table

    with segmint.threads(1):
        one = run()
    with segmint.threads(2):
        two = run()
    for a, b in zip(one, two):
        np.testing.assert_array_equal(a, b)


# -- the exact silhouette on a sample --------------------------------------------------------------
@pytest.mark.parametrize("m,k", [(2, 2), (9, 3), (517, 4), (1030, 7)])
def test_the_silhouette_kernel_equals_its_twin_and_scikit_learn_on_the_same_rows(m, k):
    X = data(m, 4, np.float64, m)
    labels = np.random.default_rng(m).integers(0, k, m).astype(np.int32)
    counts = np.bincount(labels, minlength=k)
    rows, bounds = S.stratified_sample(labels, counts, m, np.random.default_rng(0))
    values = S.silhouette_values(X, rows, bounds)
    np.testing.assert_allclose(values, naive_silhouette_values(X[rows], labels[rows]), rtol=1e-9, atol=1e-12)
    if 1 < np.count_nonzero(counts) < m:
        assert close(float(values.mean()), sklearn_metrics.silhouette_score(X[rows], labels[rows]))


@pytest.mark.parametrize("d", [1, 3, 8, 13, 20])
def test_the_silhouette_kernel_equals_its_twin_for_any_number_of_features(d):
    # the distance kernel takes features eight, then four, then one at a time: every mix
    X = data(300, d, np.float32, d)
    X[7] = X[3]  # identical rows are exactly 0 apart
    labels = np.random.default_rng(d).integers(0, 3, 300).astype(np.int32)
    counts = np.bincount(labels, minlength=3)
    rows, bounds = S.stratified_sample(labels, counts, 300, np.random.default_rng(0))
    values = S.silhouette_values(X, rows, bounds)
    np.testing.assert_allclose(values, naive_silhouette_values(X[rows], labels[rows]), rtol=1e-9, atol=1e-12)
    assert close(float(values.mean()), sklearn_metrics.silhouette_score(X[rows].astype(np.float64), labels[rows]))


def test_the_stratified_sample_is_proportional_with_a_floor_and_stays_in_its_clusters():
    rng = np.random.default_rng(7)
    labels = rng.choice(4, size=100_000, p=[0.7, 0.25, 0.0499, 0.0001]).astype(np.int32)
    counts = np.bincount(labels, minlength=4)
    rows, bounds = S.stratified_sample(labels, counts, 1000, np.random.default_rng(1))
    sizes = np.diff(bounds)
    expected = 1000 * counts / counts.sum()
    assert np.all(np.abs(sizes[:3] - expected[:3]) <= 1)
    assert sizes[3] == min(counts[3], S.MIN_PER_CLUSTER)
    assert len(np.unique(rows)) == len(rows)
    for c in range(4):
        assert np.all(labels[rows[bounds[c]:bounds[c + 1]]] == c)
    again, _ = S.stratified_sample(labels, counts, 1000, np.random.default_rng(1))
    np.testing.assert_array_equal(rows, again)


@given(st.lists(st.integers(0, 4), min_size=1, max_size=200), st.data())
@settings(max_examples=60, deadline=None)
def test_take_ranks_finds_the_rows_of_each_rank(labels, draw):
    labels = np.array(labels, dtype=np.int32)
    counts = np.bincount(labels, minlength=5)
    ranks, starts = [], [0]
    for c in range(5):
        chosen = sorted(draw.draw(st.sets(st.integers(0, max(counts[c] - 1, 0)), max_size=int(counts[c]))))
        ranks += chosen
        starts.append(len(ranks))
    out = np.empty(len(ranks), dtype=np.int64)
    take_ranks(labels, np.array(ranks, dtype=np.int64), np.array(starts, dtype=np.int64), out)
    for c in range(5):
        where = np.flatnonzero(labels == c)
        np.testing.assert_array_equal(out[starts[c]:starts[c + 1]], where[ranks[starts[c]:starts[c + 1]]])


def test_the_bootstrap_interval_holds_the_mean_and_repeats_with_its_seed():
    values = np.random.default_rng(3).uniform(-1, 1, 5000)
    low, high = S.bootstrap_interval(values, 200, np.random.default_rng(9))
    assert low < values.mean() < high and high - low < 0.1
    assert (low, high) == S.bootstrap_interval(values, 200, np.random.default_rng(9))
    assert all(np.isnan(S.bootstrap_interval(values, 0, np.random.default_rng(9))))


# -- contingency and the adjusted Rand index ----------------------------------------------------------
@given(st.lists(st.tuples(st.integers(0, 6), st.integers(0, 4)), min_size=1, max_size=300))
@settings(max_examples=100, deadline=None)
def test_the_contingency_table_and_ari_equal_their_twins(pairs):
    a = np.array([p[0] for p in pairs], dtype=np.int32)
    b = np.array([p[1] for p in pairs], dtype=np.int32)
    table = S.contingency_table(a, b, 7, 5)
    twin = np.zeros((7, 5), dtype=np.int64)
    np.add.at(twin, (a, b), 1)
    np.testing.assert_array_equal(table, twin)
    ours = S.adjusted_rand(a, b)
    theirs = sklearn_metrics.adjusted_rand_score(a, b)
    assert abs(ours - theirs) <= 1e-9 * max(1.0, abs(theirs))


def test_ari_on_a_million_rows_is_exact_where_pair_counts_pass_2_to_the_53():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 8, 1_000_003).astype(np.int32)
    b = np.where(rng.random(a.size) < 0.9, a, rng.integers(0, 8, a.size)).astype(np.int32)
    assert close(S.adjusted_rand(a, b), sklearn_metrics.adjusted_rand_score(a, b))
    assert S.adjusted_rand(a, a) == 1.0


@pytest.mark.parametrize("m", [5, 257, 1030])
def test_the_row_by_row_silhouette_agrees_with_the_symmetric_one(m, monkeypatch):
    # the row-by-row kernel serves many clusters on a large sample (partials too big)
    X = data(m, 3, np.float64, m + 7)
    labels = np.random.default_rng(m).choice([0, 1, 3, 4], size=m).astype(np.int32)  # 2 empty
    labels[-1] = 5  # a one-row cluster
    counts = np.bincount(labels)
    rows, bounds = S.stratified_sample(labels, counts, m, np.random.default_rng(0))
    symmetric = S.silhouette_values(X, rows, bounds)
    monkeypatch.setattr(S, "MAX_PARTIAL_BYTES", 0)
    by_row = S.silhouette_values(X, rows, bounds)
    np.testing.assert_allclose(by_row, symmetric, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(by_row, naive_silhouette_values(X[rows], labels[rows]), rtol=1e-9, atol=1e-12)


# -- labels of any values, weighted samples, pooled intervals -------------------------------------
def test_labels_outside_0_to_k_minus_1_score_as_in_scikit_learn():
    rng = np.random.default_rng(7)
    X = data(300, 3, np.float64, 7)
    labels = rng.choice(np.array([-1, 0, 3]), size=300)
    X[labels == 3] += 4.0
    assert close(S.calinski_harabasz(X, labels), sklearn_metrics.calinski_harabasz_score(X, labels))
    assert close(S.davies_bouldin(X, labels), sklearn_metrics.davies_bouldin_score(X, labels))
    assert close(S.silhouette(X, labels), sklearn_metrics.silhouette_score(X, labels))
    other = rng.choice(np.array([-5, 2, 9, 100]), size=300)
    assert close(S.adjusted_rand(labels, other), sklearn_metrics.adjusted_rand_score(labels, other))


@pytest.mark.parametrize("labels,words", [
    (np.array([0.5, 1.5, 0.5]), "whole numbers"),
    (np.array(["a", "b", "a"]), "whole numbers"),
    (np.zeros((3, 1), dtype=int), "one-dimensional"),
    (np.array([0, 1]), "2 values for the 3 rows"),
])
def test_labels_that_are_not_cluster_codes_are_refused(labels, words):
    X = data(3, 2, np.float64, 0)
    for score in (S.calinski_harabasz, S.davies_bouldin, S.silhouette):
        with pytest.raises(segmint.errors.ParameterError, match=words):
            score(X, labels)


def test_the_weighted_sample_silhouette_estimates_the_whole_datas_despite_the_floor():
    # one wide cluster of 7,670 rows and 11 tight ones of 30: the floor of 10 sampled rows per
    # cluster takes the tight ones about 3x too often, and their silhouette is near 1
    rng = np.random.default_rng(3)
    centers = np.vstack([np.zeros(2), 40 + 25 * rng.normal(size=(11, 2))])
    sizes = [7670] + [30] * 11
    labels = np.repeat(np.arange(12), sizes).astype(np.int32)
    X = centers[labels] + rng.normal(size=(labels.size, 2)) * np.where(labels == 0, 6.0, 0.3)[:, None]
    exact = sklearn_metrics.silhouette_score(X, labels)
    counts = np.bincount(labels)
    weighted, plain = [], []
    for seed in range(5):
        rows, bounds = S.stratified_sample(labels, counts, 800, np.random.default_rng(seed))
        values = S.silhouette_values(X, rows, bounds)
        weights = S.sample_weights(counts, bounds)
        weighted.append(S._mean_silhouette(values, np.diff(bounds), weights))
        plain.append(values.mean())
        # resampled within each cluster, as drawn: the interval holds the weighted mean
        low, high = S.bootstrap_interval(values, 100, np.random.default_rng(seed), weights, bounds)
        assert low <= weighted[-1] <= high
    assert abs(np.mean(weighted) - exact) < 0.01
    assert abs(np.mean(plain) - exact) > 2 * abs(np.mean(weighted) - exact)
    # every row taken: weights of 1, the exact value
    rows, bounds = S.stratified_sample(labels, counts, labels.size, np.random.default_rng(0))
    assert np.all(S.sample_weights(counts, bounds) == 1.0)


def test_the_pooled_interval_covers_the_spread_between_seeds():
    rng = np.random.default_rng(0)
    fits = [rng.normal(0.3, 0.1, 2000), rng.normal(0.5, 0.1, 2000)]
    low, high = S.pooled_interval(fits, 400, np.random.default_rng(1))
    assert low < 0.31 and high > 0.49  # either seed may be drawn twice
    one = S.bootstrap_interval(fits[0], 400, np.random.default_rng(1))
    assert one[1] - one[0] < 0.05 and one[0] < fits[0].mean() < one[1]
    assert S.pooled_interval(fits, 400, np.random.default_rng(1)) == (low, high)  # repeats with its seed
    assert np.isnan(S.pooled_interval(fits, 0, rng)[0]) and np.isnan(S.pooled_interval([], 10, rng)[1])
