"""Parsing segment rules into a small syntax tree (never Python ``eval``).

Grammar, loosest binding first::

    expr      := and_expr ('or' and_expr)*
    and_expr  := not_expr ('and' not_expr)*
    not_expr  := 'not' not_expr | predicate
    predicate := sum [ cmp sum | 'is' ['not'] 'null'
                      | ['not'] 'between' sum 'and' sum | ['not'] 'in' '(' expr (',' expr)* ')' ]
    sum       := product (('+' | '-') product)*
    product   := unary (('*' | '/') unary)*
    unary     := '-' unary | primary
    primary   := number | duration | string | 'true' | 'false' | 'null'
               | 'date' string | 'timestamp' string | name '(' [expr (',' expr)*] ')'
               | name | '(' expr ')'

Keywords are case-insensitive; names are bare identifiers or ``"quoted names"``.
"""
import datetime as _dt
from dataclasses import dataclass, field

from .._time import epoch_microseconds
from .errors import RuleSyntaxError
from .lexer import tokenize

MAX_DEPTH = 64          # nesting of parentheses / not / unary minus
MAX_TREE_DEPTH = 100    # depth of the whole tree (long and/or chains are balanced)
COMPARISONS = ("=", "!=", "<", "<=", ">", ">=")


@dataclass(eq=False)
class Node:
    pos: int
    end: int


@dataclass(eq=False)
class Literal(Node):
    kind: str    # 'number', 'string', 'bool', 'null', 'date' (days), 'timestamp' (us), 'duration' (us)
    value: object


@dataclass(eq=False)
class Column(Node):
    name: str


@dataclass(eq=False)
class Unary(Node):
    op: str      # 'neg', 'not'
    arg: Node


@dataclass(eq=False)
class Binary(Node):
    op: str      # 'and', 'or', '+', '-', '*', '/', or a comparison
    left: Node
    right: Node


@dataclass(eq=False)
class IsNull(Node):
    arg: Node
    negated: bool


@dataclass(eq=False)
class Between(Node):
    arg: Node
    low: Node
    high: Node
    negated: bool


@dataclass(eq=False)
class InList(Node):
    arg: Node
    items: list
    negated: bool


@dataclass(eq=False)
class Call(Node):
    name: str
    args: list = field(default_factory=list)


def parse(text):
    """Parse one rule expression into a syntax tree.

    Raises
    ------
    RuleSyntaxError
        With the position of the problem and a caret under it.
    """
    parser = _Parser(text)
    tree = parser.parse()
    if len(parser.tokens) <= MAX_TREE_DEPTH:
        return tree  # fewer tokens than levels: the tree cannot be too deep
    depth = _depth(tree)
    if depth > MAX_TREE_DEPTH:
        raise RuleSyntaxError(f"the rule nests deeper than {MAX_TREE_DEPTH} levels ({depth}); split it "
                              "into segments and combine them with segment('name')", text, 0)
    return tree


def _depth(tree):
    """Depth of the tree, computed without recursion."""
    deepest = 0
    stack = [(tree, 1)]
    while stack:
        node, d = stack.pop()
        deepest = max(deepest, d)
        for child in children(node):
            stack.append((child, d + 1))
    return deepest


def children(n):
    """The sub-expressions of a node."""
    if isinstance(n, Unary):
        return [n.arg]
    if isinstance(n, Binary):
        return [n.left, n.right]
    if isinstance(n, IsNull):
        return [n.arg]
    if isinstance(n, Between):
        return [n.arg, n.low, n.high]
    if isinstance(n, InList):
        return [n.arg, *n.items]
    if isinstance(n, Call):
        return list(n.args)
    return []


def _balanced(op, items):
    """``a op b op c ...`` as a balanced tree: same result (Kleene and/or are associative),
    logarithmic depth however long the chain."""
    if len(items) == 1:
        return items[0]
    mid = len(items) // 2
    left, right = _balanced(op, items[:mid]), _balanced(op, items[mid:])
    return Binary(left.pos, right.end, op, left, right)


class _Parser:
    def __init__(self, text):
        self.text = text
        self.tokens = tokenize(text)
        self.i = 0
        self.tok = self.tokens[0]
        self.depth = 0

    # -- helpers ---------------------------------------------------------------------------
    def advance(self):
        tok = self.tok
        self.i += 1
        self.tok = self.tokens[self.i] if self.i < len(self.tokens) else tok
        return tok

    def at(self, kind, value=None):
        tok = self.tok
        return tok[0] == kind and (value is None or tok[1] == value)

    def expect(self, kind, value, what):
        if not self.at(kind, value):
            self.fail(f"expected {what}")
        return self.advance()

    def fail(self, message, tok=None):
        tok = tok or self.tok
        found = "the end of the rule" if tok.kind == "end" else repr(self.text[tok.pos:tok.end])
        raise RuleSyntaxError(f"{message}, found {found}", self.text, tok.pos)

    def enter(self):
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise RuleSyntaxError(f"the rule nests deeper than {MAX_DEPTH} levels", self.text, self.tok.pos)

    def leave(self):
        self.depth -= 1

    # -- grammar ---------------------------------------------------------------------------
    def parse(self):
        if self.tok.kind == "end":
            raise RuleSyntaxError("the rule is empty", self.text, 0)
        node = self.expr()
        if self.tok.kind != "end":
            self.fail("expected an operator such as 'and', 'or', '=' or the end of the rule")
        return node

    def expr(self):
        self.enter()
        items = [self.and_expr()]
        while self.tok[1] == "or" and self.tok[0] == "keyword":
            self.advance()
            items.append(self.and_expr())
        self.leave()
        return _balanced("or", items)

    def and_expr(self):
        items = [self.not_expr()]
        while self.tok[1] == "and" and self.tok[0] == "keyword":
            self.advance()
            items.append(self.not_expr())
        return _balanced("and", items)

    def not_expr(self):
        if self.tok[1] == "not" and self.tok[0] == "keyword":
            tok = self.advance()
            self.enter()
            arg = self.not_expr()
            self.leave()
            return Unary(tok.pos, arg.end, "not", arg)
        return self.predicate()

    def predicate(self):
        left = self.sum()
        tok = self.tok
        kind = tok[0]
        if kind == "end" or (kind == "keyword" and tok[1] in ("and", "or")) or (kind == "op" and tok[1] == ")"):
            return left  # the common case: nothing follows the value here
        if kind == "op" and tok[1] in COMPARISONS:
            self.advance()
            right = self.sum()
            return Binary(left.pos, right.end, tok.value, left, right)
        if self.at("keyword", "is"):
            self.advance()
            negated = False
            if self.at("keyword", "not"):
                self.advance()
                negated = True
            end = self.expect("keyword", "null", "'null' after 'is'").end
            return IsNull(left.pos, end, left, negated)
        negated = False
        if self.at("keyword", "not") and self.tokens[self.i + 1].kind == "keyword" \
                and self.tokens[self.i + 1].value in ("between", "in"):
            self.advance()
            negated = True
        if self.at("keyword", "between"):
            self.advance()
            low = self.sum()
            self.expect("keyword", "and", "'and' between the two bounds of 'between'")
            high = self.sum()
            return Between(left.pos, high.end, left, low, high, negated)
        if self.at("keyword", "in"):
            self.advance()
            self.expect("op", "(", "'(' after 'in'")
            items = [self.expr()]
            while self.at("op", ","):
                self.advance()
                items.append(self.expr())
            end = self.expect("op", ")", "',' or ')' in the 'in' list").end
            return InList(left.pos, end, left, items, negated)
        if negated:
            self.fail("expected 'between' or 'in' after 'not'")
        return left

    def sum(self):
        node = self.product()
        while self.tok[0] == "op" and self.tok[1] in ("+", "-"):
            op = self.advance().value
            right = self.product()
            node = Binary(node.pos, right.end, op, node, right)
        return node

    def product(self):
        node = self.unary()
        while self.tok[0] == "op" and self.tok[1] in ("*", "/"):
            op = self.advance().value
            right = self.unary()
            node = Binary(node.pos, right.end, op, node, right)
        return node

    def unary(self):
        if self.tok[1] == "-" and self.tok[0] == "op":
            tok = self.advance()
            self.enter()
            arg = self.unary()
            self.leave()
            if isinstance(arg, Literal) and arg.kind in ("number", "duration"):
                return Literal(tok.pos, arg.end, arg.kind, -arg.value)
            return Unary(tok.pos, arg.end, "neg", arg)
        return self.primary()

    def primary(self):
        tok = self.tok
        if tok.kind in ("number", "duration", "string"):
            self.advance()
            return Literal(tok.pos, tok.end, tok.kind, tok.value)
        if tok.kind == "keyword":
            if tok.value in ("true", "false"):
                self.advance()
                return Literal(tok.pos, tok.end, "bool", tok.value == "true")
            if tok.value == "null":
                self.advance()
                return Literal(tok.pos, tok.end, "null", None)
            if tok.value in ("date", "timestamp"):
                self.advance()
                lit = self.expect("string", None, f"a quoted {tok.value} after '{tok.value}', "
                                  f"e.g. {tok.value} '2026-01-31'")
                return Literal(tok.pos, lit.end, tok.value, self._temporal(tok.value, lit))
            self.fail("expected a value, a column or '('")
        if tok.kind == "ident":
            self.advance()
            if self.at("op", "("):
                self.advance()
                args = []
                if not self.at("op", ")"):
                    args.append(self.expr())
                    while self.at("op", ","):
                        self.advance()
                        args.append(self.expr())
                end = self.expect("op", ")", "',' or ')' in the function call").end
                return Call(tok.pos, end, tok.value.lower(), args)
            return Column(tok.pos, tok.end, tok.value)
        if self.at("op", "("):
            self.advance()
            node = self.expr()
            self.expect("op", ")", "')'")
            return node
        self.fail("expected a value, a column or '('")

    def _temporal(self, kind, tok):
        text = tok.value.strip()
        try:
            if kind == "date":
                day = _dt.date.fromisoformat(text)
                return (day - _dt.date(1970, 1, 1)).days
            moment = _dt.datetime.fromisoformat(text.replace(" ", "T", 1) if "T" not in text else text)
        except ValueError:
            example = "2026-01-31" if kind == "date" else "2026-01-31 12:00:00"
            raise RuleSyntaxError(f"{text!r} is not a valid {kind}; write it like '{example}'",
                                  self.text, tok.pos) from None
        return epoch_microseconds(moment)
