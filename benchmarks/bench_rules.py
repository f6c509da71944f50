"""Rule evaluation beside DuckDB and Polars on the same Arrow table in the same run.

Ten segments over six columns (ints, a float, a nullable int, a nullable small int, a
dictionary string, a boolean) of the synthetic customers; ``--size`` picks the row count.
Each benchmark records the rows matched so results can be compared across engines; the
quality figure is a total that every engine must reproduce exactly (``"equal"``): rows given a
named segment (waterfall), or memberships over all segments (multi). SQL's CASE and Polars'
``when`` treat an unknown (null) condition as not matched, as segmint does.

Groups: ``waterfall[10 segments]``, ``multi_counts[10 segments]``,
``multi_membership[10 segments]`` (each beside DuckDB and Polars), ``prepare[100 segments]``.
"""
import pytest

import segmint
from conftest import compare, record

SEGMENTS = [
    ("champions", "frequency >= 15 and monetary >= 1500"),
    ("big_spenders", "monetary >= 1000"),
    ("loyal", "frequency >= 8 and recency_days <= 60"),
    ("ny_ca_active", "region in ('NY', 'CA') and recency_days <= 90"),
    ("seniors_opted_in", "age >= 65 and email_opt_in"),
    ("young_west", "age < 30 and region in ('CA', 'WA')"),
    ("at_risk", "frequency >= 4 and recency_days between 120 and 365"),
    ("lapsed", "recency_days > 365"),
    ("one_timers", "frequency = 1"),
    ("prospects", "frequency = 0 and email_opt_in"),
]
COLUMNS = ["frequency", "monetary", "recency_days", "age", "region", "email_opt_in"]
WATERFALL = f"waterfall[{len(SEGMENTS)} segments]"
MULTI_COUNTS = f"multi_counts[{len(SEGMENTS)} segments]"
MEMBERSHIP = f"multi_membership[{len(SEGMENTS)} segments]"
IN_SEGMENT = "rows in a named segment"
MEMBERSHIPS = "memberships, all segments"


def sql_condition(rule):
    return rule  # the ten rules are valid SQL as written


@pytest.fixture(scope="module")
def table(n_customers):
    return segmint.make_customers(n_customers, seed=0).select(COLUMNS)


@pytest.fixture(scope="module")
def rulesets(table):
    waterfall = segmint.RuleSet(SEGMENTS, default="other")
    multi = segmint.RuleSet(SEGMENTS, mode="multi")
    waterfall.evaluate(table.slice(0, 1000))  # compile the kernels outside the timed region
    multi.counts(table.slice(0, 1000))
    return waterfall, multi


def _named_total(counts):
    """Rows matched over the named segments of a counts table (the default segment left out)."""
    return sum(m for s, m in zip(counts.column("segment").to_pylist(), counts.column("matched").to_pylist())
               if s != "other")


def test_waterfall(benchmark, table, rulesets):
    compare(benchmark, WATERFALL)
    waterfall, _ = rulesets
    result = benchmark(waterfall.evaluate, table)
    record(benchmark, quality=(IN_SEGMENT, _named_total(result.counts), "equal"), rows=table.num_rows,
           segments=len(SEGMENTS), matched=result.counts.column("matched").to_pylist())


def test_multi_counts(benchmark, table, rulesets):
    compare(benchmark, MULTI_COUNTS)
    _, multi = rulesets
    counts = benchmark(multi.counts, table)
    record(benchmark, quality=(MEMBERSHIPS, _named_total(counts), "equal"), rows=table.num_rows,
           segments=len(SEGMENTS), matched=counts.column("matched").to_pylist())


def test_multi_membership_columns(benchmark, table, rulesets):
    compare(benchmark, MEMBERSHIP)
    _, multi = rulesets
    result = benchmark(multi.evaluate, table)
    record(benchmark, quality=(MEMBERSHIPS, _memberships(result.table), "equal"), rows=table.num_rows,
           matched=result.counts.column("matched").to_pylist())


def _memberships(arrow_table):
    """True values over all boolean membership columns (null counts as not a member)."""
    import pyarrow.compute as pc
    return sum(int(pc.sum(pc.fill_null(col, False).cast("int64")).as_py() or 0) for col in arrow_table.columns)


def test_prepare_100_segment_rule_set(benchmark, table):
    compare(benchmark, "prepare[100 segments]")
    schema = table.schema
    rounds = iter(range(10**9))

    def prepare():
        r = next(rounds)  # new rule texts every round: nothing can be reused from a previous one
        rules = [(f"s{i}", f"frequency >= {(i + r) % 7} and (monetary > {i * 13 + r} or region in "
                           f"('NY', 'CA')) and recency_days <= {30 + i} and not email_opt_in")
                 for i in range(100)]
        rs = segmint.RuleSet(rules, mode="multi")
        return rs.prepare(schema)

    program = benchmark(prepare)
    instructions = int(program.code.shape[0])
    # any round's program has the same length: the texts differ only in their constants
    record(benchmark, quality=("instructions", instructions, "equal"), segments=100, instructions=instructions)


# -- peers ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def duck(table):
    duckdb = pytest.importorskip("duckdb")
    con = duckdb.connect()
    con.register("customers", table)
    return con


def test_peer_duckdb_waterfall(benchmark, duck, table):
    compare(benchmark, WATERFALL, impl="duckdb")
    case = " ".join(f"WHEN {sql_condition(r)} THEN '{n}'" for n, r in SEGMENTS)
    sql = f"SELECT CASE {case} ELSE 'other' END AS segment FROM customers"
    def run():  # the relation API hands Arrow over without the DB-API cursor's extra copy
        relation = duck.sql(sql)
        fetch = getattr(relation, "to_arrow_table", None) or relation.arrow
        return fetch()

    result = benchmark(run)
    counts = {c["values"]: c["counts"] for c in result.column("segment").value_counts().to_pylist()}
    record(benchmark, quality=(IN_SEGMENT, sum(v for s, v in counts.items() if s != "other"), "equal"),
           rows=result.num_rows, matched=counts)


def test_peer_duckdb_multi_counts(benchmark, duck):
    compare(benchmark, MULTI_COUNTS, impl="duckdb")
    filters = ", ".join(f"count(*) FILTER (WHERE {sql_condition(r)}) AS {n}" for n, r in SEGMENTS)
    sql = f"SELECT {filters} FROM customers"
    # fetchall: fetchone would leave the result open and block the next query on the connection
    row = benchmark(lambda: duck.execute(sql).fetchall()[0])
    record(benchmark, quality=(MEMBERSHIPS, sum(row), "equal"), matched=list(row))


def test_peer_duckdb_multi_membership(benchmark, duck, table):
    compare(benchmark, MEMBERSHIP, impl="duckdb")
    columns = ", ".join(f"coalesce({sql_condition(r)}, false) AS {n}" for n, r in SEGMENTS)
    sql = f"SELECT {columns} FROM customers"
    out = benchmark(lambda: duck.sql(sql).to_arrow_table())
    record(benchmark, quality=(MEMBERSHIPS, _memberships(out), "equal"), rows=out.num_rows)


@pytest.fixture(scope="module")
def polars_frame(table):
    pl = pytest.importorskip("polars")
    return pl, pl.from_arrow(table)


def _polars_expr(pl, rule):
    return pl.sql_expr(rule)


def test_peer_polars_waterfall(benchmark, polars_frame):
    compare(benchmark, WATERFALL, impl="polars")
    pl, df = polars_frame
    expr = pl.when(_polars_expr(pl, SEGMENTS[0][1])).then(pl.lit(SEGMENTS[0][0]))
    for name, rule in SEGMENTS[1:]:
        expr = expr.when(_polars_expr(pl, rule)).then(pl.lit(name))
    expr = expr.otherwise(pl.lit("other")).alias("segment")
    out = benchmark(lambda: df.select(expr))
    in_segment = int((out["segment"] != "other").sum())
    record(benchmark, quality=(IN_SEGMENT, in_segment, "equal"), rows=out.height)


def test_peer_polars_multi_counts(benchmark, polars_frame):
    compare(benchmark, MULTI_COUNTS, impl="polars")
    pl, df = polars_frame
    exprs = [_polars_expr(pl, rule).fill_null(False).sum().alias(name) for name, rule in SEGMENTS]
    out = benchmark(lambda: df.select(exprs))
    record(benchmark, quality=(MEMBERSHIPS, int(sum(out.row(0))), "equal"), matched=list(out.row(0)))


def test_peer_polars_multi_membership(benchmark, polars_frame):
    compare(benchmark, MEMBERSHIP, impl="polars")
    pl, df = polars_frame
    exprs = [_polars_expr(pl, rule).fill_null(False).alias(name) for name, rule in SEGMENTS]
    out = benchmark(lambda: df.select(exprs))
    record(benchmark, quality=(MEMBERSHIPS, int(out.sum().sum_horizontal()[0]), "equal"), rows=out.height)
