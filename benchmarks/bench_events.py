"""Event aggregation beside DuckDB and Polars: nine aggregates per customer from one event log.

Aggregates: recency, frequency, monetary, orders and spend in 90 days, orders in the last 60
days and in the 60 before, views in 30 days, tenure. Every engine runs on segmint's thread count.

Groups (issue #18's shapes):

- ``aggregate[9 aggregates]``: ``segmint.make_customers``' event log of a tenth of ``--size``
  customers, about 20 events each (large: 1M customers, ~20.5M events), int64 ids; sorted by
  time within blocks of customers, so not sorted by customer id.
- ``aggregate[2 per 10 rows x 10 unsorted, int64 ids]`` (the anchor): a fifth of ``--size``
  customers, 10 events each, in random order (large: 2M customers, 20M events), int64 ids.
- ``aggregate[... dictionary string ids]``: the same events, the ids as strings
  (``C001234567``) dictionary-encoded (dictionary in order of first appearance).
- ``aggregate[... string ids]``: the same events, plain string ids.

Quality figure: the total purchase count over all customers, which every engine must
reproduce exactly; the anchor's peers are also checked customer by customer against segmint
(untimed): every integer aggregate and the customer set must agree.
"""
import datetime as dt

import numpy as np
import pyarrow as pa
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


def _polars_run(pl, log):
    """The nine aggregates as a Polars expert writes them: one filtered ``group_by().agg()``."""
    df = pl.from_arrow(log)
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

    return run


def test_peer_polars_group_by(benchmark, events):
    pl, threads = polars_threads()
    compare(benchmark, GROUP, impl="polars", threads=threads)
    run = _polars_run(pl, events)
    out = benchmark.pedantic(run, rounds=5, iterations=1, warmup_rounds=1)
    total_frequency = int(out["frequency"].sum())
    record(benchmark, quality=(FREQUENCY, total_frequency, "equal"),
           events=events.num_rows, customers=out.height, total_frequency=total_frequency)


# -- issue #18's shapes: 10 events per customer in random order; int64, dictionary or plain string ids

SHAPES = {"int64": "int64 ids", "dictionary": "dictionary string ids", "string": "string ids"}
SHAPE_GROUP = "aggregate[{n} customers x 10 unsorted, {ids}]"


def unsorted_log(n_customers, ids="int64", per_customer=10, seed=0):
    """``n_customers * per_customer`` events in random order: ~3 days after ``AS_OF`` to two
    years before it, 30% purchases (with an amount), 50% views, 15% email opens, 5% cart
    abandonments."""
    rng = np.random.default_rng(seed)
    n = n_customers * per_customer
    owner = rng.permutation(np.repeat(np.arange(n_customers, dtype=np.int64), per_customer))
    as_of_ms = int(AS_OF.timestamp() * 1000)
    ts = as_of_ms + 3 * 86_400_000 - rng.integers(0, 730 * 86_400_000, size=n)
    kind = rng.choice(4, size=n, p=[0.3, 0.5, 0.15, 0.05]).astype(np.int32)
    amount = np.round(rng.gamma(2.0, 30.0, size=n), 2)
    key = 1_000_000 + owner
    if ids == "int64":
        column = pa.array(key)
    else:
        # strings numbered by first appearance, as dictionary_encode numbers them
        first = np.unique(owner, return_index=True)[1]
        order = np.argsort(first, kind="stable")
        rank = np.empty(n_customers, np.int64)
        rank[order] = np.arange(n_customers)
        strings = pa.array([f"C{k:09d}" for k in (1_000_000 + order).tolist()])
        column = pa.DictionaryArray.from_arrays(pa.array(rank[owner].astype(np.int32)), strings)
        if ids == "string":
            column = column.dictionary_decode()
    types = pa.array(["purchase", "view", "email_open", "cart_abandon"])
    return pa.table({"customer_id": column, "ts": pa.array(ts, pa.timestamp("ms", tz="UTC")),
                     "event_type": pa.DictionaryArray.from_arrays(pa.array(kind), types),
                     "amount": pa.array(amount, mask=kind != 0)})


@pytest.fixture(scope="module", params=list(SHAPES))
def shape(request, n_customers):
    n = max(n_customers // 5, 1000)
    return SHAPE_GROUP.format(n=f"{n:,}", ids=SHAPES[request.param]), unsorted_log(n, request.param)


_ours = {}


def ours(group, log):
    """segmint's result for a shape (computed once, untimed, for the peers' check)."""
    if group not in _ours:
        _ours.clear()
        _ours[group] = run_segmint(log).table
    return _ours[group]


_CHECKED = ("frequency", "orders_90d", "orders_60d", "orders_60_120d", "views_30d", "recency_days", "tenure_days")


def check_agrees(group, log, peer):
    """Every customer and every integer aggregate of a peer's result equals segmint's; returns
    the customers compared."""
    mine = ours(group, log)
    ids = peer.column("customer_id")
    if pa.types.is_dictionary(ids.type):
        ids = ids.cast(ids.type.value_type)
    theirs = peer.select(list(_CHECKED)).append_column("customer_id", ids.cast(mine.schema.field("customer_id").type))
    theirs = theirs.sort_by("customer_id")
    assert theirs.column("customer_id").equals(mine.column("customer_id")), "the customers differ from segmint's"
    for name in _CHECKED:
        a = mine.column(name).cast(pa.int64()).fill_null(-1)
        b = theirs.column(name).cast(pa.int64()).fill_null(-1)
        assert a.equals(b), f"{name} differs from segmint's"
    return mine.num_rows


def test_aggregate_shape(benchmark, shape):
    group, log = shape
    compare(benchmark, group)
    run_segmint(log.slice(0, 1000))
    result = benchmark.pedantic(run_segmint, args=(log,), rounds=5, iterations=1, warmup_rounds=1)
    t = result.table
    total_frequency = int(np.sum(t.column("frequency").to_numpy()))
    record(benchmark, quality=(FREQUENCY, total_frequency, "equal"), events=log.num_rows,
           customers=t.num_rows, total_frequency=total_frequency)


def test_peer_duckdb_shape(benchmark, shape):
    group, log = shape
    con, threads = duckdb_connection()
    compare(benchmark, group, impl="duckdb", threads=threads)
    con.execute("SET TimeZone='UTC'")
    con.register("events", log)
    out = benchmark.pedantic(lambda: con.sql(SQL).to_arrow_table(), rounds=5, iterations=1, warmup_rounds=1)
    total_frequency = int(np.sum(out.column("frequency").to_numpy()))
    agree = check_agrees(group, log, out)
    record(benchmark, quality=(FREQUENCY, total_frequency, "equal"), events=log.num_rows,
           customers=out.num_rows, total_frequency=total_frequency, customers_agreeing=agree)


def test_peer_polars_shape(benchmark, shape):
    group, log = shape
    pl, threads = polars_threads()
    compare(benchmark, group, impl="polars", threads=threads)
    run = _polars_run(pl, log)
    out = benchmark.pedantic(run, rounds=5, iterations=1, warmup_rounds=1)
    total_frequency = int(out["frequency"].sum())
    # the check (untimed): whole days back from as_of's day, as segmint and DuckDB count them
    day0 = pl.lit(AS_OF).cast(pl.Datetime("ms", "UTC")).dt.truncate("1d")
    checked = out.with_columns(
        (day0 - pl.col("last_buy").dt.truncate("1d")).dt.total_days().alias("recency_days"),
        (day0 - pl.col("first").dt.truncate("1d")).dt.total_days().alias("tenure_days")).to_arrow()
    agree = check_agrees(group, log, checked)
    record(benchmark, quality=(FREQUENCY, total_frequency, "equal"), events=log.num_rows,
           customers=out.height, total_frequency=total_frequency, customers_agreeing=agree)
