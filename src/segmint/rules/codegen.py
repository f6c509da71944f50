"""Code generation: typed rule trees into a program for the rule VM (``segmint.kernels.rules``).

The typing pass (:mod:`segmint.rules.types`) has decided every node's type and which
sub-expressions are string predicates; this module only reads those decisions. It allocates
registers, folds constants and emits instructions. Dates, timestamps and durations become
float64 microseconds (dates at midnight UTC), so ``date`` and ``timestamp`` compare with each
other. A timestamp or duration stored in nanoseconds (pandas' default) is read as the whole
microsecond it falls in (floored, exactly, in int64, before any float64), in comparisons and
arithmetic alike and by the batch and the one-record paths alike: ``t > timestamp '2026-01-01
00:00:00'`` is false for ``00:00:00.000000500``. Times more than 2**53 microseconds from 1970
(after the year 2255) are refused, as integers beyond 2**53 are. A string predicate becomes
one lookup-table instruction: the table is filled at evaluation time by evaluating the
sub-expression once per dictionary entry (and once for null).
"""
from dataclasses import dataclass, field

import numpy as np

from .._time import US_PER_DAY
from ..kernels import rules as vm
from .parse import COMPARISONS, Between, Binary, Column, InList, IsNull, Literal, Unary
from .peephole import fuse, hoist_comparisons
from .types import BOOL, DATE, DUR, NULL, NUM, STR, TS

_CMP_CODES = {"=": vm.EQ, "!=": vm.NE, "<": vm.LT, "<=": vm.LE, ">": vm.GT, ">=": vm.GE}
_SWAPPED = {"=": "=", "!=": "!=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}
_ARITH = {"+": (vm.N_ADD, vm.N_ADDK, vm.N_ADDK), "-": (vm.N_SUB, vm.N_SUBK, vm.N_KSUB),
          "*": (vm.N_MUL, vm.N_MULK, vm.N_MULK), "/": (vm.N_DIV, vm.N_DIVK, vm.N_KDIV)}
_LITERAL_TYPES = {"number": NUM, "date": DATE, "timestamp": TS, "duration": DUR}

# constants every program has: filled at evaluation time from as_of
K_AS_OF_US, K_AS_OF_DAY_US, K_US_PER_DAY = 0, 1, 2


@dataclass
class Operand:
    kind: str              # 'num' (register/column), 'bool', 'const', 'constbool', 'str'
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
    luts: list                       # [(node, string column index, rule text, segments, stack)] per LUT id
    segments: list                   # segment names, sink order
    n_num: int
    n_bool: int
    lut_patch: list = field(default_factory=list)  # instruction rows whose b is a LUT id
    # the batch VM's program: comparisons of columns with constants read planes (see
    # peephole.hoist_comparisons); same rows as ``code``
    batch_code: np.ndarray = None
    planes: np.ndarray = None        # (P, 3) int64: (column, constant index, comparison code)
    value_columns: set = field(default_factory=set)  # numeric columns the batch VM reads as float64
    # num_columns indices stored in nanoseconds (timestamps, durations): floored to microseconds
    # on load, their scale is 1 (RuleSet.prepare)
    ns_columns: tuple = ()


class CodeGenerator:
    """Emit the program of one rule set's typed segments.

    Parameters
    ----------
    types : segmint.rules.types.Types
        What the typing pass recorded for these segments against this schema.
    scales : dict
        Column name -> multiplier from its stored unit to microseconds.
    segments : dict
        Segment name -> ``(syntax tree, rule text)``.
    """

    def __init__(self, types, scales, segments):
        self.types = types
        self.scales = scales
        self.segments = segments
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

    def _col(self, table, name):
        if name not in table:
            table[name] = len(table)
        return table[name]

    # -- entry ------------------------------------------------------------------------------
    def generate(self, mode):
        """The :class:`Program` of every segment, sinks in rule-set order."""
        sink = vm.SINK_WATERFALL if mode == "waterfall" else vm.SINK_MULTI
        for seg_index, name in enumerate(self.segments):
            tree, self.text = self.segments[name]
            self.stack = [name]
            result = self.as_bool(self.expr(tree))
            self.emit(sink, seg_index, result.ref)
            self._release(result)
        fused, new_row = fuse(self.code)
        batch_code, planes = hoist_comparisons(fused)
        return Program(
            code=np.asarray(fused, dtype=np.int64).reshape(-1, 5),
            consts=np.asarray(self.consts, dtype=np.float64),
            num_columns=[(n, self.num_scales[n]) for n in self.num_cols],
            bool_columns=list(self.bool_cols), str_columns=list(self.str_cols),
            luts=self.luts, segments=list(self.segments), n_num=self.n_num, n_bool=self.n_bool,
            lut_patch=[new_row[r] for r in self.lut_patch],
            batch_code=batch_code, planes=planes, value_columns=_value_readers(batch_code))

    # -- expressions ------------------------------------------------------------------------
    def expr(self, node):
        """Emit the code of a node; returns its Operand."""
        column = self.types.string_predicate(node)
        if column is not None:
            return self.lut(node, column)
        if isinstance(node, Literal):
            return self.literal(node)
        if isinstance(node, Column):
            t = self.types[node]
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
                return self.bool_unary(vm.B_NOT, self.as_bool(arg))
            return self.num_unary(vm.N_NEG, arg)
        if isinstance(node, Binary):
            if node.op in ("and", "or"):
                left = self.as_bool(self.expr(node.left))
                right = self.as_bool(self.expr(node.right))
                return self.bool_binary(vm.B_AND if node.op == "and" else vm.B_OR, left, right)
            if node.op in COMPARISONS:
                return self.compare(node.op, node.left, node.right)
            return self.num_binary(node.op, self.expr(node.left), self.expr(node.right), self.types[node])
        if isinstance(node, IsNull):
            out = self.is_null(self.expr(node.arg))
            return self.bool_unary(vm.B_NOT, out) if node.negated else out
        if isinstance(node, Between):
            low = self.compare(">=", node.arg, node.low)
            high = self.compare("<=", node.arg, node.high)
            out = self.bool_binary(vm.B_AND, low, high)
            return self.bool_unary(vm.B_NOT, out) if node.negated else out
        if isinstance(node, InList):
            out = None
            for item in node.items:
                eq = self.compare("=", node.arg, item)
                out = eq if out is None else self.bool_binary(vm.B_OR, out, eq)
            return self.bool_unary(vm.B_NOT, out) if node.negated else out
        return self.call(node)  # the typing pass let no other kind of node through

    def literal(self, node):
        if node.kind == "bool":
            return Operand("constbool", 2 if node.value else 0, BOOL)
        if node.kind == "null":
            return Operand("const", None, NULL)
        if node.kind == "string":  # only ever tested for null outside a string predicate
            return Operand("str", None, STR)
        value = float(node.value) * (US_PER_DAY if node.kind == "date" else 1)
        return Operand("const", value, _LITERAL_TYPES[node.kind])

    # -- booleans ---------------------------------------------------------------------------
    def as_bool(self, op):
        """A boolean operand in a register (null and constant conditions materialised)."""
        if op.type == NULL:
            dst = self._bool()
            self.emit(vm.B_CONST, dst, 1)
            return Operand("bool", dst, BOOL)
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

    def is_null(self, op):
        if op.kind == "const":
            return self.as_bool(Operand("constbool", 2 if op.ref is None else 0, BOOL))
        if op.kind in ("constbool", "str"):  # a boolean or string literal is never null
            return self.as_bool(Operand("constbool", 0, BOOL))
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
        if _null_const(x) or _null_const(y):
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

    # -- comparisons ------------------------------------------------------------------------
    def compare(self, op, left_node, right_node):
        x = self.expr(left_node)
        y = self.expr(right_node)
        if NULL in (x.type, y.type) or _null_const(x) or _null_const(y):
            self._release(x)
            self._release(y)
            return self.as_bool(Operand("const", None, NULL))
        if x.type == BOOL:  # '=' or '!=' (the typing pass refused the others)
            eq = self.bool_binary(vm.B_EQ, self.as_bool(x), self.as_bool(y))
            return eq if op == "=" else self.bool_unary(vm.B_NOT, eq)
        if x.kind == "const" and y.kind == "const":
            value = {"=": x.ref == y.ref, "!=": x.ref != y.ref, "<": x.ref < y.ref,
                     "<=": x.ref <= y.ref, ">": x.ref > y.ref, ">=": x.ref >= y.ref}[op]
            return self.as_bool(Operand("constbool", 2 if value else 0, BOOL))
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
        if name == "segment":
            return self.segment_ref(node)
        if name == "coalesce":
            return self.coalesce(node)
        arg = self.expr(node.args[0])
        if name == "abs":
            return self.num_unary(vm.N_ABS, arg)
        if name == "days_since":
            per_day = Operand("const", float(US_PER_DAY), NUM)
            if arg.type == DATE:  # whole days between the date and as_of's date
                diff = self._asof_minus(arg, K_AS_OF_DAY_US)
                return self.num_unary(vm.N_FLOOR, self.num_binary("/", diff, per_day, NUM))
            return self.num_binary("/", self._asof_minus(arg, K_AS_OF_US), per_day, NUM)
        # within_last: its span is a constant the generator folds (typing made sure)
        span = self.expr(node.args[1])
        if span.ref is None or _null_const(arg):  # a null span (30d / 0) or a null time
            self._release(arg)
            return self.as_bool(Operand("const", None, NULL))
        age = self._asof_minus(arg, K_AS_OF_US)          # as_of - t
        age_reg = self.materialise(age)
        ge = self._cmp_const(age_reg, ">=", 0.0, keep=True)
        le = self._cmp_const(age_reg, "<=", span.ref)
        return self.bool_binary(vm.B_AND, ge, le)

    def coalesce(self, node):
        ops = [self.expr(a) for a in node.args]
        if self.types[node] == BOOL:
            out = self.as_bool(ops[-1])
            for op in reversed(ops[:-1]):
                out = self.bool_binary(vm.B_COALESCE, self.as_bool(op), out)
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
        """The referenced segment's rule, inlined."""
        ref = node.args[0].value
        tree, text = self.segments[ref]
        saved = self.text
        self.stack.append(ref)
        self.text = text
        try:
            return self.as_bool(self.expr(tree))
        finally:
            self.stack.pop()
            self.text = saved

    # -- lookup tables ----------------------------------------------------------------------
    def lut(self, node, column):
        col = self._col(self.str_cols, column)
        lut_id = len(self.luts)
        self.luts.append((node, col, self.text, dict(self.segments), list(self.stack)))
        dst = self._bool()
        row = self.emit(vm.LUT, dst, col, lut_id)
        self.lut_patch.append(row)
        return Operand("bool", dst, BOOL)


def _value_readers(code):
    """Numeric columns whose float64 values an instruction of the batch program reads
    (arithmetic, comparisons of two numbers, or of a number with a constant that was not
    hoisted); a column only compared with constants is read by ``column_planes`` as stored."""
    readers = set()
    numeric_operands = {vm.N_ADD: (2, 3), vm.N_SUB: (2, 3), vm.N_MUL: (2, 3), vm.N_DIV: (2, 3),
                        vm.N_NEG: (2,), vm.N_ABS: (2,), vm.N_FLOOR: (2,), vm.N_ADDK: (2,),
                        vm.N_SUBK: (2,), vm.N_KSUB: (2,), vm.N_MULK: (2,), vm.N_DIVK: (2,),
                        vm.N_KDIV: (2,), vm.N_COALESCE: (2, 3), vm.CMP: (2, 3), vm.CMPK: (2,),
                        vm.CMPK_AND: (2,)}
    for row in code:
        for field_index in numeric_operands.get(int(row[0]), ()):
            ref = int(row[field_index])
            if ref < 0:
                readers.add(-ref - 1)
    return readers


def _null_const(op):
    return op.kind == "const" and op.ref is None
