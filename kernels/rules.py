"""The rule-engine virtual machine: one compiled interpreter for every rule set.

A rule set is compiled (in ``segmint.rules.codegen``) into a *program*: rows of
``(op, dst, a, b, c)`` int64 instructions plus float64 constants and uint8 lookup tables.
The batch interpreter (:func:`run_program`) runs the program over sub-blocks of ``SUB`` rows,
so a new rule set is data: nothing is compiled for it. :func:`run_record` runs the same
program over one customer.

Values in the batch interpreter (bit-sliced: one bit per row, bit ``r % 64`` of word
``r // 64``, Arrow's bitmap layout):

- numbers (and dates/timestamps/durations as microseconds) are float64, with validity as
  bit words (1 valid);
- booleans follow SQL's three-valued logic as two bit words per 64 rows, ``t`` (true) and
  ``f`` (false); null is neither. Kleene ``and`` is ``(t1 & t2, f1 | f2)``, ``or`` is
  ``(t1 | t2, f1 & f2)`` and ``not`` swaps the two: 64 rows per word operation, and a
  segment's ``t`` words are its Arrow membership column as they are.

Comparisons of an input column with a constant, the bulk of real rule sets, do not run in the
program: :func:`integer_planes` (int32 and int64 columns, compared in their own type against
integer thresholds that give the float64 answers) or :func:`column_planes` (other columns,
widened to float64 a block at a time, exactly as :func:`load_numeric` would) computes every
such comparison of one column in one pass over the column, as the rows where it is true, and
the program reads the results (``CMP_PLANE``, ``CMP_PLANE_AND``, rewritten by
``segmint.rules.peephole.hoist_comparisons``). Only columns that arithmetic or
column-to-column comparisons read are converted to float64 arrays (:func:`load_numeric`).

Waterfall labels are kept as bit planes too (bit i of every row's label in one word per 64
rows) and turned into int8/int16/int32 labels once per sub-block. Everything counted is an
integer sum, so results are the same bits at any thread count.

Operands: a value ``>= 0`` is a temporary register, ``-(j + 1)`` is input column ``j``
(numeric columns for numeric operands, boolean columns for boolean operands).

The one-record interpreter keeps the byte encoding ``0 = false, 1 = null, 2 = true`` (``and``
is ``min``, ``or`` is ``max``, ``not`` is ``2 - x``).

Compile time (a cold warm-up compiles all of this): each kernel has one signature whatever the
column types (numeric columns come as bytes with a type code, ``KINDS``, and are viewed as their
type inside by an intrinsic), helpers that only kernels call are subroutines compiled into their
caller (:func:`.settings.subroutine`), and no helper is called with a constant argument (numba would
compile it again for the value).
"""
import ctypes
import operator

import numpy as np
from llvmlite import ir
from numba import types
from numba.core import config
from numba.extending import intrinsic

from .membership import _pair_counts
from .scratch import as_type as _as_type
from .scratch import empty
from .settings import EXACT, kernel, subroutine
from .simd import popcount

SUB = 4096
WORDS = SUB // 64  # bit words per sub-block

# numeric results (dst is a numeric temporary)
N_ADD, N_SUB, N_MUL, N_DIV = 1, 2, 3, 4
N_NEG, N_ABS, N_FLOOR = 5, 6, 7
N_ADDK, N_SUBK, N_KSUB, N_MULK, N_DIVK, N_KDIV = 8, 9, 10, 11, 12, 13
N_COALESCE, N_CONST, N_NULL = 14, 15, 16
# boolean results (dst is a boolean temporary)
CMP, CMPK = 20, 21            # c = comparison code
CMPK_AND = 22                 # b = 8 * constant + comparison code, c = boolean operand to 'and' with
CMP_PLANE = 23                # batch only: a = plane (a comparison column_planes computed), b = its column
CMP_PLANE_AND = 24            # batch only: a = plane, b = its column, c = boolean operand to 'and' with
B_AND, B_OR, B_NOT = 30, 31, 32
B_ISNULL, N_ISNULL = 33, 34   # is null of a boolean / numeric operand
B_CONST, B_COALESCE, B_EQ, LUT, LUT64 = 35, 36, 37, 38, 39
# sinks
SINK_WATERFALL, SINK_MULTI = 40, 41

EQ, NE, LT, LE, GT, GE = 0, 1, 2, 3, 4, 5
ALL, NONE = 6, 7  # integer planes only: comparisons true / false for every valid row

_ONES = np.uint64(0xFFFFFFFFFFFFFFFF)


# helpers only kernels call (see settings.subroutine), with the VM's exact arithmetic
_subroutine = subroutine(fastmath=set(EXACT))


# -- 64 rows to one word, in vector registers ----------------------------------------------------
# A loop ``word |= uint64(x[b] >= k) << b`` over 64 rows vectorises, but LLVM ORs shifted lanes
# together instead of moving the comparison's mask out of the vector unit. These intrinsics
# write the IR of the whole word at once (a <64 x i1> comparison bitcast to i64), which LLVM
# lowers to mask registers on AVX-512 and to movemask instructions elsewhere: measured on the
# planes of an int32 and a float64 column, 0.068 ms per million rows against 0.098 for the loop
# (and the loop's ``x[base + b]`` compiled to gathers, 0.7 ms, until it read a slice). The
# float comparisons read float64 blocks only (``column_planes`` widens other dtypes itself, as
# ``load_numeric`` does), so they compile once.

_PREDICATES = {EQ: (True, "=="), NE: (False, "!="), LT: (True, "<"), LE: (True, "<="), GT: (True, ">"),
               GE: (True, ">=")}


def _splat(builder, vector_type, value):
    lanes = ir.Constant(vector_type, ir.Undefined)
    lanes = builder.insert_element(lanes, value, ir.Constant(ir.IntType(32), 0))
    zeros = ir.Constant(ir.VectorType(ir.IntType(32), vector_type.count), [0] * vector_type.count)
    return builder.shuffle_vector(lanes, ir.Constant(vector_type, ir.Undefined), zeros)


def _load64(context, builder, array_type, array, base):
    """The 64 elements of ``array`` from ``base`` as one LLVM vector (no bounds check)."""
    arr = context.make_array(array_type)(context, builder, array)
    elem = context.get_value_type(array_type.dtype)
    pointer = builder.bitcast(builder.gep(arr.data, [base]), ir.VectorType(elem, 64).as_pointer())
    return builder.load(pointer, align=context.get_abi_sizeof(elem))


def _make_compare64(code):
    ordered, symbol = _PREDICATES[code]

    @intrinsic
    def compare64(typingctx, values, base, k):
        if not (isinstance(values, types.Array) and values.ndim == 1 and values.layout == "C"
                and values.dtype == types.float64):
            return None
        sig = types.uint64(values, types.intp, types.float64)

        def codegen(context, builder, signature, args):
            x = _load64(context, builder, signature.args[0], args[0], args[1])
            k = _splat(builder, ir.VectorType(ir.DoubleType(), 64), args[2])
            bits = (builder.fcmp_ordered(symbol, x, k) if ordered else builder.fcmp_unordered(symbol, x, k))
            return builder.bitcast(bits, ir.IntType(64))

        return sig, codegen

    compare64.__doc__ = f"""Bit b set where ``values[base + b] {symbol} k`` (float64 ``values``), b < 64
    (the 64 rows must exist: no bounds check)."""
    return compare64


_compare64_eq, _compare64_ne, _compare64_lt, _compare64_le, _compare64_gt, _compare64_ge = (
    _make_compare64(c) for c in (EQ, NE, LT, LE, GT, GE))


_INT_PREDICATES = {EQ: "==", NE: "!=", LE: "<=", GE: ">="}


def _make_icompare64(code):
    symbol = _INT_PREDICATES[code]

    @intrinsic
    def icompare64(typingctx, values, base, k):
        if not (isinstance(values, types.Array) and values.ndim == 1 and values.layout == "C"
                and isinstance(values.dtype, types.Integer) and k == values.dtype):
            return None
        sig = types.uint64(values, types.intp, k)

        def codegen(context, builder, signature, args):
            array_type = signature.args[0]
            v = _load64(context, builder, array_type, args[0], args[1])
            kk = _splat(builder, v.type, args[2])
            if array_type.dtype.signed:
                bits = builder.icmp_signed(symbol, v, kk)
            else:
                bits = builder.icmp_unsigned(symbol, v, kk)
            return builder.bitcast(bits, ir.IntType(64))

        return sig, codegen

    icompare64.__doc__ = f"""Bit b set where ``values[base + b] {symbol} k`` in the column's own integer type
    (``k`` of that type), b < 64 (the 64 rows must exist: no bounds check)."""
    return icompare64


_icompare64_eq, _icompare64_ne, _icompare64_le, _icompare64_ge = (
    _make_icompare64(c) for c in (EQ, NE, LE, GE))


@intrinsic
def _table_bits64(typingctx, codes, base, table):
    """Bit b set where bit ``codes[base + b]`` of the 64-bit ``table`` is set, b < 64 (the 64
    rows must exist and every code be below 64: no checks)."""
    if not (isinstance(codes, types.Array) and codes.ndim == 1 and codes.layout == "C"
            and isinstance(codes.dtype, types.Integer)):
        return None
    sig = types.uint64(codes, types.intp, types.uint64)

    def codegen(context, builder, signature, args):
        v = _load64(context, builder, signature.args[0], args[0], args[1])
        words = ir.VectorType(ir.IntType(64), 64)
        shifts = builder.zext(v, words) if signature.args[0].dtype.bitwidth < 64 else v
        picked = builder.lshr(_splat(builder, words, args[2]), shifts)
        bits = builder.trunc(picked, ir.VectorType(ir.IntType(1), 64))
        return builder.bitcast(bits, ir.IntType(64))

    return sig, codegen


def _make_bit_plane64(combine):
    @intrinsic
    def bit_plane64(typingctx, out, pos, word, shift):
        if not (isinstance(out, types.Array) and out.ndim == 1 and out.layout == "C"
                and out.dtype == types.uint8 and out.mutable):
            return None
        sig = types.void(out, types.intp, types.uint64, types.intp)

        def codegen(context, builder, signature, args):
            arr = context.make_array(signature.args[0])(context, builder, args[0])
            bytes64 = ir.VectorType(ir.IntType(8), 64)
            pointer = builder.bitcast(builder.gep(arr.data, [args[1]]), bytes64.as_pointer())
            lanes = builder.zext(builder.bitcast(args[2], ir.VectorType(ir.IntType(1), 64)), bytes64)
            lanes = builder.shl(lanes, _splat(builder, bytes64, builder.trunc(args[3], ir.IntType(8))))
            if combine:
                lanes = builder.or_(lanes, builder.load(pointer, align=1))
            builder.store(lanes, pointer, align=1)
            return context.get_dummy_value()

        return sig, codegen

    return bit_plane64


_set_bit_plane64 = _make_bit_plane64(False)
_set_bit_plane64.__doc__ = """``out[pos + j] = ((word >> j) & 1) << shift`` for j < 64 (uint8 ``out``, no bounds
check): 64 bits to 64 bytes in one vector instruction on AVX-512, a few elsewhere."""
_or_bit_plane64 = _make_bit_plane64(True)
_or_bit_plane64.__doc__ = """``out[pos + j] |= ((word >> j) & 1) << shift`` for j < 64 (see ``_set_bit_plane64``)."""


@intrinsic
def _bytes_at(typingctx, address, nbytes):
    """``nbytes`` bytes of memory at ``address`` as a read-only uint8 array, no copy, no checks.

    Lets :func:`load_batch` take all of a batch's columns in one call, however many there are (a
    tuple or list of arrays would compile a variant per column count, or cost more to build
    than the call): the caller passes each column's address and size in a table of integers,
    and keeps the arrays alive for the call."""
    if not (isinstance(address, types.Integer) and isinstance(nbytes, types.Integer)):
        return None
    result = types.Array(types.uint8, 1, "C", readonly=True)
    sig = result(types.int64, types.int64)

    def codegen(context, builder, signature, args):
        from numba.np.arrayobj import populate_array

        out = context.make_array(result)(context, builder)
        one = ir.Constant(context.get_value_type(types.intp), 1)
        populate_array(out, data=builder.inttoptr(args[0], out.data.type), shape=[args[1]], strides=[one],
                       itemsize=one, meminfo=None)
        return out._getvalue()

    return sig, codegen


@intrinsic
def _pick(typingctx, regs, cols, i, lo, count):
    """An operand's rows as a 1-D array: ``regs[i, :count]`` (a temporary) when ``i >= 0``, else
    ``cols[-i - 1, lo:lo + count]`` (an input column), no copy, no checks.

    The same as ``regs[i] if i >= 0 else cols[-i - 1, lo:lo + count]``, which numba lowers to
    two array views and a slice with its bounds arithmetic: the instruction helpers read ~25
    operands that way, and their IR was a good part of the VM's compile (LLVM's time above
    all). Here a row is picked by a pointer ``select``. (``run_program``'s own loop keeps the
    plain form: there it measured 3-5 % faster on the VM's time.)"""
    if not (isinstance(regs, types.Array) and isinstance(cols, types.Array) and regs.ndim == 2 and cols.ndim == 2
            and regs.layout == "C" and cols.layout == "C" and regs.dtype == cols.dtype):
        return None
    result = types.Array(regs.dtype, 1, "C", readonly=not (regs.mutable and cols.mutable))
    sig = result(regs, cols, types.intp, types.intp, types.intp)

    def codegen(context, builder, signature, args):
        from numba.core import cgutils
        from numba.core.imputils import impl_ret_borrowed
        from numba.np.arrayobj import populate_array

        r = context.make_array(signature.args[0])(context, builder, args[0])
        c = context.make_array(signature.args[1])(context, builder, args[1])
        i, lo, count = args[2], args[3], args[4]
        is_reg = builder.icmp_signed(">=", i, ir.Constant(i.type, 0))
        r_width = cgutils.unpack_tuple(builder, r.shape, 2)[1]
        c_width = cgutils.unpack_tuple(builder, c.shape, 2)[1]
        c_row = builder.sub(builder.neg(i), ir.Constant(i.type, 1))
        r_data = builder.gep(r.data, [builder.mul(i, r_width)])
        c_data = builder.gep(c.data, [builder.add(builder.mul(c_row, c_width), lo)])
        out = context.make_array(signature.return_type)(context, builder)
        size = ir.Constant(i.type, context.get_abi_sizeof(context.get_data_type(signature.return_type.dtype)))
        populate_array(out, data=builder.select(is_reg, r_data, c_data), shape=[count], strides=[size],
                       itemsize=size, meminfo=builder.select(is_reg, r.meminfo, c.meminfo),
                       parent=builder.select(is_reg, r.parent, c.parent))
        return impl_ret_borrowed(context, builder, signature.return_type, out._getvalue())

    return sig, codegen


# -- with NUMBA_DISABLE_JIT=1 kernels run as Python: the same operations on numpy values -----------
if config.DISABLE_JIT:
    _PYTHON_OPS = {EQ: operator.eq, NE: operator.ne, LT: operator.lt, LE: operator.le, GT: operator.gt,
                   GE: operator.ge}

    def _word_of(flags):
        return np.packbits(np.asarray(flags, dtype=bool), bitorder="little").view(np.uint64)[0]

    def _python_compare64(code):
        def compare64(values, base, k):
            return _word_of(_PYTHON_OPS[code](values[base:base + 64], k))
        return compare64

    def _python_icompare64(code):
        def icompare64(values, base, k):
            return _word_of(_PYTHON_OPS[code](values[base:base + 64], k))
        return icompare64

    _compare64_eq, _compare64_ne, _compare64_lt, _compare64_le, _compare64_gt, _compare64_ge = (
        _python_compare64(c) for c in (EQ, NE, LT, LE, GT, GE))
    _icompare64_eq, _icompare64_ne, _icompare64_le, _icompare64_ge = (
        _python_icompare64(c) for c in (EQ, NE, LE, GE))

    def _pick(regs, cols, i, lo, count):  # noqa: F811
        return regs[i, :count] if i >= 0 else cols[-i - 1, lo:lo + count]

    def _bytes_at(address, nbytes):  # noqa: F811
        if nbytes == 0:
            out = np.zeros(0, np.uint8)
        else:
            out = np.ctypeslib.as_array((ctypes.c_uint8 * int(nbytes)).from_address(int(address)))
        out.flags.writeable = False
        return out

    def _table_bits64(codes, base, table):  # noqa: F811
        shifts = codes[base:base + 64].astype(np.uint64)
        return _word_of((np.uint64(table) >> shifts) & np.uint64(1))

    def _plane_bytes(word, shift):
        flags = np.unpackbits(np.array([word], dtype=np.uint64).view(np.uint8), bitorder="little")
        return (flags << np.uint8(shift)).astype(np.uint8)

    def _set_bit_plane64(out, pos, word, shift):  # noqa: F811
        out[pos:pos + 64] = _plane_bytes(word, shift)

    def _or_bit_plane64(out, pos, word, shift):  # noqa: F811
        out[pos:pos + 64] |= _plane_bytes(word, shift)


# Numeric column types, by code: the kernels read a column as its bytes (uint8) and view them as
# its type inside, so that one compiled variant serves every type. A kernel per type would cost
# a compile each (~0.3 s of warm-up per type and kernel, and a type the warm-up did not meet
# compiles on a request); the widening loops of all the types in one kernel cost less than two.
I8, I16, I32, I64, U8, U16, U32, U64, F32, F64 = range(10)
KINDS = {np.dtype(t): code for code, t in enumerate(
    (np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64, np.float32, np.float64))}


@kernel(fastmath=set(EXACT))
def load_numeric(raw, kind, start, stop, scale, out):
    """Rows ``start .. stop`` of a numeric column, of any type, as float64 (times ``scale``).

    Parameters
    ----------
    raw : (n * itemsize,) uint8, IN: the column's bytes (``values.view(np.uint8)``)
    kind : int, the column's type (``KINDS[values.dtype]``: ``I8`` ... ``F64``)
    start, stop : int, rows
    scale : float, multiplier (time units to microseconds; 1 for plain numbers)
    out : (>= stop - start,) float64, OUT: ``float64(values[start + i]) * scale`` at i
    """
    # one loop per type, each with its own names (one variable of several types would not type);
    # x * 1.0 is x bit for bit, but for a signalling NaN's payload, which no comparison tells
    if kind == F64:
        xf64 = _as_type(raw, np.float64)[start:stop]
        for i in range(xf64.shape[0]):
            out[i] = np.float64(xf64[i]) * scale
    elif kind == F32:
        xf32 = _as_type(raw, np.float32)[start:stop]
        for i in range(xf32.shape[0]):
            out[i] = np.float64(xf32[i]) * scale
    elif kind == I8:
        xi8 = _as_type(raw, np.int8)[start:stop]
        for i in range(xi8.shape[0]):
            out[i] = np.float64(xi8[i]) * scale
    elif kind == I16:
        xi16 = _as_type(raw, np.int16)[start:stop]
        for i in range(xi16.shape[0]):
            out[i] = np.float64(xi16[i]) * scale
    elif kind == I32:
        xi32 = _as_type(raw, np.int32)[start:stop]
        for i in range(xi32.shape[0]):
            out[i] = np.float64(xi32[i]) * scale
    elif kind == I64:
        xi64 = _as_type(raw, np.int64)[start:stop]
        for i in range(xi64.shape[0]):
            out[i] = np.float64(xi64[i]) * scale
    elif kind == U8:
        xu8 = raw[start:stop]
        for i in range(xu8.shape[0]):
            out[i] = np.float64(xu8[i]) * scale
    elif kind == U16:
        xu16 = _as_type(raw, np.uint16)[start:stop]
        for i in range(xu16.shape[0]):
            out[i] = np.float64(xu16[i]) * scale
    elif kind == U32:
        xu32 = _as_type(raw, np.uint32)[start:stop]
        for i in range(xu32.shape[0]):
            out[i] = np.float64(xu32[i]) * scale
    else:  # U64
        xu64 = _as_type(raw, np.uint64)[start:stop]
        for i in range(xu64.shape[0]):
            out[i] = np.float64(xu64[i]) * scale


@kernel(fastmath=set(EXACT))
def bitmap_words(bits, bit_offset, n, out):
    """An Arrow bitmap (at any bit offset) as aligned 64-bit words, zero past row ``n``.

    Parameters
    ----------
    bits : (nb,) uint8, IN: the bitmap; empty means every row is set (a column without nulls)
    bit_offset : int, bit of row 0 in ``bits``
    n : int, rows
    out : (>= ceil(n / 64),) uint64, OUT: bit ``r % 64`` of word ``r // 64`` is row r's bit
    """
    nw = (n + 63) >> 6
    nbytes = bits.shape[0]
    for w in range(nw):
        if nbytes == 0:
            word = _ONES
        else:
            p = bit_offset + 64 * w
            q = p >> 3
            r = p & 7
            lo = np.uint64(0)
            for j in range(8):  # 8 bytes from q, then the bits of a ninth the offset shifts in
                if q + j < nbytes:
                    lo |= np.uint64(bits[q + j]) << np.uint64(8 * j)
            word = lo >> np.uint64(r)
            if r != 0 and q + 8 < nbytes:
                word |= np.uint64(bits[q + 8]) << np.uint64(64 - r)
        rest = n - 64 * w
        if rest < 64:
            word &= (np.uint64(1) << np.uint64(rest)) - np.uint64(1)
        out[w] = word


@kernel(fastmath=set(EXACT))
def load_bool(bits, bit_offset, vbits, vbit_offset, n, out_t, out_f):
    """Arrow booleans (bit-packed, with validity) as three-valued bit words.

    Parameters
    ----------
    bits : uint8 bitmap of the values, IN
    bit_offset : int
    vbits : uint8 validity bitmap, IN; empty when every row is valid
    vbit_offset : int
    n : int, rows
    out_t, out_f : (>= ceil(n / 64),) uint64, OUT: rows true / rows false (null: neither);
        zero past row ``n``
    """
    _load_bool(bits, bit_offset, vbits, vbit_offset, n, out_t, out_f)


@_subroutine
def _load_bool(bits, bit_offset, vbits, vbit_offset, n, out_t, out_f):
    """:func:`load_bool`'s body, compiled into the kernels that call it (see :func:`load_batch`)."""
    nw = (n + 63) >> 6
    bitmap_words(bits, bit_offset, n, out_t)
    bitmap_words(vbits, vbit_offset, n, out_f)  # validity (all set when vbits is empty)
    for w in range(nw):
        value = out_t[w]
        valid = out_f[w]
        out_t[w] = value & valid
        out_f[w] = ~value & valid


@kernel(fastmath=set(EXACT))
def load_codes(codes, vbits, vbit_offset, null_index, out):
    """Dictionary codes to lookup-table indices: the code, or ``null_index`` for null rows.

    Parameters
    ----------
    codes : (n,) int32, IN
    vbits : uint8 validity bitmap, IN; empty when every row is valid
    vbit_offset : int
    null_index : int, the table entry that holds the result for null
    out : (n,) int32, OUT
    """
    n = codes.shape[0]
    for i in range(n):
        out[i] = codes[i]
    if vbits.shape[0] != 0:
        for i in range(n):
            k = vbit_offset + i
            if ((vbits[k >> 3] >> (k & 7)) & 1) == 0:
                out[i] = null_index


@kernel(fastmath=set(EXACT))
def column_planes(raw, kind, tail, valid, scale, ks, codes, out, n):
    """Every comparison of one column with a constant, in one pass over the column, in float64.

    The column is widened ``SUB`` rows at a time (:func:`load_numeric`) into a float64 block
    that stays in cache, and the comparisons run on the block, a word per intrinsic call (see
    ``_compare64_*``): the comparison code compiles once, for float64, and so does this kernel,
    for every column type (the column comes as its bytes).

    Parameters
    ----------
    raw : (n * itemsize,) uint8, IN: the column as stored, as bytes (compared as float64 times
        ``scale``, as :func:`load_numeric` loads it)
    kind : int, the column's type (``KINDS``)
    tail : (64 * itemsize,) uint8, IN: the last ``n % 64`` rows, then anything (a whole word's
        worth of rows, so that the last word is computed as the others), as bytes
    valid : (ceil(n / 64),) uint64, IN: validity words (:func:`bitmap_words`)
    scale : float, multiplier (time units to microseconds; 1 for plain numbers)
    ks : (q,) float64, IN: the constants
    codes : (q,) int64, IN: the comparison codes (``EQ`` ... ``GE``)
    out : (q, ceil(n / 64)) uint64, OUT: rows where comparison p is true (null rows never;
        rows where it is false are ``~out & valid``); zero past row ``n``
    n : int, rows
    """
    _column_planes(raw, kind, tail, valid, scale, ks, codes, out, n)


@_subroutine
def _column_planes(raw, kind, tail, valid, scale, ks, codes, out, n):
    """:func:`column_planes`'s body, compiled into the kernels that call it (see :func:`load_batch`)."""
    q = ks.shape[0]
    full = n >> 6
    blocks = (full + WORDS - 1) // WORDS
    block = empty(SUB, np.float64)
    # SUB rows at a time, all comparisons: the column is read once; then the last rows, from the
    # caller's padded copy (bits past n are masked off). One loop over both (the comparison
    # loops written once: each helper kernel or copy of them costs its own compile).
    for blk in range(blocks + (1 if n > full * 64 else 0)):
        if blk < blocks:
            src = raw
            w0 = blk * WORDS
            nw = WORDS if full - w0 > WORDS else full - w0  # (min() is a function to compile)
            lo = w0 * 64
        else:
            src = tail
            w0 = full
            nw = 1
            lo = 0
        load_numeric(src, kind, lo, lo + 64 * nw, scale, block)
        v = valid[w0:w0 + nw]
        for p in range(q):
            k = ks[p]
            c = codes[p]
            o = out[p, w0:w0 + nw]
            if c == EQ:  # one loop per comparison code, so the code is not tested per word
                for w in range(nw):
                    o[w] = _compare64_eq(block, w * 64, k) & v[w]
            elif c == NE:
                for w in range(nw):
                    o[w] = _compare64_ne(block, w * 64, k) & v[w]
            elif c == LT:
                for w in range(nw):
                    o[w] = _compare64_lt(block, w * 64, k) & v[w]
            elif c == LE:
                for w in range(nw):
                    o[w] = _compare64_le(block, w * 64, k) & v[w]
            elif c == GT:
                for w in range(nw):
                    o[w] = _compare64_gt(block, w * 64, k) & v[w]
            else:
                for w in range(nw):
                    o[w] = _compare64_ge(block, w * 64, k) & v[w]


@kernel(fastmath=set(EXACT))
def integer_planes(raw, kind, tail, valid, ks, codes, out, n):
    """:func:`column_planes` for an int32 or int64 column, compared in its own type.

    Eight int32 lanes to a vector instead of four float64, and no widening: measured 0.03 ms
    per million rows and comparison against 0.08 (other integer types go through
    :func:`column_planes`). The caller turns each ``float64(x) c k`` into an equivalent
    comparison with an integer of the column's type (``x >= 2.5`` is ``x >= 3``; one beyond
    the type's range, true or false for every row), so the answers are the float64 ones.

    Parameters
    ----------
    raw : (n * itemsize,) uint8, IN: the int32 or int64 column, as bytes
    kind : int, ``I32`` or ``I64``
    tail : (64 * itemsize,) uint8, IN: as in :func:`column_planes`
    valid : (ceil(n / 64),) uint64, IN: validity words
    ks : (q,) int64, IN: the integer thresholds (within the column type's range)
    codes : (q,) int64, IN: ``EQ``, ``NE``, ``LE``, ``GE``, ``ALL`` or ``NONE``
    out : (q, ceil(n / 64)) uint64, OUT: rows where comparison p is true; zero past row ``n``
    n : int, rows
    """
    _integer_planes(raw, kind, tail, valid, ks, codes, out, n)


@_subroutine
def _integer_planes(raw, kind, tail, valid, ks, codes, out, n):
    """:func:`integer_planes`'s body, compiled into the kernels that call it (see :func:`load_batch`)."""
    q = ks.shape[0]
    full = n >> 6
    blocks = (full + WORDS - 1) // WORDS
    # SUB rows at a time, then the last rows from the caller's padded copy (the bits past n are
    # masked off), in one loop per type (each helper kernel costs its own compile)
    extra = 1 if n > full * 64 else 0
    if kind == I32:
        x32 = _as_type(raw, np.int32)
        t32 = _as_type(tail, np.int32)
        for blk in range(blocks + extra):
            if blk < blocks:
                src32 = x32
                w0 = blk * WORDS
                nw = WORDS if full - w0 > WORDS else full - w0
                sw = w0  # the source's first word
            else:
                src32 = t32
                w0 = full
                nw = 1
                sw = 0
            v = valid[w0:w0 + nw]
            for p in range(q):
                k32 = np.int32(ks[p])
                c = codes[p]
                o = out[p, w0:w0 + nw]
                if c == EQ:
                    for w in range(nw):
                        o[w] = _icompare64_eq(src32, (sw + w) * 64, k32) & v[w]
                elif c == NE:
                    for w in range(nw):
                        o[w] = _icompare64_ne(src32, (sw + w) * 64, k32) & v[w]
                elif c == LE:
                    for w in range(nw):
                        o[w] = _icompare64_le(src32, (sw + w) * 64, k32) & v[w]
                elif c == GE:
                    for w in range(nw):
                        o[w] = _icompare64_ge(src32, (sw + w) * 64, k32) & v[w]
                else:
                    every = _ONES if c == ALL else np.uint64(0)
                    for w in range(nw):
                        o[w] = every & v[w]
    else:
        x64 = _as_type(raw, np.int64)
        t64 = _as_type(tail, np.int64)
        for blk in range(blocks + extra):
            if blk < blocks:
                src64 = x64
                w0 = blk * WORDS
                nw = WORDS if full - w0 > WORDS else full - w0
                sw = w0  # the source's first word
            else:
                src64 = t64
                w0 = full
                nw = 1
                sw = 0
            v = valid[w0:w0 + nw]
            for p in range(q):
                k64 = ks[p]
                c = codes[p]
                o = out[p, w0:w0 + nw]
                if c == EQ:
                    for w in range(nw):
                        o[w] = _icompare64_eq(src64, (sw + w) * 64, k64) & v[w]
                elif c == NE:
                    for w in range(nw):
                        o[w] = _icompare64_ne(src64, (sw + w) * 64, k64) & v[w]
                elif c == LE:
                    for w in range(nw):
                        o[w] = _icompare64_le(src64, (sw + w) * 64, k64) & v[w]
                elif c == GE:
                    for w in range(nw):
                        o[w] = _icompare64_ge(src64, (sw + w) * 64, k64) & v[w]
                else:
                    every = _ONES if c == ALL else np.uint64(0)
                    for w in range(nw):
                        o[w] = every & v[w]


@kernel(fastmath=set(EXACT))
def run_program(prog, consts, luts, lut_masks, planes, col_v, col_valid, col_t, col_f, col_i,
                n, n_num, n_bool, labels, label_size, default, member, matched, unknown, overlaps):
    """Run a compiled rule program over ``n`` rows, bit-sliced (see the module's docstring).

    Parameters
    ----------
    prog : (p, 5) int64, IN: instructions ``(op, dst, a, b, c)``, comparisons of columns with
        constants rewritten to ``CMP_PLANE`` / ``CMP_PLANE_AND``
    consts : (q,) float64, IN
    luts : (r,) uint8, IN: concatenated three-valued lookup tables (0 false, 1 null, 2 true)
        of string predicates
    lut_masks : (2 t,) uint64, IN: small tables (<= 64 entries) as (true bits, null bits) pairs
    planes : (P, ceil(n / 64)) uint64, IN: rows where each hoisted comparison is true
        (:func:`column_planes`, :func:`integer_planes`); false is ``~planes & col_valid``
    col_v : (cn, n) float64, IN: numeric columns some instruction reads the values of (other
        rows unused; may be ``(cn, 0)`` when there are none)
    col_valid : (cn, ceil(n / 64)) uint64, IN: validity words of the numeric columns
    col_t, col_f : (cb, ceil(n / 64)) uint64, IN: boolean columns (:func:`load_bool`)
    col_i : (ci, n) int32, IN: string columns as lookup-table indices
    n : int, rows
    n_num, n_bool : int, temporaries the program uses
    labels : (n * label_size,) uint8, OUT: waterfall labels as int8/int16/int32 (the bytes of
        an array of that type, ``label_size`` bytes each); empty when not wanted
    label_size : int, 1, 2 or 4
    default : int, the waterfall label of rows no segment matched
    member : (s, ceil(n / 64)) uint64, OUT for multi when not empty: segment memberships
        (true rows), Arrow's boolean layout, zero past row ``n``
    matched, unknown : (s,) int64, INOUT: per segment, rows counted true / null (waterfall:
        of the rows no earlier segment took)
    overlaps : (s, s) int64, INOUT: when not empty (multi mode with ``member``), the rows in both
        segments i and j are added to ``overlaps[i, j]`` (``membership.pair_counts``: here, on a
        worker thread, rather than one more call per batch)
    """
    # (not max(): a function to compile; these are at least 1 row)
    num_rows = n_num if n_num > 1 else 1
    bool_rows = n_bool if n_bool > 1 else 1
    nv = empty((num_rows, SUB), np.float64)
    nvalid = empty((num_rows, WORDS), np.uint64)
    bt = empty((bool_rows, WORDS), np.uint64)
    bf = empty((bool_rows, WORDS), np.uint64)
    scratch = empty((2, WORDS), np.uint64)
    cmp = scratch[0]
    free = scratch[1]
    # waterfall labels: bit i of each row's label as a bit plane, expanded to integers per sub-block
    label_bits = 1
    while (default >> label_bits) != 0:
        label_bits += 1
    lab_bits = empty((label_bits, WORDS), np.uint64)
    has_member = member.shape[0] > 0
    has_overlaps = overlaps.shape[0] > 0
    has_labels = labels.shape[0] > 0
    for s in range(0, n, SUB):
        m = SUB if n - s > SUB else n - s
        ws = s >> 6
        mw = (m + 63) >> 6
        last = _ONES if m & 63 == 0 else (np.uint64(1) << np.uint64(m & 63)) - np.uint64(1)
        for w in range(mw):
            free[w] = _ONES
        free[mw - 1] = last
        if has_labels:
            for i in range(label_bits):
                for w in range(mw):
                    lab_bits[i, w] = 0
        for p in range(prog.shape[0]):
            op = prog[p, 0]
            dst = prog[p, 1]
            a = prog[p, 2]
            b = prog[p, 3]
            c = prog[p, 4]
            if op == CMP_PLANE_AND:  # the most frequent: a column's comparison, 'and'-ed
                yt = bt[c] if c >= 0 else col_t[-c - 1, ws:ws + mw]
                yf = bf[c] if c >= 0 else col_f[-c - 1, ws:ws + mw]
                for w in range(mw):
                    pt = planes[a, ws + w]
                    t = pt & yt[w]
                    f = (~pt & col_valid[b, ws + w]) | yf[w]
                    bt[dst, w] = t
                    bf[dst, w] = f
            elif op == CMP_PLANE:
                for w in range(mw):
                    pt = planes[a, ws + w]
                    bt[dst, w] = pt
                    bf[dst, w] = ~pt & col_valid[b, ws + w]
            elif op < 20:
                _numeric_op(op, dst, a, b, consts, col_v, col_valid, nv, nvalid, cmp, s, m)
            elif op < 40:
                _bool_op(op, dst, a, b, c, consts, luts, lut_masks, col_v, col_valid, col_t, col_f, col_i,
                         nv, nvalid, bt, bf, cmp, s, m)
            elif op == SINK_WATERFALL:
                xt = bt[a] if a >= 0 else col_t[-a - 1, ws:ws + mw]
                xf = bf[a] if a >= 0 else col_f[-a - 1, ws:ws + mw]
                hit = 0
                unk = 0
                left = np.uint64(0)
                for w in range(mw):
                    fr = free[w]
                    take = xt[w] & fr
                    hit += popcount(take)
                    unk += popcount(fr & ~(xt[w] | xf[w]))
                    fr &= ~take
                    free[w] = fr
                    left |= fr
                    if has_labels:
                        for i in range(label_bits):  # the label's bits, as bit planes: no per-row work
                            if (dst >> i) & 1:
                                lab_bits[i, w] |= take
                matched[dst] += hit
                unknown[dst] += unk
                if left == 0:  # every row of the sub-block is taken: later segments see none
                    break
            else:  # SINK_MULTI
                xt = bt[a] if a >= 0 else col_t[-a - 1, ws:ws + mw]
                xf = bf[a] if a >= 0 else col_f[-a - 1, ws:ws + mw]
                hit = 0
                unk = 0
                for w in range(mw):
                    keep = _ONES if w < mw - 1 else last
                    t = xt[w] & keep
                    hit += popcount(t)
                    unk += popcount(~(t | xf[w]) & keep)
                    if has_member:
                        member[dst, ws + w] = t
                matched[dst] += hit
                unknown[dst] += unk
        if has_labels:
            for i in range(label_bits):  # rows no segment took get the default label
                if (default >> i) & 1:
                    for w in range(mw):
                        lab_bits[i, w] |= free[w]
            _store_labels(lab_bits, label_bits, labels, label_size, s, m)
    if has_overlaps:
        _pair_counts(member, overlaps)


# Columns of load_batch's tables: a numeric column's row of ``num`` ...
N_ADDR, N_NBYTES, N_KIND, N_VADDR, N_VNBYTES, N_VOFFSET, N_LO, N_HI, N_INTEGER, N_VALUES = range(10)
# ... and a boolean column's row of ``bools``
B_ADDR, B_NBYTES, B_OFFSET, B_VADDR, B_VNBYTES, B_VOFFSET = range(6)
TAIL_BYTES = 64 * 8  # a word's worth of rows of the widest type


@kernel(fastmath=set(EXACT))
def load_batch(num, scales, tails, ks, codes, iks, icodes, bools, planes, col_v, col_valid, col_t, col_f, n):
    """A batch's columns, loaded for :func:`run_program`, in one call.

    The same work as calling :func:`bitmap_words`, then :func:`integer_planes` or
    :func:`column_planes`, then :func:`load_numeric` for each numeric column, and
    :func:`load_bool` for each boolean column, but one call from Python instead of one or more
    per column: with several Python threads evaluating batches, every return from a kernel
    waits for the interpreter lock, and on 262,144-row batches those waits cost more than a
    fifth of the evaluation.

    Parameters
    ----------
    num : (cn, 10) int64, IN: per numeric column (fields ``N_ADDR`` ...): address and size in
        bytes of its values; its type (``KINDS``); address, size in bytes and bit offset of its
        validity bitmap (size 0: every row valid); its planes ``lo .. hi`` (rows of ``planes``);
        1 to compare it in its own type (:func:`integer_planes`, int32/int64 only); 1 to load
        its values into ``col_v`` (arithmetic reads them). The caller keeps the memory alive.
    scales : (cn,) float64, IN: per numeric column, the multiplier to microseconds (1: numbers)
    tails : (cn, TAIL_BYTES) uint8, scratch: each column's last ``n % 64`` rows, padded
    ks, codes : (P,) float64 and int64, IN: per plane, the constant and comparison code
        (:func:`column_planes`)
    iks, icodes : (P,) int64, IN: per plane of an integer-compared column, the integer threshold
        and code (:func:`integer_planes`); unread for other planes
    bools : (cb, 6) int64, IN: per boolean column (fields ``B_ADDR`` ...): address and size in
        bytes of its value bitmap, its bit offset; the same for its validity bitmap (size 0: all
        valid)
    planes : (P, ceil(n / 64)) uint64, OUT: rows where each plane's comparison is true
    col_v : (cn, n) float64, OUT: the values of the columns loaded (others untouched; may be
        ``(cn, 0)`` when none is)
    col_valid : (cn, ceil(n / 64)) uint64, OUT: validity words of the numeric columns
    col_t, col_f : (cb, ceil(n / 64)) uint64, OUT: boolean columns as true / false words
    n : int, rows
    """
    rest = n & 63
    for j in range(num.shape[0]):
        kind = num[j, N_KIND]
        raw = _bytes_at(num[j, N_ADDR], num[j, N_NBYTES])
        bitmap_words(_bytes_at(num[j, N_VADDR], num[j, N_VNBYTES]), num[j, N_VOFFSET], n, col_valid[j])
        lo = num[j, N_LO]
        hi = num[j, N_HI]
        if hi > lo:
            if rest != 0:  # the last rows, padded to a word (the planes' tail argument)
                size = num[j, N_NBYTES] // n
                first = (n - rest) * size
                for b in range(rest * size):
                    tails[j, b] = raw[first + b]
                for b in range(rest * size, TAIL_BYTES):
                    tails[j, b] = 0
            if num[j, N_INTEGER] != 0:
                _integer_planes(raw, kind, tails[j], col_valid[j], iks[lo:hi], icodes[lo:hi], planes[lo:hi], n)
            else:
                _column_planes(raw, kind, tails[j], col_valid[j], scales[j], ks[lo:hi], codes[lo:hi], planes[lo:hi],
                               n)
        if num[j, N_VALUES] != 0:
            # (np.int64(0), not 0: numba compiles a kernel called with a constant once per value)
            load_numeric(raw, kind, np.int64(0), n, scales[j], col_v[j])
    for j in range(bools.shape[0]):
        _load_bool(_bytes_at(bools[j, B_ADDR], bools[j, B_NBYTES]), bools[j, B_OFFSET],
                   _bytes_at(bools[j, B_VADDR], bools[j, B_VNBYTES]), bools[j, B_VOFFSET], n, col_t[j], col_f[j])


@_subroutine
def _store_labels(lab_bits, label_bits, labels, label_size, s, m):
    """Rows ``s .. s + m`` of the labels from their bit planes (``lab_bits[i]``: bit i).

    One-byte labels (fewer than 127 segments) are built 64 rows at a time, a vector
    instruction per bit plane (``_set_bit_plane64``); wider labels and the rows of a last
    partial word, a row at a time."""
    full = m >> 6
    done = 0
    if label_size == 1:
        for w in range(full):
            _set_bit_plane64(labels, s + 64 * w, lab_bits[0, w], 0)
            for i in range(1, label_bits):
                _or_bit_plane64(labels, s + 64 * w, lab_bits[i, w], i)
        done = full * 64
        out8 = _as_type(labels, np.int8)
        for r in range(done, m):
            w = r >> 6  # row r's label from the bit planes
            sh = np.uint64(r & 63)
            v = np.uint64(0)
            for i in range(label_bits):
                v |= ((lab_bits[i, w] >> sh) & np.uint64(1)) << np.uint64(i)
            out8[s + r] = v
    elif label_size == 2:
        out16 = _as_type(labels, np.int16)
        for r in range(m):
            w = r >> 6  # row r's label from the bit planes
            sh = np.uint64(r & 63)
            v = np.uint64(0)
            for i in range(label_bits):
                v |= ((lab_bits[i, w] >> sh) & np.uint64(1)) << np.uint64(i)
            out16[s + r] = v
    else:
        out32 = _as_type(labels, np.int32)
        for r in range(m):
            w = r >> 6  # row r's label from the bit planes
            sh = np.uint64(r & 63)
            v = np.uint64(0)
            for i in range(label_bits):
                v |= ((lab_bits[i, w] >> sh) & np.uint64(1)) << np.uint64(i)
            out32[s + r] = v


@_subroutine
def _numeric_op(op, dst, a, b, consts, col_v, col_valid, nv, nvalid, cmp, s, m):
    """One numeric instruction over rows ``s .. s + m``: values, then validity words (an
    instruction may write the register it reads: every loop reads a row before writing it)."""
    ws = s >> 6
    mw = (m + 63) >> 6
    ov = _pick(nv, nv, dst, 0, m)
    ow = _pick(nvalid, nvalid, dst, 0, mw)
    if op == N_CONST:
        k = consts[a]
        for i in range(m):
            ov[i] = k
        for w in range(mw):
            ow[w] = _ONES
        return
    if op == N_NULL:
        for i in range(m):
            ov[i] = 0.0
        for w in range(mw):
            ow[w] = 0
        return
    xv = _pick(nv, col_v, a, s, m)
    xw = _pick(nvalid, col_valid, a, ws, mw)
    if op == N_NEG:
        for i in range(m):
            ov[i] = -xv[i]
    elif op == N_ABS:
        for i in range(m):
            ov[i] = abs(xv[i])
    elif op == N_FLOOR:
        for i in range(m):
            ov[i] = np.floor(xv[i])
    elif op >= N_ADDK and op <= N_KDIV:
        k = consts[b]
        if op == N_ADDK:
            for i in range(m):
                ov[i] = xv[i] + k
        elif op == N_SUBK:
            for i in range(m):
                ov[i] = xv[i] - k
        elif op == N_KSUB:
            for i in range(m):
                ov[i] = k - xv[i]
        elif op == N_MULK:
            for i in range(m):
                ov[i] = xv[i] * k
        elif op == N_DIVK:
            if k == 0.0:  # x / 0 is null
                for i in range(m):
                    ov[i] = 0.0
                for w in range(mw):
                    ow[w] = 0
                return
            for i in range(m):
                ov[i] = xv[i] / k
        else:  # N_KDIV: null where x is 0
            for w in range(mw):  # rows where xv is 0
                base = w * 64
                zs = xv[base:base + (64 if m - base > 64 else m - base)]
                word = np.uint64(0)
                for j in range(zs.shape[0]):
                    word |= np.uint64(zs[j] == 0.0) << np.uint64(j)
                cmp[w] = word
            for i in range(m):
                ov[i] = 0.0 if xv[i] == 0.0 else k / xv[i]
            for w in range(mw):
                ow[w] = xw[w] & ~cmp[w]
            return
    else:
        yv = _pick(nv, col_v, b, s, m)
        yw = _pick(nvalid, col_valid, b, ws, mw)
        if op == N_ADD:
            for i in range(m):
                ov[i] = xv[i] + yv[i]
        elif op == N_SUB:
            for i in range(m):
                ov[i] = xv[i] - yv[i]
        elif op == N_MUL:
            for i in range(m):
                ov[i] = xv[i] * yv[i]
        elif op == N_DIV:  # null where y is 0
            for w in range(mw):  # rows where yv is 0
                base = w * 64
                zs = yv[base:base + (64 if m - base > 64 else m - base)]
                word = np.uint64(0)
                for j in range(zs.shape[0]):
                    word |= np.uint64(zs[j] == 0.0) << np.uint64(j)
                cmp[w] = word
            for i in range(m):
                ov[i] = 0.0 if yv[i] == 0.0 else xv[i] / yv[i]
            for w in range(mw):
                ow[w] = xw[w] & yw[w] & ~cmp[w]
            return
        else:  # N_COALESCE: x where x is valid, else y
            for i in range(m):
                use_x = (xw[i >> 6] >> np.uint64(i & 63)) & np.uint64(1)
                ov[i] = xv[i] if use_x else yv[i]
            for w in range(mw):
                ow[w] = xw[w] | yw[w]
            return
        for w in range(mw):
            ow[w] = xw[w] & yw[w]
        return
    for w in range(mw):  # unary and constant-operand instructions keep x's validity
        ow[w] = xw[w]


@_subroutine
def _bool_op(op, dst, a, b, c, consts, luts, lut_masks, col_v, col_valid, col_t, col_f, col_i, nv, nvalid,
             bt, bf, cmp, s, m):
    """One boolean instruction over rows ``s .. s + m`` (words; bits past ``m`` are left as
    they come: the sinks mask them)."""
    ws = s >> 6
    mw = (m + 63) >> 6
    ot = _pick(bt, bt, dst, 0, mw)
    of = _pick(bf, bf, dst, 0, mw)
    if op == CMPK or op == CMPK_AND or op == CMP:
        # a comparison of a computed number (a register, or a column arithmetic also reads),
        # with a constant or row by row with another number: one copy of the comparison loops
        # (a helper kernel for them cost a compile of its own, and LLVM's work again in each caller)
        xv = _pick(nv, col_v, a, s, m)
        xw = _pick(nvalid, col_valid, a, ws, mw)
        yv = xv
        yw = xw
        k = 0.0
        code = c
        if op == CMP:
            yv = _pick(nv, col_v, b, s, m)
            yw = _pick(nvalid, col_valid, b, ws, mw)
        elif op == CMPK:
            k = consts[b]
        else:
            k = consts[b >> 3]
            code = b & 7
        for w in range(mw):
            base = w * 64
            count = 64 if m - base > 64 else m - base
            xs = xv[base:base + count]
            word = np.uint64(0)
            if op != CMP:
                # one loop per comparison code, over a slice: a loop of 64 shifts and ors
                # compiles to vector compares into mask registers, while ``x[base + b]`` (a
                # signed index Numba may wrap) becomes gathers
                if code == EQ:
                    for j in range(count):
                        word |= np.uint64(xs[j] == k) << np.uint64(j)
                elif code == NE:
                    for j in range(count):
                        word |= np.uint64(xs[j] != k) << np.uint64(j)
                elif code == LT:
                    for j in range(count):
                        word |= np.uint64(xs[j] < k) << np.uint64(j)
                elif code == LE:
                    for j in range(count):
                        word |= np.uint64(xs[j] <= k) << np.uint64(j)
                elif code == GT:
                    for j in range(count):
                        word |= np.uint64(xs[j] > k) << np.uint64(j)
                else:
                    for j in range(count):
                        word |= np.uint64(xs[j] >= k) << np.uint64(j)
            else:
                ys = yv[base:base + count]
                for j in range(count):
                    x = xs[j]
                    y = ys[j]
                    if code == EQ:
                        r = x == y
                    elif code == NE:
                        r = x != y
                    elif code == LT:
                        r = x < y
                    elif code == LE:
                        r = x <= y
                    elif code == GT:
                        r = x > y
                    else:
                        r = x >= y
                    word |= np.uint64(r) << np.uint64(j)
            cmp[w] = word
        if op == CMPK_AND:
            yt = _pick(bt, col_t, c, ws, mw)
            yf = _pick(bf, col_f, c, ws, mw)
            for w in range(mw):
                v = xw[w]
                t = cmp[w] & v & yt[w]
                f = (~cmp[w] & v) | yf[w]
                ot[w] = t
                of[w] = f
        else:
            for w in range(mw):
                v = xw[w] & yw[w]  # (yw is xw for a constant)
                ot[w] = cmp[w] & v
                of[w] = ~cmp[w] & v
        return
    if op == B_CONST:  # a: 0 false, 1 null, 2 true
        t = _ONES if a == 2 else np.uint64(0)
        f = _ONES if a == 0 else np.uint64(0)
        for w in range(mw):
            ot[w] = t
            of[w] = f
        return
    if op == N_ISNULL:
        xw = _pick(nvalid, col_valid, a, ws, mw)
        for w in range(mw):
            v = xw[w]
            ot[w] = ~v
            of[w] = v
        return
    if op == LUT:
        idx = _pick(col_i, col_i, -a - 1, s, m)  # (as an input column: rows s .. s + m of column a)
        for w in range(mw):
            base = w * 64
            t = np.uint64(0)
            f = np.uint64(0)
            rows = idx[base:base + 64]
            for j in range(rows.shape[0]):
                v = luts[b + rows[j]]
                t |= np.uint64(v == 2) << np.uint64(j)
                f |= np.uint64(v == 0) << np.uint64(j)
            ot[w] = t
            of[w] = f
        return
    if op == LUT64:  # a shift per row vectorises; a table gather does not
        idx = _pick(col_i, col_i, a, 0, col_i.shape[1])
        true_bits = lut_masks[2 * b]
        null_bits = lut_masks[2 * b + 1]  # 0 when no row of the batch can be null (then no second pass)
        for w in range(mw):
            base = w * 64
            if base + 64 <= m:
                t = _table_bits64(idx, s + base, true_bits)
                u = _table_bits64(idx, s + base, null_bits) if null_bits != 0 else np.uint64(0)
            else:
                rows = idx[s + base:s + m]
                t = np.uint64(0)
                u = np.uint64(0)
                for j in range(rows.shape[0]):
                    sh = np.uint64(rows[j])
                    t |= ((true_bits >> sh) & np.uint64(1)) << np.uint64(j)
                    u |= ((null_bits >> sh) & np.uint64(1)) << np.uint64(j)
            ot[w] = t
            of[w] = ~(t | u)
        return
    xt = _pick(bt, col_t, a, ws, mw)
    xf = _pick(bf, col_f, a, ws, mw)
    if op == B_NOT:
        for w in range(mw):
            t = xf[w]
            f = xt[w]
            ot[w] = t
            of[w] = f
        return
    if op == B_ISNULL:
        for w in range(mw):
            known = xt[w] | xf[w]
            ot[w] = ~known
            of[w] = known
        return
    yt = _pick(bt, col_t, b, ws, mw)
    yf = _pick(bf, col_f, b, ws, mw)
    if op == B_AND:
        for w in range(mw):
            t = xt[w] & yt[w]
            f = xf[w] | yf[w]
            ot[w] = t
            of[w] = f
    elif op == B_OR:
        for w in range(mw):
            t = xt[w] | yt[w]
            f = xf[w] & yf[w]
            ot[w] = t
            of[w] = f
    elif op == B_COALESCE:  # x where x is known, else y
        for w in range(mw):
            unknown_x = ~(xt[w] | xf[w])
            t = xt[w] | (unknown_x & yt[w])
            f = xf[w] | (unknown_x & yf[w])
            ot[w] = t
            of[w] = f
    else:  # B_EQ: Kleene equality of two booleans
        for w in range(mw):
            known = (xt[w] | xf[w]) & (yt[w] | yf[w])
            same = ~(xt[w] ^ yt[w])
            ot[w] = known & same
            of[w] = known & ~same


# -- one record ---------------------------------------------------------------------------------
# The same program, one customer at a time: scalars instead of sub-blocks, no lookup tables (the
# caller evaluates a record's string predicates in Python and passes their three-valued
# results), and a waterfall stops at the first segment that takes the record. The most frequent
# instructions (comparisons with a constant, sinks) are tested first: measured on 20 rules
# (87 instructions), a 2-D program with the batch VM's order of tests took 2.6 us a call, this
# 0.9 us. Registers are written before they are read (the code generator's allocation).

@_subroutine
def _compare_scalar(x, y, c):
    """``x c y`` for one pair of float64 (c a comparison code): 2 when true, else 0."""
    if c == EQ:
        r = x == y
    elif c == NE:
        r = x != y
    elif c == LT:
        r = x < y
    elif c == LE:
        r = x <= y
    elif c == GT:
        r = x > y
    else:
        r = x >= y
    return np.uint8(2) if r else np.uint8(0)


@_subroutine
def _constant(consts, i, as_of_us, as_of_day_us):
    """Constant ``i`` of a program, slots 0 and 1 being the evaluation instant (the code
    generator reads them only through N_CONST and the as_of subtractions; comparisons never)."""
    if i == 0:
        return as_of_us
    if i == 1:
        return as_of_day_us
    return consts[i]


@kernel(fastmath=set(EXACT))
def run_record(prog, consts, as_of_us, as_of_day_us, num_v, states, member):
    """Run a compiled rule program over one record.

    Parameters
    ----------
    prog : (5 + 5 p,) int64, IN: a header ``(n_values, lut_base, n_num, n_bool, 0)``, then the
        program's ``(op, dst, a, b, c)`` rows, flattened (one index per field is cheaper than
        a 2-D index here, and every argument costs the dispatcher time); lookup-table
        instructions hold the place of their result among the string predicates in ``b``
    consts : (q,) float64, IN; slots ``0`` and ``1`` stand for ``as_of_us`` and ``as_of_day_us``
    as_of_us, as_of_day_us : float, the evaluation instant and its midnight UTC, microseconds
    num_v : (cn,) float64 (any 1-D buffer: the caller passes an ``array.array``), IN: the
        record's numeric columns
    states : (cn + cb + t,) uint8 (any 1-D buffer: the caller passes ``bytes``), IN: the
        numeric columns' validity (1 valid, 0 null), then three-valued booleans: the boolean
        columns, then from ``lut_base`` on the value of each string predicate for this record
    (header) n_values : cn, where the three-valued part of ``states`` starts;
        lut_base : index of string predicate 0 among the three-valued ``states``;
        n_num, n_bool : temporaries the program uses
    member : (s,) uint8, OUT in multi mode: 1 where the segment's rule is true (empty for a waterfall)

    Returns
    -------
    int
        Waterfall: the index of the first segment whose rule is true, -1 when none is (the
        instructions of later segments are not run). Multi mode: -1.
    """
    n_values = prog[0]
    lut_base = prog[1]
    n_num = prog[2]
    n_bool = prog[3]
    # (no min()/max() in this kernel: each is a function numba compiles; the three-valued
    # 'and' is the smaller byte, 'or' the larger)
    num_rows = n_num if n_num > 1 else 1
    bool_rows = n_bool if n_bool > 1 else 1
    nv = empty(num_rows, np.float64)
    nm = empty(num_rows, np.uint8)
    bv = empty(bool_rows, np.uint8)
    n = prog.shape[0]
    for q in range(5, n, 5):
        op = prog[q]
        dst = prog[q + 1]
        a = prog[q + 2]
        b = prog[q + 3]
        c = prog[q + 4]
        if op == CMPK_AND or op == CMPK:
            xm = nm[a] if a >= 0 else states[-a - 1]
            if op == CMPK_AND:
                y = bv[c] if c >= 0 else states[n_values - c - 1]
                if xm == 0:
                    bv[dst] = y if y < 1 else np.uint8(1)
                else:
                    x = nv[a] if a >= 0 else num_v[-a - 1]
                    r3 = _compare_scalar(x, consts[b >> 3], b & 7)
                    bv[dst] = r3 if r3 < y else y
            else:
                if xm == 0:
                    bv[dst] = 1
                else:
                    x = nv[a] if a >= 0 else num_v[-a - 1]
                    bv[dst] = _compare_scalar(x, consts[b], c)
        elif op == SINK_WATERFALL:
            if (bv[a] if a >= 0 else states[n_values - a - 1]) == 2:
                return dst
        elif op < 20:
            if op == N_CONST:
                nv[dst] = _constant(consts, a, as_of_us, as_of_day_us)
                nm[dst] = 1
                continue
            if op == N_NULL:
                nv[dst] = 0.0
                nm[dst] = 0
                continue
            x = nv[a] if a >= 0 else num_v[-a - 1]
            xm = nm[a] if a >= 0 else states[-a - 1]
            r = x
            rm = xm
            if op == N_NEG:
                r = -x
            elif op == N_ABS:
                r = abs(x)
            elif op == N_FLOOR:
                r = np.floor(x)
            elif op >= N_ADDK and op <= N_KDIV:
                kb = _constant(consts, b, as_of_us, as_of_day_us)
                if op == N_ADDK:
                    r = x + kb
                elif op == N_SUBK:
                    r = x - kb
                elif op == N_KSUB:
                    r = kb - x
                elif op == N_MULK:
                    r = x * kb
                elif op == N_DIVK:
                    if kb == 0.0:
                        r, rm = 0.0, np.uint8(0)
                    else:
                        r = x / kb
                else:  # N_KDIV
                    if x == 0.0:
                        r, rm = 0.0, np.uint8(0)
                    else:
                        r = kb / x
            else:
                y = nv[b] if b >= 0 else num_v[-b - 1]
                ym = nm[b] if b >= 0 else states[-b - 1]
                rm = xm & ym
                if op == N_ADD:
                    r = x + y
                elif op == N_SUB:
                    r = x - y
                elif op == N_MUL:
                    r = x * y
                elif op == N_DIV:
                    if y == 0.0:
                        r, rm = 0.0, np.uint8(0)
                    else:
                        r = x / y
                else:  # N_COALESCE
                    if xm == 1:
                        r, rm = x, np.uint8(1)
                    else:
                        r, rm = y, ym
            nv[dst] = r
            nm[dst] = rm
        elif op == LUT or op == LUT64:
            bv[dst] = states[n_values + lut_base + b]
        elif op == SINK_MULTI:
            member[dst] = np.uint8((bv[a] if a >= 0 else states[n_values - a - 1]) == 2)
        elif op == CMP:
            xm = nm[a] if a >= 0 else states[-a - 1]
            ym = nm[b] if b >= 0 else states[-b - 1]
            if (xm & ym) == 0:
                bv[dst] = 1
            else:
                bv[dst] = _compare_scalar(nv[a] if a >= 0 else num_v[-a - 1], nv[b] if b >= 0 else num_v[-b - 1], c)
        elif op == B_CONST:
            bv[dst] = a
        elif op == N_ISNULL:
            xm = nm[a] if a >= 0 else states[-a - 1]
            bv[dst] = 2 if xm == 0 else 0
        else:
            x3 = bv[a] if a >= 0 else states[n_values - a - 1]
            if op == B_NOT:
                bv[dst] = 2 - x3
            elif op == B_ISNULL:
                bv[dst] = 2 if x3 == 1 else 0
            else:
                y3 = bv[b] if b >= 0 else states[n_values - b - 1]
                if op == B_AND:
                    bv[dst] = x3 if x3 < y3 else y3
                elif op == B_OR:
                    bv[dst] = x3 if x3 > y3 else y3
                elif op == B_COALESCE:
                    bv[dst] = y3 if x3 == 1 else x3
                elif x3 == 1 or y3 == 1:
                    bv[dst] = 1
                else:
                    bv[dst] = 2 if x3 == y3 else 0
    return -1
