"""Segment validation: the whole check, and its stability part (Hennig's clusterboot).

Data: the benchmark customers (``--size`` rows). A Segmenter (MiniBatchKMeans, k=8, on four
log-transformed behaviour columns) is fitted once, outside the timed region.

- ``validate[segmenter k=8]``: :func:`segmint.validate` with its defaults (one pass, 20 refits on a
  sample of up to 50,000 rows); quality: the rows judged (equal: every row, exactly once).
- ``clusterboot[k=8, 20 refits]``: Hennig's clusterboot on every 10th customer (at most 50,000) in
  the model's feature space; quality: the mean bootstrap Jaccard over clusters, over the seeds of
  :data:`conftest.SEEDS` (higher is better). No peer: scikit-learn has no clusterboot; the
  same loop refitting its MiniBatchKMeans (n_init=1) took about 100 s for the 8 clusterboots of
  this benchmark at the small size (2 shared cores, 2026-11-30): too long for CI's smoke run.
"""
import numpy as np
import pytest

import segmint
from conftest import SEEDS, compare, record
from segmint.explain.validate import clusterboot, validate

K = 8
REFITS = 20
SPEC = [{"column": c, "log1p": True} for c in ("frequency", "monetary", "tenure_days", "sessions_30d")]
GROUP_STABILITY = f"clusterboot[k={K}, {REFITS} refits]"


@pytest.fixture(scope="module")
def model(customers_files):
    clusterer = segmint.MiniBatchKMeans(n_clusters=K, random_state=0)
    return segmint.Segmenter(SPEC, clusterer=clusterer).fit(customers_files["ipc"])


@pytest.fixture(scope="module")
def sample(model, customers_files, n_customers):
    """Rows of the model's feature space and their clusters: every 10th customer, at most 50,000."""
    X = model.transform(customers_files["ipc"])[::10][:50_000]
    labels = np.asarray(model.clusterer_.predict(X), dtype=np.int64)
    return np.ascontiguousarray(X), labels


def test_validate(benchmark, model, customers_files):
    compare(benchmark, f"validate[segmenter k={K}]")
    validate(customers_files["ipc"], segments=model, n_bootstrap=1, sample_size=1000)  # compile outside
    result = benchmark.pedantic(validate, args=(customers_files["ipc"],), kwargs={"segments": model},
                                rounds=3, iterations=1)
    judged = sum(result.table.column("count").to_pylist())
    assert judged == result.n_rows
    record(benchmark, quality=("rows judged", judged, "equal"), rows=result.n_rows,
           findings=len(result.findings))


def test_clusterboot(benchmark, model, sample):
    X, labels = sample
    compare(benchmark, GROUP_STABILITY)
    clusterboot(X, labels, model.clusterer_, 1, 0)  # compile outside the timed region
    benchmark.pedantic(clusterboot, args=(X, labels, model.clusterer_, REFITS, 0), rounds=3, iterations=1)
    quality = [float(np.nanmean(clusterboot(X, labels, model.clusterer_, REFITS, s))) for s in SEEDS]
    record(benchmark, quality=("mean bootstrap Jaccard", quality, "higher"), rows=len(X))
