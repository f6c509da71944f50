"""Event aggregation beside DuckDB and Polars: nine aggregates per customer from one event log.

Customers: a tenth of ``--size`` (large: 1M customers, about 20M events). Aggregates: recency,
frequency, monetary, orders and spend in 90 days, orders in the last 60 days and in the 60 before,
views in 30 days, tenure.

Group ``aggregate[9 aggregates]``; quality figure: the total purchase count over all customers,
which every engine must reproduce exactly. DuckDB and Polars run on segmint's thread count.
"""
import datetime as dt

import pytest

import segmint
from conftest import compare, duckdb_connection, polars_threads, record

AS_OF = dt.datetime(2026, 10, 1, tzinfo=dt.timezone.utc)
WINDOWS = {"orders_90d": {"agg": "count", "last": "90d", "type": "purchase"},
           "spend_90d": {"agg": "sum", "last": "90d", "type": "purchase"},
           "orders_60d": {"agg": "count", "last": "60d", "type": "purchase"},
           "orders_60_120d": {"agg": "count", "between": ["60d", "120d"], "type": "purchase"},
           "views_30d": {"agg": "count", "last": "30d", "type": "view"}}
GROUP = "aggregate[9 aggregates]"
FREQUENCY = "total purchases"


@pytest.fixture(scope="module")
def events(n_customers):
    _, log = segmint.make_customers(max(n_customers // 10, 1000), random_state=0, with_events=True)
    return log


def run_segmint(log):
    return segmint.aggregate(log, id_column="customer_id", timestamp="ts", amount="amount",
                             event_type="event_type", qualifying="purchase", as_of=AS_OF, windows=WINDOWS)


def test_aggregate(benchmark, events):
    compare(benchmark, GROUP)
    run_segmint(events.slice(0, 1000))  # compile outside the timed region; warmup_rounds=1 below
    # lets every engine (DuckDB keeps its buffer pool, we reuse Arrow's) start warm
    result = benchmark.pedantic(run_segmint, args=(events,), rounds=5, iterations=1, warmup_rounds=1)
    t = result.table
    total_frequency = int(sum(t.column("frequency").to_pylist()))
    record(benchmark, quality=(FREQUENCY, total_frequency, "equal"),
           events=events.num_rows, customers=t.num_rows, total_frequency=total_frequency,
           total_orders_90d=int(sum(t.column("orders_90d").to_pylist())))


SQL = """
SELECT customer_id,
  date_diff('day', max(ts) FILTER (WHERE event_type = 'purchase'), TIMESTAMPTZ '2026-10-01 00:00:00+00') AS recency_days,
  count(*) FILTER (WHERE event_type = 'purchase') AS frequency,
  coalesce(sum(amount) FILTER (WHERE event_type = 'purchase'), 0) AS monetary,
  count(*) FILTER (WHERE event_type = 'purchase' AND ts > TIMESTAMPTZ '2026-10-01 00:00:00+00' - INTERVAL 90 DAY) AS orders_90d,
  coalesce(sum(amount) FILTER (WHERE event_type = 'purchase' AND ts > TIMESTAMPTZ '2026-10-01 00:00:00+00' - INTERVAL 90 DAY), 0) AS spend_90d,
  count(*) FILTER (WHERE event_type = 'purchase' AND ts > TIMESTAMPTZ '2026-10-01 00:00:00+00' - INTERVAL 60 DAY) AS orders_60d,
  count(*) FILTER (WHERE event_type = 'purchase' AND ts <= TIMESTAMPTZ '2026-10-01 00:00:00+00' - INTERVAL 60 DAY
                   AND ts > TIMESTAMPTZ '2026-10-01 00:00:00+00' - INTERVAL 120 DAY) AS orders_60_120d,
  count(*) FILTER (WHERE event_type = 'view' AND ts > TIMESTAMPTZ '2026-10-01 00:00:00+00' - INTERVAL 30 DAY) AS views_30d,
  date_diff('day', min(ts), TIMESTAMPTZ '2026-10-01 00:00:00+00') AS tenure_days
FROM events WHERE ts <= TIMESTAMPTZ '2026-10-01 00:00:00+00' GROUP BY customer_id
"""


def test_peer_duckdb_group_by(benchmark, events):
    con, threads = duckdb_connection()
    compare(benchmark, GROUP, impl="duckdb", threads=threads)
    con.execute("SET TimeZone='UTC'")
    con.register("events", events)
    out = benchmark.pedantic(lambda: con.sql(SQL).to_arrow_table(), rounds=5, iterations=1, warmup_rounds=1)
    total_frequency = int(sum(out.column("frequency").to_pylist()))
    record(benchmark, quality=(FREQUENCY, total_frequency, "equal"),
           events=events.num_rows, customers=out.num_rows, total_frequency=total_frequency,
           total_orders_90d=int(sum(out.column("orders_90d").to_pylist())))


def test_peer_polars_group_by(benchmark, events):
    pl, threads = polars_threads()
    compare(benchmark, GROUP, impl="polars", threads=threads)
    df = pl.from_arrow(events)
    as_of = pl.lit(AS_OF).cast(pl.Datetime("ms", "UTC"))
    buy = pl.col("event_type") == "purchase"
    age = as_of - pl.col("ts")

    def run():
        return (df.filter(pl.col("ts") <= as_of).group_by("customer_id").agg(
            pl.col("ts").filter(buy).max().alias("last_buy"),
            buy.sum().alias("frequency"),
            pl.col("amount").filter(buy).sum().alias("monetary"),
            (buy & (age < pl.duration(days=90))).sum().alias("orders_90d"),
            pl.col("amount").filter(buy & (age < pl.duration(days=90))).sum().alias("spend_90d"),
            (buy & (age < pl.duration(days=60))).sum().alias("orders_60d"),
            (buy & (age >= pl.duration(days=60)) & (age < pl.duration(days=120))).sum().alias("orders_60_120d"),
            ((pl.col("event_type") == "view") & (age < pl.duration(days=30))).sum().alias("views_30d"),
            pl.col("ts").min().alias("first"),
        ))

    out = benchmark.pedantic(run, rounds=5, iterations=1, warmup_rounds=1)
    total_frequency = int(out["frequency"].sum())
    record(benchmark, quality=(FREQUENCY, total_frequency, "equal"),
           events=events.num_rows, customers=out.height, total_frequency=total_frequency)
