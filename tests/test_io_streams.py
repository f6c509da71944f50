"""Sources from the Arrow PyCapsule stream interface (``__arrow_c_stream__``): polars frames,
DuckDB relations and any other producer, read zero-copy where the producer allows; a stream
is read once."""
import datetime as dt

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import segmint
from segmint.errors import DataError, SourceConsumedError

AS_OF = dt.datetime(2026, 10, 1, tzinfo=dt.timezone.utc)


class Producer:
    """The smallest Arrow producer: it exports a pyarrow table's stream, nothing else."""

    def __init__(self, table):
        self.table = table
        self.exports = 0

    def __arrow_c_stream__(self, requested_schema=None):
        self.exports += 1
        return self.table.__arrow_c_stream__(requested_schema)


class Refusing:
    """A producer whose export fails (a closed connection, say)."""

    def __arrow_c_stream__(self, requested_schema=None):
        raise RuntimeError("the connection is closed")


def event_log(n, seed=0):
    rng = np.random.default_rng(seed)
    as_of_us = int(AS_OF.timestamp() * 1e6)
    return pa.table({
        "customer_id": pa.array(rng.integers(0, max(1, n // 5), n), mask=rng.random(n) < 0.02),
        "ts": pa.array(as_of_us - rng.integers(-86_400_000_000, 200 * 86_400_000_000, n)).cast(pa.timestamp("us", tz="UTC")),
        "event_type": pa.array(rng.choice(["purchase", "view"], n).tolist()),
        "amount": rng.gamma(2.0, 30.0, n),
    })


def aggregated(source):
    return segmint.aggregate(source, amount="amount", event_type="event_type", qualifying="purchase",
                             as_of=AS_OF, windows={"views_30d": {"last": "30d", "type": "view"},
                                                   "views_ever": {"type": "view"}}).table


def test_a_minimal_producer_is_read_zero_copy_and_once():
    table = pa.table({"a": np.arange(1000, dtype=np.int64), "s": ["x", "y"] * 500})
    producer = Producer(table)
    src = segmint.open(producer)
    assert src.one_shot and src.num_rows is None and src.column_names == ["a", "s"]
    assert producer.exports == 1  # the schema came from the one export: nothing read twice
    batches = list(src.batches(batch_size=300))
    assert [b.num_rows for b in batches] == [300, 300, 300, 100]
    # the numbers are the producer's own memory
    assert batches[0]["a"].values.ctypes.data == table.column("a").chunks[0].buffers()[1].address
    assert np.concatenate([b["a"].values for b in batches]).tolist() == list(range(1000))
    with pytest.raises(SourceConsumedError, match="already read once"):
        list(src.batches())


@settings(max_examples=25, deadline=None)
@given(n=st.integers(0, 400), chunk=st.integers(1, 150), batch_size=st.integers(1, 500),
       nulls=st.floats(0, 1))
def test_any_producer_stream_reads_back_exactly(n, chunk, batch_size, nulls):
    rng = np.random.default_rng(n)
    table = pa.table({"x": pa.array(rng.normal(size=n), mask=rng.random(n) < nulls),
                      "s": pa.array(rng.choice(["a", "b", "c"], n).tolist(), pa.string(), mask=rng.random(n) < nulls)})
    table = pa.Table.from_batches(table.to_batches(max_chunksize=chunk), schema=table.schema)
    got = segmint.open(Producer(table)).read()
    assert got.num_rows == n
    assert got.column("x").to_pylist() == table.column("x").to_pylist()
    assert got.column("s").to_pylist() == table.column("s").to_pylist()
    src = segmint.open(Producer(table))
    rows = [r for b in src.batches(batch_size=batch_size) for r in b.record_batch.column("x").to_pylist()]
    assert rows == table.column("x").to_pylist()


def test_aggregate_and_rules_read_a_producer_as_they_read_the_table():
    log = event_log(3000, seed=1)
    assert aggregated(Producer(log)).equals(aggregated(log))
    rules = segmint.RuleSet([("big", "amount > 60"), ("small", "amount <= 60")])
    assert rules.evaluate(Producer(log)).table.equals(rules.evaluate(log).table)


def test_a_polars_frame_is_a_table_read_as_often_as_asked():
    pl = pytest.importorskip("polars")
    log = event_log(2000, seed=2)
    frame = pl.from_arrow(log)
    src = segmint.open(frame)
    assert src.kind == "table" and not src.one_shot and src.num_rows == 2000
    assert src.read().column("amount").to_pylist() == log.column("amount").to_pylist()
    assert src.read().column("event_type").to_pylist() == log.column("event_type").to_pylist()  # again
    assert aggregated(frame).equals(aggregated(log))
    # categoricals arrive as dictionaries (of string views, uint32 codes) and work as strings
    cats = frame.with_columns(pl.col("event_type").cast(pl.Categorical))
    assert aggregated(cats).equals(aggregated(log))


def test_a_polars_frame_shares_its_numbers():
    pl = pytest.importorskip("polars")
    frame = pl.DataFrame({"a": np.arange(100_000, dtype=np.int64)})
    src = segmint.open(frame)
    view = next(src.batches(batch_size=1 << 20))["a"].values
    assert view.ctypes.data == frame["a"].to_numpy().ctypes.data  # polars' own buffer, not a copy


def test_a_duckdb_relation_streams_once():
    duckdb = pytest.importorskip("duckdb")
    log = event_log(3000, seed=3)
    con = duckdb.connect()
    con.register("log", log)
    relation = con.sql("select * from log")
    src = segmint.open(relation)
    assert src.one_shot and src.column_names == log.column_names
    assert sum(b.num_rows for b in src.batches()) == 3000
    with pytest.raises(SourceConsumedError, match="DuckDBPyRelation.*already read once"):
        list(src.batches())
    src.close()
    assert aggregated(con.sql("select * from log")).equals(aggregated(log))
    # another order: the same customers and counts; sums equal to rounding (added in another order)
    reordered, expected = aggregated(con.sql("select * from log order by ts desc")), aggregated(log)
    assert reordered.column_names == expected.column_names
    for name in expected.column_names:
        got, want = reordered.column(name), expected.column(name)
        if pa.types.is_floating(want.type):
            assert got.is_null().equals(want.is_null())
            np.testing.assert_allclose(got.fill_null(0).to_numpy(), want.fill_null(0).to_numpy(), rtol=1e-12)
        else:
            assert got.equals(want), name


def test_a_producers_failure_is_a_data_error_naming_it():
    duckdb = pytest.importorskip("duckdb")
    con = duckdb.connect()
    failing = con.sql("select (range::varchar)::int as b from range(3) union all select 'x'::int")
    with pytest.raises(DataError, match="DuckDBPyRelation.*'x'"):
        segmint.open(failing).read()
    busy = segmint.open(con.sql("select 1 as a"))  # holds the connection's result until closed
    with pytest.raises(DataError, match="DuckDBPyRelation.*open result"):
        segmint.open(con.sql("select 2 as a"))
    busy.close()
    assert segmint.open(con.sql("select 2 as a")).read().column("a").to_pylist() == [2]
    with pytest.raises(DataError, match="Refusing.*the connection is closed"):
        segmint.open(Refusing())
    with pytest.raises(DataError, match="ChunkedArray.*non-struct"):
        segmint.open(pa.chunked_array([[1, 2]]))


def test_fitting_a_clusterer_on_a_stream_says_it_reads_twice():
    table = pa.table({"a": np.arange(50.0), "b": np.arange(50.0) % 7})
    with pytest.raises(SourceConsumedError, match="read only once"):
        segmint.Segmenter(features=["a", "b"], clusterer=segmint.KMeans(n_clusters=2)).fit(Producer(table))
