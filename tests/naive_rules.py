"""Random rule expressions as trees, rendered to text, and evaluated row by row in Python.

This is the slow twin of the rule engine: it never touches segmint's parser or compiler.
Values: numbers (int/float), str, bool, datetime.date, datetime.datetime (UTC), None = null.
"""
import datetime as dt

from hypothesis import strategies as st

UTC = dt.timezone.utc
AS_OF = dt.datetime(2026, 10, 1, 15, 30, tzinfo=UTC)
WORDS = ["NY", "CA", "TX", "N/A", "it's", ""]


# -- trees: tuples (op, ...) ----------------------------------------------------------------------
def num_terms():
    base = st.one_of(
        st.sampled_from([("col", "i"), ("col", "f")]),
        st.integers(-20, 20).map(lambda v: ("num", v)),
        st.sampled_from([("num", 2.5), ("num", -0.5), ("null",)]),
        st.sampled_from([("days_since", "d"), ("days_since", "t")]),
    )
    return st.recursive(base, lambda inner: st.one_of(
        st.tuples(st.sampled_from(["+", "-", "*", "/"]), inner, inner).map(lambda x: ("arith",) + x),
        inner.map(lambda x: ("abs", x)),
        inner.map(lambda x: ("neg", x)),
        st.tuples(inner, inner).map(lambda x: ("coalesce",) + x),
    ), max_leaves=4)


def string_preds():
    word = st.sampled_from(WORDS)
    return st.one_of(
        st.tuples(st.sampled_from(["=", "!=", "<", ">="]), word).map(lambda x: ("scmp", x[0], x[1])),
        st.lists(word, min_size=1, max_size=3).map(lambda w: ("sin", tuple(w), False)),
        st.lists(word, min_size=1, max_size=3).map(lambda w: ("sin", tuple(w), True)),
        st.sampled_from([("starts_with", "N"), ("contains", "'"), ("snull", False), ("snull", True),
                         ("scoalesce", "NY")]),
    )


def bool_terms():
    num = num_terms()
    base = st.one_of(
        st.tuples(st.sampled_from(["=", "!=", "<", "<=", ">", ">="]), num, num).map(lambda x: ("cmp",) + x),
        st.tuples(num, num, num, st.booleans()).map(lambda x: ("between",) + x),
        st.tuples(num, st.lists(num, min_size=1, max_size=3).map(tuple), st.booleans()).map(lambda x: ("in",) + x),
        st.tuples(num, st.booleans()).map(lambda x: ("isnull",) + x),
        string_preds(),
        st.sampled_from([("col", "b"), ("bconst", True), ("bconst", False), ("null",),
                         ("within", "d", 30), ("within", "t", 2), ("datecmp", ">=", "2026-06-01"),
                         ("tscmp", "<", "2026-09-30 12:00:00"), ("beq", True)]),
    )
    return st.recursive(base, lambda inner: st.one_of(
        st.tuples(st.sampled_from(["and", "or"]), inner, inner).map(lambda x: ("logic",) + x),
        inner.map(lambda x: ("not", x)),
    ), max_leaves=6)


# -- rendering to the rule language ---------------------------------------------------------------
def q(word):
    return "'" + word.replace("'", "''") + "'"


def render(t):
    op = t[0]
    if op == "col":
        return t[1]
    if op == "num":
        return repr(t[1]) if t[1] >= 0 else f"({t[1]!r})"
    if op == "null":
        return "null"
    if op == "days_since":
        return f"days_since({t[1]})"
    if op == "arith":
        return f"({render(t[2])} {t[1]} {render(t[3])})"
    if op == "abs":
        return f"abs({render(t[1])})"
    if op == "neg":
        return f"(- {render(t[1])})"
    if op == "coalesce":
        return f"coalesce({render(t[1])}, {render(t[2])})"
    if op == "cmp":
        return f"({render(t[2])} {t[1]} {render(t[3])})"
    if op == "between":
        return f"({render(t[1])} {'not ' if t[4] else ''}between {render(t[2])} and {render(t[3])})"
    if op == "in":
        return f"({render(t[1])} {'not ' if t[3] else ''}in ({', '.join(render(x) for x in t[2])}))"
    if op == "isnull":
        return f"({render(t[1])} is {'not ' if t[2] else ''}null)"
    if op == "scmp":
        return f"(s {t[1]} {q(t[2])})"
    if op == "sin":
        return f"(s {'not ' if t[2] else ''}in ({', '.join(q(w) for w in t[1])}))"
    if op == "starts_with":
        return f"starts_with(s, {q(t[1])})"
    if op == "contains":
        return f"contains(s, {q(t[1])})"
    if op == "snull":
        return f"(s is {'not ' if t[1] else ''}null)"
    if op == "scoalesce":
        return f"(coalesce(s, {q(t[1])}) = {q(t[1])})"
    if op == "bconst":
        return "TRUE" if t[1] else "false"
    if op == "within":
        return f"within_last({t[1]}, {t[2]}d)"
    if op == "datecmp":
        return f"(d {t[1]} DATE '{t[2]}')"
    if op == "tscmp":
        return f"(t {t[1]} timestamp '{t[2]}')"
    if op == "beq":
        return f"(b = {'true' if t[1] else 'false'})"
    if op == "logic":
        return f"({render(t[2])} {t[1].upper() if t[1] == 'and' else t[1]} {render(t[3])})"
    if op == "not":
        return f"(not {render(t[1])})"
    raise ValueError(op)


# -- row-by-row evaluation with SQL semantics ----------------------------------------------------
def _cmp(op, a, b):
    return {"=": a == b, "!=": a != b, "<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op]


def _and(a, b):
    if a is False or b is False:
        return False
    return None if a is None or b is None else True


def _or(a, b):
    if a is True or b is True:
        return True
    return None if a is None or b is None else False


def _moment(v):
    if isinstance(v, dt.datetime):
        return v
    return dt.datetime(v.year, v.month, v.day, tzinfo=UTC)


def value(t, row):
    op = t[0]
    if op == "col":
        return row[t[1]]
    if op == "num":
        return t[1]
    if op == "null":
        return None
    if op == "days_since":
        v = row[t[1]]
        if v is None:
            return None
        if t[1] == "d":
            return float((AS_OF.date() - v).days)
        return ((AS_OF - v) // dt.timedelta(microseconds=1)) / 86_400_000_000.0
    if op == "arith":
        a, b = value(t[2], row), value(t[3], row)
        if a is None or b is None:
            return None
        if t[1] == "/":
            return None if b == 0 else a / b
        return {"+": a + b, "-": a - b, "*": a * b}[t[1]]
    if op == "abs":
        v = value(t[1], row)
        return None if v is None else abs(v)
    if op == "neg":
        v = value(t[1], row)
        return None if v is None else -v
    if op == "coalesce":
        v = value(t[1], row)
        return v if v is not None else value(t[2], row)
    if op == "cmp":
        a, b = value(t[2], row), value(t[3], row)
        return None if a is None or b is None else _cmp(t[1], a, b)
    if op == "between":
        x, lo, hi = value(t[1], row), value(t[2], row), value(t[3], row)
        r = _and(None if x is None or lo is None else x >= lo, None if x is None or hi is None else x <= hi)
        return None if r is None else (not r if t[4] else r)
    if op == "in":
        x = value(t[1], row)
        r = False
        for item in t[2]:
            v = value(item, row)
            r = _or(r, None if x is None or v is None else x == v)
        return None if r is None else (not r if t[3] else r)
    if op == "isnull":
        r = value(t[1], row) is None
        return not r if t[2] else r
    s = row["s"]
    if op == "scmp":
        return None if s is None else _cmp(t[1], s, t[2])
    if op == "sin":
        r = None if s is None else s in t[1]
        return None if r is None else (not r if t[2] else r)
    if op == "starts_with":
        return None if s is None else s.startswith(t[1])
    if op == "contains":
        return None if s is None else t[1] in s
    if op == "snull":
        return (s is not None) if t[1] else (s is None)
    if op == "scoalesce":
        return (s if s is not None else t[1]) == t[1]
    if op == "bconst":
        return t[1]
    if op == "within":
        v = row[t[1]]
        if v is None:
            return None
        m = _moment(v)
        return AS_OF - dt.timedelta(days=t[2]) <= m <= AS_OF
    if op == "datecmp":
        v = row["d"]
        return None if v is None else _cmp(t[1], v, dt.date.fromisoformat(t[2]))
    if op == "tscmp":
        v = row["t"]
        return None if v is None else _cmp(t[1], v, dt.datetime.fromisoformat(t[2]).replace(tzinfo=UTC))
    if op == "beq":
        v = row["b"]
        return None if v is None else v == t[1]
    if op == "logic":
        a, b = value(t[2], row), value(t[3], row)
        return _and(a, b) if t[1] == "and" else _or(a, b)
    if op == "not":
        v = value(t[1], row)
        return None if v is None else not v
    raise ValueError(op)
