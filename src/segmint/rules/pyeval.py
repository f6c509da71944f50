"""Evaluating a rule for one row in Python, with SQL's three-valued logic.

Used to fill the lookup tables of string predicates: a sub-expression that reads one string
column is evaluated once per dictionary entry (and once for null). ``None`` is SQL null.
"""
from .errors import RuleError
from .parse import Between, Binary, Call, Column, InList, IsNull, Literal, Unary


def evaluate(node, row, segments):
    """Value of ``node`` for ``row`` (a dict of column values); booleans are True/False/None."""
    if isinstance(node, Literal):
        return node.value if node.kind != "null" else None
    if isinstance(node, Column):
        return row[node.name]
    if isinstance(node, Unary):
        x = evaluate(node.arg, row, segments)
        if node.op == "not":
            return None if x is None else not x
        return None if x is None else -x
    if isinstance(node, Binary):
        if node.op == "and":
            a = evaluate(node.left, row, segments)
            b = evaluate(node.right, row, segments)
            if a is False or b is False:
                return False
            return None if a is None or b is None else True
        if node.op == "or":
            a = evaluate(node.left, row, segments)
            b = evaluate(node.right, row, segments)
            if a is True or b is True:
                return True
            return None if a is None or b is None else False
        a = evaluate(node.left, row, segments)
        b = evaluate(node.right, row, segments)
        if a is None or b is None:
            return None
        if node.op == "+":
            return a + b
        if node.op == "-":
            return a - b
        if node.op == "*":
            return a * b
        if node.op == "/":
            return None if b == 0 else a / b
        return _compare(node.op, a, b)
    if isinstance(node, IsNull):
        is_null = evaluate(node.arg, row, segments) is None
        return not is_null if node.negated else is_null
    if isinstance(node, Between):
        x = evaluate(node.arg, row, segments)
        low = evaluate(node.low, row, segments)
        high = evaluate(node.high, row, segments)
        r = _and(None if x is None or low is None else x >= low,
                 None if x is None or high is None else x <= high)
        return None if r is None else (not r if node.negated else r)
    if isinstance(node, InList):
        x = evaluate(node.arg, row, segments)
        result = False
        for item in node.items:
            v = evaluate(item, row, segments)
            eq = None if x is None or v is None else x == v
            if eq is True:
                result = True
                break
            if eq is None:
                result = None
        return None if result is None else (not result if node.negated else result)
    if isinstance(node, Call):
        if node.name == "segment":
            return evaluate(segments[node.args[0].value][0], row, segments)
        args = [evaluate(a, row, segments) for a in node.args]
        if node.name == "coalesce":
            return next((a for a in args if a is not None), None)
        if any(a is None for a in args):
            return None
        if node.name == "abs":
            return abs(args[0])
        if node.name == "starts_with":
            return args[0].startswith(args[1])
        if node.name == "contains":
            return args[1] in args[0]
    raise RuleError(f"cannot evaluate {type(node).__name__} here")


def _compare(op, a, b):
    if op == "=":
        return a == b
    if op == "!=":
        return a != b
    if op == "<":
        return a < b
    if op == "<=":
        return a <= b
    if op == ">":
        return a > b
    return a >= b


def _and(a, b):
    if a is False or b is False:
        return False
    return None if a is None or b is None else True
