"""The rule engine against its slow twin (naive_rules), the parser, errors and rule sets."""
import datetime as dt
import json
import re

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import naive_rules as naive
import segmint
from segmint.kernels import rules as vm
from segmint.rules import RuleSet, RuleSyntaxError, RuleTypeError, parse
from segmint.rules.errors import RuleError, RuleSetError


def random_table(n, seed):
    rng = np.random.default_rng(seed)

    def mask(rate=0.2):
        return rng.random(n) < rate

    words = np.array(naive.WORDS, dtype=object)
    day0 = (naive.AS_OF.date() - dt.date(1970, 1, 1)).days
    as_of_us = int(naive.AS_OF.timestamp() * 1e6)
    return pa.table({
        "i": pa.array(rng.integers(-10, 11, n), mask=mask()),
        "f": pa.array(rng.integers(-20, 21, n) / 2.0, mask=mask()),
        "s": pa.array(words[rng.integers(0, len(words), n)].tolist(), mask=mask(), type=pa.string()),
        "b": pa.array(rng.random(n) < 0.5, mask=mask()),
        "d": pa.array((day0 - rng.integers(-5, 400, n)).astype(np.int32), mask=mask()).cast(pa.date32()),
        "t": pa.array(as_of_us - rng.integers(-3 * 86_400_000_000, 9 * 86_400_000_000, n),
                      mask=mask()).cast(pa.timestamp("us", tz="UTC")),
    })


def rows_of(table):
    return table.to_pylist()


def three_valued(rule, table):
    """Per row True / False / None from the engine: segments 'e' (rule) and 'n' (not rule)."""
    rs = RuleSet([("e", rule), ("n", f"not ({rule})")], mode="multi")
    res = rs.evaluate(table, as_of=naive.AS_OF).table
    e = res.column("e").to_pylist()
    nn = res.column("n").to_pylist()
    return [True if a else (False if b else None) for a, b in zip(e, nn)], rs


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(naive.bool_terms(), st.integers(0, 10_000), st.sampled_from([0, 1, 7, 300]))
def test_random_rules_match_the_slow_twin(tree, seed, n):
    table = random_table(n, seed)
    rule = naive.render(tree)
    got, _ = three_valued(rule, table)
    expected = [naive.value(tree, row) for row in rows_of(table)]
    assert got == expected, rule


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(naive.bool_terms(), min_size=1, max_size=5), st.integers(0, 1000))
def test_waterfall_and_counts_match_the_slow_twin(trees, seed):
    table = random_table(250, seed)
    rules = [(f"s{i}", naive.render(t)) for i, t in enumerate(trees)]
    result = RuleSet(rules, default="rest").evaluate(table, as_of=naive.AS_OF)
    got = result.table.column("segment").to_pylist()
    expected, matched, unknown = [], [0] * len(trees), [0] * len(trees)
    for row in rows_of(table):
        label = "rest"
        for i, t in enumerate(trees):
            v = naive.value(t, row)
            if v is True:
                label = f"s{i}"
                matched[i] += 1
                break
            if v is None:
                unknown[i] += 1
        expected.append(label)
    assert got == expected
    counts = result.counts.to_pydict()
    assert counts["matched"][:-1] == matched and counts["unknown"][:-1] == unknown
    assert counts["matched"][-1] == expected.count("rest") and sum(counts["matched"]) == 250
    multi = RuleSet(rules, mode="multi")
    assert multi.counts(table, as_of=naive.AS_OF).column("matched").to_pylist() == [
        sum(naive.value(t, r) is True for r in rows_of(table)) for t in trees]
    # memberships (bit-packed columns, bitmask, pairwise overlaps) against the slow twin
    truth = np.array([[naive.value(t, r) is True for r in rows_of(table)] for t in trees])
    full = multi.evaluate(table, as_of=naive.AS_OF, batch_size=97)
    for i in range(len(trees)):
        column = full.table.column(f"s{i}")
        assert column.null_count == 0 and column.to_pylist() == truth[i].tolist()
    pairs = truth.astype(np.int64) @ truth.T.astype(np.int64)
    assert [full.overlaps.column(f"s{j}").to_pylist() for j in range(len(trees))] == pairs.T.tolist()
    mask = multi.evaluate(table, as_of=naive.AS_OF, memberships="bitmask").table.column("segments").to_numpy()
    assert mask.tolist() == [sum(int(truth[i, r]) << i for i in range(len(trees))) for r in range(250)]


def test_precedence_and_keywords():
    table = pa.table({"a": [True, False, True, None], "b": [False, True, True, True], "x": [1, 2, 3, 4]})
    cases = {
        "a or b and not a": [True, True, True, None],  # not > and > or
        "NOT a AND b": [False, True, False, None],
        "x + 2 * 3 = 7": [True, False, False, False],
        "-x * 2 < -5": [False, False, True, True],
        "x between 2 and 3 or x in (1)": [True, True, True, False],
        "(a or b) and x > 1": [False, True, True, True],
    }
    for rule, expected in cases.items():
        assert three_valued(rule, table)[0] == expected, rule


def test_literals_names_and_durations():
    table = pa.table({"first name": ["it's", "bob", None],
                      "seen": pa.array([0, 86_400_000_000 * 3, 10], type=pa.int64()).cast(pa.timestamp("us", tz="UTC"))})
    assert three_valued('"first name" = \'it\'\'s\'', table)[0] == [True, False, None]
    assert three_valued("seen < timestamp '1970-01-02 00:00:00'", table)[0] == [True, False, True]
    assert three_valued("seen - timestamp '1970-01-01 00:00:00' >= 2d + 12h", table)[0] == [False, True, False]
    assert three_valued("seen >= date '1970-01-04'", table)[0] == [False, True, False]
    assert three_valued("1 / 0 is null and (null = null) is null", table)[0] == [True, True, True]


def test_division_by_zero_is_null_and_nan_is_not_null():
    table = pa.table({"x": [1.0, 0.0, float("nan"), None]})
    assert three_valued("10 / x > 1", table)[0] == [True, None, False, None]
    assert three_valued("x is null", table)[0] == [False, False, False, True]
    assert three_valued("x / 10 > 0.1", table)[0] == [False, False, False, None]  # exact: 1/10 is 0.1


def test_syntax_errors_point_at_the_position():
    cases = {
        "frequency >= ": 13, "a and or b": 6, "region in ('NY', 'CA'": 21, "x = 'abc": 4,
        "x $ 3": 2, "(a": 2, "a b": 2, "x not like 3": 2, "date '2026-13-01' < d": 5, "": 0,
    }
    for text, pos in cases.items():
        with pytest.raises(RuleSyntaxError) as info:
            parse(text)
        assert info.value.position == pos, (text, info.value)
        assert "^" in str(info.value) or text == ""


def test_too_deep_or_too_long_is_a_clear_error():
    deep = "(" * 5000 + "x" + ")" * 5000
    with pytest.raises(RuleSyntaxError, match="nests deeper"):
        parse(deep)
    with pytest.raises(RuleSyntaxError, match="nests deeper"):
        parse("not " * 5000 + "x")
    with pytest.raises(RuleSyntaxError, match="limit"):
        parse("x = 1 or " * 20_000 + "x = 2")
    with pytest.raises(RuleSyntaxError, match="nests deeper"):
        parse("x" + " + 1" * 500 + " > 0")  # a long arithmetic chain stays left to right
    wide = "x = 1 or " * 10_000 + "x = 2"  # long and/or chains are fine
    table = pa.table({"x": [1, 2, 3]})
    assert three_valued(wide, table)[0] == [True, True, False]


def test_type_and_name_errors():
    table = pa.table({"region": ["NY"], "monetary": [1.0], "last_order": pa.array([1], pa.int32()).cast(pa.date32())})
    cases = [
        ("region > 5", RuleTypeError, "region (string) with 5 (number)"),
        ("monetery > 3", RuleError, "did you mean 'monetary'"),
        ("days_snce(last_order) > 3", RuleError, "did you mean days_since"),
        ("days_since(monetary) > 3", RuleTypeError, "date or timestamp"),
        ("monetary + region > 1", RuleTypeError, "cannot apply '+'"),
        ("monetary", RuleTypeError, "true/false"),
        ("abs(1, 2) > 0", RuleError, "takes 1 argument"),
        ("last_order > 5", RuleTypeError, "(date) with 5 (number)"),
        ("region = monetary", RuleTypeError, "string"),
        ("within_last(last_order, 5) ", RuleTypeError, "duration literal"),
    ]
    for rule, cls, message in cases:
        with pytest.raises(cls, match=re.escape(message)) as info:
            RuleSet({"seg": rule}).evaluate(table, as_of="2026-01-01")
        assert "segment 'seg'" in str(info.value) and "^" in str(info.value)


def test_segment_references_and_cycles():
    table = pa.table({"x": [1, 5, 10]})
    rs = RuleSet({"big": "x > 3", "huge": "segment('big') and x > 7", "small": "not segment('big')"}, mode="multi")
    res = rs.evaluate(table).table.to_pydict()
    assert res == {"big": [False, True, True], "huge": [False, False, True], "small": [True, False, False]}
    with pytest.raises(RuleSetError, match="cycle: a -> b -> a"):
        RuleSet({"a": "segment('b')", "b": "segment('a') or x > 1"}).evaluate(table)
    with pytest.raises(RuleSetError, match="did you mean 'big'"):
        RuleSet({"big": "x > 1", "c": "segment('bgi')"}).evaluate(table)


def test_rule_set_forms_and_files(tmp_path):
    spec = {"mode": "waterfall", "default": "others", "segments": [
        {"name": "vip", "rule": "monetary >= 100", "description": "big spenders", "owner": "crm",
         "purpose": "early access"},
        {"name": "rest_of_ny", "rule": "region = 'NY'"}]}
    (tmp_path / "rules.json").write_text(json.dumps(spec))
    yaml = pytest.importorskip("yaml")
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(spec))
    a = RuleSet.load(tmp_path / "rules.json")
    b = RuleSet.load(tmp_path / "rules.yaml")
    c = RuleSet.from_dict(spec)
    assert a.to_dict() == b.to_dict() == c.to_dict() == {"format": "segmint-rules", "version": 1, **spec}
    assert a.segments[0].owner == "crm"
    d = RuleSet([("vip", "monetary >= 100"), segmint.Segment("rest_of_ny", "region = 'NY'")], default="others")
    table = pa.table({"monetary": [150.0, 5.0, 1.0], "region": ["CA", "NY", "TX"]})
    assert d.evaluate(table).table.column("segment").to_pylist() == ["vip", "rest_of_ny", "others"]
    with pytest.raises(RuleSetError, match="unique"):
        RuleSet([("a", "x > 1"), ("a", "x > 2")])
    with pytest.raises(RuleSetError, match="default"):
        RuleSet([("others", "x > 1")], default="others")
    with pytest.raises(RuleSetError, match="unknown keys"):
        RuleSet([{"name": "a", "rule": "x > 1", "colour": "red"}])
    with pytest.raises(RuleSyntaxError, match="segment 'a'"):
        RuleSet({"a": "x >"})
    with pytest.raises(ValueError, match="mode"):
        RuleSet({"a": "x > 1"}, mode="first")
    with pytest.raises(RuleSetError, match="JSON"):
        RuleSet.from_json("{not json")


def test_a_new_rule_set_compiles_nothing():
    table = segmint.make_customers(500, random_state=3)
    RuleSet({"warm": "frequency > 1 and region = 'NY' and email_opt_in"}).evaluate(table)
    kernels = [vm.run_program, vm.load_batch, vm.load_codes]
    before = [len(k.signatures) for k in kernels]
    rules = {f"s{i}": f"frequency >= {i % 7} and (monetary > {i * 13} or region in ('NY', 'CA')) "
                      f"and days_since(last_order_date) <= {30 + i}" for i in range(100)}
    result = RuleSet(rules, mode="multi").evaluate(table, as_of="2026-10-01")
    assert result.table.num_columns == 100
    assert [len(k.signatures) for k in kernels] == before


def test_streaming_with_growing_dictionaries_equals_in_memory(tmp_path):
    table = random_table(3000, seed=11)
    # each file sees different strings first, so the dictionary grows across batches
    for i, order in enumerate([slice(0, 1000), slice(1000, 2000), slice(2000, 3000)]):
        pq.write_table(table.slice(order.start, order.stop - order.start), tmp_path / f"p{i}.parquet",
                       row_group_size=97)
    rs = RuleSet({"ny": "s = 'NY' and i > 0", "quote": "contains(s, '''') or s is null",
                  "recent": "within_last(t, 3d)"}, mode="multi")
    streamed = rs.evaluate(segmint.open(tmp_path), as_of=naive.AS_OF, batch_size=113)
    in_memory = rs.evaluate(table, as_of=naive.AS_OF)
    assert streamed.table.equals(in_memory.table)
    assert streamed.counts.equals(in_memory.counts)
    assert streamed.overlaps.equals(in_memory.overlaps)


def test_output_to_file_and_bitmask(tmp_path):
    table = segmint.make_customers(2000, random_state=5)
    rs = RuleSet({"a": "frequency > 3", "b": "region = 'CA'"}, mode="multi")
    result = rs.evaluate(table, as_of="2026-10-01", id_column="customer_id", out=tmp_path / "seg.parquet")
    assert result.table is None and result.rows == 2000
    back = pq.read_table(tmp_path / "seg.parquet")
    assert back.column_names == ["customer_id", "a", "b"]
    mask = rs.evaluate(table, memberships="bitmask").table.column("segments").to_numpy()
    a = back.column("a").to_numpy(zero_copy_only=False)
    b = back.column("b").to_numpy(zero_copy_only=False)
    assert np.array_equal(mask, a.astype(np.uint64) | (b.astype(np.uint64) << np.uint64(1)))
    overlaps = rs.evaluate(table).overlaps.to_pydict()
    assert overlaps["a"][1] == int(np.sum(a & b))


def test_large_integers_are_refused():
    table = pa.table({"id": pa.array([2**60, 1], pa.int64())})
    with pytest.raises(segmint.DataError, match="2\\*\\*53"):
        RuleSet({"x": "id > 0"}).evaluate(table)


def test_as_of_forms():
    table = pa.table({"d": pa.array([20_000], pa.int32()).cast(pa.date32())})  # 2024-10-04
    rs = RuleSet({"x": "days_since(d) = 10"}, mode="multi")
    for as_of in ("2024-10-14", dt.date(2024, 10, 14), dt.datetime(2024, 10, 14, 23, 59),
                  "2024-10-14T05:00:00+00:00"):
        assert rs.evaluate(table, as_of=as_of).table.column("x").to_pylist() == [True], as_of
    with pytest.raises(ValueError, match="ISO"):
        rs.evaluate(table, as_of="yesterday")


# -- an independent engine --------------------------------------------------------------------
def to_sql(t):
    op = t[0]
    asof = "TIMESTAMPTZ '2026-10-01 15:30:00+00'"
    if op == "days_since":
        if t[1] == "d":
            return "CAST(DATE '2026-10-01' - d AS DOUBLE)"
        return f"((epoch_us({asof}) - epoch_us(t)) / 86400000000.0)"
    if op == "within":
        col = "CAST(d AS TIMESTAMPTZ)" if t[1] == "d" else "t"
        return f"({col} BETWEEN {asof} - INTERVAL {t[2]} DAY AND {asof})"
    if op == "tscmp":
        return f"(t {t[1]} TIMESTAMPTZ '{t[2]}+00')"
    if op == "num":
        return f"CAST({t[1]!r} AS DOUBLE)" if t[1] >= 0 else f"CAST(({t[1]!r}) AS DOUBLE)"
    if op == "col" and t[1] == "i":
        return "CAST(i AS DOUBLE)"
    children = {"arith": (2, 3), "abs": (1,), "neg": (1,), "coalesce": (1, 2), "cmp": (2, 3),
                "between": (1, 2, 3), "isnull": (1,), "logic": (2, 3), "not": (1,)}
    if op in children:
        t = list(t)
        for k in children[op]:
            t[k] = ("sql", to_sql(t[k]))
        if op == "arith" and t[1] == "/":  # our division by zero is null; DuckDB's double division is IEEE
            t[3] = ("sql", f"NULLIF({t[3][1]}, 0)")
        t = tuple(t)
    if op == "in":
        t = (t[0], ("sql", to_sql(t[1])), tuple(("sql", to_sql(x)) for x in t[2]), t[3])
    return _render_sql(t)


def _render_sql(t):
    if t[0] == "sql":
        return t[1]
    original = naive.render
    try:
        naive.render = lambda x: x[1] if x[0] == "sql" else original(x)
        return original(t)
    finally:
        naive.render = original


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(naive.bool_terms(), st.integers(0, 1000))
def test_random_rules_match_duckdb(tree, seed):
    duckdb = pytest.importorskip("duckdb")
    table = random_table(200, seed)
    con = duckdb.connect()
    con.execute("SET TimeZone='UTC'")
    con.register("tbl", table)
    sql = to_sql(tree)
    theirs = [r[0] for r in con.execute(f"SELECT {sql} FROM tbl").fetchall()]
    ours, _ = three_valued(naive.render(tree), table)
    assert ours == theirs, (naive.render(tree), sql)


@pytest.mark.parametrize("distinct", [5, 63, 64, 150])
def test_string_predicates_small_and_large_dictionaries(distinct):
    """Dictionaries of up to 64 entries (null included) use bit masks, larger ones a table."""
    rng = np.random.default_rng(distinct)
    words = [f"w{i}" for i in range(distinct)]
    values = [words[i] if rng.random() > 0.1 else None for i in rng.integers(0, distinct, 2000)]
    table = pa.table({"s": pa.array(values, pa.string())})
    rule = "s in ('w1', 'w3', 'w62', 'w63', 'w149') or starts_with(s, 'w10')"
    got, _ = three_valued(rule, table)
    picked = {"w1", "w3", "w62", "w63", "w149"}
    expected = [None if v is None else (v in picked or v.startswith("w10")) for v in values]
    assert got == expected


def test_null_free_columns_in_comparisons_and_arithmetic():
    """Null-free columns skip validity bytes where only comparisons read them; arithmetic still works."""
    x = np.arange(-3, 7, dtype=np.int32)
    table = pa.table({"x": x, "y": pa.array(x, mask=x % 3 == 0)})
    cases = {
        "x > 2": [v > 2 for v in x.tolist()],
        "x + 1 > 2 and x > 0": [v + 1 > 2 and v > 0 for v in x.tolist()],
        "x > 0 and coalesce(y, 100) > 50": [v > 0 and (100 if v % 3 == 0 else v) > 50 for v in x.tolist()],
        "x = y": [None if v % 3 == 0 else True for v in x.tolist()],
        "x is null or x < -2": [v < -2 for v in x.tolist()],
    }
    for rule, expected in cases.items():
        for batch_size in (3, 1000):
            rs = RuleSet([("e", rule), ("n", f"not ({rule})")], mode="multi")
            res = rs.evaluate(table, batch_size=batch_size).table
            got = [True if a else (False if b else None)
                   for a, b in zip(res.column("e").to_pylist(), res.column("n").to_pylist())]
            assert got == expected, rule


def test_one_rule_set_evaluated_from_several_threads():
    import threading
    rs = RuleSet({"big": "frequency >= 5", "ny": "region = 'NY'"}, default="rest")
    tables = [segmint.make_customers(n, random_state=n) for n in (3000, 5000, 7000, 9000)]
    expected = [rs.counts(t).column("matched").to_pylist() for t in tables]
    errors = []

    def worker(i):
        for _ in range(5):
            result = rs.evaluate(tables[i])
            if result.counts.column("matched").to_pylist() != expected[i] or result.rows != tables[i].num_rows:
                errors.append(i)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors


# -- names and fields that a rule set refuses when it is built (issue 12, items 5 and 7) ------
@pytest.mark.parametrize("segments,message", [
    ([{"name": "", "rule": "i > 1"}], r"segment #1: a segment name must not be empty or blank"),
    ([{"name": "ok", "rule": "i > 1"}, {"name": " \t", "rule": "i > 2"}], r"segment #2: .*blank"),
    ([{"name": "vip ", "rule": "i > 1"}], "starts or ends with spaces"),
    ([{"name": "a\nb", "rule": "i > 1"}], r"control character '\\n'"),
    ([{"name": "a\x00", "rule": "i > 1"}], "control character"),
    ([{"name": "x" * 201, "rule": "i > 1"}], "201 characters long; the limit is 200"),
    ([{"name": True, "rule": "i > 1"}], "must be a string, got True .*quote the name"),
    ([{"name": ["a"] * 10 ** 6, "rule": "i > 1"}], "got a list of 1,000,000 items"),
    ([{"name": {"a": 1}, "rule": "i > 1"}], "got a dict of 1 item$"),
    ([{"name": 7, "rule": "i > 1"}], "must be a string, got 7"),
    ({7: "i > 1"}, "must be a string, got 7"),
    ([(7, "i > 1")], "must be a string, got 7"),
    ([{"name": "a", "rule": ["i > 1"]}], "segment 'a': the rule must be a string, got a list"),
    ([{"name": "a", "rule": "i > 1", "owner": ["crm"]}], "segment 'a': owner must be a string"),
    ([{"name": "a", "rule": "i > 1", "description": False}], "segment 'a': description must be a string"),
    ([{"name": "a", "rule": "i > 1", "purpose": 3.5}], "segment 'a': purpose must be a string"),
    (5, "segments must be a list or a dict, got 5"),
])
def test_names_and_fields_of_the_wrong_kind_are_refused_when_the_rule_set_is_built(segments, message):
    with pytest.raises(RuleSetError, match=message):
        RuleSet(segments)


@pytest.mark.parametrize("kwargs,message", [
    ({"mode": ["waterfall"]}, "mode must be 'waterfall' or 'multi', got a list of 1 item"),
    ({"mode": "Waterfall"}, "mode must be"),
    ({"default": ""}, "the default segment: a segment name must not be empty"),
    ({"default": None}, "the default segment: a segment name must be a string"),
    ({"name": ["rules"]}, "the rule set's name must be a string"),
])
def test_mode_default_and_name_of_the_wrong_kind_are_refused(kwargs, message):
    with pytest.raises(RuleSetError, match=message) as info:
        RuleSet({"a": "i > 1"}, **kwargs)
    assert isinstance(info.value, ValueError)  # still what `except ValueError` expects


def test_a_huge_integer_in_a_rule_gets_a_caret_not_a_bare_value_error():
    rule = "i > 1 and f < " + "9" * 5000
    with pytest.raises(RuleSyntaxError) as info:
        RuleSet({"big": rule})
    text = str(info.value)
    assert "segment 'big': the number has 5,000 digits; integers in rules have at most 300" in text
    line, caret = text.splitlines()[1:3]
    assert len(line) < 100  # a window of the long rule, not 5,000 characters
    assert line[caret.index("^")] == "9" and line.endswith("...")


NAME_CHARS = st.characters(codec="utf-8", exclude_categories=("Cs",))


@settings(max_examples=150, deadline=None)
@given(st.lists(st.text(NAME_CHARS, max_size=8), min_size=1, max_size=4))
def test_a_rule_set_is_either_refused_when_built_or_saved_and_loaded_unchanged(names):
    """What the builder accepts, the JSON and YAML loaders accept too, with the same names."""
    yaml = pytest.importorskip("yaml")
    segments = [{"name": n, "rule": f"i > {j}"} for j, n in enumerate(names)]
    try:
        rules = RuleSet(segments)
    except RuleSetError as exc:
        # refused for a reason the message names
        assert re.search(r"blank|spaces|control character|unique|default segment", str(exc))
        return
    for n in names:  # accepted names are what segmint promises: text, trimmed, printable
        assert n == n.strip() and n and not any(c in n for c in "\n\r\t\x00")
    doc = rules.to_dict()
    assert RuleSet.from_json(json.dumps(doc)).names == names
    assert RuleSet.from_yaml(yaml.safe_dump(doc, allow_unicode=True)).names == names


def test_a_segmenter_fitted_with_odd_but_valid_names_loads_again(tmp_path):
    names = ["Champions ✓", "it's \"quoted\"", "segment_0", "ß", "yes", "1", "a  b"]
    rules = RuleSet([{"name": n, "rule": f"i > {j - 3}"} for j, n in enumerate(names)], default="rest of us")
    table = random_table(200, 5)
    model = segmint.Segmenter(rules=rules).fit(table, as_of=naive.AS_OF)
    model.save(tmp_path / "m.seg")
    loaded = segmint.load(tmp_path / "m.seg")
    assert loaded.segment_names_ == model.segment_names_ and loaded.rules_.names == names
    assert loaded.score(table, as_of=naive.AS_OF).equals(model.score(table, as_of=naive.AS_OF))
