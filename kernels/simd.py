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
from llvmlite import binding as llvm
from llvmlite import ir
from numba import types
from numba.core import cgutils, config
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
