"""Event aggregation against a slow pandas reference on random logs."""
import datetime as dt

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

import segmint
from segmint.errors import ParameterError
from segmint.events.aggregate import btyd_summary

AS_OF = dt.datetime(2026, 10, 1, 12, 0, tzinfo=dt.timezone.utc)
US_DAY = 86_400_000_000
WINDOWS = {"buys_30d": {"agg": "count", "last": "30d", "type": "purchase"},
           "spend_90d": {"agg": "sum", "last": "90d", "type": ["purchase"]},
           "any_60_120d": {"agg": "count", "between": ["60d", "120d"]},
           "buy_trend": {"agg": "trend", "last": "45d", "type": "purchase"},
           # neither 'last' nor 'between': all time up to as_of
           "views_ever": {"agg": "count", "type": "view"},
           "spend_ever": {"agg": "sum"}}


def random_log(n, seed, string_ids=False):
    rng = np.random.default_rng(seed)
    as_of_us = int(AS_OF.timestamp() * 1e6)
    customers = rng.integers(1, max(2, n // 4), n) * 7919  # repeats, scattered ids
    ts = as_of_us - rng.integers(-5 * US_DAY, 400 * US_DAY, n)  # some after as_of
    ts[: n // 10] = ts[n // 10: 2 * (n // 10)]  # duplicate timestamps (same-moment events)
    types = rng.choice(["purchase", "view", "email_open"], n, p=[0.4, 0.4, 0.2])
    amount = np.where(types == "purchase", np.round(rng.gamma(2, 30, n), 2), np.nan)
    ids = pa.array([f"c{c}" for c in customers] if string_ids else customers, mask=rng.random(n) < 0.03)
    return pa.table({
        "customer_id": ids,
        "ts": pa.array(ts, mask=rng.random(n) < 0.03).cast(pa.timestamp("us", tz="UTC")),
        "event_type": pa.array(types.tolist(), mask=rng.random(n) < 0.02),
        "amount": pa.array(amount, mask=np.isnan(amount) | (rng.random(n) < 0.05)),
    })


def reference(log):
    """The slow twin: plain pandas."""
    pd = pytest.importorskip("pandas")
    df = log.to_pandas()
    as_of = pd.Timestamp(AS_OF)
    n_null_id = int(df["customer_id"].isna().sum())
    df = df[df["customer_id"].notna()]
    n_null_ts = int(df["ts"].isna().sum())
    df = df[df["ts"].notna()]
    n_after = int((df["ts"] > as_of).sum())
    df = df[df["ts"] <= as_of]
    day0 = as_of.normalize()
    rows = []
    for cid, g in df.groupby("customer_id", sort=True):
        buys = g[g["event_type"] == "purchase"]
        age = as_of - g["ts"]
        amounts = buys["amount"].dropna()
        last_buy = buys["ts"].max() if len(buys) else None
        recent = int(((g["event_type"] == "purchase") & (age < pd.Timedelta(days=45))).sum())
        previous = int(((g["event_type"] == "purchase") & (age >= pd.Timedelta(days=45))
                        & (age < pd.Timedelta(days=90))).sum())
        rows.append({
            "customer_id": cid, "frequency": len(buys), "monetary": float(amounts.sum()),
            "monetary_mean": float(amounts.mean()) if len(amounts) else None,
            "recency_days": (day0 - last_buy.normalize()).days if last_buy is not None else None,
            "tenure_days": (day0 - g["ts"].min().normalize()).days,
            "mean_gap_days": ((buys["ts"].max() - buys["ts"].min()) / pd.Timedelta(days=1) / (len(buys) - 1)
                              if len(buys) > 1 else None),
            "buy_trend_recent": recent, "buy_trend_previous": previous,
            "buy_trend": recent / previous if previous else None,
            "buys_30d": int(((g["event_type"] == "purchase") & (age < pd.Timedelta(days=30))).sum()),
            "spend_90d": float(g.loc[(g["event_type"] == "purchase") & (age < pd.Timedelta(days=90)), "amount"].dropna().sum()),
            "any_60_120d": int(((age >= pd.Timedelta(days=60)) & (age < pd.Timedelta(days=120))).sum()),
            "views_ever": int((g["event_type"] == "view").sum()),
            "spend_ever": float(g["amount"].dropna().sum()),
        })
    return rows, (n_null_id, n_null_ts, n_after)


@pytest.mark.parametrize("string_ids", [False, True])
@pytest.mark.parametrize("n,seed,batch_size", [(1, 0, 10), (2, 1, 1), (50, 2, 7), (3000, 3, 1 << 20), (3000, 4, 333)])
def test_aggregate_matches_pandas(n, seed, batch_size, string_ids):
    log = random_log(n, seed, string_ids)
    result = segmint.aggregate(log, amount="amount", event_type="event_type", qualifying="purchase",
                               as_of=AS_OF, windows=WINDOWS, batch_size=batch_size)
    expected, dropped = reference(log)
    assert (result.null_id, result.null_timestamp, result.after_as_of) == dropped
    assert result.n_events == n
    assert_rows_match(result.table, expected)


def assert_rows_match(table, expected):
    """Same customers in the same order, every aggregate equal (floats to rounding)."""
    got = table.to_pylist()
    assert [r["customer_id"] for r in got] == [r["customer_id"] for r in expected]
    for g, e in zip(got, expected):
        for key in e:
            if isinstance(e[key], float):
                assert g[key] == pytest.approx(e[key], rel=1e-12, abs=1e-9), key
            else:
                assert g[key] == e[key], key


def test_every_event_counts_without_event_types():
    log = random_log(500, 7)
    result = segmint.aggregate(log.drop_columns(["event_type"]), amount="amount", as_of=AS_OF)
    rows = {r["customer_id"]: r for r in result.table.to_pylist()}
    df = log.to_pandas()
    df = df[df["customer_id"].notna() & df["ts"].notna() & (df["ts"] <= AS_OF)]
    for cid, g in df.groupby("customer_id"):
        assert rows[cid]["frequency"] == len(g)


def test_matches_the_generated_customer_table():
    customers, events = segmint.make_customers(3000, random_state=5, with_events=True)
    result = segmint.aggregate(events, amount="amount", event_type="event_type", qualifying="purchase",
                               as_of="2026-10-01", windows={"views_30d": {"last": "30d", "type": "view"}})
    got = {r["customer_id"]: r for r in result.table.to_pylist()}
    for row in customers.to_pylist():
        g = got.get(row["customer_id"])
        if g is None:  # never had an event
            assert row["frequency"] == 0 and row["sessions_30d"] == 0 and row["email_opens_90d"] == 0
            continue
        assert g["frequency"] == row["frequency"]
        assert g["recency_days"] == row["recency_days"]
        assert g["views_30d"] == row["sessions_30d"]
        assert g["monetary"] == pytest.approx(row["monetary"], abs=1e-6)


def test_bad_specs_are_clear():
    log = random_log(20, 1)
    with pytest.raises(segmint.UnknownColumnError, match="did you mean 'customer_id'"):
        segmint.aggregate(log, id_column="customerid")
    with pytest.raises(ParameterError, match="duration"):
        segmint.aggregate(log, windows={"x": {"last": "ninety days"}})
    with pytest.raises(ParameterError, match="either 'last' or 'between', not both"):
        segmint.aggregate(log, windows={"x": {"last": "9d", "between": ["1d", "2d"]}})
    with pytest.raises(ParameterError, match="needs? event_type"):
        segmint.aggregate(log, qualifying="purchase")
    with pytest.raises(segmint.DataError, match="timestamp column 'amount'"):
        segmint.aggregate(log, timestamp="amount")


def test_many_customers_grow_the_state_and_threads_do_not_change_results():
    # 20k customers: more than the initial 16 slots x 256 partitions, so tables and state grow
    log = random_log(80_000, 11)
    kw = dict(amount="amount", event_type="event_type", qualifying="purchase", as_of=AS_OF,
              windows=WINDOWS, batch_size=30_011)
    with segmint.threads(1):
        one = segmint.aggregate(log, **kw)
    with segmint.threads(2):
        two = segmint.aggregate(log, **kw)
    assert one.table.equals(two.table)
    got = one.table.to_pylist()
    # every customer with an event kept (id and timestamp known, not after as_of), in id order
    kept = log.filter(pc.and_(pc.is_valid(log["customer_id"]), pc.less_equal(log["ts"], pa.scalar(AS_OF))))
    ids = sorted(set(kept["customer_id"].to_pylist()))
    assert [r["customer_id"] for r in got] == ids
    # the slow twin on every 97th customer's events alone (all 20k took ~2 minutes of pandas)
    sample = pa.array(ids[::97], log["customer_id"].type)
    expected, _ = reference(log.filter(pc.is_in(log["customer_id"], value_set=sample)))
    assert [e["customer_id"] for e in expected] == sample.to_pylist()
    for g, e in zip(got[::97], expected):
        assert g["customer_id"] == e["customer_id"]
        assert g["frequency"] == e["frequency"] and g["spend_90d"] == pytest.approx(e["spend_90d"])
    b1 = btyd_summary(log, amount="amount", event_type="event_type",
                                               qualifying="purchase", as_of=AS_OF, batch_size=30_011)
    with segmint.threads(1):
        b2 = btyd_summary(log, amount="amount", event_type="event_type",
                                                   qualifying="purchase", as_of=AS_OF)
    assert b1.table.equals(b2.table)


def btyd_reference(log, period):
    """The lifetimes convention, step by step in pandas (summary_data_from_transaction_data)."""
    pd = pytest.importorskip("pandas")
    df = log.to_pandas()
    as_of = pd.Timestamp(AS_OF)
    df = df[df["customer_id"].notna() & df["ts"].notna() & (df["ts"] <= as_of) & (df["event_type"] == "purchase")]
    df = df.assign(amount=df["amount"].fillna(0.0))
    ts = df["ts"].dt.tz_localize(None)
    freq = {"D": "D", "W": "W-SUN"}[period]
    df = df.assign(period=ts.dt.to_period(freq))
    end = as_of.tz_localize(None).to_period(freq)
    per = df.groupby(["customer_id", "period"], sort=True)["amount"].sum().reset_index()
    rows = []
    for cid, g in per.groupby("customer_id", sort=True):
        first, last = g["period"].min(), g["period"].max()
        repeat = g[g["period"] != first]
        rows.append({"customer_id": cid, "frequency": len(g) - 1,
                     "recency": float((last - first).n), "T": float((end - first).n),
                     "monetary_value": float(repeat["amount"].mean()) if len(repeat) else 0.0})
    return rows


@pytest.mark.parametrize("period", ["D", "W"])
@pytest.mark.parametrize("string_ids", [False, True])
@pytest.mark.parametrize("n,seed,batch_size", [(1, 0, 5), (40, 1, 3), (4000, 2, 1 << 20), (4000, 3, 517)])
def test_btyd_summary_matches_the_lifetimes_convention(n, seed, batch_size, string_ids, period):
    log = random_log(n, seed, string_ids)
    result = btyd_summary(
        log, amount="amount", event_type="event_type", qualifying="purchase", as_of=AS_OF,
        period=period, batch_size=batch_size)
    expected = btyd_reference(log, period)
    got = result.table.to_pylist()
    assert [r["customer_id"] for r in got] == [r["customer_id"] for r in expected]
    for g, e in zip(got, expected):
        assert g["frequency"] == e["frequency"] and g["recency"] == e["recency"] and g["T"] == e["T"]
        assert g["monetary_value"] == pytest.approx(e["monetary_value"], rel=1e-9, abs=1e-9)


def test_btyd_and_trend_errors():
    log = random_log(20, 1)
    with pytest.raises(ParameterError, match="period='M'"):
        btyd_summary(log, period="M", as_of=AS_OF)
    with pytest.raises(ParameterError, match="a trend compares"):
        segmint.aggregate(log, windows={"t": {"agg": "trend", "between": ["1d", "2d"]}})
    with pytest.raises(ParameterError, match="clash"):
        segmint.aggregate(log, windows={"frequency": {"last": "2d"}})
    with pytest.raises(ParameterError, match="clash"):
        segmint.aggregate(log, windows={"t": {"agg": "trend", "last": "2d"}, "t_recent": {"last": "2d"}})


@pytest.mark.parametrize("late", ["sparse", "below"])
def test_dense_ids_that_turn_sparse_move_to_hash_mode(late):
    # dense ids first (slots straight from the id), then ids that do not fit: far above the
    # span, or below the first id; customers of the first batches come back afterwards
    rng = np.random.default_rng(5)
    n = 6000
    log = random_log(n, 21)
    ids = rng.integers(100, 700, n)
    odd = 10**12 + rng.integers(0, 50, 300) if late == "sparse" else rng.integers(1, 99, 300)
    ids[4000:4300] = odd
    log = log.set_column(0, "customer_id", pa.array(ids, mask=log.column(0).is_null().to_numpy(zero_copy_only=False)))
    kw = dict(amount="amount", event_type="event_type", qualifying="purchase", as_of=AS_OF,
              windows=WINDOWS)
    expected, dropped = reference(log)
    for batch_size in (1000, n):
        assert_rows_match(segmint.aggregate(log, batch_size=batch_size, **kw).table, expected)
        # a one-shot stream cannot be scanned ahead for the id range: it switches mode mid-way
        stream = pa.RecordBatchReader.from_batches(log.schema, log.to_batches(max_chunksize=1000))
        assert_rows_match(segmint.aggregate(stream, batch_size=batch_size, **kw).table, expected)


@pytest.mark.parametrize("unit", ["s", "ms", "ns"])
def test_timestamp_units_give_the_same_features(unit):
    log = random_log(2000, 8)
    ts = pc_floor_to(log.column("ts"), unit)
    as_us = log.set_column(1, "ts", ts.cast(pa.timestamp("us", tz="UTC")))
    in_unit = log.set_column(1, "ts", ts.cast(pa.timestamp(unit, tz="UTC")))
    kw = dict(amount="amount", event_type="event_type", qualifying="purchase", as_of=AS_OF, windows=WINDOWS)
    assert segmint.aggregate(in_unit, **kw).table.equals(segmint.aggregate(as_us, **kw).table)
    day = log.set_column(1, "ts", ts.cast(pa.timestamp("us", tz="UTC")).cast(pa.date32()))
    day_us = log.set_column(1, "ts", ts.cast(pa.timestamp("us", tz="UTC")).cast(pa.date32()).cast(
        pa.timestamp("us")))
    t1, t2 = segmint.aggregate(day, **kw).table, segmint.aggregate(day_us, **kw).table
    assert t1.drop_columns(["first_event", "last_event"]).equals(t2.drop_columns(["first_event", "last_event"]))


def pc_floor_to(column, unit):
    """Timestamps rounded down to whole ``unit`` (so every unit holds them exactly)."""
    step = {"s": 1_000_000, "ms": 1_000, "ns": 1}[unit]
    us = column.cast(pa.int64()).fill_null(0).to_numpy()
    valid = column.is_valid().to_numpy(zero_copy_only=False)
    us = np.where(valid, us // step * step, 0)
    return pa.array(us, mask=~valid).cast(pa.timestamp("us", tz="UTC"))


def segment_folds(log, as_of_us, segment=65_536):
    """The slow twin of segmint's float sums (see "Sums by segment" in segmint.events.aggregate):
    per customer, qualifying amounts added from 0.0 in row order within each segment of 65,536
    global rows, the segment partials added from 0.0 in segment order. Also the plain running
    sum over all rows, to show that the two orders round differently on this log."""
    ids = log["customer_id"].to_pylist()
    ts = log["ts"].cast(pa.int64()).to_pylist()
    types = log["event_type"].to_pylist()
    amounts = log["amount"].to_pylist()
    partial, running = {}, {}
    for r, (c, t, e, a) in enumerate(zip(ids, ts, types, amounts)):
        if c is None or t is None or t > as_of_us or e != "purchase" or a is None:
            continue
        key = (c, r // segment)
        partial[key] = partial.get(key, 0.0) + a
        running[c] = running.get(c, 0.0) + a
    folded = {}
    for (c, _), s in sorted(partial.items()):
        folded[c] = folded.get(c, 0.0) + s
    return folded, running


def test_sums_are_segment_folds_whatever_the_batches_and_threads():
    # 200k events over 4 segments, amounts that round (not cents: any order would show)
    log = random_log(200_000, 21)
    rng = np.random.default_rng(5)
    amount = log["amount"].to_numpy(zero_copy_only=False) * rng.choice([1.0, 1e-3, 1e3], log.num_rows)
    log = log.set_column(3, "amount", pa.array(amount, mask=np.isnan(amount)))
    kw = dict(amount="amount", event_type="event_type", qualifying="purchase", as_of=AS_OF,
              windows={"spend_ever": {"agg": "sum", "type": "purchase"}})
    results = []
    for threads, batch_size in [(1, 1 << 22), (2, 1 << 22), (2, 65_536), (1, 30_011), (2, 100_003)]:
        with segmint.threads(threads):
            results.append(segmint.aggregate(log, batch_size=batch_size, **kw).table)
    for t in results[1:]:
        assert t.equals(results[0])
    folded, running = segment_folds(log, int(AS_OF.timestamp() * 1e6))
    got = dict(zip(results[0]["customer_id"].to_pylist(), results[0]["monetary"].to_pylist()))
    want = {c: folded.get(c, 0.0) for c in got}
    assert got == want  # exact: the same bits as the twin's Python floats
    assert results[0]["spend_ever"].to_pylist() == results[0]["monetary"].to_pylist()
    assert any(running[c] != folded[c] for c in folded), "the orders should round differently somewhere"
    # BTYD's mean repeat value divides sums of the same structure: independent of batches too
    btyd = [btyd_summary(log, batch_size=b, **{k: v for k, v in kw.items() if k != "windows"}).table
            for b in (1 << 22, 30_011)]
    assert btyd[0].equals(btyd[1])


def test_segment_folds_keep_inf_nan_and_signed_zeros():
    # a few customers, events over 3 segments: inf, -inf, NaN and -0.0 amounts in some of them
    n = 140_000
    rng = np.random.default_rng(8)
    as_of_us = int(AS_OF.timestamp() * 1e6)
    cid = rng.integers(0, 40, n)
    amount = rng.gamma(2, 30, n) * rng.choice([1.0, 1e-3, 1e3], n)
    amount[cid == 0] = -0.0                              # only -0.0: a sum of +0.0
    amount[(cid == 1) & (np.arange(n) == np.flatnonzero(cid == 1)[3])] = np.inf
    amount[(cid == 2) & (np.arange(n) > 70_000)] = np.nan  # NaN in the second segment on
    first3 = np.flatnonzero(cid == 3)
    amount[first3[2]], amount[first3[-2]] = np.inf, -np.inf  # inf - inf: NaN
    log = pa.table({"customer_id": cid, "ts": pa.array(as_of_us - rng.integers(0, 99 * US_DAY, n),
                                                        pa.timestamp("us", tz="UTC")),
                    "event_type": pa.array(["purchase"] * n), "amount": amount})
    kw = dict(amount="amount", event_type="event_type", qualifying="purchase", as_of=AS_OF)
    tables = []
    for threads, batch_size in [(1, 1 << 22), (2, 50_001)]:
        with segmint.threads(threads):
            tables.append(segmint.aggregate(log, batch_size=batch_size, **kw).table)
    got = [t["monetary"].to_numpy() for t in tables]
    folded, _ = segment_folds(log, as_of_us)
    want = np.array([folded[c] for c in tables[0]["customer_id"].to_pylist()])
    for g in got:
        assert np.array_equal(g, want, equal_nan=True)
        assert np.array_equal(np.signbit(g), np.signbit(want))
    assert got[0][0] == 0.0 and not np.signbit(got[0][0])
    assert got[0][1] == np.inf and np.isnan(got[0][2]) and np.isnan(got[0][3])


@pytest.mark.parametrize("min_slots,block_slots", [(8, 4), (0, 1)])
def test_dense_ids_summed_in_blocks_give_the_same_bits(monkeypatch, min_slots, block_slots):
    # dense ids with many customers per partition are summed in blocks of slots (_Scan._blocks;
    # 4,096+ customers per partition in real use): made small here, the same table, any threads
    import sys
    module = sys.modules["segmint.events.aggregate"]
    log = random_log(60_000, 13)
    rng = np.random.default_rng(13)
    log = log.set_column(0, "customer_id", pa.array(rng.integers(0, 20_000, log.num_rows),
                                                    mask=rng.random(log.num_rows) < 0.03))
    kw = dict(amount="amount", event_type="event_type", qualifying="purchase", as_of=AS_OF,
              windows=WINDOWS, batch_size=20_011)
    whole = segmint.aggregate(log, **kw).table
    monkeypatch.setattr(module, "_BLOCK_MIN_SLOTS", min_slots)
    monkeypatch.setattr(module, "_BLOCK_SLOTS", block_slots)
    blocks = []
    real = module._Scan._blocks
    monkeypatch.setattr(module._Scan, "_blocks", lambda self: blocks.append(real(self)) or blocks[-1])
    for threads in (1, 2):
        with segmint.threads(threads):
            assert segmint.aggregate(log, **kw).table.equals(whole)
    n_parts = {parts for _, parts in blocks}
    assert max(n_parts) > 256 and max(n_parts) <= 64 * 256  # blocks were used, at most 64
