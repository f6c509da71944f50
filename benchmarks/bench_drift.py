"""The migration matrix of two assignment snapshots beside DuckDB's join and crosstab.

Two snapshots of ``--size`` customers (small: 100k, large: 10M): unsorted int64 ids (a
permutation), 2% of the previous customers departed and 2% of the current ones new, 8 segments
as dictionary strings (as ``Segmenter.score`` writes them), in memory as Arrow tables.

Group ``migration``; quality figure: the customers whose from-label differs from their to-label
(moved, new or departed), which every engine must reproduce exactly. After timing, the DuckDB
benchmark checks its whole crosstab equal to ours. DuckDB runs on segmint's thread count.
"""
import numpy as np
import pyarrow as pa
import pytest

from conftest import compare, duckdb_connection, record
from segmint.drift.migration import DEPARTED, NEW, migration

GROUP = "migration"
MOVED = "customers moved, new or departed"
N_SEGMENTS = 8
CHURN = 0.02  # share of departed (of previous) and of new (of current) customers


@pytest.fixture(scope="module")
def snapshots(n_customers):
    """(previous, current): Arrow tables of (customer_id, segment); a third of customers move."""
    rng = np.random.default_rng(0)
    n_churn = int(n_customers * CHURN)
    universe = rng.permutation(n_customers + n_churn).astype(np.int64)
    prev_ids = universe[:n_customers]
    cur_ids = rng.permutation(universe[n_churn:])
    names = pa.array([f"segment_{i}" for i in range(N_SEGMENTS)])
    prev_codes = rng.integers(0, N_SEGMENTS, universe.size).astype(np.int32)
    moves = rng.random(universe.size) < 1 / 3
    cur_codes = np.where(moves, rng.integers(0, N_SEGMENTS, universe.size), prev_codes).astype(np.int32)
    # each id keeps its drawn segments: index both by id (ids are 0..n + n_churn - 1)
    previous = pa.table({"customer_id": prev_ids,
                         "segment": pa.DictionaryArray.from_arrays(prev_codes[prev_ids], names)})
    current = pa.table({"customer_id": cur_ids,
                        "segment": pa.DictionaryArray.from_arrays(cur_codes[cur_ids], names)})
    return previous, current


def run_segmint(previous, current):
    return migration(previous, current, id_column="customer_id")


def counts_of(result):
    """{(from, to): count} of our result, new and departed as SQL's NULL sides."""
    rename = {NEW: None, DEPARTED: None}
    return {(rename.get(r["from_segment"], r["from_segment"]), rename.get(r["to_segment"], r["to_segment"])):
            r["count"] for r in result.table.to_pylist()}


def moved(counts):
    return int(sum(c for (f, t), c in counts.items() if f != t or f is None))


def test_migration(benchmark, snapshots):
    previous, current = snapshots
    compare(benchmark, GROUP)
    run_segmint(previous.slice(0, 1000), current.slice(0, 1000))  # compile outside the timed region
    result = benchmark.pedantic(run_segmint, args=snapshots, rounds=5, iterations=1, warmup_rounds=1)
    counts = counts_of(result)
    record(benchmark, quality=(MOVED, moved(counts), "equal"), customers=previous.num_rows,
           new=int(result.matrix[-1].sum()), departed=int(result.matrix[:, -1].sum()))


SQL = """
SELECT p.segment AS from_segment, c.segment AS to_segment, count(*) AS n
FROM previous p FULL OUTER JOIN current c ON p.customer_id = c.customer_id
GROUP BY ALL
"""


def test_peer_duckdb_migration(benchmark, snapshots):
    previous, current = snapshots
    con, threads = duckdb_connection()
    compare(benchmark, GROUP, impl="duckdb", threads=threads)
    con.register("previous", previous)
    con.register("current", current)
    out = benchmark.pedantic(lambda: con.sql(SQL).to_arrow_table(), rounds=5, iterations=1, warmup_rounds=1)
    theirs = {(r["from_segment"], r["to_segment"]): r["n"] for r in out.to_pylist()}
    assert theirs == counts_of(run_segmint(previous, current)), "DuckDB's crosstab differs from ours"
    record(benchmark, quality=(MOVED, moved(theirs), "equal"), customers=previous.num_rows)
