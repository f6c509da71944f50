"""Event aggregation on a Dask cluster: ``segmint.dask.aggregate`` beside a Dask DataFrame groupby.

Events: ten per ``--size`` unit (small 1M, medium 10M, large 100M events: the issue's figure,
24 bytes an event, 2.4 GB as Arrow; not tried here: the lead runs large alone and says whether
the machine holds it), over ``events / 20`` integer customer ids (small 50,000, large 5M),
unsorted, written as Parquet: files of 8 row groups of one chunk each (1M rows, or an eighth
of the events rounded down to 65,536 when that is less). Both run on the same LocalCluster of
2 worker processes, one thread each.

Group ``dask_aggregate[count,sum,min,max]``: per customer the number of events, the sum of
their amounts and the first and last event time (our ``frequency``, ``monetary``,
``first_event``, ``last_event``; every event qualifies). The peer is what a Dask user would
write: ``dd.read_parquet`` of the needed columns, ``groupby(id).agg`` with a tree reduction
when the groups are few (``split_out=1``) and a task shuffle of the partial aggregates over
``split_out`` partitions when they are many (the ids are integers already: categoricals
would only add a pass). Quality: customers on which both agree (count, min and max exactly,
the sum to 1e-12 relatively: the two add in different orders), which must be all of them.
Ours returns local segmint's full table (nine columns), gathered to the client, as the peer's
result is.
"""
import datetime as dt
import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import compare, record

distributed = pytest.importorskip("distributed", reason="the dask extra is not installed")
dd = pytest.importorskip("dask.dataframe", reason="the peer needs dask[dataframe]")

import segmint.dask as sd  # noqa: E402
from segmint.dask.chunks import ALIGN, CHUNK_ROWS  # noqa: E402

AS_OF = dt.datetime(2026, 10, 1, tzinfo=dt.timezone.utc)
GROUP = "dask_aggregate[count,sum,min,max]"
QUALITY = "customers equal"
WORKERS = 2


@pytest.fixture(scope="module")
def cluster_client():
    import logging

    cluster = distributed.LocalCluster(n_workers=WORKERS, threads_per_worker=1, processes=True,
                                       dashboard_address=":0", silence_logs=logging.ERROR)
    with cluster, distributed.Client(cluster) as client:
        yield client


@pytest.fixture(scope="module")
def event_folder(bench_dir, n_customers):
    """``10 * n_customers`` events over ``n_customers // 2`` ids, one row group per chunk."""
    n_events = 10 * n_customers
    folder = os.path.join(bench_dir, "dask_events")
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(0)
    as_of_us = int(AS_OF.timestamp() * 1e6)
    # row groups of one chunk each: a chunk task then reads exactly its row group (a chunk
    # inside a bigger row group decodes the group's rows up to its own end, see
    # segmint.dask.chunks.read_chunk)
    step = _rows_per_chunk(n_events)
    per_file = 8 * step
    for f, start in enumerate(range(0, n_events, per_file)):
        with pq.ParquetWriter(os.path.join(folder, f"events-{f:04d}.parquet"), pa.schema(
                [("customer_id", pa.int64()), ("ts", pa.timestamp("us", tz="UTC")), ("amount", pa.float64())])) as w:
            for lo in range(start, min(start + per_file, n_events), step):
                n = min(step, n_events - lo)
                w.write_table(pa.table({
                    "customer_id": rng.integers(0, max(n_events // 20, 1), n),
                    "ts": pa.array(as_of_us - rng.integers(0, 730 * 86_400_000_000, n), pa.timestamp("us", tz="UTC")),
                    "amount": np.round(rng.gamma(2.0, 30.0, n), 2),
                }), row_group_size=step)
    return folder, n_events


def _rows_per_chunk(n_events):
    """The default chunk, or fewer rows when that gives under 8 chunks (small sizes): some
    parallelism for both workers."""
    return int(min(CHUNK_ROWS, max(ALIGN, n_events // 8 // ALIGN * ALIGN)))


def run_segmint(client, folder, n_events):
    return sd.aggregate(folder, client=client, as_of=AS_OF, amount="amount",
                        rows_per_chunk=_rows_per_chunk(n_events), buckets=2 * WORKERS)


def run_dask(folder, n_events):
    frame = dd.read_parquet(folder, columns=["customer_id", "ts", "amount"])
    groups = n_events // 20
    split_out = 1 if groups <= 2_000_000 else max(2, frame.npartitions // 4)
    agg = frame.groupby("customer_id").agg(
        frequency=("ts", "count"), monetary=("amount", "sum"), first_event=("ts", "min"),
        last_event=("ts", "max"), split_out=split_out, shuffle_method="tasks")
    return agg.compute()


def _agreement(ours, theirs):
    t = ours.to_pandas().set_index("customer_id")
    theirs = theirs.reindex(t.index)
    same = ((t["frequency"].to_numpy() == theirs["frequency"].to_numpy())
            & (t["first_event"].to_numpy() == theirs["first_event"].to_numpy())
            & (t["last_event"].to_numpy() == theirs["last_event"].to_numpy())
            & np.isclose(t["monetary"].to_numpy(), theirs["monetary"].to_numpy(), rtol=1e-12, atol=0))
    return int(same.sum()), int(len(t))


def test_dask_aggregate(benchmark, cluster_client, event_folder):
    folder, n_events = event_folder
    compare(benchmark, GROUP, threads=WORKERS)
    run_segmint(cluster_client, folder, n_events)  # compile and load on the workers, untimed
    out = benchmark.pedantic(run_segmint, args=(cluster_client, folder, n_events), rounds=3,
                             iterations=1, warmup_rounds=1)
    matched, customers = _agreement(out, run_dask(folder, n_events))
    record(benchmark, quality=(QUALITY, matched, "equal"), events=n_events, customers=customers,
           workers=WORKERS, rows_per_chunk=_rows_per_chunk(n_events))


def test_peer_dask_groupby(benchmark, cluster_client, event_folder):
    folder, n_events = event_folder
    compare(benchmark, GROUP, impl="dask.dataframe", threads=WORKERS)
    theirs = benchmark.pedantic(run_dask, args=(folder, n_events), rounds=3, iterations=1, warmup_rounds=1)
    ours = run_segmint(cluster_client, folder, n_events)
    matched, customers = _agreement(ours, theirs)
    record(benchmark, quality=(QUALITY, matched, "equal"), events=n_events, customers=customers,
           workers=WORKERS, split_out=1 if n_events // 20 <= 2_000_000 else "npartitions/4")
