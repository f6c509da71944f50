"""Rules on one customer: ``RuleSet.matches`` and ``RecordEvaluator.code``, one call timed.

Twenty waterfall rules over seven columns (integers, a float, a string, a boolean, a date, a
timestamp) using every function of the language; each timed call takes the next of 256
fixed records (nulls, values on the rules' boundaries, dates around ``as_of``, unseen
strings), so the time is a mix of early and late exits from the waterfall. Issue 16's target:
``matches`` <= 5 us (median) for 20 rules.

- ``matches[20 rules]``: the public call, column types told from the values (``segmint``) or
  given as a schema (``segmint.schema``).
- ``record_evaluator.code[20 rules]``: the prepared evaluator the Scorer calls.

Quality (``"equal"``): of 1,000 fixed records, how many get the segment the batch path
(``RuleSet.evaluate`` on a table of them) gives; all 1,000, or a bug. ``--size`` does not
apply: one record is one record (the work is the same at every size).
"""
import datetime as dt
import itertools

import numpy as np
import pyarrow as pa
import pytest

import segmint
from conftest import compare, record

UTC = dt.timezone.utc
AS_OF = dt.datetime(2026, 10, 1, 15, 30, tzinfo=UTC)
RULES = [
    ("champions", "frequency >= 15 and monetary >= 1500"),
    ("big_spenders", "monetary >= 1000 and email_opt_in"),
    ("loyal", "frequency >= 8 and days_since(last_order) <= 60"),
    ("ny_ca_active", "region in ('NY', 'CA') and days_since(last_order) <= 90"),
    ("seniors_opted_in", "age >= 65 and email_opt_in"),
    ("young_west", "age < 30 and region in ('CA', 'WA')"),
    ("at_risk", "frequency >= 4 and days_since(last_order) between 120 and 365"),
    ("lapsed", "days_since(last_order) > 365 or last_seen < timestamp '2025-01-01 00:00:00'"),
    ("one_timers", "frequency = 1"),
    ("prospects", "frequency = 0 and email_opt_in"),
    ("north", "starts_with(region, 'N') and monetary / frequency > 50"),
    ("recent", "within_last(last_order, 14d) or within_last(last_seen, 36h)"),
    ("no_region", "region is null and age is not null"),
    ("mid", "monetary between 200 and 400 and not email_opt_in"),
    ("odd_age", "coalesce(age, 0) - 40 > 10 or abs(age - 40) < 2"),
    ("missing_consent", "email_opt_in is null"),
    ("west", "contains(region, 'A') and frequency > 2"),
    ("new_year", "last_order >= date '2026-01-01'"),
    ("spend_rate", "monetary * 2 + frequency >= 300"),
    ("vip_ref", "segment('champions') or segment('big_spenders') and age > 50"),
]
SCHEMA = pa.schema([("frequency", pa.int64()), ("monetary", pa.float64()), ("region", pa.string()),
                    ("email_opt_in", pa.bool_()), ("last_order", pa.date32()),
                    ("last_seen", pa.timestamp("us", tz="UTC")), ("age", pa.int64())])
MATCHES = f"matches[{len(RULES)} rules]"
CODE = f"record_evaluator.code[{len(RULES)} rules]"
EQUAL = "records whose segment equals the batch path's (of 1,000)"


def make_records(n, seed):
    rng = np.random.default_rng(seed)
    day = AS_OF.date()

    def pick(options, null=0.1):
        return None if rng.random() < null else options[rng.integers(len(options))]

    return [{
        "frequency": pick([0, 1, 4, 8, 15, int(rng.integers(0, 40))]),
        "monetary": pick([200.0, 400.0, 1000.0, 1500.0, float(rng.gamma(2.0, 300.0))]),
        "region": pick(["NY", "CA", "WA", "TX", "NV", f"unseen{rng.integers(100)}"]),
        "email_opt_in": pick([True, False]),
        "last_order": pick([day - dt.timedelta(days=int(d)) for d in (0, 14, 60, 90, 120, 365, 366,
                                                                       int(rng.integers(0, 900)))]),
        "last_seen": pick([AS_OF - dt.timedelta(hours=36), AS_OF - dt.timedelta(seconds=int(rng.integers(10**8)))]),
        "age": pick([29, 30, 40, 41, 51, 65, int(rng.integers(18, 90))]),
    } for _ in range(n)]


@pytest.fixture(scope="module")
def rules():
    return segmint.RuleSet(RULES, default="other")


@pytest.fixture(scope="module")
def equal_to_batch(rules):
    """Of 1,000 fixed records, how many ``matches`` puts in the batch path's segment."""
    records = make_records(1000, seed=1)
    batch = rules.evaluate(pa.Table.from_pylist(records, schema=SCHEMA), as_of=AS_OF)
    expected = batch.table.column("segment").to_pylist()
    return sum(rules.matches(r, as_of=AS_OF) == e for r, e in zip(records, expected))


def _cycling(records):
    return itertools.cycle(records).__next__


def test_matches_twenty_rules(benchmark, rules, equal_to_batch):
    compare(benchmark, MATCHES)
    nxt = _cycling(make_records(256, seed=0))
    for _ in range(300):  # every type signature prepared, outside the timed region
        rules.matches(nxt(), as_of=AS_OF)
    benchmark(lambda: rules.matches(nxt(), as_of=AS_OF))
    record(benchmark, quality=(EQUAL, equal_to_batch, "equal"), rules=len(RULES), columns=len(SCHEMA))


def test_matches_twenty_rules_with_a_schema(benchmark, rules, equal_to_batch):
    compare(benchmark, MATCHES, impl="segmint.schema")
    nxt = _cycling(make_records(256, seed=0))
    rules.matches(nxt(), as_of=AS_OF, schema=SCHEMA)
    benchmark(lambda: rules.matches(nxt(), as_of=AS_OF, schema=SCHEMA))
    record(benchmark, quality=(EQUAL, equal_to_batch, "equal"), rules=len(RULES), columns=len(SCHEMA))


def test_record_evaluator_code_twenty_rules(benchmark, rules, equal_to_batch):
    compare(benchmark, CODE)
    evaluator = rules.record_evaluator(SCHEMA, as_of=AS_OF)
    nxt = _cycling(make_records(256, seed=0))
    benchmark(lambda: evaluator.code(nxt()))
    record(benchmark, quality=(EQUAL, equal_to_batch, "equal"), rules=len(RULES), columns=len(SCHEMA))
