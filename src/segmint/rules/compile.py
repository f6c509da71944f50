"""Type-checking rules against a schema and compiling them into a program for the rule VM.

Types: ``number``, ``boolean``, ``string``, ``date``, ``timestamp``, ``duration`` and the
type of ``null``. Dates, timestamps and durations become float64 microseconds (dates at
midnight UTC), so ``date`` and ``timestamp`` compare with each other.

Strings never reach the VM as text: a boolean sub-expression whose only column is one string
column (``region in ('NY', 'CA')``, ``starts_with(channel, 'e')``,
``coalesce(region, 'none') != 'CA'``) is compiled into a lookup-table instruction; the table
is filled by evaluating the sub-expression once per dictionary entry (and once for null).
"""
import difflib
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from ..errors import closest_names
from ..kernels import rules as vm
from .errors import RuleError, RuleSetError, RuleTypeError
from .parse import COMPARISONS, Between, Binary, Call, Column, InList, IsNull, Literal, Unary, children

NUM, BOOL, STR, DATE, TS, DUR, NULL = "number", "boolean", "string", "date", "timestamp", "duration", "null"
US_PER_DAY = 86_400_000_000
FUNCTIONS = {"days_since": 1, "within_last": 2, "coalesce": None, "abs": 1, "starts_with": 2,
             "contains": 2, "segment": 1}
_CMP_CODES = {"=": vm.EQ, "!=": vm.NE, "<": vm.LT, "<=": vm.LE, ">": vm.GT, ">=": vm.GE}
_SWAPPED = {"=": "=", "!=": "!=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}
_ARITH = {"+": (vm.N_ADD, vm.N_ADDK, vm.N_ADDK), "-": (vm.N_SUB, vm.N_SUBK, vm.N_KSUB),
          "*": (vm.N_MUL, vm.N_MULK, vm.N_MULK), "/": (vm.N_DIV, vm.N_DIVK, vm.N_KDIV)}
_UNIT_US = {"s": 1e6, "ms": 1e3, "us": 1.0, "ns": 1e-3}

# constants every program has: filled at evaluation time from as_of
K_AS_OF_US, K_AS_OF_DAY_US, K_US_PER_DAY = 0, 1, 2


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


def time_scale(arrow_type):
    """Multiplier from the column's stored unit to microseconds (1 for non-temporal columns)."""
    t = arrow_type
    if pa.types.is_date32(t):
        return float(US_PER_DAY)
    if pa.types.is_date64(t):
        return 1e3
    if pa.types.is_timestamp(t) or pa.types.is_duration(t):
        return _UNIT_US[t.unit]
    return 1.0


@dataclass
class Operand:
    kind: str              # 'num' (register/column), 'bool', 'const', 'lut-pending'
    ref: object            # register index (>=0) or -(column+1); constant value for 'const'
    type: str


@dataclass
class Program:
    """A compiled rule set: everything the VM needs except the data."""
    code: np.ndarray                 # (p, 5) int64
    consts: np.ndarray               # (q,) float64, slots 0..2 filled per evaluation
    num_columns: list                # [(name, scale)]
    bool_columns: list               # [name]
    str_columns: list                # [name]
    luts: list                       # [(node, string column index, rule text)] per LUT id
    segments: list                   # segment names, sink order
    n_num: int
    n_bool: int
    lut_patch: list = field(default_factory=list)  # instruction rows whose b is a LUT id
    mask_columns: set = field(default_factory=set)  # numeric columns some instruction reads the validity of


class Compiler:
    """Compile the segments of one rule set against one schema."""

    def __init__(self, types, scales, segments):
        self.types = types                  # column name -> rule type
        self.scales = scales                # column name -> multiplier to microseconds
        self.segments = segments            # name -> (ast, text)
        self.code = []
        self.consts = [0.0, 0.0, float(US_PER_DAY)]
        self.const_index = {}
        self.num_cols, self.bool_cols, self.str_cols = {}, {}, {}
        self.num_scales = {}
        self.luts = []
        self.lut_patch = []
        self.n_num = 0
        self.n_bool = 0
        self.free_num, self.free_bool = [], []
        self.text = None
        self.stack = []
        self._columns_cache = {}

    # -- registers and constants ------------------------------------------------------------
    def _num(self):
        if self.free_num:
            return self.free_num.pop()
        self.n_num += 1
        return self.n_num - 1

    def _bool(self):
        if self.free_bool:
            return self.free_bool.pop()
        self.n_bool += 1
        return self.n_bool - 1

    def _release(self, op):
        if op.kind == "num" and isinstance(op.ref, int) and op.ref >= 0:
            self.free_num.append(op.ref)
        elif op.kind == "bool" and isinstance(op.ref, int) and op.ref >= 0:
            self.free_bool.append(op.ref)

    def _const(self, value):
        value = float(value)
        key = (value, np.signbit(value))
        if key not in self.const_index:
            self.const_index[key] = len(self.consts)
            self.consts.append(value)
        return self.const_index[key]

    def emit(self, op, dst=0, a=0, b=0, c=0):
        self.code.append((op, dst, a, b, c))
        return len(self.code) - 1

    # -- entry ------------------------------------------------------------------------------
    def compile(self, mode):
        for seg_index, name in enumerate(self.segments):
            ast, text = self.segments[name]
            self.text, self.stack = text, [name]
            try:
                # code generation type-checks as it goes; lookup-table parts are checked in lut()
                result = self.as_bool(self.expr(ast), ast)
            except RuleError as exc:
                raise exc if exc.segment else exc.with_segment(name)
            sink = vm.SINK_WATERFALL if mode == "waterfall" else vm.SINK_MULTI
            self.emit(sink, seg_index, result.ref)
            self._release(result)
        fused, new_row = _fuse(self.code)
        return Program(
            code=np.asarray(fused, dtype=np.int64).reshape(-1, 5),
            consts=np.asarray(self.consts, dtype=np.float64),
            num_columns=[(n, self.num_scales[n]) for n in self.num_cols],
            bool_columns=list(self.bool_cols), str_columns=list(self.str_cols),
            luts=self.luts, segments=list(self.segments), n_num=self.n_num, n_bool=self.n_bool,
            lut_patch=[new_row[r] for r in self.lut_patch],
            mask_columns=_mask_readers(fused))

    # -- errors -----------------------------------------------------------------------------
    def type_error(self, message, node):
        return RuleTypeError(message, self.text, node.pos)

    def describe(self, node):
        return self.text[node.pos:node.end]

    # -- typing -----------------------------------------------------------------------------
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

    def column_type_of(self, node):
        name = node.name
        if name not in self.types:
            near = closest_names(name, list(self.types))
            hint = f"; did you mean {' or '.join(repr(c) for c in near)}?" if near else ""
            raise RuleError(f"unknown column {name!r}{hint}", self.text, node.pos)
        t = self.types[name]
        if t is None:
            raise self.type_error(f"column {name!r} has a type rules cannot read", node)
        return t

    # -- type checking (the whole tree, lookup-table parts included) ---------------------------
    def check(self, node):
        """The type of ``node``; raises RuleTypeError / RuleError where types do not fit."""
        if isinstance(node, Literal):
            return self.result_type(node)
        if isinstance(node, Column):
            return self.column_type_of(node)
        if isinstance(node, Unary):
            t = self.check(node.arg)
            if node.op == "not":
                if t not in (BOOL, NULL):
                    raise self.type_error(f"'not' needs a true/false condition, but "
                                          f"{self.describe(node.arg)!r} is a {t}", node.arg)
                return BOOL
            if t not in (NUM, DUR, NULL):
                raise self.type_error(f"cannot negate {self.describe(node.arg)} ({t})", node)
            return t
        if isinstance(node, Binary):
            a, b = self.check(node.left), self.check(node.right)
            if node.op in ("and", "or"):
                for t, side in ((a, node.left), (b, node.right)):
                    if t not in (BOOL, NULL):
                        raise self.type_error(f"'{node.op}' needs true/false conditions, but "
                                              f"{self.describe(side)!r} is a {t}", side)
                return BOOL
            if node.op in COMPARISONS:
                if not _comparable(a, b):
                    raise self.type_error(f"cannot compare {self.describe(node.left)} ({a}) with "
                                          f"{self.describe(node.right)} ({b})", node)
                return BOOL
            t = _arith_type(node.op, a, b)
            if t is None:
                raise self.type_error(f"cannot apply '{node.op}' to {self.describe(node.left)} ({a}) "
                                      f"and {self.describe(node.right)} ({b})", node)
            return DUR if a == DATE and b == DATE else t
        if isinstance(node, IsNull):
            self.check(node.arg)
            return BOOL
        if isinstance(node, (Between, InList)):
            a = self.check(node.arg)
            others = [node.low, node.high] if isinstance(node, Between) else node.items
            for other in others:
                b = self.check(other)
                if not _comparable(a, b):
                    raise self.type_error(f"cannot compare {self.describe(node.arg)} ({a}) with "
                                          f"{self.describe(other)} ({b})", other)
            return BOOL
        if isinstance(node, Call):
            return self.check_call(node)
        raise RuleError(f"unsupported expression {self.describe(node)!r}", self.text, node.pos)

    def check_signature(self, node):
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

    def check_call(self, node):
        name = node.name
        self.check_signature(node)
        if name == "segment":
            ref = self.resolve_segment(node)
            saved = self.text
            self.stack.append(ref)
            self.text = self.segments[ref][1]
            try:
                self.check(self.segments[ref][0])
            finally:
                self.stack.pop()
                self.text = saved
            return BOOL
        types = [self.check(a) for a in node.args]
        if name == "coalesce":
            if not types:
                raise RuleError("coalesce() needs at least one argument", self.text, node.pos)
            kinds = set(types) - {NULL}
            if len(kinds) > 1:
                raise self.type_error(f"coalesce() mixes types: {', '.join(sorted(kinds))}", node)
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
            if not (isinstance(node.args[1], Literal) and node.args[1].kind == "duration"):
                raise self.type_error("within_last() takes a duration literal second, e.g. 90d",
                                      node.args[1])
            return BOOL
        # starts_with, contains
        if types[0] not in (STR, NULL):
            raise self.type_error(f"{name}() takes a string first, got {types[0]}", node.args[0])
        if not (isinstance(node.args[1], Literal) and node.args[1].kind == "string"):
            raise self.type_error(f"{name}() takes a string literal second", node.args[1])
        return BOOL

    # -- expressions ------------------------------------------------------------------------
    def expr(self, node):
        """Compile a node; returns an Operand."""
        # one string column and a boolean result: a lookup table over its dictionary
        if not isinstance(node, (Literal, Column)):
            cols = self.columns_of(node, self.stack)
            if len(cols) == 1:
                (only,) = cols
                if only in self.types and self.types[only] == STR and self.result_type(node) == BOOL:
                    return self.lut(node, only)
        if isinstance(node, Literal):
            return self.literal(node)
        if isinstance(node, Column):
            t = self.column_type_of(node)
            if t == BOOL:
                return Operand("bool", -(self._col(self.bool_cols, node.name) + 1), BOOL)
            if t == STR:
                return Operand("str", node.name, STR)
            idx = self._col(self.num_cols, node.name)
            self.num_scales[node.name] = self.scales.get(node.name, 1.0)
            return Operand("num", -(idx + 1), t)
        if isinstance(node, Unary):
            arg = self.expr(node.arg)
            if node.op == "not":
                return self.bool_unary(vm.B_NOT, self.as_bool(arg, node.arg))
            if arg.type not in (NUM, DUR, NULL):
                raise self.type_error(f"cannot negate {self.describe(node.arg)} ({arg.type})", node)
            return self.num_unary(vm.N_NEG, arg)
        if isinstance(node, Binary):
            if node.op in ("and", "or"):
                left = self.as_bool(self.expr(node.left), node.left)
                right = self.as_bool(self.expr(node.right), node.right)
                return self.bool_binary(vm.B_AND if node.op == "and" else vm.B_OR, left, right)
            if node.op in COMPARISONS:
                return self.compare(node.op, node.left, node.right, node)
            return self.arith(node)
        if isinstance(node, IsNull):
            arg = self.expr(node.arg)
            out = self.is_null(arg, node.arg)
            return self.bool_unary(vm.B_NOT, out) if node.negated else out
        if isinstance(node, Between):
            low = self.compare(">=", node.arg, node.low, node)
            high = self.compare("<=", node.arg, node.high, node)
            out = self.bool_binary(vm.B_AND, low, high)
            return self.bool_unary(vm.B_NOT, out) if node.negated else out
        if isinstance(node, InList):
            out = None
            for item in node.items:
                eq = self.compare("=", node.arg, item, node)
                out = eq if out is None else self.bool_binary(vm.B_OR, out, eq)
            return self.bool_unary(vm.B_NOT, out) if node.negated else out
        if isinstance(node, Call):
            return self.call(node)
        raise RuleError(f"unsupported expression {self.describe(node)!r}", self.text, node.pos)

    def _col(self, table, name):
        if name not in table:
            table[name] = len(table)
        return table[name]

    def literal(self, node):
        kind = node.kind
        if kind == "number":
            return Operand("const", float(node.value), NUM)
        if kind == "bool":
            return Operand("constbool", 2 if node.value else 0, BOOL)
        if kind == "null":
            return Operand("const", None, NULL)
        if kind == "string":
            return Operand("str", None, STR)
        if kind == "date":
            return Operand("const", float(node.value) * US_PER_DAY, DATE)
        if kind == "timestamp":
            return Operand("const", float(node.value), TS)
        if kind == "duration":
            return Operand("const", float(node.value), DUR)
        raise RuleError(f"unsupported literal {self.describe(node)!r}", self.text, node.pos)

    # -- result types without emitting code (to decide on lookup tables) -------------------
    def result_type(self, node):
        if isinstance(node, Literal):
            return {"number": NUM, "bool": BOOL, "null": NULL, "string": STR, "date": DATE,
                    "timestamp": TS, "duration": DUR}[node.kind]
        if isinstance(node, Column):
            return self.types.get(node.name)
        if isinstance(node, (IsNull, Between, InList)):
            return BOOL
        if isinstance(node, Unary):
            return BOOL if node.op == "not" else self.result_type(node.arg)
        if isinstance(node, Binary):
            if node.op in ("and", "or") or node.op in COMPARISONS:
                return BOOL
            return NUM
        if isinstance(node, Call):
            if node.name in ("within_last", "starts_with", "contains", "segment"):
                return BOOL
            if node.name in ("days_since", "abs"):
                return NUM
            if node.name == "coalesce" and node.args:
                types = [self.result_type(a) for a in node.args]
                return next((t for t in types if t != NULL), NULL)
        return None

    # -- booleans ---------------------------------------------------------------------------
    def as_bool(self, op, node):
        if op.type == NULL:
            dst = self._bool()
            self.emit(vm.B_CONST, dst, 1)
            return Operand("bool", dst, BOOL)
        if op.type != BOOL:
            raise self.type_error(f"expected a true/false condition, but {self.describe(node)!r} is "
                                  f"a {op.type}", node)
        if op.kind == "constbool":
            dst = self._bool()
            self.emit(vm.B_CONST, dst, op.ref)
            return Operand("bool", dst, BOOL)
        return op

    def bool_unary(self, code, x):
        self._release(x)
        dst = self._bool()
        self.emit(code, dst, x.ref)
        return Operand("bool", dst, BOOL)

    def bool_binary(self, code, x, y):
        self._release(x)
        self._release(y)
        dst = self._bool()
        self.emit(code, dst, x.ref, y.ref)
        return Operand("bool", dst, BOOL)

    def is_null(self, op, node):
        if op.kind == "const":
            return self.as_bool(Operand("constbool", 2 if op.ref is None else 0, BOOL), node)
        if op.kind == "constbool":
            return self.as_bool(Operand("constbool", 0, BOOL), node)
        if op.type == BOOL:
            return self.bool_unary(vm.B_ISNULL, op)
        self._release(op)
        dst = self._bool()
        self.emit(vm.N_ISNULL, dst, op.ref)
        return Operand("bool", dst, BOOL)

    # -- numbers ----------------------------------------------------------------------------
    def materialise(self, op):
        """A constant as a numeric register (or a null register)."""
        if op.kind != "const":
            return op
        dst = self._num()
        if op.ref is None:
            self.emit(vm.N_NULL, dst)
        else:
            self.emit(vm.N_CONST, dst, self._const(op.ref))
        return Operand("num", dst, op.type)

    def num_unary(self, code, x):
        if x.kind == "const":
            if x.ref is None:
                return x
            value = {vm.N_NEG: -x.ref, vm.N_ABS: abs(x.ref), vm.N_FLOOR: float(np.floor(x.ref))}[code]
            return Operand("const", value, x.type)
        self._release(x)
        dst = self._num()
        self.emit(code, dst, x.ref)
        return Operand("num", dst, x.type)

    def num_binary(self, op, x, y, result):
        if x.kind == "const" and y.kind == "const":
            if x.ref is None or y.ref is None:
                return Operand("const", None, result)
            if op == "/" and y.ref == 0:
                return Operand("const", None, result)
            value = {"+": x.ref + y.ref, "-": x.ref - y.ref, "*": x.ref * y.ref,
                     "/": x.ref / y.ref if y.ref else 0.0}[op]
            return Operand("const", value, result)
        if (x.kind == "const" and x.ref is None) or (y.kind == "const" and y.ref is None):
            self._release(x)
            self._release(y)
            return Operand("const", None, result)
        vv, vk, kv = _ARITH[op]
        if y.kind == "const":
            self._release(x)
            dst = self._num()
            self.emit(vk, dst, x.ref, self._const(y.ref))
        elif x.kind == "const":
            self._release(y)
            dst = self._num()
            self.emit(kv, dst, y.ref, self._const(x.ref))
        else:
            self._release(x)
            self._release(y)
            dst = self._num()
            self.emit(vv, dst, x.ref, y.ref)
        return Operand("num", dst, result)

    def arith(self, node):
        x = self.expr(node.left)
        y = self.expr(node.right)
        result = _arith_type(node.op, x.type, y.type)
        if result is None:
            raise self.type_error(f"cannot apply '{node.op}' to {self.describe(node.left)} ({x.type}) "
                                  f"and {self.describe(node.right)} ({y.type})", node)
        if x.type == DATE and y.type == DATE:
            result = DUR
        return self.num_binary(node.op, x, y, result)

    # -- comparisons ------------------------------------------------------------------------
    def compare(self, op, left_node, right_node, node):
        x = self.expr(left_node)
        y = self.expr(right_node)
        if x.type == STR or y.type == STR:
            other = right_node if x.type == STR else left_node
            raise self.type_error(
                f"strings can be compared with string literals only (this compares "
                f"{self.describe(left_node)} with {self.describe(right_node)})", other)
        if not _comparable(x.type, y.type):
            raise self.type_error(f"cannot compare {self.describe(left_node)} ({x.type}) with "
                                  f"{self.describe(right_node)} ({y.type})", node)
        if NULL in (x.type, y.type) or _null_const(x) or _null_const(y):
            self._release(x)
            self._release(y)
            return self.as_bool(Operand("const", None, NULL), node)
        if x.type == BOOL:
            if op not in ("=", "!="):
                raise self.type_error(f"booleans compare with '=' and '!=' only, not '{op}'", node)
            x, y = self.as_bool(x, left_node), self.as_bool(y, right_node)
            eq = self.bool_binary(vm.B_EQ, x, y)
            return eq if op == "=" else self.bool_unary(vm.B_NOT, eq)
        if x.kind == "const" and y.kind == "const":
            value = {"=": x.ref == y.ref, "!=": x.ref != y.ref, "<": x.ref < y.ref,
                     "<=": x.ref <= y.ref, ">": x.ref > y.ref, ">=": x.ref >= y.ref}[op]
            return self.as_bool(Operand("constbool", 2 if value else 0, BOOL), node)
        if x.kind == "const":
            x, y, op = y, x, _SWAPPED[op]
        dst = self._bool()
        if y.kind == "const":
            self._release(x)
            self.emit(vm.CMPK, dst, x.ref, self._const(y.ref), _CMP_CODES[op])
        else:
            self._release(x)
            self._release(y)
            self.emit(vm.CMP, dst, x.ref, y.ref, _CMP_CODES[op])
        return Operand("bool", dst, BOOL)

    # -- functions --------------------------------------------------------------------------
    def call(self, node):
        name = node.name
        self.check_signature(node)
        if name == "segment":
            return self.segment_ref(node)
        if name == "coalesce":
            if not node.args:
                raise RuleError("coalesce() needs at least one argument", self.text, node.pos)
            ops = [self.expr(a) for a in node.args]
            types = {o.type for o in ops} - {NULL}
            if len(types) > 1:
                raise self.type_error(f"coalesce() mixes types: {', '.join(sorted(types))}", node)
            if types == {BOOL}:
                out = self.as_bool(ops[-1], node.args[-1])
                for op, arg in zip(reversed(ops[:-1]), reversed(node.args[:-1])):
                    out = self.bool_binary(vm.B_COALESCE, self.as_bool(op, arg), out)
                return out
            out = ops[-1]
            for op in reversed(ops[:-1]):
                if op.kind == "const" and op.ref is not None:
                    self._release(out)
                    out = op
                    continue
                a, b = self.materialise(op), self.materialise(out)
                self._release(a)
                self._release(b)
                dst = self._num()
                self.emit(vm.N_COALESCE, dst, a.ref, b.ref)
                out = Operand("num", dst, a.type if a.type != NULL else b.type)
            return out
        arg = self.expr(node.args[0])
        if name == "abs":
            if arg.type not in (NUM, DUR, NULL):
                raise self.type_error(f"abs() takes a number, got {arg.type}", node.args[0])
            return self.num_unary(vm.N_ABS, arg)
        if name == "days_since":
            if arg.type not in (DATE, TS, NULL):
                raise self.type_error(f"days_since() takes a date or timestamp column, got "
                                      f"{self.describe(node.args[0])} ({arg.type})", node.args[0])
            per_day = Operand("const", float(US_PER_DAY), NUM)
            if arg.type == DATE:  # whole days between the date and as_of's date
                diff = self._asof_minus(arg, K_AS_OF_DAY_US)
                return self.num_unary(vm.N_FLOOR, self.num_binary("/", diff, per_day, NUM))
            return self.num_binary("/", self._asof_minus(arg, K_AS_OF_US), per_day, NUM)
        if name == "within_last":
            span = self.expr(node.args[1])
            if arg.type not in (DATE, TS, NULL):
                raise self.type_error(f"within_last() takes a date or timestamp column first, got "
                                      f"{arg.type}", node.args[0])
            if span.type != DUR or span.kind != "const":
                raise self.type_error("within_last() takes a duration literal second, e.g. 90d",
                                      node.args[1])
            age = self._asof_minus(arg, K_AS_OF_US)          # as_of - t
            age_reg = self.materialise(age)
            ge = self._cmp_const(age_reg, ">=", 0.0, keep=True)
            le = self._cmp_const(age_reg, "<=", span.ref)
            return self.bool_binary(vm.B_AND, ge, le)
        # starts_with / contains outside a single-string-column lookup: not compilable
        raise self.type_error(f"{name}() takes a string column and a string literal", node)

    def _asof_minus(self, arg, slot):
        """``as_of - arg`` in microseconds (as_of read from a constant slot)."""
        if arg.kind == "const":
            if arg.ref is None:
                return Operand("const", None, DUR)
            tmp = self._num()
            self.emit(vm.N_CONST, tmp, slot)
            dst = self._num()
            self.free_num.append(tmp)
            self.emit(vm.N_SUBK, dst, tmp, self._const(arg.ref))
            return Operand("num", dst, DUR)
        self._release(arg)
        dst = self._num()
        self.emit(vm.N_KSUB, dst, arg.ref, slot)
        return Operand("num", dst, DUR)

    def _cmp_const(self, x, op, value, keep=False):
        if not keep:
            self._release(x)
        dst = self._bool()
        self.emit(vm.CMPK, dst, x.ref, self._const(value), _CMP_CODES[op])
        return Operand("bool", dst, BOOL)

    def segment_ref(self, node):
        ref = self.resolve_segment(node)
        ast, text = self.segments[ref]
        saved = self.text
        self.stack.append(ref)
        self.text = text
        try:
            out = self.as_bool(self.expr(ast), ast)
        finally:
            self.stack.pop()
            self.text = saved
        return out

    # -- lookup tables ----------------------------------------------------------------------
    def lut(self, node, column):
        self.check(node)  # evaluated in Python per dictionary entry: types must be right first
        col = self._col(self.str_cols, column)
        lut_id = len(self.luts)
        self.luts.append((node, col, self.text, dict(self.segments), list(self.stack)))
        dst = self._bool()
        row = self.emit(vm.LUT, dst, col, lut_id)
        self.lut_patch.append(row)
        return Operand("bool", dst, BOOL)


def _fuse(code):
    """Peephole: ``CMPK t ...; B_AND d, t, x`` (or ``x, t``) becomes one ``CMPK_AND``.

    Safe because the register allocator frees ``t`` at the ``and`` that consumes it, so no
    later instruction reads it. Returns the new code and, for each old row, its new row.
    """
    out = []
    new_row = {}
    i = 0
    while i < len(code):
        op = code[i]
        if i + 1 < len(code) and op[0] == vm.CMPK and code[i + 1][0] == vm.B_AND:
            nxt = code[i + 1]
            t = op[1]
            if nxt[2] == t and nxt[3] != t:
                other = nxt[3]
            elif nxt[3] == t and nxt[2] != t:
                other = nxt[2]
            else:
                other = None
            if other is not None:
                new_row[i] = new_row[i + 1] = len(out)
                out.append((vm.CMPK_AND, nxt[1], op[2], op[3] * 8 + op[4], other))
                i += 2
                continue
        new_row[i] = len(out)
        out.append(op)
        i += 1
    return out, new_row


def _mask_readers(code):
    """Numeric columns whose validity bytes an instruction reads. Comparisons with a constant
    (CMPK, CMPK_AND) check the column's no-null flag first and read no bytes when it is set."""
    readers = set()
    numeric_operands = {vm.N_ADD: (2, 3), vm.N_SUB: (2, 3), vm.N_MUL: (2, 3), vm.N_DIV: (2, 3),
                        vm.N_NEG: (2,), vm.N_ABS: (2,), vm.N_FLOOR: (2,), vm.N_ADDK: (2,),
                        vm.N_SUBK: (2,), vm.N_KSUB: (2,), vm.N_MULK: (2,), vm.N_DIVK: (2,),
                        vm.N_KDIV: (2,), vm.N_COALESCE: (2, 3), vm.CMP: (2, 3), vm.N_ISNULL: (2,)}
    for row in code:
        for field_index in numeric_operands.get(row[0], ()):
            ref = row[field_index]
            if ref < 0:
                readers.add(-ref - 1)
    return readers


def _null_const(op):
    return op.kind == "const" and op.ref is None


def _arith_type(op, a, b):
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


def _comparable(a, b):
    if NULL in (a, b):
        return True
    if a in (DATE, TS) and b in (DATE, TS):
        return True
    return a == b
