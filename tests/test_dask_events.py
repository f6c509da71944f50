"""segmint.dask.aggregate / btyd_summary against local segmint on a real LocalCluster."""
import datetime as dt
import json
import logging

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

distributed = pytest.importorskip("distributed", reason="segmint.dask needs the dask extra")
dd = pytest.importorskip("dask.dataframe", reason="dask DataFrame input needs dask[dataframe]")

import segmint  # noqa: E402
from segmint.errors import OutputError, ParameterError  # noqa: E402

sd_events = pytest.importorskip("segmint.dask.events")

AS_OF = dt.datetime(2026, 3, 1, tzinfo=dt.timezone.utc)
US_DAY = 86_400_000_000
CHUNK = 65_536
WINDOWS = {
    "spend_90d": {"agg": "sum", "last": "90d", "type": "purchase"},
    "views_30d": {"agg": "count", "last": "30d", "type": "view"},
    "spend_30_60d": {"agg": "sum", "between": ["30d", "60d"]},
    "orders_trend": {"agg": "trend", "last": "60d", "type": "purchase", "of": "count"},
    "spend_trend": {"agg": "trend", "last": "45d", "of": "sum"},
    "everything": {"agg": "count"},
}
KW = dict(amount="amount", event_type="event_type", qualifying="purchase", as_of=AS_OF)


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       dashboard_address=":0", silence_logs=logging.ERROR)
    with cluster, distributed.Client(cluster) as c:
        yield c


def event_log(n, seed, ids="int", amounts="dyadic", amount_type=pa.float64(), customers=3_000):
    """Unsorted events: a few null ids, null times, null amounts and events after as_of.

    ``dyadic`` amounts (quarters below 2,500) add exactly in any order; ``random`` amounts
    round, so their sums have the same bits only when added in the same order."""
    rng = np.random.default_rng(seed)
    as_of_us = int(AS_OF.timestamp() * 1e6)
    ts = as_of_us - rng.integers(-3 * US_DAY, 200 * US_DAY, n)
    cid = rng.integers(0, customers, n)
    if amounts == "dyadic":
        amount = rng.integers(0, 10_000, n) / 4
    else:
        amount = rng.gamma(2.0, 37.0, n) * rng.choice([1.0, 1e-3, 1e3], n)
    if ids == "int":
        id_array = pa.array(cid * 7 + 11, mask=rng.random(n) < 0.002)
    elif ids == "uint64":
        id_array = pa.array((cid.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)), pa.uint64(),
                            mask=rng.random(n) < 0.002)
    else:
        id_array = pa.array(np.char.add("cust-", cid.astype(str)).astype(object), mask=rng.random(n) < 0.002)
        if ids == "dict":
            id_array = id_array.dictionary_encode()
    return pa.table({
        "customer_id": id_array,
        "ts": pa.array(ts, pa.timestamp("us"), mask=rng.random(n) < 0.002),
        "amount": pa.array(amount, mask=rng.random(n) < 0.05).cast(amount_type),
        "event_type": pa.array(rng.choice(["purchase", "view", "cart"], n, p=[0.5, 0.3, 0.2])),
    })


def write_files(table, folder, files, row_group_size):
    folder.mkdir(parents=True, exist_ok=True)
    cuts = np.linspace(0, table.num_rows, files + 1).astype(int)
    for i in range(files):
        pq.write_table(table.slice(cuts[i], cuts[i + 1] - cuts[i]), folder / f"part-{i:03d}.parquet",
                       row_group_size=row_group_size)
    return str(folder)


def local_aggregate(path, **kw):
    return segmint.aggregate(path, **kw).table


@pytest.mark.parametrize("ids,files,row_group,buckets", [
    ("int", 1, 50_000, 1), ("dict", 3, 33_331, 7), ("plain", 2, 70_001, 64), ("uint64", 3, 9_999, 7)])
def test_aggregate_equals_local_bit_for_bit(client, tmp_path, ids, files, row_group, buckets):
    log = event_log(150_000, seed=files + buckets, ids=ids)
    path = write_files(log, tmp_path / "ev", files, row_group)
    kw = dict(KW, windows=WINDOWS)
    got = sd_events.aggregate(path, client=client, rows_per_chunk=CHUNK, buckets=buckets, **kw)
    assert got.equals(local_aggregate(path, **kw))
    report = json.loads(got.schema.metadata[b"segmint.events"])
    want = segmint.aggregate(path, **kw)
    assert report == dict(n_events=want.n_events, null_id=want.null_id,
                          null_timestamp=want.null_timestamp, after_as_of=want.after_as_of)


@pytest.mark.parametrize("amount_type", [pa.float32(), pa.float64()])
def test_random_amounts_equal_local_bit_for_bit(client, tmp_path, amount_type):
    # amounts that round (a running sum over all rows would differ from local's segment folds)
    log = event_log(300_000, seed=5, amounts="random", amount_type=amount_type, customers=500)
    path = write_files(log, tmp_path / "ev", 2, 40_000)
    kw = dict(KW, windows=WINDOWS)
    want = local_aggregate(path, **kw)
    for rows_per_chunk, buckets in [(CHUNK, 7), (3 * CHUNK, 2)]:  # chunks of 1 and 3 segments
        got = sd_events.aggregate(path, client=client, rows_per_chunk=rows_per_chunk, buckets=buckets, **kw)
        assert got.equals(want), rows_per_chunk
    kw = dict(KW, period="W")
    got = sd_events.btyd_summary(path, client=client, rows_per_chunk=CHUNK, buckets=3, **kw)
    assert got.equals(segmint.btyd_summary(path, **kw).table)


@pytest.mark.parametrize("ids", ["int", "dict"])
@pytest.mark.parametrize("period", ["D", "W"])
def test_btyd_equals_local(client, tmp_path, ids, period):
    log = event_log(150_000, seed=3, ids=ids)
    path = write_files(log, tmp_path / "ev", 2, 30_001)
    got = sd_events.btyd_summary(path, client=client, rows_per_chunk=CHUNK, buckets=7, period=period, **KW)
    assert got.equals(segmint.btyd_summary(path, period=period, **KW).table)


@pytest.mark.parametrize("unit", ["ms", "date32"])
def test_time_units_and_btyd(client, tmp_path, unit):
    log = event_log(140_000, seed=8, ids="dict")
    ts = log["ts"].cast(pa.timestamp("ms"), safe=False) if unit == "ms" else log["ts"].cast(pa.date32(), safe=False)
    log = log.set_column(1, "ts", ts)
    path = write_files(log, tmp_path / "ev", 1, 45_000)
    got = sd_events.btyd_summary(path, client=client, rows_per_chunk=CHUNK, buckets=7, period="W", **KW)
    assert got.equals(segmint.btyd_summary(path, period="W", **KW).table)
    kw = dict(KW, windows=WINDOWS)
    got = sd_events.aggregate(path, client=client, rows_per_chunk=CHUNK, buckets=7, **kw)
    assert got.equals(local_aggregate(path, **kw))


def test_dask_dataframe_any_partitions_same_bits(client, tmp_path):
    log = event_log(140_000, seed=9, ids="plain", amounts="random", customers=800)
    path = write_files(log, tmp_path / "ev", 1, 140_000)
    pdf = log.to_pandas()
    kw = dict(KW, windows=WINDOWS)
    results = [sd_events.aggregate(dd.from_pandas(pdf, npartitions=p, sort=False), client=client,
                                   rows_per_chunk=CHUNK, buckets=5, **kw) for p in (1, 3, 11)]
    from_parquet = sd_events.aggregate(path, client=client, rows_per_chunk=CHUNK, buckets=5, **kw)
    for r in results:
        assert r.equals(from_parquet)
    assert from_parquet.equals(local_aggregate(path, **kw))
    exact = event_log(140_000, seed=9, ids="int")
    frame = exact.to_pandas(types_mapper=pd.ArrowDtype)  # nullable int ids stay ints
    got = sd_events.aggregate(dd.from_pandas(frame, npartitions=4, sort=False), client=client,
                              rows_per_chunk=CHUNK, buckets=3, **kw)
    assert got.equals(segmint.aggregate(exact, **kw).table)


def test_workers_and_buckets_do_not_change_bits(client, tmp_path):
    log = event_log(140_000, seed=11, ids="dict", amounts="random", customers=700)
    path = write_files(log, tmp_path / "ev", 2, 25_000)
    kw = dict(KW, windows=WINDOWS)
    two = sd_events.aggregate(path, client=client, rows_per_chunk=CHUNK, buckets=64, **kw)
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                                  dashboard_address=":0") as one, distributed.Client(one) as c1:
        assert sd_events.aggregate(path, client=c1, rows_per_chunk=CHUNK, buckets=3, **kw).equals(two)
    assert sd_events.aggregate(path, client=client, rows_per_chunk=CHUNK, buckets=1, **kw).equals(two)
    assert two.equals(local_aggregate(path, **kw))


def test_empty_input_and_one_event(client, tmp_path):
    log = event_log(10, seed=1)
    empty = write_files(log.slice(0, 0), tmp_path / "empty", 1, 10)
    kw = dict(KW, windows=WINDOWS)
    got = sd_events.aggregate(empty, client=client, buckets=7, **kw)
    assert got.num_rows == 0 and got.equals(local_aggregate(empty, **kw))
    got = sd_events.btyd_summary(empty, client=client, **KW)
    assert got.num_rows == 0 and got.equals(segmint.btyd_summary(empty, **KW).table)
    one = event_log(200, seed=2).filter(pa.array([False] * 199 + [True]))
    one_path = write_files(one, tmp_path / "one", 1, 10)
    got = sd_events.aggregate(one_path, client=client, buckets=7, **kw)
    assert got.num_rows == 1 and got.equals(local_aggregate(one_path, **kw))


def test_output_folder_atomic_and_refused_over_foreign_folder(client, tmp_path):
    log = event_log(100_000, seed=4, ids="dict")
    path = write_files(log, tmp_path / "ev", 1, 30_000)
    kw = dict(KW, windows=WINDOWS)
    out = tmp_path / "agg"
    assert sd_events.aggregate(path, client=client, rows_per_chunk=CHUNK, buckets=7, output=out, **kw) == str(out)
    files = sorted(p.name for p in out.iterdir())
    assert files == sorted([f"part-{b:05d}.parquet" for b in range(7)] + ["_segmint_dataset.json"])
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary left
    back = pq.read_table(out)
    back = back.sort_by("customer_id")
    want = local_aggregate(path, **kw)
    assert back.cast(want.schema).equals(want)
    # a rerun replaces segmint's own dataset
    sd_events.aggregate(path, client=client, rows_per_chunk=CHUNK, buckets=3, output=out, **kw)
    assert len(list(out.glob("*.parquet"))) == 3
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(OutputError):
        sd_events.aggregate(path, client=client, output=foreign, **kw)
    assert [p.name for p in foreign.iterdir()] == ["notes.txt"]
    with pytest.raises(OutputError):  # never inside an input
        sd_events.aggregate(path, client=client, output=tmp_path / "ev" / "agg", **kw)


def test_bad_arguments_are_refused_before_any_task(client, tmp_path):
    path = write_files(event_log(100, seed=0), tmp_path / "ev", 1, 100)
    with pytest.raises(ParameterError, match="rows_per_chunk"):
        sd_events.aggregate(path, client=client, rows_per_chunk=1000, **KW)
    with pytest.raises(ParameterError, match="buckets"):
        sd_events.aggregate(path, client=client, buckets=0, **KW)
    with pytest.raises(ParameterError, match="window"):
        sd_events.aggregate(path, client=client, windows={"x": {"agg": "median"}}, **KW)
    with pytest.raises(segmint.errors.SegmintError, match="custmer_id|customer_id"):
        sd_events.aggregate(path, client=client, id_column="custmer_id", **KW)
    with pytest.raises(ParameterError, match="period"):
        sd_events.btyd_summary(path, client=client, period="M", **KW)


def test_a_bad_event_time_is_refused_naming_where(client, tmp_path):
    n = 70_000  # two chunks; the bad time in the second
    secs = np.full(n, 1_700_000_000, dtype=np.int64)
    secs[CHUNK + 5] = 400_000_000_000  # the year 14,645: beyond segmint's years 1 to 9999
    log = pa.table({"customer_id": np.arange(n) % 50, "ts": pa.array(secs, pa.timestamp("s"))})
    path = write_files(log, tmp_path / "ev", 1, 30_000)
    with pytest.raises(segmint.errors.DataError, match="row 5 .*global row 65,536"):
        sd_events.aggregate(path, client=client, rows_per_chunk=CHUNK, as_of=AS_OF)


def test_a_dask_dataframe_read_from_parquet_reads_only_its_columns_and_is_never_written_over(client, tmp_path):
    # the event type dictionary-encoded in the files: dd.read_parquet's meta holds a categorical of
    # unknown categories (Arrow: dictionary<null>); a junk object column the job never reads
    log = event_log(90_000, seed=21, ids="plain")  # (int ids with nulls read back as float64 in pandas)
    log = log.set_column(3, "event_type", log["event_type"].dictionary_encode())
    path = write_files(log, tmp_path / "ev", 2, 20_000)
    kw = dict(KW, windows=WINDOWS)
    frame = dd.read_parquet(path)
    assert pa.types.is_dictionary(pa.Schema.from_pandas(frame._meta, preserve_index=False)
                                  .field("event_type").type)
    got = sd_events.aggregate(frame, client=client, rows_per_chunk=CHUNK, buckets=3, **kw)
    assert got.equals(local_aggregate(path, **kw))
    mixed = log.to_pandas()
    mixed["notes"] = pd.Series([{"a": 1}, "text", 2.5] * 30_000, dtype=object)  # Arrow cannot type it
    got = sd_events.aggregate(dd.from_pandas(mixed, npartitions=3, sort=False), client=client,
                              rows_per_chunk=CHUNK, buckets=3, **kw)
    assert got.equals(local_aggregate(path, **kw))
    for out in (tmp_path / "ev", tmp_path / "ev" / "agg", tmp_path / "ev" / "part-000.parquet", tmp_path):
        with pytest.raises(OutputError):
            sd_events.aggregate(frame, client=client, rows_per_chunk=CHUNK, output=out, **kw)
    assert sorted(p.name for p in (tmp_path / "ev").iterdir()) == ["part-000.parquet", "part-001.parquet"]


def test_a_dask_dataframe_column_arrow_cannot_read_is_a_data_error_naming_it(client):
    import dask

    frame = pd.DataFrame({"customer_id": pd.Series([1, 2, {"x": 1}] * 10, dtype=object),
                          "ts": pd.Timestamp("2026-01-01", tz="UTC")})
    with dask.config.set({"dataframe.convert-string": False}):  # else dask turns objects into text
        ddf = dd.from_pandas(frame, npartitions=2, sort=False)
    with pytest.raises(segmint.errors.DataError, match="customer_id.*dtype object"):
        sd_events.aggregate(ddf, client=client, rows_per_chunk=CHUNK, as_of=AS_OF)


def test_many_small_parquet_files_read_through_dask_keep_every_event(client, tmp_path):
    # review finding: dask fuses the partitions of a Parquet read of few columns when it
    # computes on the frame (4 lengths for 20 parts), so chunks paired lengths with the wrong
    # partitions and 80% of the events vanished without an error
    log = event_log(4_000, seed=31, ids="plain")
    rng = np.random.default_rng(31)
    for j in range(20):  # columns the job never reads: what makes dask fuse the read
        log = log.append_column(f"x{j}", pa.array(rng.normal(size=log.num_rows)))
    path = write_files(log, tmp_path / "ev", 20, 200)
    kw = dict(KW, windows=WINDOWS)
    got = sd_events.aggregate(dd.read_parquet(path), client=client, rows_per_chunk=CHUNK, buckets=3, **kw)
    assert got.equals(local_aggregate(path, **kw))
