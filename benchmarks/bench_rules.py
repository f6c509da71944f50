"""Rule evaluation beside DuckDB and Polars on the same Arrow table in the same run.

Ten segments over six columns (ints, a float, a nullable int, a nullable small int, a
dictionary string, a boolean) of the synthetic customers; ``--size`` picks the row count.
SQL's CASE and Polars' ``when`` treat an unknown (null) condition as not matched, as segmint does.

Every engine produces the same information in the same form (equal work):

- ``waterfall[10 segments]``: a dictionary-coded segment column, int8 codes into the segment
  names (ours), i.e. DuckDB ``CASE WHEN ... THEN 0 ...`` and Polars ``when/then`` producing int8
  codes, wrapped as the same Arrow dictionary column; not a column of strings.
- ``multi_counts[10 segments]``: rows matched per segment.
- ``multi_membership[10 segments]``: one boolean column per segment, null read as not a member.

Each peer's result is checked equal to segmint's (codes, counts, columns) after timing, in the
untimed CI run too; the quality figure is a total every engine must reproduce exactly
(``"equal"``). Polars works on the ``region`` categorical as loaded, without casting it to
strings; DuckDB and Polars run on segmint's thread count. Also ``prepare[100 segments]``.
"""
import numpy as np
import pyarrow as pa
import pytest

import segmint
from conftest import compare, duckdb_connection, polars_threads, record

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
DEFAULT = "other"
NAMES = [name for name, _ in SEGMENTS] + [DEFAULT]  # code i means NAMES[i], as in our output
DEFAULT_CODE = len(SEGMENTS)
COLUMNS = ["frequency", "monetary", "recency_days", "age", "region", "email_opt_in"]
WATERFALL = f"waterfall[{len(SEGMENTS)} segments]"
MULTI_COUNTS = f"multi_counts[{len(SEGMENTS)} segments]"
MEMBERSHIP = f"multi_membership[{len(SEGMENTS)} segments]"
IN_SEGMENT = "rows in a named segment"
MEMBERSHIPS = "memberships, all segments"


def sql_condition(rule):
    return rule  # the ten rules are valid SQL as written


def polars_conditions(pl):
    """The ten rules as a Polars user writes them, in SEGMENTS order.

    ``region`` stays a categorical: comparing it with string literals maps the literals to
    categories; the column is never cast to strings.
    """
    c = pl.col
    return [
        (c("frequency") >= 15) & (c("monetary") >= 1500),
        c("monetary") >= 1000,
        (c("frequency") >= 8) & (c("recency_days") <= 60),
        c("region").is_in(["NY", "CA"]) & (c("recency_days") <= 90),
        (c("age") >= 65) & c("email_opt_in"),
        (c("age") < 30) & c("region").is_in(["CA", "WA"]),
        (c("frequency") >= 4) & c("recency_days").is_between(120, 365),
        c("recency_days") > 365,
        c("frequency") == 1,
        (c("frequency") == 0) & c("email_opt_in"),
    ]


@pytest.fixture(scope="module")
def table(n_customers):
    return segmint.make_customers(n_customers, random_state=0).select(COLUMNS)


@pytest.fixture(scope="module")
def rulesets(table):
    waterfall = segmint.RuleSet(SEGMENTS, default=DEFAULT)
    multi = segmint.RuleSet(SEGMENTS, mode="multi")
    waterfall.evaluate(table.slice(0, 1000))  # compile the kernels outside the timed region
    multi.counts(table.slice(0, 1000))
    return waterfall, multi


@pytest.fixture(scope="module")
def expected(table, rulesets):
    """segmint's results, untimed: every peer's output must equal them."""
    waterfall, multi = rulesets
    segment = waterfall.evaluate(table).table.column("segment")
    return dict(codes=_codes(segment), counts=multi.counts(table).column("matched").to_pylist(),
                memberships=multi.evaluate(table, memberships="columns").table)


def _codes(column):
    """The int8 codes of a dictionary-coded segment column, checked to mean NAMES."""
    assert column.type == pa.dictionary(pa.int8(), pa.string()), column.type
    for chunk in column.chunks:
        assert chunk.dictionary.to_pylist() == NAMES
    return np.concatenate([chunk.indices.to_numpy() for chunk in column.chunks] or [np.empty(0, np.int8)])


def _segment_column(codes):
    """int8 codes (Arrow, chunked) as the dictionary-coded column segmint produces: no copy."""
    names = pa.array(NAMES)
    return pa.chunked_array([pa.DictionaryArray.from_arrays(chunk, names) for chunk in codes.chunks],
                            type=pa.dictionary(pa.int8(), pa.string()))


def _named_total(counts):
    """Rows matched over the named segments of a counts table (the default segment left out)."""
    return sum(m for s, m in zip(counts.column("segment").to_pylist(), counts.column("matched").to_pylist())
               if s != DEFAULT)


def _in_segment(codes):
    return int(np.count_nonzero(codes != DEFAULT_CODE))


def _memberships(arrow_table):
    """True values over all boolean membership columns (null counts as not a member)."""
    import pyarrow.compute as pc
    return sum(int(pc.sum(pc.fill_null(col, False).cast("int64")).as_py() or 0) for col in arrow_table.columns)


def _check_memberships(out, expected):
    assert out.column_names == expected.column_names
    for name in expected.column_names:
        assert out.column(name).equals(expected.column(name)), f"memberships of {name} differ from segmint's"


def test_waterfall(benchmark, table, rulesets):
    compare(benchmark, WATERFALL)
    waterfall, _ = rulesets
    result = benchmark(waterfall.evaluate, table)
    record(benchmark, quality=(IN_SEGMENT, _named_total(result.counts), "equal"), rows=table.num_rows,
           segments=len(SEGMENTS), matched=result.counts.column("matched").to_pylist(),
           output=str(result.table.column("segment").type))


def test_multi_counts(benchmark, table, rulesets):
    compare(benchmark, MULTI_COUNTS)
    _, multi = rulesets
    counts = benchmark(multi.counts, table)
    record(benchmark, quality=(MEMBERSHIPS, _named_total(counts), "equal"), rows=table.num_rows,
           segments=len(SEGMENTS), matched=counts.column("matched").to_pylist())


def test_multi_membership_columns(benchmark, table, rulesets):
    compare(benchmark, MEMBERSHIP)
    _, multi = rulesets
    result = benchmark(multi.evaluate, table, memberships="columns")
    record(benchmark, quality=(MEMBERSHIPS, _memberships(result.table), "equal"), rows=table.num_rows,
           matched=result.counts.column("matched").to_pylist())


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


# -- peers: the same outputs, checked equal to ours ---------------------------------------------
@pytest.fixture(scope="module")
def duck(table):
    con, threads = duckdb_connection()
    con.register("customers", table)
    return con, threads


def _duckdb_arrow(con, sql):
    # the relation API hands Arrow over without the DB-API cursor's extra copy
    relation = con.sql(sql)
    fetch = getattr(relation, "to_arrow_table", None) or relation.arrow
    return fetch()


def test_peer_duckdb_waterfall(benchmark, duck, expected):
    con, threads = duck
    compare(benchmark, WATERFALL, impl="duckdb", threads=threads)
    case = " ".join(f"WHEN {sql_condition(r)} THEN {i}" for i, (_, r) in enumerate(SEGMENTS))
    sql = f"SELECT CAST(CASE {case} ELSE {DEFAULT_CODE} END AS TINYINT) AS segment FROM customers"

    def run():  # codes for codes: int8 codes into NAMES, as the dictionary column we produce
        return _segment_column(_duckdb_arrow(con, sql).column("segment"))

    segment = benchmark(run)
    codes = _codes(segment)
    assert np.array_equal(codes, expected["codes"]), "DuckDB's segments differ from segmint's"
    record(benchmark, quality=(IN_SEGMENT, _in_segment(codes), "equal"), rows=len(codes),
           matched=np.bincount(codes, minlength=len(NAMES)).tolist(), output=str(segment.type))


def test_peer_duckdb_multi_counts(benchmark, duck, expected):
    con, threads = duck
    compare(benchmark, MULTI_COUNTS, impl="duckdb", threads=threads)
    filters = ", ".join(f"count(*) FILTER (WHERE {sql_condition(r)}) AS {n}" for n, r in SEGMENTS)
    sql = f"SELECT {filters} FROM customers"
    # fetchall: fetchone would leave the result open and block the next query on the connection
    row = list(benchmark(lambda: con.execute(sql).fetchall()[0]))
    assert row == expected["counts"], "DuckDB's counts differ from segmint's"
    record(benchmark, quality=(MEMBERSHIPS, sum(row), "equal"), matched=row)


def test_peer_duckdb_multi_membership(benchmark, duck, expected):
    con, threads = duck
    compare(benchmark, MEMBERSHIP, impl="duckdb", threads=threads)
    columns = ", ".join(f"coalesce({sql_condition(r)}, false) AS {n}" for n, r in SEGMENTS)
    sql = f"SELECT {columns} FROM customers"
    out = benchmark(_duckdb_arrow, con, sql)
    _check_memberships(out, expected["memberships"])
    record(benchmark, quality=(MEMBERSHIPS, _memberships(out), "equal"), rows=out.num_rows)


@pytest.fixture(scope="module")
def polars_frame(table):
    pl, threads = polars_threads()
    df = pl.from_arrow(table)
    assert df.schema["region"] == pl.Categorical  # the dictionary column arrives as a categorical
    return pl, df, threads


def test_peer_polars_waterfall(benchmark, polars_frame, expected):
    pl, df, threads = polars_frame
    compare(benchmark, WATERFALL, impl="polars", threads=threads)
    conditions = polars_conditions(pl)
    expr = pl.when(conditions[0]).then(pl.lit(0, pl.Int8))
    for code, condition in enumerate(conditions[1:], start=1):
        expr = expr.when(condition).then(pl.lit(code, pl.Int8))
    expr = expr.otherwise(pl.lit(DEFAULT_CODE, pl.Int8)).alias("segment")

    def run():  # codes for codes: int8 codes into NAMES, as the dictionary column we produce
        return _segment_column(df.select(expr).to_arrow().column("segment"))

    segment = benchmark(run)
    codes = _codes(segment)
    assert np.array_equal(codes, expected["codes"]), "Polars' segments differ from segmint's"
    record(benchmark, quality=(IN_SEGMENT, _in_segment(codes), "equal"), rows=len(codes),
           matched=np.bincount(codes, minlength=len(NAMES)).tolist(), output=str(segment.type))


def test_peer_polars_multi_counts(benchmark, polars_frame, expected):
    pl, df, threads = polars_frame
    compare(benchmark, MULTI_COUNTS, impl="polars", threads=threads)
    exprs = [cond.fill_null(False).sum().alias(name)
             for (name, _), cond in zip(SEGMENTS, polars_conditions(pl))]
    out = benchmark(lambda: df.select(exprs))
    row = [int(v) for v in out.row(0)]
    assert row == expected["counts"], "Polars' counts differ from segmint's"
    record(benchmark, quality=(MEMBERSHIPS, sum(row), "equal"), matched=row)


def test_peer_polars_multi_membership(benchmark, polars_frame, expected):
    pl, df, threads = polars_frame
    compare(benchmark, MEMBERSHIP, impl="polars", threads=threads)
    exprs = [cond.fill_null(False).alias(name) for (name, _), cond in zip(SEGMENTS, polars_conditions(pl))]
    out = benchmark(lambda: df.select(exprs))
    _check_memberships(out.to_arrow(), expected["memberships"])
    record(benchmark, quality=(MEMBERSHIPS, int(out.sum().sum_horizontal()[0]), "equal"), rows=out.height)
