"""End-to-end batch scoring: a saved Segmenter scores the whole customer base into a file.

- ``score[to file]``: load the model, score the Parquet file of ``--size`` customers, write
  Parquet atomically (in this process, timed).
- ``score[peak memory, Nx]``: the same job in a fresh process over ``1x`` and ``5x`` the
  customers (large: 10M and 50M), recording the process's peak resident memory: it must not
  grow with the rows (streaming, bounded memory). The input is Parquet: a memory-mapped IPC
  file's pages would count in the resident set as they are read, though the OS can drop them.
"""
import os
import subprocess
import sys
import textwrap

import pytest

import segmint
from conftest import compare, record

SPEC = [{"column": "recency_days", "impute": "median", "indicator": True},
        {"column": "frequency", "log1p": True},
        {"column": "monetary", "log1p": True, "clip": [0.0, 0.995]},
        {"column": "sessions_30d", "log1p": True},
        {"column": "tenure_days", "scale": "robust"},
        {"column": "region", "one_hot": True, "max_categories": 6}]
RULES = [("no_consent", "not email_opt_in and not sms_opt_in"), ("never_bought", "frequency = 0")]
AS_OF = "2026-10-01"


@pytest.fixture(scope="module")
def model_path(customers_files, bench_dir):
    model = segmint.Segmenter(SPEC, clusterer=segmint.MiniBatchKMeans(n_clusters=8, random_state=0),
                              rules=segmint.RuleSet(RULES, default="customers"), id_column="customer_id",
                              fit_rows=200_000)
    model.fit(customers_files["ipc"], as_of=AS_OF)
    path = os.path.join(bench_dir, "model.seg")
    model.save(path)
    return path


def test_score_to_file(benchmark, model_path, customers_files, bench_dir, n_customers):
    out = os.path.join(bench_dir, "segments.parquet")
    model = segmint.load(model_path)
    model.score(segmint.make_customers(500, random_state=1), as_of=AS_OF)  # compile outside the timed region
    compare(benchmark, "score[to file]")
    benchmark.pedantic(lambda: segmint.load(model_path).score(customers_files["parquet"], out=out, as_of=AS_OF),
                       rounds=3, iterations=1)
    written = segmint.open(out)
    clustered = written.read(["distance"]).column("distance").null_count
    record(benchmark, quality=("rows written", written.num_rows, "equal"), rows=n_customers,
           rule_assigned=int(clustered))


# The child's own high-water mark: Linux's VmHWM starts afresh at exec, whereas ru_maxrss
# keeps the parent's resident size at fork (here, pytest holding the benchmark data).
SCORE_CHILD = textwrap.dedent("""
    import resource, sys, time
    import segmint

    def peak_kb():
        try:
            with open("/proc/self/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        return int(line.split()[1])
        except OSError:
            pass
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    model = segmint.load(sys.argv[1])
    t0 = time.perf_counter()
    model.score(sys.argv[2], out=sys.argv[3], as_of=sys.argv[4])
    elapsed = time.perf_counter() - t0
    print(peak_kb(), elapsed, segmint.open(sys.argv[3]).num_rows)
""")


@pytest.fixture(scope="module")
def peaks():
    return {}


@pytest.mark.parametrize("times", [1, 5])
def test_score_peak_memory(benchmark, times, model_path, bench_dir, n_customers, peaks):
    rows = n_customers * times
    data = os.path.join(bench_dir, f"customers_{times}x.parquet")
    if not os.path.exists(data):
        segmint.write_customers(data, rows, random_state=7)
    out = os.path.join(bench_dir, f"segments_{times}x.parquet")
    compare(benchmark, f"score[peak memory,{times}x]")

    def run():
        done = subprocess.run([sys.executable, "-c", SCORE_CHILD, model_path, data, out, AS_OF],
                              capture_output=True, text=True, check=True)
        return done.stdout.split()

    peak_kb, elapsed, written = benchmark.pedantic(run, rounds=1, iterations=1)
    peak_mb = int(peak_kb) / 1024
    peaks[times] = peak_mb
    record(benchmark, quality=("rows written", int(written), "equal"), rows=rows,
           peak_rss_mb=round(peak_mb, 1), score_seconds=float(elapsed))
    assert int(written) == rows
    os.remove(data)
    os.remove(out)
    if 1 in peaks and 5 in peaks:
        # five times the rows, about the same memory: streaming keeps it bounded
        assert peaks[5] < 1.25 * peaks[1] + 64, peaks
