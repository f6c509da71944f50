"""Rules on one record (``RuleSet.matches``, ``RuleSet.record_evaluator``) against the batch path."""
import datetime as dt
import threading

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import naive_rules as naive
from segmint.errors import DataError, ParameterError, UnknownColumnError, UnsupportedTypeError
from segmint.kernels import rules as vm
from segmint.rules import RuleSet
from segmint._warmup import is_cached
from segmint.rules.record import STRING_CACHE_SIZE, TIME_DEFAULT, kernel_argtypes, time_columns
from test_rules import random_table

UTC = dt.timezone.utc
AS_OF = dt.datetime(2026, 10, 1, 15, 30, tzinfo=UTC)

# twenty rules over six columns, every function and operator of the language
TWENTY = [
    ("champions", "frequency >= 15 and monetary >= 1500"),
    ("big_spenders", "monetary >= 1000 and email_opt_in"),
    ("loyal", "frequency >= 8 and days_since(last_order) <= 60"),
    ("ny_ca_active", "region in ('NY', 'CA') and days_since(last_order) <= 90"),
    ("seniors_opted_in", "age >= 65 and email_opt_in = true"),
    ("young_west", "age < 30 and region in ('CA', 'WA')"),
    ("at_risk", "frequency >= 4 and days_since(last_order) between 120 and 365"),
    ("lapsed", "days_since(last_order) > 365 or last_seen < timestamp '2025-01-01 00:00:00'"),
    ("one_timers", "frequency = 1 and region not in ('TX')"),
    ("prospects", "frequency = 0 and email_opt_in"),
    ("north", "starts_with(region, 'N') and monetary / frequency > 50"),
    ("recent", "within_last(last_order, 14d) or within_last(last_seen, 36h)"),
    ("no_region", "region is null and age is not null"),
    ("mid", "monetary between 200 and 400 and not email_opt_in"),
    ("odd_age", "coalesce(age, 0) - 40 > 10 or abs(age - 40) < 2"),
    ("missing_consent", "email_opt_in is null"),
    ("west", "contains(region, 'A') and frequency > 2"),
    ("new_year", "last_order >= date '2026-01-01' and last_seen - last_order < 30d"),
    ("spend_rate", "-monetary * 2 + frequency <= -300"),
    ("vip_ref", "segment('champions') or segment('big_spenders') and age > 50"),
]
SCHEMA = pa.schema([("frequency", pa.int64()), ("monetary", pa.float64()), ("region", pa.string()),
                    ("email_opt_in", pa.bool_()), ("last_order", pa.date32()),
                    ("last_seen", pa.timestamp("us", tz="UTC")), ("age", pa.int32())])


def random_records(n, seed):
    """Records with nulls, values equal to the rules' constants and dates around as_of."""
    rng = np.random.default_rng(seed)
    day = AS_OF.date()

    def pick(options, null=0.15):
        return None if rng.random() < null else options[rng.integers(len(options))]

    out = []
    for _ in range(n):
        out.append({
            "frequency": pick([0, 1, 2, 3, 4, 8, 15, 16, int(rng.integers(0, 40))]),
            "monetary": pick([199.99, 200.0, 400.0, 1000.0, 1500.0, 1499.5, -150.0, float(rng.normal(500, 400))]),
            "region": pick(["NY", "CA", "WA", "TX", "NV", "AZ", "", "ny", f"unseen{rng.integers(1000)}"]),
            "email_opt_in": pick([True, False]),
            "last_order": pick([day - dt.timedelta(days=int(d)) for d in
                                (0, 14, 15, 60, 61, 90, 91, 120, 365, 366, -3, int(rng.integers(0, 900)))]
                               + [dt.date(2026, 1, 1), dt.date(2025, 12, 31)]),
            "last_seen": pick([AS_OF - dt.timedelta(hours=36), AS_OF - dt.timedelta(hours=36, microseconds=1),
                               AS_OF, AS_OF + dt.timedelta(seconds=1), dt.datetime(2025, 1, 1, tzinfo=UTC),
                               AS_OF - dt.timedelta(seconds=int(rng.integers(0, 10**8)))]),
            "age": pick([29, 30, 38, 39, 40, 41, 42, 50, 51, 65, 64]),
        })
    return out


def batch_results(rules, records, schema, as_of=AS_OF):
    """The batch engine's answer for each record: a name (waterfall) or a list of names (multi)."""
    table = pa.Table.from_pylist(records, schema=schema)
    result = rules.evaluate(table, as_of=as_of).table
    if rules.mode == "waterfall":
        return result.column("segment").to_pylist()
    columns = [result.column(n).to_pylist() for n in rules.names]
    return [[n for n, col in zip(rules.names, columns) if col[r]] for r in range(len(records))]


@pytest.mark.parametrize("mode", ["waterfall", "multi"])
def test_twenty_rules_on_random_records_equal_the_batch_path(mode):
    rules = RuleSet(TWENTY, mode=mode, default="other")
    records = random_records(600, seed=1)
    expected = batch_results(rules, records, SCHEMA)
    assert [rules.matches(r, as_of=AS_OF, schema=SCHEMA) for r in records] == expected
    # without a schema: types told from the values (None from how the rules use the column)
    assert [rules.matches(r, as_of=AS_OF) for r in records] == expected
    # a one-row table gives the same as the record, row by row
    for r in records[:25]:
        assert rules.matches(r, as_of=AS_OF) == batch_results(rules, [r], SCHEMA)[0]


def test_the_evaluator_codes_equal_the_stream_codes_and_members_equal_multi_columns():
    records = random_records(400, seed=2)
    table = pa.Table.from_pylist(records, schema=SCHEMA)
    waterfall = RuleSet(TWENTY, default="other")
    ev = waterfall.record_evaluator(SCHEMA, as_of=AS_OF)
    assert set(ev.columns) == set(SCHEMA.names) and len(ev.columns) == len(SCHEMA)
    stream = np.concatenate([b.codes for b in waterfall.stream(table, as_of=AS_OF, batch_size=97)])
    assert [ev.code(r) for r in records] == stream.tolist()
    many = ev.codes_many(records)
    assert many.dtype.kind == "i" and many.tolist() == stream.tolist()
    assert ev.names == waterfall.names + ["other"]
    multi = RuleSet(TWENTY, mode="multi")
    mev = multi.record_evaluator(SCHEMA, as_of=AS_OF)
    got = np.array([mev.members(r) for r in records])
    result = multi.evaluate(table, as_of=AS_OF).table
    assert got.dtype == np.bool_
    assert got.T.tolist() == [result.column(n).to_pylist() for n in multi.names]


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(naive.bool_terms(), min_size=1, max_size=6), st.integers(0, 10_000),
       st.sampled_from(["waterfall", "multi"]))
def test_random_rule_sets_on_records_equal_the_batch_path(trees, seed, mode):
    table = random_table(40, seed)
    rules = RuleSet([(f"s{i}", naive.render(t)) for i, t in enumerate(trees)], mode=mode, default="rest")
    records = table.to_pylist()
    expected = batch_results(rules, records, table.schema, naive.AS_OF)
    # and the slow twin (naive_rules), row by row, agrees with both
    truth = [[naive.value(t, r) is True for t in trees] for r in records]
    assert expected == ([f"s{row.index(True)}" if True in row else "rest" for row in truth] if mode == "waterfall"
                        else [[f"s{i}" for i, hit in enumerate(row) if hit] for row in truth])
    assert [rules.matches(r, as_of=naive.AS_OF, schema=table.schema) for r in records] == expected
    # without a schema a column the rules use only as a time is typed from the rules
    # (time_columns), whatever the record holds: the batch path on the table cast to those types
    times = time_columns(rules._asts)
    typed = table.cast(pa.schema([pa.field(f.name, times.get(f.name, f.type)) for f in table.schema]))
    result = rules.evaluate(typed, as_of=naive.AS_OF).table
    typed_expected = (result.column("segment").to_pylist() if mode == "waterfall" else
                      [[n for n in rules.names if result.column(n)[r].as_py()] for r in range(len(records))])
    assert [rules.matches(r, as_of=naive.AS_OF) for r in records] == typed_expected


@pytest.mark.parametrize("arrow_type, value", [
    (pa.timestamp("ns", tz="UTC"), dt.datetime(2026, 9, 30, 15, 29, 59, 999_999, tzinfo=UTC)),
    (pa.timestamp("ms"), dt.datetime(2026, 9, 1, 12, 0, 0, 123_000)),
    (pa.timestamp("s", tz="Europe/Paris"), dt.datetime(2026, 9, 1, 12, 0, 0, tzinfo=UTC)),
    (pa.date64(), dt.date(2026, 7, 3)),
    (pa.date32(), dt.date(1969, 12, 31)),
])
def test_time_units_and_zones_equal_the_batch_path(arrow_type, value):
    rules = RuleSet([("a", "days_since(t) > 29.5"), ("b", "within_last(t, 90d)"),
                     ("c", "t >= timestamp '2026-09-01 12:00:00'")], mode="multi")
    schema = pa.schema([("t", arrow_type)])
    records = [{"t": value}, {"t": None}]
    # (ns timestamps are read as whole microseconds in both paths: test_rules_types.py)
    expected = batch_results(rules, records, schema)
    assert [rules.matches(r, as_of=AS_OF, schema=schema) for r in records] == expected


def test_numpy_scalars_float32_columns_and_durations():
    rules = RuleSet([("a", "x > 0.1 and n = 3 and flag"), ("b", "gap > 2d"), ("c", "x = 0.1")], mode="multi")
    schema = pa.schema([("x", pa.float32()), ("n", pa.int16()), ("flag", pa.bool_()),
                        ("gap", pa.duration("s"))])
    records = [{"x": np.float32(0.1), "n": np.int16(3), "flag": np.bool_(True), "gap": dt.timedelta(days=2, seconds=1)},
               {"x": 0.1, "n": 3, "flag": True, "gap": np.timedelta64(2 * 86_400, "s")},
               {"x": None, "n": None, "flag": None, "gap": None}]
    expected = batch_results(rules, records, schema)
    assert [rules.matches(r, as_of=AS_OF, schema=schema) for r in records] == expected
    assert expected[1] == ["a"]  # float32(0.1) > 0.1 as float64: the record follows the column's type
    assert rules.matches({"x": 0.1, "n": 3, "flag": True, "gap": dt.timedelta(days=3)}) == ["b", "c"]


def test_as_of_defaults_to_now_at_each_call():
    rules = RuleSet({"recent": "within_last(seen, 2h)"}, default="old")
    now = dt.datetime.now(UTC)
    assert rules.matches({"seen": now - dt.timedelta(hours=1)}) == "recent"
    assert rules.matches({"seen": now - dt.timedelta(hours=3)}) == "old"
    ev = rules.record_evaluator(pa.schema([("seen", pa.timestamp("us", tz="UTC"))]))
    assert ev.code({"seen": now - dt.timedelta(hours=1)}) == 0
    assert rules.matches({"seen": now}, as_of=now - dt.timedelta(hours=5)) == "old"


def test_many_threads_sharing_one_evaluator_get_the_single_thread_answers():
    rules = RuleSet(TWENTY, default="other")
    ev = rules.record_evaluator(SCHEMA, as_of=AS_OF)
    records = random_records(300, seed=3)
    expected = [ev.code(r) for r in records]
    results, errors = {}, []

    def work(t):
        try:
            for _ in range(20):
                got = [ev.code(r) for r in records[t::3]] + [
                    rules.matches(r, as_of=AS_OF) for r in records[t::5]]
                assert got == expected[t::3] + [ev.names[c] for c in expected[t::5]]
            results[t] = True
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors and len(results) == 8


def test_calls_compile_nothing_once_the_evaluator_is_built():
    rules = RuleSet(TWENTY, mode="multi")
    ev = rules.record_evaluator(SCHEMA, as_of=AS_OF)
    before = len(vm.run_record.signatures)
    for r in random_records(50, seed=4):
        ev.members(r)
        rules.matches(r)
    RuleSet(TWENTY).record_evaluator(SCHEMA).code(random_records(1, seed=5)[0])
    assert len(vm.run_record.signatures) == before


def test_a_missing_column_is_named_with_the_nearest_key():
    rules = RuleSet(TWENTY, default="other")
    record = random_records(1, seed=6)[0]
    record["monetry"] = record.pop("monetary")
    with pytest.raises(UnknownColumnError, match=r"'monetary'.*'monetry'"):
        rules.matches(record)
    with pytest.raises(UnknownColumnError, match=r"'monetary'.*'monetry'"):
        rules.record_evaluator(SCHEMA).code(record)
    with pytest.raises(UnknownColumnError, match="'monetary'"):
        rules.matches(record, schema=SCHEMA)


@pytest.mark.parametrize("column, value, expected", [
    ("monetary", "1500", "number"), ("frequency", True, "number"), ("email_opt_in", 1, "boolean"),
    ("region", 7, "string"), ("last_order", "2026-13-01", "date"), ("last_seen", 1.5e9, "timestamp"),
    ("last_seen", "yesterday", "timestamp.*ISO 8601"), ("last_order", dt.timedelta(days=1), "date"),
])
def test_a_value_of_the_wrong_type_names_the_column_and_the_expected_type(column, value, expected):
    rules = RuleSet(TWENTY, default="other")
    record = dict(random_records(1, seed=7)[0], **{column: value})
    with pytest.raises(UnsupportedTypeError, match=rf"{column!r}.*{expected}"):
        rules.record_evaluator(SCHEMA).code(record)
    with pytest.raises(UnsupportedTypeError, match=rf"{column!r}.*{expected}"):
        rules.matches(record, schema=SCHEMA)
    with pytest.raises((UnsupportedTypeError, DataError), match=rf"{column!r}"):
        rules.matches(record)


def test_other_bad_records_get_clear_errors():
    rules = RuleSet({"a": "x > 1"})
    with pytest.raises(DataError, match=r"'x'.*2\*\*53"):
        rules.matches({"x": 2 ** 60})
    with pytest.raises(UnsupportedTypeError, match="mapping"):
        rules.matches(["x", 1])
    with pytest.raises(UnsupportedTypeError, match=r"'x'.*list"):
        rules.matches({"x": [1]})
    untold = RuleSet({"a": "x = y"})
    with pytest.raises(DataError, match=r"(?s)'x'.*schema="):
        untold.matches({"x": None, "y": "a"})
    assert untold.matches({"x": None, "y": 2}) == "unassigned"
    with pytest.raises(ParameterError, match="multi"):
        RuleSet({"a": "x > 1"}, mode="multi").record_evaluator(pa.schema([("x", pa.int64())])).code({"x": 1})


def test_a_flood_of_distinct_strings_keeps_the_string_cache_bounded():
    rules = RuleSet({"n": "starts_with(city, 'N')"}, default="other")
    schema = pa.schema([("city", pa.string())])
    ev = rules.record_evaluator(schema)
    for i in range(STRING_CACHE_SIZE + 500):
        assert ev.code({"city": f"N{i}" if i % 2 else f"x{i}"}) == (0 if i % 2 else 1)
    (column,) = ev._str
    assert len(column.cache) <= STRING_CACHE_SIZE
    assert rules.matches({"city": "Nantes"}, schema=schema) == "n"


def test_nan_is_a_value_and_null_columns_are_typed_from_how_the_rules_use_them():
    rules = RuleSet([("big", "x > 1"), ("missing", "x is null"), ("flagged", "coalesce(a, b)"),
                     ("named", "starts_with(s, 'N') or s is null")], mode="multi")
    schema = pa.schema([("x", pa.float64()), ("a", pa.bool_()), ("b", pa.bool_()), ("s", pa.string())])
    records = [{"x": float("nan"), "a": None, "b": True, "s": None},
               {"x": None, "a": False, "b": True, "s": "Nice"},
               {"x": 2.0, "a": None, "b": None, "s": "Lyon"}]
    expected = batch_results(rules, records, schema)
    assert expected[0] == ["flagged", "named"] and expected[1] == ["missing", "named"]
    assert [rules.matches(r, as_of=AS_OF) for r in records] == expected
    assert [rules.matches(r, as_of=AS_OF, schema=schema) for r in records] == expected


def test_a_program_is_prepared_once_per_signature_of_value_types():
    rules = RuleSet(TWENTY, default="other")
    records = random_records(200, seed=8)
    first = [rules.matches(r, as_of=AS_OF) for r in records]
    cache = rules._records
    signatures, evaluators = len(cache.by_types), set(map(id, cache.by_types.values()))
    assert [rules.matches(r, as_of=AS_OF) for r in records] == first
    assert len(cache.by_types) == signatures and set(map(id, cache.by_types.values())) == evaluators
    assert len(evaluators) <= len(cache.by_schema)  # signatures that type alike share one


def test_the_kernel_signature_is_known_ahead_for_readiness_checks():
    RuleSet({"a": "x > 1"}).record_evaluator(pa.schema([("x", pa.int64())]))
    # (the Scorer's kernel calls run_record too, with its own buffers: a second signature
    # compiled inside that kernel, when this process compiled it)
    assert kernel_argtypes() in vm.run_record.signatures
    assert is_cached(vm.run_record, kernel_argtypes())
    with pytest.raises(ParameterError, match="pyarrow.Schema"):
        RuleSet({"a": "x > 1"}).record_evaluator({"x": "int64"})


def random_datetime_records(n, seed):
    """:func:`random_records` with datetimes of several time zones: in the date column (whose
    calendar date is the datetime's own, as pyarrow takes it) and in the timestamp column."""
    rng = np.random.default_rng(seed)
    zones = [dt.timezone(dt.timedelta(hours=h)) for h in (-11, -5, 0, 5.5, 9, 14)]
    out = random_records(n, seed)
    for r in out:
        tz = zones[rng.integers(len(zones))]
        # near midnight, where the UTC day and the local day differ
        local = dt.datetime.combine(AS_OF.date() - dt.timedelta(days=int(rng.choice([0, 14, 15, 60, 61]))),
                                    dt.time(int(rng.choice([0, 1, 22, 23])), 30))
        if rng.random() < 0.5:
            r["last_order"] = local.replace(tzinfo=tz) if rng.random() < 0.7 else local
        if rng.random() < 0.5:
            r["last_seen"] = (AS_OF - dt.timedelta(hours=float(rng.choice([35.9, 36, 36.1])))).astimezone(tz)
    return out


@pytest.mark.parametrize("mode", ["waterfall", "multi"])
def test_datetimes_in_a_date_column_and_non_utc_timestamps_equal_the_batch_path(mode):
    rules = RuleSet(TWENTY, mode=mode, default="other")
    records = random_datetime_records(400, seed=21)
    expected = batch_results(rules, records, SCHEMA)
    assert [rules.matches(r, as_of=AS_OF, schema=SCHEMA) for r in records] == expected
    tz = dt.timezone(dt.timedelta(hours=-5))  # the reviewer's case: 22:00 at -5 is the next UTC day
    day = RuleSet([("recent", "days_since(d) < 1")], default="rest")
    schema = pa.schema([("d", pa.date32())])
    for value in (dt.datetime(2026, 9, 30, 22, tzinfo=tz), dt.datetime(2026, 9, 30, 23)):
        assert day.matches({"d": value}, as_of="2026-10-01", schema=schema) == batch_results(
            day, [{"d": value}], schema, as_of="2026-10-01")[0] == "rest"


def test_a_fraction_in_an_integer_column_and_an_inexact_int_in_float32_are_refused():
    rules = RuleSet({"big": "n > 3", "f": "x > 3"}, mode="multi")
    schema = pa.schema([("n", pa.int64()), ("x", pa.float32())])
    with pytest.raises(UnsupportedTypeError, match=r"'n'.*whole number"):
        rules.matches({"n": 3.5, "x": 1.0}, schema=schema)
    with pytest.raises(UnsupportedTypeError, match=r"'n'"):
        rules.matches({"n": float("nan"), "x": 1.0}, schema=schema)
    assert rules.matches({"n": 4.0, "x": 1.0}, schema=schema) == rules.matches({"n": 4, "x": 1.0}, schema=schema)
    with pytest.raises(DataError, match=r"'x'.*float32"):
        rules.matches({"n": 1, "x": 16_777_217}, schema=schema)
    assert rules.matches({"n": 1, "x": 16_777_216}, schema=schema) == ["f"]


def test_a_list_or_dict_in_a_string_column_is_refused_naming_the_column():
    rules = RuleSet({"n": "starts_with(city, 'N')"}, default="other")
    schema = pa.schema([("city", pa.string())])
    for value in (["N"], {"N": 1}):
        with pytest.raises(UnsupportedTypeError, match=r"'city'.*string"):
            rules.matches({"city": value}, schema=schema)


def test_schemas_with_other_columns_share_one_program_and_one_evaluator():
    rules = RuleSet({"big": "x > 1"}, default="other")
    for i in range(300):  # a service passing each request's own schema
        schema = pa.schema([("x", pa.float64()), (f"extra{i}", pa.int64())])
        assert rules.matches({"x": 2.0, f"extra{i}": i}, schema=schema) == "big"
    assert len(rules._programs) == 1
    assert len(rules._records.by_schema) == 1
    from segmint.rules.ruleset import MAX_PROGRAMS
    for t in (pa.int8(), pa.int16(), pa.int32(), pa.int64(), pa.float32(), pa.float64()) * 20:
        rules.prepare(pa.schema([("x", t)]))
    assert len(rules._programs) <= MAX_PROGRAMS


def test_an_as_of_per_call_equals_an_evaluator_built_for_it_and_keeps_conversions_bounded():
    from segmint.rules.record import INSTANTS
    rules = RuleSet(TWENTY, default="other")
    ev = rules.record_evaluator(SCHEMA)
    records = random_records(120, seed=22)
    for i, r in enumerate(records):
        as_of = AS_OF - dt.timedelta(days=i, hours=i)
        assert ev.code(r, as_of=as_of) == rules.record_evaluator(SCHEMA, as_of=as_of).code(r)
    assert ev.codes_many(records, as_of=AS_OF).tolist() == [ev.code(r, as_of=AS_OF) for r in records]
    for i in range(INSTANTS.size + 50):
        ev.code(records[0], as_of=AS_OF + dt.timedelta(microseconds=i))
    assert len(INSTANTS.items) <= INSTANTS.size


@settings(max_examples=30, deadline=None)
@given(day=st.dates(dt.date(2020, 1, 1), dt.date(2027, 12, 31)),
       seen=st.datetimes(dt.datetime(2020, 1, 1), dt.datetime(2027, 12, 31),
                         timezones=st.sampled_from([UTC, dt.timezone(dt.timedelta(hours=2)),
                                                    dt.timezone(dt.timedelta(hours=-9, minutes=-30))])),
       naive=st.booleans())
def test_iso_strings_in_date_and_timestamp_columns_equal_the_dates_they_stand_for(day, seen, naive):
    rules = RuleSet(TWENTY, default="other")
    if naive:
        seen = seen.replace(tzinfo=None)
    base = dict(random_records(1, seed=3)[0], last_order=day, last_seen=seen)
    iso = dict(base, last_order=day.isoformat(),
               last_seen=seen.isoformat().replace("+00:00", "Z") if seen.tzinfo is UTC else seen.isoformat())
    expected = rules.matches(base, as_of=AS_OF, schema=SCHEMA)
    assert rules.matches(iso, as_of=AS_OF, schema=SCHEMA) == expected
    assert rules.record_evaluator(SCHEMA, as_of=AS_OF).code(iso) == rules.record_evaluator(
        SCHEMA, as_of=AS_OF).code(base)
    # a datetime string in a date column is its own calendar date, as the datetime is
    assert rules.matches(dict(base, last_order=f"{day.isoformat()}T18:30:00+05:00"), as_of=AS_OF,
                         schema=SCHEMA) == expected
    # without a schema: strings the rules use only as dates are taken as dates
    assert rules.matches(iso, as_of=AS_OF) == rules.matches(base, as_of=AS_OF)


# -- time columns of records without a schema: typed from the rules, never from a record --
TIME_RULES = [("early", "s < date '2026-01-01'"),                  # s: date32 (a date literal)
              ("late", "t >= timestamp '2026-09-25T00:00:00Z'"),  # t: a timestamp literal
              ("old", "days_since(d) >= 30")]                     # d: the fixed choice
TIME_AS_OF = "2026-10-01"
# each column's values about its rule's boundary, where a date and a timestamp typing disagree
TIME_VALUES = {
    "s": ["2025-12-31", "2025-12-31T23:30:00-05:00", "2026-01-01T00:30:00+02:00", "2026-01-01",
          "2025-12-31T23:59:59"],
    "t": ["2026-09-25", "2026-09-24T23:00:00-02:00", "2026-09-25T01:00:00+02:00", "2026-09-24",
          "2026-09-24T23:59:59"],
    "d": ["2026-09-01", "2026-09-01T23:30:00-05:00", "2026-09-01T00:30:00+02:00", "2026-09-02",
          "2026-08-31T23:59:59"],
}


def iso_object(text):
    """The date or datetime an ISO string stands for."""
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        return dt.datetime.fromisoformat(text)


def time_record(i, objects=False, only=None):
    """TIME_RULES' columns at their ``i``-th values (ISO strings, or date/datetime objects);
    with ``only``, that column alone (the others null)."""
    return {c: None if only not in (None, c) else (iso_object(v[i]) if objects else v[i])
            for c, v in TIME_VALUES.items()}


def time_probes():
    """Every value of every column alone and all together, as strings and as objects."""
    n = len(TIME_VALUES["s"])
    out = [time_record(i, objects, only) for objects in (False, True) for i in range(n)
           for only in (None, "s", "t", "d")]
    return out + [dict.fromkeys(TIME_VALUES)]


def time_batch(rules, records):
    """The batch engine's segments on a table typed as time_columns says: s date32, t and d
    timestamp[us, tz=UTC] (a date there is midnight UTC, a naive datetime UTC)."""
    def arrow_value(name, v):
        v = iso_object(v) if isinstance(v, str) else v
        if name != "s" and type(v) is dt.date:
            return dt.datetime(v.year, v.month, v.day, tzinfo=UTC)
        return v
    schema = pa.schema([("s", pa.date32()), ("t", TIME_DEFAULT), ("d", TIME_DEFAULT)])
    table = pa.Table.from_pylist([{c: arrow_value(c, v) for c, v in r.items()} for r in records], schema=schema)
    return rules.evaluate(table, as_of=TIME_AS_OF).table.column("segment").to_pylist()


def test_time_columns_are_typed_from_the_rules_literals_else_as_utc_timestamps():
    assert TIME_DEFAULT == pa.timestamp("us", tz="UTC")
    assert time_columns(RuleSet(TIME_RULES, default="other")._asts) == {
        "s": pa.date32(), "t": TIME_DEFAULT, "d": TIME_DEFAULT}
    mixed = RuleSet([("m", "m >= date '2026-01-01' and m < timestamp '2026-09-01T00:00:00Z'"),
                     ("w", "within_last(w, 36h)"), ("a", "days_since(a) > 3 and a < date '2026-01-01'"),
                     ("r", "r = 'x'"), ("n", "n > 3")], default="other")
    assert time_columns(mixed._asts) == {"m": TIME_DEFAULT, "w": TIME_DEFAULT, "a": pa.date32()}


def test_a_time_column_without_schema_answers_the_same_whatever_records_came_before():
    probes = time_probes()
    expected = time_batch(RuleSet(TIME_RULES, default="other"), probes)
    assert len(set(expected)) == 4  # the probes reach every segment
    for order in (probes, probes[::-1], probes[1::2] + probes[::2]):
        rules = RuleSet(TIME_RULES, default="other")  # a fresh cache: the first record differs
        got = {id(r): rules.matches(r, as_of=TIME_AS_OF) for r in order}
        assert [got[id(r)] for r in probes] == expected
    # a date object and its ISO string agree (the probes hold both)
    rules = RuleSet(TIME_RULES, default="other")
    for i in range(len(TIME_VALUES["s"])):
        assert rules.matches(time_record(i), as_of=TIME_AS_OF) == rules.matches(
            time_record(i, objects=True), as_of=TIME_AS_OF)


@pytest.mark.parametrize("arrow_type", [pa.int8(), pa.int16(), pa.int32(), pa.int64(),
                                        pa.uint8(), pa.uint16(), pa.uint32(), pa.uint64()], ids=str)
def test_an_int_outside_an_integer_columns_type_is_refused_as_pyarrow_refuses_it(arrow_type):
    rules = RuleSet([("big", "x > 5"), ("small", "x < 2")], default="other")
    schema = pa.schema([("x", arrow_type)])
    ev = rules.record_evaluator(schema, as_of=AS_OF)
    info = np.iinfo(arrow_type.to_pandas_dtype())
    lo, hi = int(info.min), int(info.max)
    for value in (lo - 1, lo, hi, hi + 1, float(hi + 1), np.int64(max(lo, -(2 ** 63)))):
        try:
            table = pa.Table.from_pylist([{"x": value}], schema=schema)
        except (pa.ArrowInvalid, OverflowError):
            for call in (lambda: ev.code({"x": value}), lambda: rules.matches({"x": value}, schema=schema)):
                with pytest.raises(UnsupportedTypeError, match=rf"'x'.*{arrow_type}.*{lo}\.\.{hi}"):
                    call()
            continue
        if abs(int(value)) > 2 ** 53:  # rules compare as float64: the batch path refuses such a column
            with pytest.raises(DataError, match="2\\*\\*53"):
                rules.evaluate(table, as_of=AS_OF)
            with pytest.raises(DataError, match="2\\*\\*53"):
                ev.code({"x": value})
            continue
        expected = rules.evaluate(table, as_of=AS_OF).table.column("segment").to_pylist()[0]
        assert ev.names[ev.code({"x": value})] == expected == rules.matches({"x": value}, schema=schema)
