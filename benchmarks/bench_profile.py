"""Segment profiles beside Polars: 16 numeric and 2 string columns by 8 segments.

Data: the benchmark customers (``--size`` rows) with their 16 numeric columns, ``region`` and
``channel`` (dictionary strings), ``monetary`` as the revenue, and an int8 ``segment`` of 8 values
(the generator's 7 personas, persona 0 split in two by the parity of the id), written once to an
uncompressed Arrow IPC file that both engines memory-map (Polars through ``scan_ipc``).

Work (the same on both sides): per segment and for the whole base, the row count, per numeric
feature the count, mean, standard deviation, null count, median, p10 and p90, the revenue sum,
and per string column the rows of each (segment, category). Polars computes *exact* quantiles
(``interpolation="lower"``, our sketch's rank convention); ours come from the sketch, within
0.78% of the exact value.

Group ``profile[16 numeric + 2 string, 8 segments]``; quality figure: the largest relative
difference of the medians from Polars' exact ones (0 for Polars itself; lower is better).
"""
import os

import numpy as np
import pyarrow as pa
import pytest

import segmint
from conftest import compare, polars_threads, record
from segmint.explain.profile import profile
from segmint.kernels.sketch import RELATIVE_ERROR

GROUP = "profile[16 numeric + 2 string, 8 segments]"
QUALITY = "max relative error of medians"
NUMERIC = ["recency_days", "frequency", "monetary", "avg_order_value", "tenure_days", "days_between_orders",
           "age", "income_k", "sessions_30d", "pages_per_session", "email_opens_90d", "email_clicks_90d",
           "cart_abandonments_90d", "discount_share", "returns_count", "support_tickets"]
STRINGS = ["region", "channel"]


@pytest.fixture(scope="module")
def profile_file(customers_files, bench_dir):
    """The customers' profiled columns and an 8-valued ``segment``, as an uncompressed IPC file."""
    path = os.path.join(bench_dir, "profile_customers.arrow")
    if not os.path.exists(path):
        with pa.memory_map(customers_files["ipc"]) as f:
            table = pa.ipc.open_file(f).read_all()
        persona = table.column("true_segment").to_numpy().astype(np.int8)
        odd = (table.column("customer_id").to_numpy() % 2) == 1
        segment = np.where((persona == 0) & odd, np.int8(7), persona)
        table = table.select(NUMERIC + STRINGS).append_column("segment", pa.array(segment))
        with pa.OSFile(path, "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
            writer.write_table(table, max_chunksize=segmint.io.DEFAULT_BATCH_SIZE)
    return path


def run_segmint(path):
    return profile(path, segments="segment", features=NUMERIC, categories=STRINGS,
                                           revenue="monetary")


def run_polars(pl, path):
    # lazy scans of the IPC file (Polars memory-maps it) and one collect_all, so Polars plans and
    # runs the three queries together
    lf = pl.scan_ipc(path)
    stats = []
    for c in NUMERIC:
        col = pl.col(c)
        stats += [col.count().alias(f"{c}_count"), col.mean().alias(f"{c}_mean"),
                  col.std(ddof=0).alias(f"{c}_std"), col.null_count().alias(f"{c}_nulls"),
                  col.quantile(0.5, "lower").alias(f"{c}_median"), col.quantile(0.1, "lower").alias(f"{c}_p10"),
                  col.quantile(0.9, "lower").alias(f"{c}_p90")]
    stats += [pl.len().alias("rows"), pl.col("monetary").sum().alias("revenue")]
    queries = [lf.group_by("segment").agg(stats), lf.select(stats)]
    queries += [lf.group_by("segment", c).len() for c in STRINGS]
    per_segment, base, *categories = pl.collect_all(queries)
    return per_segment, base, categories


def exact_medians(pl, path):
    """Polars' exact ("lower") medians per (segment, feature), and of the base, by segment name."""
    per_segment, base, _ = run_polars(pl, path)
    out = {str(row["segment"]): [row[f"{c}_median"] for c in NUMERIC] for row in per_segment.iter_rows(named=True)}
    out[None] = [base[f"{c}_median"][0] for c in NUMERIC]
    return out


def median_error(profile, exact):
    t = profile.table.to_pydict()
    worst = 0.0
    for seg, feat, stat, val in zip(t["segment"], t["feature"], t["statistic"], t["value"]):
        if stat == "median":
            e = exact[seg][NUMERIC.index(feat)]
            if e is None or val is None:  # a segment whose values are all null, on both sides
                assert e is None and val is None, (seg, feat, e, val)
                continue
            worst = max(worst, abs(val - e) / abs(e) if e else abs(val))
    return worst


def test_profile(benchmark, profile_file):
    pl, _ = polars_threads()
    compare(benchmark, GROUP)
    run_segmint(profile_file)  # compile and warm the page cache outside the timed region
    result = benchmark.pedantic(run_segmint, args=(profile_file,), rounds=5, iterations=1, warmup_rounds=1)
    error = median_error(result, exact_medians(pl, profile_file))
    assert error <= RELATIVE_ERROR * (1 + 1e-9)
    record(benchmark, quality=(QUALITY, error, "lower"), rows=result.n_rows, segments=len(result.segments))


def test_peer_polars_profile(benchmark, profile_file):
    pl, threads = polars_threads()
    compare(benchmark, GROUP, impl="polars", threads=threads)
    per_segment, base, _ = benchmark.pedantic(run_polars, args=(pl, profile_file), rounds=5, iterations=1,
                                              warmup_rounds=1)
    assert per_segment.height == 8
    record(benchmark, quality=(QUALITY, 0.0, "lower"), rows=int(base["rows"][0]), segments=per_segment.height)
