"""Choosing k: the elbow finders, ``sweep_k`` and its result, and ``segmint sweep``."""
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import segmint
from segmint.cli import main
from segmint.errors import ParameterError, SegmintError, SourceConsumedError, UnknownColumnError
from segmint.explain.elbow import MIN_CHORD_DISTANCE, chord, find_elbow, kneedle
from segmint.explain.sweep import METRICS, Sweep, sweep_k
from segmint.pipeline.features import FeatureSpec

sklearn_metrics = pytest.importorskip("sklearn.metrics")
KS = list(range(2, 13))


# -- elbows -------------------------------------------------------------------------------------
def chord_argmax(ks, y):
    """The independent reading: normalise both axes, the k farthest from the first-last line."""
    x = (np.array(ks, float) - ks[0]) / (ks[-1] - ks[0])
    y = np.asarray(y, float)
    y = (y - y.min()) / (y.max() - y.min())
    dist = np.abs(x + y - 1) / np.sqrt(2)  # the chord of a falling curve runs (0, 1) -> (1, 0)
    return ks[int(np.argmax(dist))]


@pytest.mark.parametrize("name,curve", [
    ("1/k", lambda k: 1 / k),
    ("exponential decay", lambda k: np.exp(-k / 2)),
    ("1/k^2 plus a floor", lambda k: 3 + 100 / k ** 2),
])
def test_clear_smooth_elbows_are_found_by_both_methods(name, curve):
    y = [curve(k) for k in KS]
    k, elbow = find_elbow(KS, y)
    assert k == elbow["kneedle"] == elbow["chord"] == chord_argmax(KS, y)
    assert 3 <= k <= 6 and "agree" in elbow["message"]


@pytest.mark.parametrize("corner", [3, 4, 5, 6, 8])
def test_a_piecewise_linear_elbow_is_found_at_its_corner(corner):
    y = [1000 - 100 * min(k, corner) - 10 * max(k - corner, 0) for k in KS]
    k, elbow = find_elbow(KS, y)
    assert k == corner and elbow["kneedle"] == corner and elbow["chord"] == corner


@given(st.integers(3, 9), st.floats(4, 50), st.floats(0.1, 10), st.floats(1, 1e9))
@settings(max_examples=60, deadline=None)
def test_any_sharp_corner_is_found(corner, ratio, late_slope, level):
    # a steep fall until the corner, then a fall ``ratio`` times gentler (kneed #31/#74: wrong
    # knees on curves as clear as these)
    y = [level + late_slope * ratio * (corner - min(k, corner)) - late_slope * max(k - corner, 0) for k in KS]
    assert find_elbow(KS, y)[0] == corner


def test_uneven_steps_of_k_are_placed_by_their_value():
    ks = [2, 4, 8, 16, 32]
    y = [100, 50, 10, 8, 6]
    assert find_elbow(ks, y)[0] == 8


def test_a_straight_line_has_no_clear_elbow():
    k, elbow = find_elbow(KS, [100 - 3 * k for k in KS])
    assert k is None and elbow["kneedle"] is None and elbow["chord"] is None
    assert elbow["message"].startswith("no clear elbow")


def test_a_nearly_straight_curve_has_no_clear_elbow():
    y = [100 - 3 * k + 0.02 * (k - 7) ** 2 for k in KS]
    k, elbow = find_elbow(KS, y)
    assert k is None and chord(KS, y)[1] < MIN_CHORD_DISTANCE


def test_noise_has_no_clear_elbow():
    for seed in range(20):
        y = 100 + np.random.default_rng(seed).normal(0, 1, len(KS))
        assert find_elbow(KS, y)[0] is None


@pytest.mark.parametrize("ks,y,why", [
    ([2, 3], [5, 1], "at least three"),
    (KS, [float(k) for k in KS], "does not fall"),
    (KS, [10.0] * len(KS), "does not fall"),
    (KS, [1 / k if k != 7 else 1.0 for k in KS], "uneven"),
    (KS, [1 / k if k != 7 else float("nan") for k in KS], "missing"),
])
def test_curves_without_an_elbow_say_why(ks, y, why):
    k, elbow = find_elbow(ks, y)
    assert k is None and why in elbow["message"]


def test_when_kneedle_finds_no_knee_the_chord_answers_if_significant():
    # the curve bends again before Kneedle's difference falls past its threshold
    y = [100, 60, 40, 30, 24, 20, 17, 15, 13.6, 12.5, 11.6]
    knee, (far_k, far) = kneedle(KS, y), chord(KS, y)
    k, elbow = find_elbow(KS, y)
    if knee is None or abs(knee - far_k) > 1:
        assert k == far_k and "farthest from the chord" in elbow["message"]
    else:
        assert k == knee
    assert far >= MIN_CHORD_DISTANCE


# -- sweep_k ---------------------------------------------------------------------------------------
def blobs(n=4000, centers=4, d=3, seed=0):
    rng = np.random.default_rng(seed)
    means = rng.uniform(-20, 20, size=(centers, d))
    which = rng.integers(0, centers, n)
    X = means[which] + rng.normal(size=(n, d))
    return pa.table({f"x{j}": X[:, j] for j in range(d)})


COLUMNS = ["x0", "x1", "x2"]


@pytest.fixture(scope="module")
def table():
    return blobs()


@pytest.fixture(scope="module")
def swept(table):
    return sweep_k(table, features=COLUMNS, ks=range(2, 9), n_seeds=3, clusterer="kmeans", n_bootstrap=50)


def test_the_sweep_finds_the_four_blobs(swept):
    assert swept.suggested_k == 4
    summary = swept.summary.to_pylist()
    best = max(summary, key=lambda r: r["silhouette"])
    assert best["k"] == 4 and best["stability"] > 0.99
    assert min(summary, key=lambda r: r["davies_bouldin"])["k"] == 4
    assert max(summary, key=lambda r: r["calinski_harabasz"])["k"] == 4


def test_the_sweep_table_has_a_row_per_k_and_seed_and_the_summary_medians(swept):
    assert swept.table.column_names == ["k", "seed", *METRICS]
    assert swept.table.num_rows == 7 * 3
    assert swept.table.column("seed").to_pylist()[:3] == [0, 1, 2]
    assert swept.summary.column_names == ["k", *METRICS, "stability"]
    rows = swept.table.to_pylist()
    for s in swept.summary.to_pylist():
        mine = [r for r in rows if r["k"] == s["k"]]
        for name in METRICS[:-2]:
            assert s[name] == float(np.median([r[name] for r in mine]))
        for r in mine:
            assert r["silhouette_low"] <= r["silhouette"] <= r["silhouette_high"]
        # the summary's interval resamples the seeds too: it holds the median, and it is wider
        # than one seed's when the seeds disagree more than a seed's rows vary
        seeds = [r["silhouette"] for r in mine]
        widths = [r["silhouette_high"] - r["silhouette_low"] for r in mine]
        assert s["silhouette_low"] <= s["silhouette"] <= s["silhouette_high"]
        if max(seeds) - min(seeds) > 2 * max(widths):
            assert s["silhouette_high"] - s["silhouette_low"] > max(widths)


def test_each_row_scores_its_fit_as_scikit_learn_does(table, swept):
    X = FeatureSpec(COLUMNS).fit_transform(table, dtype=np.float32)
    X64 = X.astype(np.float64)
    for row in swept.table.to_pylist()[::4]:
        km = segmint.KMeans(n_clusters=row["k"], n_init=1, random_state=row["seed"]).fit(X)
        d2 = ((X64[:, None, :] - km.cluster_centers_.astype(np.float64)[None]) ** 2).sum(axis=2)
        labels = d2.argmin(axis=1)
        assert abs(row["inertia"] - d2.min(axis=1).sum()) <= 1e-5 * row["inertia"]
        assert abs(row["calinski_harabasz"] / sklearn_metrics.calinski_harabasz_score(X64, labels) - 1) < 1e-9
        assert abs(row["davies_bouldin"] / sklearn_metrics.davies_bouldin_score(X64, labels) - 1) < 1e-9
        # 4,000 rows < sample_size: the silhouette is exact on every row
        assert abs(row["silhouette"] / sklearn_metrics.silhouette_score(X64, labels) - 1) < 1e-9


def test_the_result_round_trips_through_json_and_prints_its_caveats(swept, tmp_path):
    again = Sweep(json.loads(swept.to_json()))
    assert again.table.equals(swept.table) and again.summary.equals(swept.summary)
    assert again.suggested_k == swept.suggested_k and again.elbow == swept.elbow
    path = tmp_path / "sweep.json"
    assert swept.to_json(path) == path.read_text()
    text = str(swept)
    assert "suggested k: 4" in text and "silhouette" in text and "bootstrap 95% interval" in text
    assert [int(line.split()[0]) for line in text.splitlines()[1:8]] == list(range(2, 9))
    md = swept.to_markdown()
    assert md.startswith("| k | inertia |") and sum(line.startswith("|") for line in md.splitlines()) == 2 + 7


def test_a_sample_silhouette_says_it_is_an_estimate():
    result = sweep_k(blobs(3000), features=COLUMNS, ks=[3, 4, 5], n_seeds=1, sample_size=500, n_bootstrap=20)
    assert "a sample estimate" in str(result)
    assert result.summary.column("stability").to_pylist() == [None, None, None]  # one seed: no pairs


def test_the_sweep_is_the_same_bits_on_one_thread_or_two():
    data = blobs(140_000, seed=3)  # three chunks of the full-data passes
    runs = []
    for n in (1, 2):
        with segmint.threads(n):
            runs.append(sweep_k(data, features=COLUMNS, ks=[3, 4, 5], n_seeds=2, sample_size=2000,
                                n_bootstrap=20).to_dict())
    assert runs[0] == runs[1]  # the whole document: timings are kept out of it


@pytest.mark.parametrize("case", ["converging", "an empty cluster"])
def test_the_polish_gives_the_centers_of_lloyds_iterations_bit_for_bit(case):
    from segmint.cluster._matrix import Features
    from segmint.cluster.kmeans import _lloyd
    from segmint.explain.sweep import _polish
    rng = np.random.default_rng(4)
    X = np.ascontiguousarray((rng.normal(size=(5000, 3)) + rng.integers(0, 3, (5000, 1)) * 6).astype(np.float32))
    start = X[[0, 1, 2, 3]].copy()
    if case == "an empty cluster":
        start[3] = 1e4  # nearest to no row: moved onto the farthest row
    for n_iter in (1, 3, 50):
        expected = _lloyd(Features(X), start.copy(), None, n_iter, 0.0)[0]
        np.testing.assert_array_equal(_polish(X, start.copy(), n_iter), expected)


def test_the_sweeps_mini_batch_fits_are_the_estimators_without_its_own_passes():
    from segmint.cluster import MiniBatchKMeans
    X = np.asarray(blobs(20_000).to_pandas(), dtype=np.float32)
    full = MiniBatchKMeans(n_clusters=4, random_state=2, compute_labels=False).fit(X)
    lean = MiniBatchKMeans(n_clusters=4, random_state=2, compute_labels=False)
    lean._own_passes = False
    lean.fit(X)
    np.testing.assert_array_equal(lean.cluster_centers_, full.cluster_centers_)
    assert full.inertia_ > 0 and not hasattr(lean, "inertia_")


def test_a_polish_on_a_sample_of_the_rows_is_said_and_the_same_bits_on_any_threads(monkeypatch):
    from segmint.explain import sweep as S
    monkeypatch.setattr(S, "POLISH_ROWS", 3_000)
    data = blobs(20_000, seed=5)
    runs = []
    for n in (1, 2):
        with segmint.threads(n):
            runs.append(sweep_k(data, features=COLUMNS, ks=[3, 4], n_seeds=2, sample_size=500,
                                n_bootstrap=10).to_dict())
    assert runs[0] == runs[1]
    assert "at most 3,000 rows" in runs[0]["stability_note"]
    full = sweep_k(data, features=COLUMNS, ks=[3, 4], n_seeds=2, sample_size=500, n_bootstrap=10,
                   clusterer="kmeans").to_dict()
    for ours, lloyd in zip(runs[0]["summary"], full["summary"]):  # four blobs: as good as Lloyd's fits
        assert ours["inertia"] <= 1.01 * lloyd["inertia"]


def test_identical_runs_write_identical_documents(table, tmp_path):
    first, second = (sweep_k(table, features=COLUMNS, ks=[2, 3, 4], n_seeds=2, n_bootstrap=20) for _ in range(2))
    assert first.to_json() == second.to_json() and "timings" not in first.to_dict()
    assert set(first.timings) >= {"fit", "metrics", "silhouette", "stability", "reference"}


def test_fit_rows_fits_on_a_sample_and_scores_every_row(table):
    result = sweep_k(table, features=COLUMNS, ks=[3, 4, 5], n_seeds=2, fit_rows=800, n_bootstrap=10)
    assert result.to_dict()["fit_rows"] == 800 and result.n_rows == 4000
    assert result.suggested_k == 4 or result.elbow["kneedle"] == 4
    assert "800 sampled rows" in str(result)


def test_a_given_feature_spec_is_not_fitted_in_place(table):
    spec = FeatureSpec([{"column": "x0", "scale": "robust"}, "x1"])
    sweep_k(table, features=spec, ks=[2, 3], n_seeds=1, n_bootstrap=0)
    with pytest.raises(segmint.NotFittedError):
        spec.feature_names_out_


def test_fewer_distinct_points_than_clusters_leave_clusters_empty_without_failing():
    data = pa.table({"x0": np.repeat([0.0, 5.0, 9.0], 50), "x1": np.repeat([1.0, 2.0, 7.0], 50)})
    with pytest.warns(Warning):
        result = sweep_k(data, features=["x0", "x1"], ks=[2, 3, 4, 5], n_seeds=2, clusterer="kmeans",
                         n_bootstrap=10)
    rows = {r["k"]: r for r in result.summary.to_pylist()}
    assert rows[3]["inertia"] == 0.0 and rows[3]["silhouette"] == 1.0
    assert rows[5]["silhouette"] == 1.0  # two empty clusters are left out, as scikit-learn never sees them


@pytest.mark.parametrize("kwargs,words", [
    (dict(ks=[1, 2]), "at least 2 clusters"),
    (dict(ks=[2, 900]), "more clusters than the 500 rows"),
    (dict(ks=[2, 2000]), "at most 1,000"),
    (dict(ks=[]), "is empty"),
    (dict(ks="2-5"), "list or range"),
    (dict(ks=[2.5]), "whole numbers"),
    (dict(n_seeds=0), "n_seeds"),
    (dict(n_seeds=101), "<= 100"),
    (dict(clusterer="hdbscan"), "'minibatch', 'kmeans'"),
    (dict(sample_size=1), "sample_size"),
    (dict(sample_size=10 ** 6), "quadratic"),
    (dict(n_bootstrap=-1), "n_bootstrap"),
    (dict(random_state=-1), "random_state"),
    (dict(fit_rows=3, ks=[2, 4]), "fewer than the largest k"),
    (dict(batch_size=0), "batch_size"),
])
def test_bad_arguments_are_refused_naming_the_problem(table, kwargs, words):
    kwargs = dict(dict(features=COLUMNS, ks=[2, 3]), **kwargs)
    with pytest.raises(ParameterError, match=words.replace("(", r"\(")):
        sweep_k(table.slice(0, 500), **kwargs)


def test_missing_features_are_named(table):
    with pytest.raises(UnknownColumnError, match="x9"):
        sweep_k(table, features=["x0", "x9"], ks=[2, 3])
    with pytest.raises(ParameterError, match="features="):
        sweep_k(table, features=None, ks=[2, 3])
    with pytest.raises(SegmintError, match="list of column specs"):
        sweep_k(table, features="x0", ks=[2, 3])


def test_a_stream_read_once_is_refused_before_any_work(table):
    with pytest.raises(SourceConsumedError, match="read only once"):
        sweep_k(table.to_reader(), features=COLUMNS, ks=[2, 3])


# -- the command line ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def data_file(tmp_path_factory, table):
    path = tmp_path_factory.mktemp("sweep") / "blobs.arrow"
    segmint.write_table(table, str(path))
    return path


def test_segmint_sweep_prints_the_table_and_writes_each_format(data_file, tmp_path, capsys):
    out = tmp_path / "s.json"
    args = ["sweep", str(data_file), "--features", "x0,x1,x2", "--ks", "2-7", "--seeds", "2"]
    assert main(args + ["-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "suggested k: 4" in printed and "Calinski-Harabasz" in printed
    doc = json.loads(out.read_text())
    assert doc["ks"] == [2, 3, 4, 5, 6, 7] and doc["suggested_k"] == 4 and len(doc["table"]) == 12
    assert main(args + ["-o", str(tmp_path / "s.md")]) == 0
    assert (tmp_path / "s.md").read_text().startswith("| k |")
    assert main(args + ["-o", str(tmp_path / "s.parquet")]) == 0
    assert segmint.open(str(tmp_path / "s.parquet")).num_rows == 12


def test_segmint_sweep_takes_a_spec_file_and_a_list_of_k(data_file, tmp_path, capsys):
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"features": ["x0", {"column": "x1", "scale": "robust"}]}))
    assert main(["sweep", str(data_file), "--features", str(spec), "--ks", "2,4,3", "--seeds", "1"]) == 0
    assert "x 2 features" in capsys.readouterr().out


@pytest.mark.parametrize("extra,words", [
    (["--ks", "2-x"], "--ks takes"),
    (["--ks", "9-3"], "ends before it starts"),
    (["--ks", "1-3"], "--ks holds 1: choosing k needs at least 2 clusters"),
    (["--ks", "2-5000"], "--ks holds 5000: at most 1,000 clusters"),
    (["--fit-rows", "3", "--ks", "2-5"], "--fit-rows 3 is fewer than the largest k"),
    (["--seeds", "101"], "--seeds 101: must be at least 1 and at most 100"),
    (["--features", "x0,nope"], "nope"),
    (["-o", "out.txt"], "must end in"),
])
def test_segmint_sweep_refuses_bad_options_in_one_line(data_file, tmp_path, capsys, extra, words):
    args = ["sweep", str(data_file), "--features", "x0,x1", "--ks", "2-3"]
    for i in range(0, len(extra), 2):  # an option given twice: the last wins
        args += extra[i:i + 2]
    if "-o" in extra:
        args[args.index("-o") + 1] = str(tmp_path / "out.txt")
    assert main(args) == 1
    err = capsys.readouterr().err
    assert words in err and "Traceback" not in err


def test_a_huge_range_of_k_is_refused_at_once_in_a_bounded_process(data_file, tmp_path):
    # the bound a child process lives in: a sweep that would allocate per-k partials without a
    # limit, or start 100,000 fits, must end in one line well within it
    runner = tmp_path / "run.py"
    runner.write_text(textwrap.dedent(f"""
        import resource, sys
        resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))
        from segmint.cli import main
        sys.exit(main(["sweep", {str(data_file)!r}, "--features", "x0,x1", "--ks", "2-5000"]))
    """))
    proc = subprocess.run([sys.executable, str(runner)], capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, SEGMINT_NUM_THREADS="1"))
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr and "at most 1,000 clusters" in proc.stderr


@pytest.mark.parametrize("fit_rows", [None, 50])
@pytest.mark.parametrize("big", [1e20, 1e30])
def test_values_too_large_to_cluster_are_refused_naming_the_column_and_the_limit(fit_rows, big):
    x = np.random.default_rng(0).normal(size=200)
    x[123] = big  # unscaled: squared distances would overflow float32
    data = pa.table({"spend": x, "x1": np.arange(200.0)})
    with pytest.raises(segmint.SegmintError, match="beyond") as info:
        sweep_k(data, features=[{"column": "spend", "scale": None}, "x1"], ks=[2, 3], fit_rows=fit_rows)
    message = str(info.value)
    assert "'spend' holds" in message and "row 123" in message
    assert "infinite" not in message and "'x0'" not in message


# -- no clusters, no elbow; clear clusters, their number ---------------------------------------------
def _sweep_array(X, **kwargs):
    data = pa.table({f"f{j}": X[:, j] for j in range(X.shape[1])})
    spec = [{"column": f"f{j}", "scale": None} for j in range(X.shape[1])]
    return sweep_k(data, features=spec, **dict(dict(ks=KS, n_seeds=2, n_bootstrap=0, sample_size=500), **kwargs))


@pytest.mark.parametrize("d", [2, 4, 8, 16])
@pytest.mark.parametrize("shape", ["gaussian", "uniform"])
def test_data_without_clusters_has_no_clear_elbow(shape, d):
    # before the structureless reference, one Gaussian gave k = 4 at d = 2 and 6 at d = 8
    rng = np.random.default_rng(d)
    X = rng.normal(size=(6000, d)) if shape == "gaussian" else rng.uniform(size=(6000, d))
    result = _sweep_array(X)
    assert result.suggested_k is None
    assert result.elbow["message"].startswith("no clear elbow")
    assert len(result.to_dict()["reference_inertia"]) == len(KS)


def separated_blobs(c, d, n=6000, seed=0):
    """``c`` unit Gaussians 15 apart (on a circle in the first two features) in ``d`` dimensions."""
    rng = np.random.default_rng(seed)
    means = np.zeros((c, d))
    angle = 2 * np.pi * np.arange(c) / c
    radius = 15 / (2 * np.sin(np.pi / c))  # neighbours 15 apart
    means[:, 0], means[:, 1] = radius * np.cos(angle), radius * np.sin(angle)
    return means[rng.integers(0, c, n)] + rng.normal(size=(n, d))


@pytest.mark.parametrize("c", [3, 4, 6])
@pytest.mark.parametrize("d", [2, 8])
def test_clear_clusters_give_their_number(c, d):
    result = _sweep_array(separated_blobs(c, d, seed=c + d))
    assert result.suggested_k == c, result.elbow


def test_a_given_reference_only_removes_elbows_it_explains():
    curve = [100 / k for k in KS]
    assert find_elbow(KS, curve)[0] is not None
    k, elbow = find_elbow(KS, curve, reference=[7 / k for k in KS])  # falls the same: no structure
    assert k is None and "data without clusters" in elbow["message"]
    corner = [1000 - 190 * min(k, 5) - 5 * max(k - 5, 0) for k in KS]
    assert find_elbow(KS, corner, reference=[1000 / k ** 0.25 for k in KS])[0] == 5
    assert find_elbow(KS, corner, reference=[float("nan")] * len(KS))[0] == 5  # unusable: ignored


# -- never over the inputs ------------------------------------------------------------------------------
def test_to_json_refuses_to_write_over_the_data_it_read(data_file, tmp_path):
    import shutil
    copy = tmp_path / "copy.arrow"
    shutil.copy(data_file, copy)
    before = copy.read_bytes()
    result = sweep_k(str(copy), features=COLUMNS, ks=[2, 3], n_seeds=1, n_bootstrap=0)
    assert result.inputs == (str(copy),)
    with pytest.raises(segmint.OutputError):
        result.to_json(copy)
    assert copy.read_bytes() == before
    assert sweep_k(blobs(300), features=COLUMNS, ks=[2, 3], n_seeds=1).inputs == ()


def test_segmint_sweep_never_writes_over_its_spec_file(data_file, tmp_path, capsys):
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(["x0", "x1"]))
    before = spec.read_text()
    assert main(["sweep", str(data_file), "--features", str(spec), "--ks", "2-3", "--seeds", "1",
                 "-o", str(spec)]) == 1
    assert spec.read_text() == before and "Traceback" not in capsys.readouterr().err


# -- the wording follows the data -----------------------------------------------------------------------
def test_the_notes_say_sampled_only_when_the_sample_is_smaller_than_the_data(table):
    small = sweep_k(table.slice(0, 400), features=COLUMNS, ks=[2, 3], n_seeds=2, sample_size=1000, n_bootstrap=10)
    note = small.to_dict()["silhouette_note"]
    assert small.to_dict()["silhouette_sampled"] is False and "exact on all 400 rows" in note
    assert "sample estimate" not in note and "sampled" not in note
    big = sweep_k(table, features=COLUMNS, ks=[2, 3], n_seeds=2, sample_size=1000, n_bootstrap=10)
    assert big.to_dict()["silhouette_sampled"] is True and "a sample estimate" in str(big)
    assert big.silhouette_sampled and not small.silhouette_sampled
    assert "seed-to-seed" in str(big) and "run-to-run variation" in str(big)
