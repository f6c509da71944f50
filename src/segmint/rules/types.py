"""The typing pass: every node of a rule set typed once against a schema.

Types: ``number``, ``boolean``, ``string``, ``date``, ``timestamp``, ``duration`` and the
type of ``null``. Every type rule of the language lives here, once; the code generator
(:mod:`segmint.rules.codegen`) reads the types this pass records and decides nothing itself.

Two contexts, one set of rules. Strings never reach the VM as text: a boolean sub-expression
whose only column is one string column (``region in ('NY', 'CA')``, ``starts_with(channel,
'e')``) is a *string predicate*, evaluated in Python once per dictionary entry into a lookup
table. Inside one, the language's rules apply; outside (where the VM runs the code) three more
hold: strings compare only inside string predicates, booleans compare with ``=``/``!=`` only,
and ``starts_with``/``contains`` must be string predicates.
"""
import difflib

import pyarrow as pa

from ..errors import closest_names
from .errors import RuleError, RuleSetError, RuleTypeError
from .parse import COMPARISONS, Between, Binary, Call, Column, InList, IsNull, Literal, Unary, children

NUM, BOOL, STR, DATE, TS, DUR, NULL = "number", "boolean", "string", "date", "timestamp", "duration", "null"
FUNCTIONS = {"days_since": 1, "within_last": 2, "coalesce": None, "abs": 1, "starts_with": 2,
             "contains": 2, "segment": 1}
_LITERAL_TYPES = {"number": NUM, "bool": BOOL, "null": NULL, "string": STR, "date": DATE,
                  "timestamp": TS, "duration": DUR}
# nodes whose value is a boolean whenever they type-check at all: the string-predicate candidates
_BOOLEAN_SHAPED_CALLS = ("within_last", "starts_with", "contains", "segment")


def column_type(arrow_type):
    """The rule type of an Arrow column type, or None when rules cannot use it."""
    t = arrow_type
    if pa.types.is_dictionary(t):
        t = t.value_type
    if pa.types.is_integer(t) or pa.types.is_floating(t):
        return NUM
    if pa.types.is_boolean(t):
        return BOOL
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return STR
    if pa.types.is_date(t):
        return DATE
    if pa.types.is_timestamp(t):
        return TS
    if pa.types.is_duration(t):
        return DUR
    return None


class Types:
    """What the typing pass decided for one rule set against one schema.

    ``types[node]`` is the node's type; ``string_predicate(node)`` the string column a node
    reads when it is compiled as a lookup table (None otherwise). Nodes are keyed by identity:
    a rule set's syntax trees live as long as the rule set.
    """

    def __init__(self):
        self.of = {}            # id(node) -> type
        self.predicates = {}    # id(node) -> string column of a lookup-table root

    def __getitem__(self, node):
        return self.of[id(node)]

    def string_predicate(self, node):
        return self.predicates.get(id(node))


def type_rules(columns, segments):
    """Type every segment of a rule set; raise the first error, naming its segment.

    Parameters
    ----------
    columns : dict
        Column name -> rule type (None for a column rules cannot read).
    segments : dict
        Segment name -> ``(syntax tree, rule text)``, in rule-set order.

    Returns
    -------
    Types
    """
    typer = _Typer(columns, segments)
    for name, (tree, text) in segments.items():
        typer.text, typer.stack = text, [name]
        try:
            typer.condition(tree)
        except RuleError as exc:
            raise exc if exc.segment else exc.with_segment(name)
    return typer.types


class _Typer:
    def __init__(self, columns, segments):
        self.columns = columns
        self.segments = segments
        self.types = Types()
        self.vm_checked = set()     # ids of nodes typed with the VM's extra rules too
        self.text = None
        self.stack = []             # segments being typed: segment() cycles are found here
        self._columns_cache = {}

    # -- errors -----------------------------------------------------------------------------
    def type_error(self, message, node):
        return RuleTypeError(message, self.text, node.pos)

    def describe(self, node):
        return self.text[node.pos:node.end]

    # -- entry points -------------------------------------------------------------------------
    def condition(self, node):
        """Type a segment's rule (or a referenced one), which must be a condition."""
        t = self.type_of(node, vm=True)
        if t not in (BOOL, NULL):
            raise self.type_error(f"expected a true/false condition, but {self.describe(node)!r} is "
                                  f"a {t}", node)
        return t

    def type_of(self, node, vm):
        """The type of ``node``; ``vm``: it runs on the VM (outside any string predicate)."""
        key = id(node)
        if key in self.vm_checked or (not vm and key in self.types.of):
            return self.types.of[key]  # typed before (an acyclic segment() target is typed once)
        on_vm = vm
        if vm:
            column = self._string_predicate_column(node)
            if column is not None:
                self.types.predicates[key] = column
                vm = False  # from here down the Python evaluator runs it: the language's rules
        t = self._rule(node, vm)
        self.types.of[key] = t
        if on_vm:
            self.vm_checked.add(key)
        return t

    def _string_predicate_column(self, node):
        """The string column when ``node`` compiles to a lookup table, else None."""
        if isinstance(node, (Literal, Column)):
            return None
        cols = self.columns_of(node, self.stack)
        if len(cols) != 1:
            return None
        (only,) = cols
        if self.columns.get(only) != STR:
            return None
        boolean_shaped = isinstance(node, (IsNull, Between, InList)) \
            or (isinstance(node, Unary) and node.op == "not") \
            or (isinstance(node, Binary) and (node.op in ("and", "or") or node.op in COMPARISONS)) \
            or (isinstance(node, Call) and node.name in _BOOLEAN_SHAPED_CALLS)
        if boolean_shaped or (isinstance(node, Call) and node.name == "coalesce"
                              and self.type_of(node, vm=False) == BOOL):
            return only
        return None

    # -- the rules --------------------------------------------------------------------------
    def _rule(self, node, vm):
        if isinstance(node, Literal):
            return _LITERAL_TYPES[node.kind]
        if isinstance(node, Column):
            return self.column(node)
        if isinstance(node, Unary):
            t = self.type_of(node.arg, vm)
            if node.op == "not":
                if t not in (BOOL, NULL):
                    raise self.type_error(f"'not' needs a true/false condition, but "
                                          f"{self.describe(node.arg)!r} is a {t}", node.arg)
                return BOOL
            if t not in (NUM, DUR, NULL):
                raise self.type_error(f"cannot negate {self.describe(node.arg)} ({t})", node)
            return t
        if isinstance(node, Binary):
            a, b = self.type_of(node.left, vm), self.type_of(node.right, vm)
            if node.op in ("and", "or"):
                for t, side in ((a, node.left), (b, node.right)):
                    if t not in (BOOL, NULL):
                        raise self.type_error(f"'{node.op}' needs true/false conditions, but "
                                              f"{self.describe(side)!r} is a {t}", side)
                return BOOL
            if node.op in COMPARISONS:
                self.comparison(node.op, node.left, a, node.right, b, node, vm)
                return BOOL
            t = arith_type(node.op, a, b)
            if t is None:
                raise self.type_error(f"cannot apply '{node.op}' to {self.describe(node.left)} ({a}) "
                                      f"and {self.describe(node.right)} ({b})", node)
            return t
        if isinstance(node, IsNull):
            self.type_of(node.arg, vm)
            return BOOL
        if isinstance(node, (Between, InList)):
            a = self.type_of(node.arg, vm)
            others = [node.low, node.high] if isinstance(node, Between) else node.items
            ops = (">=", "<=") if isinstance(node, Between) else ("=",) * len(others)
            for op, other in zip(ops, others):
                self.comparison(op, node.arg, a, other, self.type_of(other, vm), other, vm)
            return BOOL
        if isinstance(node, Call):
            return self.call(node, vm)
        raise RuleError(f"unsupported expression {self.describe(node)!r}", self.text, node.pos)

    def comparison(self, op, left, a, right, b, at, vm):
        """Check ``left op right`` (types ``a`` and ``b``); errors point at ``at``."""
        if vm and STR in (a, b):
            raise self.type_error(f"strings can be compared with string literals only (this compares "
                                  f"{self.describe(left)} with {self.describe(right)})",
                                  right if a == STR else left)
        if not comparable(a, b):
            raise self.type_error(f"cannot compare {self.describe(left)} ({a}) with "
                                  f"{self.describe(right)} ({b})", at)
        if vm and a == BOOL and b == BOOL and op not in ("=", "!="):
            raise self.type_error(f"booleans compare with '=' and '!=' only, not '{op}'", at)

    def column(self, node):
        name = node.name
        if name not in self.columns:
            near = closest_names(name, list(self.columns))
            hint = f"; did you mean {' or '.join(repr(c) for c in near)}?" if near else ""
            raise RuleError(f"unknown column {name!r}{hint}", self.text, node.pos)
        t = self.columns[name]
        if t is None:
            raise self.type_error(f"column {name!r} has a type rules cannot read", node)
        return t

    def call(self, node, vm):
        name = node.name
        self.signature(node)
        if name == "segment":
            ref = self.resolve_segment(node)
            self.types.of[id(node.args[0])] = STR  # the name: a string, never a value on the VM
            tree, text = self.segments[ref]
            saved = self.text
            self.stack.append(ref)
            self.text = text
            try:
                if vm:
                    self.condition(tree)
                else:
                    self.type_of(tree, vm=False)
            finally:
                self.stack.pop()
                self.text = saved
            return BOOL
        if name == "coalesce" and not node.args:
            raise RuleError("coalesce() needs at least one argument", self.text, node.pos)
        types = [self.type_of(a, vm) for a in node.args]
        if name == "coalesce":
            kinds = set(types) - {NULL}
            if len(kinds) > 1:
                raise self.type_error(f"coalesce() mixes types: {', '.join(sorted(kinds))}", node)
            if vm and kinds == {STR}:  # the VM holds no strings: only one column's lookup table can
                raise self.type_error("coalesce() over strings works only compared with string "
                                      "literals over one string column", node)
            return kinds.pop() if kinds else NULL
        if name == "abs":
            if types[0] not in (NUM, DUR, NULL):
                raise self.type_error(f"abs() takes a number, got {types[0]}", node.args[0])
            return types[0]
        if name == "days_since":
            if types[0] not in (DATE, TS, NULL):
                raise self.type_error(f"days_since() takes a date or timestamp, got "
                                      f"{self.describe(node.args[0])} ({types[0]})", node.args[0])
            return NUM
        if name == "within_last":
            if types[0] not in (DATE, TS, NULL):
                raise self.type_error(f"within_last() takes a date or timestamp first, got "
                                      f"{types[0]}", node.args[0])
            if not (isinstance(node.args[1], Literal) and node.args[1].kind == "duration"
                    or vm and types[1] == DUR and self._constant(node.args[1])):
                raise self.type_error("within_last() takes a duration literal second, e.g. 90d",
                                      node.args[1])
            return BOOL
        # starts_with, contains: the VM has no strings, so only as a string predicate
        if vm:
            raise self.type_error(f"{name}() takes a string column and a string literal", node)
        if types[0] not in (STR, NULL):
            raise self.type_error(f"{name}() takes a string first, got {types[0]}", node.args[0])
        if not (isinstance(node.args[1], Literal) and node.args[1].kind == "string"):
            raise self.type_error(f"{name}() takes a string literal second", node.args[1])
        return BOOL

    def signature(self, node):
        """Known function, right number of arguments."""
        name = node.name
        if name not in FUNCTIONS:
            near = difflib.get_close_matches(name, list(FUNCTIONS), n=2, cutoff=0.5)
            hint = f"; did you mean {' or '.join(near)}?" if near else \
                f"; functions are {', '.join(sorted(FUNCTIONS))}"
            raise RuleError(f"unknown function {name!r}{hint}", self.text, node.pos)
        arity = FUNCTIONS[name]
        if arity is not None and len(node.args) != arity:
            raise RuleError(f"{name}() takes {arity} argument{'s' if arity > 1 else ''}, got "
                            f"{len(node.args)}", self.text, node.pos)

    def resolve_segment(self, node):
        """The segment a ``segment('name')`` call refers to: known, and not in a cycle."""
        arg = node.args[0]
        if not (isinstance(arg, Literal) and arg.kind == "string"):
            raise RuleError("segment() takes the name of a segment as a quoted string",
                            self.text, arg.pos)
        ref = arg.value
        if ref not in self.segments:
            near = closest_names(ref, list(self.segments))
            hint = f"; did you mean {' or '.join(repr(c) for c in near)}?" if near else ""
            raise RuleSetError(f"segment() refers to unknown segment {ref!r}{hint}", self.text, arg.pos)
        if ref in self.stack:
            cycle = " -> ".join(self.stack[self.stack.index(ref):] + [ref])
            raise RuleSetError(f"segments refer to each other in a cycle: {cycle}", self.text, node.pos)
        return ref

    def _constant(self, node):
        """Whether ``node`` reads no column and calls nothing (the code generator folds it)."""
        return not self.columns_of(node, self.stack) and not any(
            isinstance(n, Call) for n in _walk(node))

    # -- the columns a sub-expression reads ---------------------------------------------------
    def columns_of(self, node, seen=None):
        """Column names a sub-expression reads (segment() references followed), memoised."""
        key = id(node)
        cached = self._columns_cache.get(key)
        if cached is not None:
            return cached
        if isinstance(node, Column):
            out = {node.name}
        elif isinstance(node, Call) and node.name == "segment":
            out = self._columns_walk(node, seen)
        else:
            out = set()
            for child in children(node):
                out |= self.columns_of(child, seen)
        self._columns_cache[key] = out
        return out

    def _columns_walk(self, node, seen=None):
        out = set()
        stack = [node]
        seen = set(seen or ())
        while stack:
            n = stack.pop()
            if isinstance(n, Column):
                out.add(n.name)
            elif isinstance(n, Call) and n.name == "segment" and len(n.args) == 1 \
                    and isinstance(n.args[0], Literal) and n.args[0].kind == "string":
                ref = n.args[0].value
                if ref in self.segments and ref not in seen:
                    seen.add(ref)
                    stack.append(self.segments[ref][0])
            else:
                stack.extend(children(n))
        return out


def _walk(node):
    stack = [node]
    while stack:
        n = stack.pop()
        yield n
        stack.extend(children(n))


def arith_type(op, a, b):
    """The type of ``a op b`` for an arithmetic ``op``, or None when it is not defined."""
    if NULL in (a, b):
        other = b if a == NULL else a
        return other if other in (NUM, DUR, DATE, TS, NULL) else None
    if a == NUM and b == NUM:
        return NUM
    if op == "-" and a in (DATE, TS) and b in (DATE, TS):
        return DUR
    if op in ("+", "-") and a in (DATE, TS) and b == DUR:
        return TS
    if op == "+" and a == DUR and b in (DATE, TS):
        return TS
    if op in ("+", "-") and a == DUR and b == DUR:
        return DUR
    if op in ("*", "/") and a == DUR and b == NUM:
        return DUR
    if op == "*" and a == NUM and b == DUR:
        return DUR
    return None


def comparable(a, b):
    """Whether values of types ``a`` and ``b`` compare (dates and timestamps do)."""
    if NULL in (a, b):
        return True
    if a in (DATE, TS) and b in (DATE, TS):
        return True
    return a == b
