"""Explicit SIMD building blocks and CPU instructions that Numba does not give on its own.

Numba compiles ``tile[j, i] = X[lo + i, j]`` (copying row-major rows into a feature-major
tile) to one scalar load and one scalar store per value; in the assignment kernel that copy
cost as much as all the distance arithmetic. :func:`transpose_64B`, :func:`transpose_32B` and
:func:`transpose_16B` copy a square block of ``w = bytes / itemsize`` rows and columns (64
bytes: 16 x 16 float32 or 8 x 8 float64) with ``w`` vector loads, a shuffle network and ``w``
vector stores instead (4x faster measured for 16 x 16 float32 blocks on AVX-512).

They are Numba intrinsics: the LLVM IR is written here, with portable ``shufflevector``
instructions that LLVM lowers for whatever CPU it compiles for (single permutes on AVX-512,
split or scalar sequences elsewhere), so results are the same bits everywhere: values are
moved, never computed.

Numba's on-disk cache keys a kernel on its own source file and the CPU: after editing this
module, clear ``__pycache__`` (or ``NUMBA_CACHE_DIR``) so kernels that inline these
intrinsics (``assign.py``) are compiled again.
"""
import numpy as np
from llvmlite import binding as llvm
from llvmlite import ir
from numba import types
from numba.core import cgutils, config
from numba.core.datamodel import models, register_default
from numba.extending import intrinsic


def _native_vector_bytes():
    """Bytes in one SIMD register of the CPU Numba compiles for (64 with AVX-512, 32 with AVX2,
    else 16), from the same features Numba uses (``NUMBA_CPU_FEATURES`` or the host's).

    Blocks wider than the registers cost more than scalar copies (measured: 16 x 16 float32
    blocks compiled for AVX2 were slower than the plain loop), so callers use no wider blocks.
    """
    features = config.CPU_FEATURES
    if features is None:
        features = llvm.get_host_cpu_features().flatten()
    enabled = {f[1:] for f in features.split(",") if f.startswith("+")}
    if "avx512f" in enabled:
        return 64
    if "avx2" in enabled:
        return 32
    return 16


NATIVE_VECTOR_BYTES = _native_vector_bytes()


def _native_has_fma():
    """Whether the CPU Numba compiles for has fused multiply-add (same source of features as
    :func:`_native_vector_bytes`)."""
    features = config.CPU_FEATURES
    if features is None:
        features = llvm.get_host_cpu_features().flatten()
    return "+fma" in features.split(",")


HAS_FMA = _native_has_fma()


def _swap_masks(width, h):
    """Shuffle masks exchanging the off-diagonal ``h x h`` blocks of rows ``i`` and ``i + h``.

    Lanes of the first operand are ``0..width``, of the second ``width..2*width``.
    """
    first = [c if not c & h else width + c - h for c in range(width)]
    second = [c + h if not c & h else width + c for c in range(width)]
    return first, second


def _make_transpose(vector_bytes):
    @intrinsic
    def transpose(typingctx, X, row, col, tile, trow, tcol):
        if not (isinstance(X, types.Array) and isinstance(tile, types.Array) and X.ndim == 2
                and tile.ndim == 2 and X.dtype == tile.dtype and X.dtype in (types.float32, types.float64)):
            return None
        sig = types.void(X, row, col, tile, trow, tcol)
        width = vector_bytes * 8 // X.dtype.bitwidth

        def codegen(context, builder, signature, args):
            xty, tty = signature.args[0], signature.args[3]
            x = context.make_array(xty)(context, builder, args[0])
            t = context.make_array(tty)(context, builder, args[3])
            row_, col_, trow_, tcol_ = (
                context.cast(builder, args[k], signature.args[k], types.intp) for k in (1, 2, 4, 5))
            intp = context.get_value_type(types.intp)
            elem = context.get_value_type(xty.dtype)
            size = context.get_abi_sizeof(elem)
            vec = ir.VectorType(elem, width)
            i8p = ir.IntType(8).as_pointer()
            x_base = builder.bitcast(x.data, i8p)
            t_base = builder.bitcast(t.data, i8p)
            x_stride = cgutils.unpack_tuple(builder, x.strides)[0]
            t_stride = cgutils.unpack_tuple(builder, t.strides)[0]

            def address(base, stride, r, r_off, c):
                off = builder.add(builder.mul(builder.add(r, ir.Constant(intp, r_off)), stride),
                                  builder.mul(c, ir.Constant(intp, size)))
                return builder.bitcast(builder.gep(base, [off]), vec.as_pointer())

            rows = [builder.load(address(x_base, x_stride, row_, r, col_), align=size)
                    for r in range(width)]
            mask_type = ir.VectorType(ir.IntType(32), width)
            h = width // 2
            while h:  # swapping off-diagonal blocks at every scale transposes the block
                first, second = _swap_masks(width, h)
                swapped = list(rows)
                for i in range(width):
                    if i & h:
                        continue
                    a, b = rows[i], rows[i + h]
                    swapped[i] = builder.shuffle_vector(a, b, ir.Constant(mask_type, first))
                    swapped[i + h] = builder.shuffle_vector(a, b, ir.Constant(mask_type, second))
                rows = swapped
                h //= 2
            for c in range(width):
                builder.store(rows[c], address(t_base, t_stride, trow_, c, tcol_), align=size)
            return context.get_dummy_value()

        return sig, codegen

    transpose.__doc__ = f"""Copy a ``w x w`` block transposed, ``w = {vector_bytes} // X.itemsize``.

    ``tile[trow + c, tcol + r] = X[row + r, col + c]`` for ``r, c < w``.

    Parameters
    ----------
    X : (n, d) float32/float64 array whose rows are contiguous (``X.strides[1] == itemsize``), IN
    row, col : int, top-left corner of the block in X (``row + w <= n``, ``col + w <= d``)
    tile : (p, q) array of X's dtype whose rows are contiguous, OUT
    trow, tcol : int, top-left corner of the transposed block in ``tile``

    Bounds are not checked: the caller guarantees them.
    """
    return transpose


transpose_64B = _make_transpose(64)
transpose_32B = _make_transpose(32)
transpose_16B = _make_transpose(16)


@intrinsic
def popcount(typingctx, x):
    """Number of set bits of an unsigned 64-bit integer (LLVM ``ctpop``: one ``popcnt``, and
    vectorised with AVX-512 VPOPCNTDQ where the CPU has it)."""
    if x != types.uint64:
        return None
    sig = types.int64(types.uint64)

    def codegen(context, builder, signature, args):
        return builder.ctpop(args[0])

    return sig, codegen


# -- a SIMD vector value type for register-blocked kernels -----------------------------------------
#
# Numba vectorises loops over arrays, but a GEMM-shaped kernel wants a block of accumulators
# that stays in registers while a loop runs over features, and LLVM's loop vectoriser targets
# 256-bit vectors on AVX-512 CPUs ("prefer-256-bit" tuning) anyway. :class:`Lanes` is a value
# type holding one register of ``lanes`` numbers (an LLVM ``<lanes x T>``), and the intrinsics
# below load, store, broadcast, multiply-add, compare and select them, so a kernel written in
# Numba keeps its accumulators in named variables that LLVM puts in registers. Every operation
# is emitted without fast-math flags and the multiply-add is ``llvm.fmuladd`` (one rounding on
# CPUs with FMA, two elsewhere): the arithmetic is exactly what the kernel spells out, in the
# same order on every call, whatever fast-math the calling kernel compiles with.

class Lanes(types.Type):
    """One SIMD register of ``lanes`` values of ``dtype`` (float32, float64 or int32)."""

    def __init__(self, dtype, lanes):
        self.dtype = dtype
        self.lanes = lanes
        super().__init__(name=f"Lanes({dtype}, {lanes})")


class LaneMask(types.Type):
    """The result of a lane-wise comparison: one bit per lane (an LLVM ``<lanes x i1>``)."""

    def __init__(self, lanes):
        self.lanes = lanes
        super().__init__(name=f"LaneMask({lanes})")


@register_default(Lanes)
class _LanesModel(models.PrimitiveModel):
    def __init__(self, dmm, fe_type):
        elem = dmm.lookup(fe_type.dtype).get_value_type()
        super().__init__(dmm, fe_type, ir.VectorType(elem, fe_type.lanes))


@register_default(LaneMask)
class _LaneMaskModel(models.PrimitiveModel):
    def __init__(self, dmm, fe_type):
        super().__init__(dmm, fe_type, ir.VectorType(ir.IntType(1), fe_type.lanes))


_LANE_TYPES = (types.float32, types.float64, types.int32)


def _lanes_for(dtype):
    """Lanes of one native register of ``dtype`` values (16 float32 with AVX-512)."""
    return max(1, NATIVE_VECTOR_BYTES * 8 // dtype.bitwidth)


def _vector_pointer(context, builder, aryty, ary, index, vec):
    """Pointer to ``ary[index:index + lanes]`` as a pointer to ``vec`` (contiguous 1-D array)."""
    arr = context.make_array(aryty)(context, builder, ary)
    index = context.cast(builder, index[0], index[1], types.intp)
    ptr = builder.gep(arr.data, [index])
    return builder.bitcast(ptr, vec.as_pointer())


@intrinsic
def lanes_of(typingctx, ary):
    """Number of lanes of one register of ``ary``'s dtype (a compile-time constant)."""
    if not (isinstance(ary, types.Array) and ary.dtype in _LANE_TYPES):
        return None
    n = _lanes_for(ary.dtype)

    def codegen(context, builder, signature, args):
        return context.get_constant(types.intp, n)

    return types.intp(ary), codegen


@intrinsic
def vload(typingctx, ary, index):
    """``ary[index:index + lanes]`` as one register, lanes native for ``ary``'s dtype.

    ``ary`` is a 1-D array whose elements are contiguous; bounds are not checked.
    """
    if not (isinstance(ary, types.Array) and ary.ndim == 1 and ary.dtype in _LANE_TYPES
            and isinstance(index, types.Integer)):
        return None
    rty = Lanes(ary.dtype, _lanes_for(ary.dtype))

    def codegen(context, builder, signature, args):
        vec = context.get_value_type(rty)
        ptr = _vector_pointer(context, builder, signature.args[0], args[0], (args[1], signature.args[1]), vec)
        return builder.load(ptr, align=context.get_abi_sizeof(vec.element))

    return rty(ary, index), codegen


@intrinsic
def vstore(typingctx, ary, index, value):
    """``ary[index:index + lanes] = value`` (1-D array with contiguous elements; no bounds check)."""
    if not (isinstance(ary, types.Array) and ary.ndim == 1 and isinstance(value, Lanes)
            and ary.dtype == value.dtype and isinstance(index, types.Integer)):
        return None

    def codegen(context, builder, signature, args):
        vec = context.get_value_type(signature.args[2])
        ptr = _vector_pointer(context, builder, signature.args[0], args[0], (args[1], signature.args[1]), vec)
        builder.store(args[2], ptr, align=context.get_abi_sizeof(vec.element))
        return context.get_dummy_value()

    return types.void(ary, index, value), codegen


def _splat(builder, value, vec):
    undef = ir.Constant(vec, ir.Undefined)
    one = builder.insert_element(undef, value, ir.Constant(ir.IntType(32), 0))
    return builder.shuffle_vector(one, undef, ir.Constant(ir.VectorType(ir.IntType(32), vec.count), [0] * vec.count))


@intrinsic
def vfill(typingctx, value, like):
    """A register of ``like``'s dtype (an array) with every lane ``value`` (converted to it)."""
    if not (isinstance(like, types.Array) and like.dtype in _LANE_TYPES and isinstance(value, types.Number)):
        return None
    rty = Lanes(like.dtype, _lanes_for(like.dtype))

    def codegen(context, builder, signature, args):
        v = context.cast(builder, args[0], signature.args[0], rty.dtype)
        return _splat(builder, v, context.get_value_type(rty))

    return rty(value, like), codegen


@intrinsic
def vfill_labels(typingctx, value, like):
    """An int32 register with as many lanes as ``like``'s (an array's dtype or a Lanes), every
    lane ``value``: labels that travel beside a register of distances."""
    if isinstance(like, types.Array) and like.dtype in _LANE_TYPES:
        lanes = _lanes_for(like.dtype)
    elif isinstance(like, Lanes):
        lanes = like.lanes
    else:
        return None
    if not isinstance(value, types.Integer):
        return None
    rty = Lanes(types.int32, lanes)

    def codegen(context, builder, signature, args):
        v = context.cast(builder, args[0], signature.args[0], types.int32)
        return _splat(builder, v, context.get_value_type(rty))

    return rty(value, like), codegen


def _float_lanes(*tys):
    return all(isinstance(t, Lanes) and t.dtype in (types.float32, types.float64) for t in tys) and all(
        t == tys[0] for t in tys)


def _multiply_add(context, builder, ty, a, b, c):
    """``a * b + c``: one rounding (``llvm.fma``) on CPUs with FMA, else a product and a sum,
    each rounded. Chosen here rather than left to LLVM (``llvm.fmuladd``), so that a scalar and
    a vector multiply-add of the same values give the same bits by construction."""
    if not HAS_FMA:
        return builder.fadd(builder.fmul(a, b), c)
    if isinstance(ty, Lanes):
        name = f"llvm.fma.v{ty.lanes}{'f32' if ty.dtype == types.float32 else 'f64'}"
    else:
        name = f"llvm.fma.{'f32' if ty == types.float32 else 'f64'}"
    lty = context.get_value_type(ty)
    fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(lty, [lty, lty, lty]), name)
    return builder.call(fn, [a, b, c])


@intrinsic
def vfma(typingctx, a, b, c):
    """``a * b + c`` lane by lane (fused on CPUs with FMA: see :func:`_multiply_add`)."""
    if not _float_lanes(a, b, c):
        return None

    def codegen(context, builder, signature, args):
        return _multiply_add(context, builder, signature.return_type, *args)

    return a(a, b, c), codegen


@intrinsic
def fmadd(typingctx, a, b, c):
    """Scalar ``a * b + c`` with exactly the rounding of :func:`vfma` (float32 or float64, all
    three of one type): a lane of a vector kernel redone alone gives its bits."""
    if not (a in (types.float32, types.float64) and a == b == c):
        return None

    def codegen(context, builder, signature, args):
        return _multiply_add(context, builder, signature.return_type, *args)

    return a(a, b, c), codegen


@intrinsic
def vmin(typingctx, a, b):
    """``a if a < b else b`` lane by lane (``b`` where either is NaN)."""
    if not _float_lanes(a, b):
        return None

    def codegen(context, builder, signature, args):
        return builder.select(builder.fcmp_ordered("<", args[0], args[1]), args[0], args[1])

    return a(a, b), codegen


@intrinsic
def vmax(typingctx, a, b):
    """``a if a > b else b`` lane by lane (``b`` where either is NaN)."""
    if not _float_lanes(a, b):
        return None

    def codegen(context, builder, signature, args):
        return builder.select(builder.fcmp_ordered(">", args[0], args[1]), args[0], args[1])

    return a(a, b), codegen


@intrinsic
def vadd(typingctx, a, b):
    """``a + b`` lane by lane."""
    if not _float_lanes(a, b):
        return None

    def codegen(context, builder, signature, args):
        return builder.fadd(args[0], args[1])

    return a(a, b), codegen


@intrinsic
def vless(typingctx, a, b):
    """``a < b`` lane by lane (false where either is NaN)."""
    if not _float_lanes(a, b):
        return None

    def codegen(context, builder, signature, args):
        return builder.fcmp_ordered("<", args[0], args[1])

    return LaneMask(a.lanes)(a, b), codegen


@intrinsic
def vunordered(typingctx, a, b):
    """``isnan(a) | isnan(b)`` lane by lane."""
    if not _float_lanes(a, b):
        return None

    def codegen(context, builder, signature, args):
        return builder.fcmp_unordered("uno", args[0], args[1])

    return LaneMask(a.lanes)(a, b), codegen


@intrinsic
def vany(typingctx, m, n):
    """``m | n`` lane by lane, for two comparison results."""
    if not (isinstance(m, LaneMask) and m == n):
        return None

    def codegen(context, builder, signature, args):
        return builder.or_(args[0], args[1])

    return m(m, n), codegen


@intrinsic
def vfold_first(typingctx, best, lab, nan, a, c0):
    """Fold the lanes of ``a`` (the values of centers ``c0, c0 + 1, ...``) into a running scalar
    ``(best, lab, nan)``, lane by lane in order: a lane strictly below ``best`` becomes ``best``
    and its index ``lab`` (so ties keep the lower index and NaN never wins); ``nan`` is set when
    a lane is NaN. Lanes taken straight from the register: a store and reloads of the lanes
    made a one-row-at-a-time kernel run at a pace that depended on the buffers' addresses."""
    if not (isinstance(a, Lanes) and a.dtype in (types.float32, types.float64) and best == a.dtype
            and isinstance(lab, types.Integer) and isinstance(c0, types.Integer) and nan == types.boolean):
        return None
    rty = types.Tuple((a.dtype, types.int64, types.boolean))

    def codegen(context, builder, signature, args):
        best, lab, nan, vec, c0 = args
        i64 = ir.IntType(64)
        lab = context.cast(builder, lab, signature.args[1], types.int64)
        c0 = context.cast(builder, c0, signature.args[4], types.int64)
        for lane in range(signature.args[3].lanes):
            v = builder.extract_element(vec, ir.Constant(ir.IntType(32), lane))
            better = builder.fcmp_ordered("<", v, best)
            best = builder.select(better, v, best)
            lab = builder.select(better, builder.add(c0, ir.Constant(i64, lane)), lab)
            nan = builder.or_(nan, builder.fcmp_unordered("uno", v, v))
        return context.make_tuple(builder, rty, [best, lab, nan])

    return rty(best, lab, nan, a, c0), codegen


@intrinsic
def vselect(typingctx, mask, a, b):
    """``a`` where ``mask`` is set, else ``b``, lane by lane."""
    if not (isinstance(mask, LaneMask) and isinstance(a, Lanes) and a == b and a.lanes == mask.lanes):
        return None

    def codegen(context, builder, signature, args):
        return builder.select(args[0], args[1], args[2])

    return a(mask, a, b), codegen


# -- with NUMBA_DISABLE_JIT=1 kernels run as Python: the same operations on numpy values -----------
def _python_transpose(vector_bytes):
    def transpose(X, row, col, tile, trow, tcol):
        w = vector_bytes // X.itemsize
        tile[trow:trow + w, tcol:tcol + w] = X[row:row + w, col:col + w].T
    return transpose


def _python_lanes(dtype):
    return max(1, NATIVE_VECTOR_BYTES // np.dtype(dtype).itemsize)


if config.DISABLE_JIT:
    transpose_64B = _python_transpose(64)
    transpose_32B = _python_transpose(32)
    transpose_16B = _python_transpose(16)

    def popcount(x):  # noqa: F811
        return int(x).bit_count()

    def lanes_of(ary):  # noqa: F811
        return _python_lanes(ary.dtype)

    def vload(ary, index):  # noqa: F811
        return ary[index:index + _python_lanes(ary.dtype)].copy()

    def vstore(ary, index, value):  # noqa: F811
        ary[index:index + len(value)] = value

    def vfill(value, like):  # noqa: F811
        return np.full(_python_lanes(like.dtype), value, dtype=like.dtype)

    def vfill_labels(value, like):  # noqa: F811
        return np.full(len(like) if like.ndim == 1 else _python_lanes(like.dtype),  # a register or a tile
                       value, dtype=np.int32)

    def vfma(a, b, c):  # noqa: F811
        return a * b + c

    def fmadd(a, b, c):  # noqa: F811
        return a * b + c

    def vmin(a, b):  # noqa: F811
        return np.where(a < b, a, b)

    def vmax(a, b):  # noqa: F811
        return np.where(a > b, a, b)

    def vadd(a, b):  # noqa: F811
        return a + b

    def vless(a, b):  # noqa: F811
        return a < b

    def vfold_first(best, lab, nan, a, c0):  # noqa: F811
        for lane, v in enumerate(a):
            if v < best:
                best, lab = v, c0 + lane
            nan = nan or bool(np.isnan(v))
        return best, lab, nan

    def vunordered(a, b):  # noqa: F811
        return np.isnan(a) | np.isnan(b)

    def vany(m, n):  # noqa: F811
        return m | n

    def vselect(mask, a, b):  # noqa: F811
        return np.where(mask, a, b)
