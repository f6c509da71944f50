"""A seeded synthetic customer base with a known latent segment per customer.

Customers are drawn from seven personas (``PERSONAS``) whose behaviour differs the way real
shops' customers do: log-normal spend, a heavy tail of frequent buyers (negative binomial
order counts), recency and tenure that fit together, some nulls where real data has them
(age, income, undefined ratios, never-purchased prospects). ``true_segment`` holds the persona,
so clustering quality can be scored against it.

The matching event log (one row per purchase, page view, email open and cart abandonment)
agrees with the customer table: purchase counts are ``frequency``, amounts sum to
``monetary``, the first and last purchase fall on ``first_order_date`` and
``last_order_date``, views in the last 30 days number ``sessions_30d``.

Determinism: customers are generated in blocks of ``BLOCK_SIZE`` whose random streams come
from ``(random_state, block index)``, so a seed gives the same data whatever the output format,
batch size or thread count (blocks are drawn on ``segmint.get_num_threads()`` threads).

Time: the data are a snapshot taken at midnight UTC starting ``as_of``; every event lies
before it, so ``recency_days >= 1`` and ``last_order_date = as_of - recency_days``.
"""
import datetime as _dt
import json
import numbers
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pyarrow as pa

from .._parallel import get_num_threads
from .._time import US_PER_DAY
from ..errors import ParameterError

BLOCK_SIZE = 1 << 18
MAX_CUSTOMERS = 10**11  # ids stay far from int64's limit; the block plan stays a small list
DEFAULT_AS_OF = _dt.date(2026, 10, 1)
FIRST_CUSTOMER_ID = 1_000_001

PERSONAS = ("champions", "loyal_regulars", "bargain_hunters", "new_customers", "at_risk",
            "hibernating", "window_shoppers")
REGIONS = ("CA", "TX", "FL", "NY", "PA", "IL", "OH", "GA", "NC", "MI", "WA", "MA")
REGION_WEIGHTS = (0.18, 0.14, 0.11, 0.10, 0.065, 0.06, 0.055, 0.05, 0.05, 0.045, 0.04, 0.035)
CHANNELS = ("email", "sms", "push", "none")
DEVICES = ("ios", "android", "web")
EVENT_TYPES = ("purchase", "view", "email_open", "cart_abandon")

# One row per persona, columns in the order of PERSONAS.
_P = {
    "share":        [0.06, 0.14, 0.18, 0.12, 0.12, 0.28, 0.10],
    "orders_mean":  [22.0, 9.0, 5.0, 0.3, 6.0, 1.0, 0.0],   # orders beyond the first (prospects: none)
    "orders_disp":  [1.5, 3.0, 2.0, 2.0, 2.5, 1.5, 1.0],    # negative binomial dispersion: low = heavy tail
    "aov":          [140.0, 85.0, 32.0, 60.0, 75.0, 45.0, 0.0],
    "tenure_med":   [900.0, 700.0, 500.0, 30.0, 800.0, 1000.0, 200.0],
    "recency_base": [0.0, 0.0, 0.0, 0.0, 90.0, 220.0, 0.0],
    "recency_mean": [10.0, 25.0, 35.0, 20.0, 80.0, 300.0, 0.0],
    "sessions":     [18.0, 9.0, 14.0, 7.0, 1.5, 0.4, 6.0],
    "pages":        [7.0, 5.5, 8.0, 5.0, 3.5, 3.0, 4.0],
    "opens":        [14.0, 8.0, 10.0, 5.0, 2.0, 0.5, 3.0],
    "ctr":          [0.30, 0.20, 0.25, 0.15, 0.08, 0.05, 0.10],
    "abandons":     [1.0, 0.8, 4.0, 1.0, 0.5, 0.2, 3.0],
    "discount_a":   [1.5, 1.5, 6.0, 2.0, 1.5, 2.0, 1.0],
    "discount_b":   [6.0, 6.0, 3.0, 5.0, 6.0, 5.0, 1.0],
    "return_rate":  [0.06, 0.05, 0.12, 0.08, 0.07, 0.10, 0.0],
    "tickets":      [0.6, 0.4, 0.5, 0.3, 0.8, 0.2, 0.1],
    "age_mean":     [42.0, 47.0, 34.0, 31.0, 44.0, 50.0, 29.0],
    "age_sd":       [11.0, 12.0, 10.0, 9.0, 13.0, 14.0, 9.0],
    "income_med":   [110.0, 85.0, 55.0, 65.0, 75.0, 60.0, 50.0],
    "email_opt":    [0.85, 0.80, 0.75, 0.70, 0.65, 0.55, 0.60],
    "sms_opt":      [0.50, 0.40, 0.45, 0.35, 0.30, 0.20, 0.25],
    "channel_p":    [[0.5, 0.2, 0.25, 0.05], [0.6, 0.15, 0.15, 0.1], [0.35, 0.3, 0.3, 0.05],
                     [0.5, 0.1, 0.3, 0.1], [0.55, 0.15, 0.1, 0.2], [0.5, 0.1, 0.05, 0.35],
                     [0.3, 0.1, 0.4, 0.2]],
    "device_p":     [[0.5, 0.3, 0.2], [0.4, 0.3, 0.3], [0.3, 0.5, 0.2], [0.45, 0.4, 0.15],
                     [0.35, 0.35, 0.3], [0.25, 0.35, 0.4], [0.4, 0.45, 0.15]],
}
_PARAMS = {k: np.asarray(v, dtype=np.float64) for k, v in _P.items()}

NUMERIC_FEATURES = ("recency_days", "frequency", "monetary", "avg_order_value", "tenure_days",
                    "days_between_orders", "age", "income_k", "sessions_30d", "pages_per_session",
                    "email_opens_90d", "email_clicks_90d", "cart_abandonments_90d",
                    "discount_share", "returns_count", "support_tickets")

_DICT_VALUES = {"region": REGIONS, "channel": CHANNELS, "device": DEVICES, "event_type": EVENT_TYPES}
_DICT = {}  # name -> pa.array, built on first use: pa.array imports pandas, import segmint must not


def customer_schema(as_of=DEFAULT_AS_OF, random_state=0):
    """The pyarrow schema of the customer table (metadata records personas, as_of and the seed)."""
    d = pa.dictionary(pa.int32(), pa.string())
    fields = [
        ("customer_id", pa.int64()), ("true_segment", pa.int8()),
        ("signup_date", pa.date32()), ("first_order_date", pa.date32()),
        ("last_order_date", pa.date32()),
        ("recency_days", pa.int32()), ("frequency", pa.int32()), ("monetary", pa.float64()),
        ("avg_order_value", pa.float64()), ("tenure_days", pa.int32()),
        ("days_between_orders", pa.float32()),
        ("age", pa.int16()), ("income_k", pa.float32()), ("region", d), ("channel", d),
        ("device", d),
        ("sessions_30d", pa.int32()), ("pages_per_session", pa.float32()),
        ("email_opens_90d", pa.int32()), ("email_clicks_90d", pa.int32()),
        ("cart_abandonments_90d", pa.int32()), ("discount_share", pa.float32()),
        ("returns_count", pa.int32()), ("support_tickets", pa.int32()),
        ("email_opt_in", pa.bool_()), ("sms_opt_in", pa.bool_()),
    ]
    return pa.schema(fields, metadata=_metadata(as_of, random_state))


def event_schema(as_of=DEFAULT_AS_OF, random_state=0):
    """The pyarrow schema of the event log."""
    return pa.schema([("customer_id", pa.int64()), ("ts", pa.timestamp("ms", tz="UTC")),
                      ("event_type", pa.dictionary(pa.int32(), pa.string())),
                      ("amount", pa.float64())], metadata=_metadata(as_of, random_state))


def _metadata(as_of, seed):
    return {"segmint.generator": "segmint.datasets.customers", "segmint.random_state": str(seed),
            "segmint.as_of": as_of.isoformat(), "segmint.personas": json.dumps(PERSONAS)}


def _as_date(as_of):
    if isinstance(as_of, _dt.datetime):
        return as_of.date()
    if isinstance(as_of, _dt.date):
        return as_of
    if not isinstance(as_of, str):
        raise ParameterError(f"as_of must be a date or an ISO date string, got {type(as_of).__name__}")
    try:
        return _dt.date.fromisoformat(as_of.strip()[:64])
    except ValueError:
        raise ParameterError(f"as_of {as_of[:40]!r} is not an ISO date (YYYY-MM-DD)") from None


def _checked_counts(n_customers, random_state):
    """``(n_customers, random_state)`` as ints >= 0, or a ParameterError naming the argument."""
    checked = []
    if isinstance(n_customers, numbers.Real) and n_customers > MAX_CUSTOMERS:
        raise ParameterError(f"n_customers must be at most {MAX_CUSTOMERS:,}, got {n_customers:,}")
    for name, value in (("n_customers", n_customers), ("random_state", random_state)):
        if isinstance(value, float) and value.is_integer():  # 1e6 customers
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
            raise ParameterError(f"{name} must be a whole number >= 0, got {repr(value)[:40]}")
        checked.append(int(value))
    return tuple(checked)


def iter_customer_blocks(n_customers, *, random_state=0, as_of=DEFAULT_AS_OF, with_events=False):
    """Yield ``(customers, events)`` record batches, block by block (events None unless asked).

    Blocks are drawn on ``segmint.get_num_threads()`` threads at once (numpy releases the GIL
    while drawing); the output does not depend on it.

    Parameters
    ----------
    n_customers : int
        How many customers in all (>= 0).
    random_state : int
        Seed of every random stream; the same seed gives the same data.
    as_of : datetime.date or str
        The day the data describe: recency and tenure count back from it.
    with_events : bool
        Also generate the matching event log.
    """
    n_customers, random_state = _checked_counts(n_customers, random_state)
    as_of = _as_date(as_of)
    n_blocks = (n_customers + BLOCK_SIZE - 1) // BLOCK_SIZE
    sizes = [min(BLOCK_SIZE, n_customers - b * BLOCK_SIZE) for b in range(n_blocks)]
    threads = get_num_threads()

    def make(b):
        return _block(b, sizes[b], random_state, as_of, with_events)

    if threads <= 1 or n_blocks <= 1:
        for b in range(n_blocks):
            yield make(b)
        return
    with ThreadPoolExecutor(max_workers=threads) as pool:
        pending = []
        for b in range(n_blocks):  # keep at most `threads` blocks in flight: bounded memory
            pending.append(pool.submit(make, b))
            if len(pending) >= threads:
                yield pending.pop(0).result()
        for fut in pending:
            yield fut.result()


def make_customers(n_customers, *, random_state=0, as_of=DEFAULT_AS_OF, with_events=False):
    """Generate a synthetic customer base in memory.

    Parameters
    ----------
    n_customers : int
    random_state : int, default 0
        Seed of every random stream; the same seed gives the same data.
    as_of : datetime.date or str, default 2026-10-01
    with_events : bool, default False
        When True, also return the matching event log.

    Returns
    -------
    customers : pyarrow.Table
        One row per customer; columns described in :func:`customer_schema`.
    events : pyarrow.Table
        Only when ``with_events=True``: customer_id, ts (UTC), event_type, amount (purchases only).

    Examples
    --------
    >>> import segmint
    >>> t = segmint.make_customers(1000, random_state=1)
    >>> t.num_rows
    1000
    """
    as_of = _as_date(as_of)
    blocks = list(iter_customer_blocks(n_customers, random_state=random_state, as_of=as_of, with_events=with_events))
    customers = pa.Table.from_batches([c for c, _ in blocks], schema=customer_schema(as_of, random_state))
    if not with_events:
        return customers
    log = pa.Table.from_batches([e for _, e in blocks], schema=event_schema(as_of, random_state))
    return customers, log


def write_customers(path, n_customers, *, random_state=0, as_of=DEFAULT_AS_OF, events_path=None,
                    format=None):
    """Generate a customer base straight to a file, streaming (memory stays bounded).

    Blocks are drawn on ``segmint.get_num_threads()`` threads (set it with
    ``segmint.set_num_threads`` or ``with segmint.threads(n)``); the data do not depend on it.

    Parameters
    ----------
    path : str or os.PathLike
        ``.arrow``/``.feather`` (uncompressed IPC: memory-mappable) or ``.parquet``, or a folder
        for a Parquet dataset (trailing ``/``). Written atomically.
    n_customers, random_state, as_of : see :func:`make_customers`
    events_path : str or os.PathLike, optional
        Where to write the matching event log, same choice of formats.
    format : str, optional
        Output format when the suffix does not tell it.

    Returns
    -------
    dict
        ``{"customers": rows written, "events": rows written or 0}``.
    """
    from ..io.outputs import check_distinct
    from ..io.writers import ResultWriter

    # everything is checked before the first row is drawn: arguments, then both outputs
    _checked_counts(n_customers, random_state)
    as_of = _as_date(as_of)
    check_distinct([path, events_path])
    written = {"customers": 0, "events": 0}
    out = ev = None
    try:  # the writers are made inside: a Ctrl-C between two lines still drops the temporaries
        out = ResultWriter(path, customer_schema(as_of, random_state), format=format)
        if events_path is not None:
            ev = ResultWriter(events_path, event_schema(as_of, random_state))
        for customers, events in iter_customer_blocks(n_customers, random_state=random_state, as_of=as_of,
                                                      with_events=events_path is not None):
            out.write(customers)
            if ev is not None:
                ev.write(events)
        out.close()
        if ev is not None:
            ev.close()
    except BaseException:
        for writer in (out, ev):
            if writer is not None:
                writer.abort()
        raise
    written["customers"] = out.rows_written
    written["events"] = ev.rows_written if ev is not None else 0
    return written


def _block(block, n, seed, as_of, with_events):
    """Generate block number ``block`` (n customers) as (customers batch, events batch or None)."""
    rng = np.random.default_rng([seed, block, 0])
    P = _PARAMS
    persona = rng.choice(len(PERSONAS), size=n, p=P["share"] / P["share"].sum()).astype(np.int8)
    pi = persona.astype(np.intp)
    buyer = persona != PERSONAS.index("window_shoppers")

    # orders: 1 + negative binomial extra orders for buyers (heavy tail), none for prospects
    mean, disp = P["orders_mean"][pi], P["orders_disp"][pi]
    extra = rng.negative_binomial(disp, disp / (disp + np.maximum(mean, 1e-9)))
    frequency = np.where(buyer, 1 + extra, 0).astype(np.int32)

    # tenure (days since signup), recency (days since last order) within it
    tenure_med = P["tenure_med"][pi]
    tenure = np.where(persona == PERSONAS.index("new_customers"),
                      rng.integers(1, 61, size=n),
                      np.rint(tenure_med * rng.lognormal(0.0, 0.45, size=n)))
    tenure = np.clip(tenure, 1, 3650).astype(np.int32)
    recency = P["recency_base"][pi] + rng.exponential(1.0, size=n) * P["recency_mean"][pi]
    recency = np.clip(np.rint(recency), 1, tenure).astype(np.int32)
    # first order: soon after signup for repeat buyers, the last order for one-time buyers
    gap = np.rint(rng.exponential(20.0, size=n))
    first_ago = np.maximum(tenure - gap, recency).astype(np.int32)
    first_ago = np.where(frequency <= 1, recency, first_ago)

    # spend: per-customer log-normal level, per-order log-normal noise, rounded to cents
    level = np.log(np.maximum(P["aov"][pi], 1.0)) + rng.normal(0.0, 0.35, size=n)
    order_owner = np.repeat(np.arange(n), frequency)
    amounts = np.round(np.exp(level[order_owner] + rng.normal(0.0, 0.5, size=order_owner.size)), 2)
    monetary = np.zeros(n)
    _segment_sums(amounts, frequency, monetary)
    has_orders = frequency > 0
    aov = np.divide(monetary, frequency, out=np.zeros(n), where=has_orders)
    between = np.divide((first_ago - recency).astype(np.float64), frequency - 1,
                        out=np.zeros(n), where=frequency > 1)

    # behaviour
    sessions = rng.poisson(P["sessions"][pi] * rng.gamma(2.0, 0.5, size=n)).astype(np.int32)
    pages = (P["pages"][pi] * rng.lognormal(0.0, 0.3, size=n)).astype(np.float32)
    email_opt = rng.random(n) < P["email_opt"][pi]
    opens = np.where(email_opt, rng.poisson(P["opens"][pi]), 0).astype(np.int32)
    clicks = rng.binomial(opens, P["ctr"][pi]).astype(np.int32)
    abandons = rng.poisson(P["abandons"][pi]).astype(np.int32)
    discount = rng.beta(P["discount_a"][pi], P["discount_b"][pi]).astype(np.float32)
    returns = rng.binomial(frequency, P["return_rate"][pi]).astype(np.int32)
    tickets = rng.poisson(P["tickets"][pi] * (1 + np.log1p(frequency))).astype(np.int32)

    # demographics, technographics, consent
    age = np.clip(np.rint(rng.normal(P["age_mean"][pi], P["age_sd"][pi])), 18, 90).astype(np.int16)
    age_null = rng.random(n) < 0.07
    income = (P["income_med"][pi] * rng.lognormal(0.0, 0.4, size=n)).astype(np.float32)
    income_null = rng.random(n) < 0.12
    region = rng.choice(len(REGIONS), size=n, p=np.asarray(REGION_WEIGHTS) / sum(REGION_WEIGHTS))
    channel = _choice_rows(rng, np.asarray(_P["channel_p"])[pi])
    device = _choice_rows(rng, np.asarray(_P["device_p"])[pi])
    sms_opt = rng.random(n) < P["sms_opt"][pi]
    sms_null = rng.random(n) < 0.04

    day0 = (as_of - _dt.date(1970, 1, 1)).days
    ids = FIRST_CUSTOMER_ID + block * BLOCK_SIZE + np.arange(n, dtype=np.int64)
    no_orders = ~has_orders
    arrays = [
        pa.array(ids),
        pa.array(persona),
        _date(day0 - tenure),
        _date(day0 - first_ago, no_orders),
        _date(day0 - recency, no_orders),
        pa.array(recency, mask=no_orders),
        pa.array(frequency),
        pa.array(monetary),
        pa.array(aov, mask=no_orders),
        pa.array(tenure),
        pa.array(between.astype(np.float32), mask=frequency < 2),
        pa.array(age, mask=age_null),
        pa.array(income, mask=income_null),
        _dictionary(region, "region"),
        _dictionary(channel, "channel"),
        _dictionary(device, "device"),
        pa.array(sessions),
        pa.array(pages, mask=sessions == 0),
        pa.array(opens),
        pa.array(clicks),
        pa.array(abandons),
        pa.array(discount, mask=no_orders),
        pa.array(returns),
        pa.array(tickets),
        pa.array(email_opt),
        pa.array(sms_opt, mask=sms_null),
    ]
    customers = pa.RecordBatch.from_arrays(arrays, schema=customer_schema(as_of, seed))
    if not with_events:
        return customers, None
    ev_rng = np.random.default_rng([seed, block, 1])
    events = _events(ev_rng, ids, frequency, first_ago, recency, amounts, order_owner, sessions,
                     opens, abandons, day0, as_of, seed)
    return customers, events


def _segment_sums(values, counts, out):
    """Sum consecutive runs of ``values`` of lengths ``counts`` into ``out`` (zero for empty runs)."""
    ends = np.cumsum(counts)
    starts = ends - counts
    nonempty = counts > 0
    out[nonempty] = np.add.reduceat(values, starts[nonempty]) if values.size else 0.0
    return out


def _choice_rows(rng, probs):
    """One category per row from a per-row probability table (rows sum to 1)."""
    cdf = np.cumsum(probs, axis=1)
    u = rng.random(probs.shape[0])[:, None]
    return np.minimum((u > cdf).sum(axis=1), probs.shape[1] - 1)


def _date(days, mask=None):
    return pa.array(days.astype(np.int32), type=pa.int32(), mask=mask).cast(pa.date32())


def _dict_values(name):
    """The dictionary of a string column (threads racing here build equal arrays: harmless)."""
    values = _DICT.get(name)
    if values is None:
        values = _DICT[name] = pa.array(_DICT_VALUES[name], type=pa.string())
    return values


def _dictionary(codes, name):
    return pa.DictionaryArray.from_arrays(pa.array(codes.astype(np.int32)), _dict_values(name))


def _events(rng, ids, frequency, first_ago, recency, amounts, order_owner, sessions, opens,
            abandons, day0, as_of, seed):
    """The event log of one block, sorted by time within the block."""
    ms_day = US_PER_DAY // 1000
    # purchases: the first on first_order_date, the last on last_order_date, others between
    n_orders = order_owner.size
    pos = np.arange(n_orders) - np.repeat(np.cumsum(frequency) - frequency, frequency)
    f = frequency[order_owner]
    first, last = first_ago[order_owner], recency[order_owner]
    span = (first - last).astype(np.float64)
    middle_day = last + np.floor(rng.random(n_orders) * (span + 1))
    days_ago = np.where(pos == 0, first, np.where(pos == f - 1, last, middle_day))
    p_ts = (day0 - days_ago) * ms_day + rng.integers(0, ms_day, size=n_orders)

    # views: sessions_30d in the last 30 days plus about half as many 30 to 90 days ago
    older = rng.poisson(0.5 * sessions)
    v_owner = np.concatenate([np.repeat(np.arange(ids.size), sessions), np.repeat(np.arange(ids.size), older)])
    recent_views = int(sessions.sum())
    v_ago = np.concatenate([rng.random(recent_views) * 30.0,
                            30.0 + rng.random(v_owner.size - recent_views) * 60.0])
    # email opens and cart abandonments inside the last 90 days
    e_owner = np.repeat(np.arange(ids.size), opens)
    a_owner = np.repeat(np.arange(ids.size), abandons)
    e_ago = rng.random(e_owner.size) * 90.0
    a_ago = rng.random(a_owner.size) * 90.0

    def ts_from_ago(days):  # strictly before as_of midnight
        return day0 * ms_day - 1 - np.floor(days * ms_day).astype(np.int64)

    owner = np.concatenate([order_owner, v_owner, e_owner, a_owner])
    ts = np.concatenate([p_ts.astype(np.int64), ts_from_ago(v_ago), ts_from_ago(e_ago), ts_from_ago(a_ago)])
    kind = np.concatenate([np.zeros(n_orders, np.int32), np.full(v_owner.size, 1, np.int32),
                           np.full(e_owner.size, 2, np.int32), np.full(a_owner.size, 3, np.int32)])
    amount = np.concatenate([amounts, np.zeros(ts.size - n_orders)])
    order = np.argsort(ts, kind="stable")
    is_purchase = kind[order] == 0
    arrays = [pa.array(ids[owner[order]]),
              pa.array(ts[order], type=pa.timestamp("ms", tz="UTC")),
              pa.DictionaryArray.from_arrays(pa.array(kind[order]), _dict_values("event_type")),
              pa.array(amount[order], mask=~is_purchase)]
    return pa.RecordBatch.from_arrays(arrays, schema=event_schema(as_of, seed))
