"""Scratch arrays inside kernels: ``np.empty``, ``np.zeros``, a 1-D array's memory as another
type and as read-only, as intrinsics.

Numba compiles ``np.empty(shape, dtype)``, ``np.zeros`` and ``ndarray.view(dtype)`` as
functions of their own, once per argument types *in every kernel that calls them* (a cached
kernel carries its own copy): 41 such compiles in a cold warm-up, ~30 ms each, ~1.4 s in all.
An intrinsic has no compile of its own: it is lowered where it is called. :func:`empty` and
:func:`zeros` emit what numba's own implementations emit (the same NRT allocation, alignment,
negative-dimension and overflow checks, then a ``memset`` for zeros), so a kernel allocates
as it did with ``np.empty`` / ``np.zeros``, but aligned to a cache line (64 bytes, numba's
32): an AVX-512 load from a misaligned tile straddles two lines.

Numba's on-disk cache keys a kernel on its own source file: after editing this module, clear
``__pycache__`` (or ``NUMBA_CACHE_DIR``) so the kernels that use it are compiled again (an
install stamps every file, so users are not affected).
"""
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils, config
from numba.extending import intrinsic


def _array_type(shape, dtype):
    """The array type ``np.empty(shape, dtype)`` gives, or None when the arguments are not a
    shape (an integer or a tuple of them) and a dtype (``np.float64`` or ``x.dtype``)."""
    from numba.np.arrayobj import ty_parse_dtype, ty_parse_shape

    nb_dtype = ty_parse_dtype(dtype)
    ndim = ty_parse_shape(shape)
    if nb_dtype is None or ndim is None:
        return None
    return types.Array(nb_dtype, ndim, "C")


def _cache_line(ty):
    return 64


def _allocator(zero, name):
    def typer(typingctx, shape, dtype):
        result = _array_type(shape, dtype)
        if result is None:
            return None
        sig = result(shape, dtype)

        def codegen(context, builder, signature, args):
            from numba.core.imputils import impl_ret_new_ref
            from numba.np.arrayobj import _empty_nd_impl, _parse_shape

            shapes = _parse_shape(context, builder, signature.args[0], args[0])  # (raises on < 0)
            # 64-byte alignment where numba gives 32: a 64-byte vector load from a tile that
            # straddles cache lines made the assignment micro-kernel 16% slower, by chance of
            # where the allocation landed (numba reads the alignment from the context; lowering
            # runs under numba's compiler lock, so shadowing it for this one call is safe)
            context.get_preferred_array_alignment = _cache_line
            try:
                ary = _empty_nd_impl(context, builder, signature.return_type, shapes)
            finally:
                del context.get_preferred_array_alignment
            if zero:
                cgutils.memset(builder, ary.data, builder.mul(ary.itemsize, ary.nitems), 0)
            return impl_ret_new_ref(context, builder, signature.return_type, ary._getvalue())

        return sig, codegen

    typer.__name__ = typer.__qualname__ = name
    return typer


_ALLOCATOR_DOC = """``np.{0}(shape, dtype)`` inside a kernel (C order), with no compile of its own.

Parameters
----------
shape : int or tuple of int
dtype : a numpy scalar type (``np.float64``) or an array's ``.dtype``; required
"""
empty = intrinsic(_allocator(False, "empty"))
empty.__doc__ = _ALLOCATOR_DOC.format("empty")
zeros = intrinsic(_allocator(True, "zeros"))
zeros.__doc__ = _ALLOCATOR_DOC.format("zeros")


@intrinsic
def as_type(typingctx, raw, dtype):
    """A 1-D C array's memory as another type (``raw.view(dtype)`` for a 1-D contiguous array):
    ``len(raw) * raw.itemsize // dtype.itemsize`` elements, no copy, no checks; read-only when
    ``raw`` is."""
    if not (isinstance(raw, types.Array) and raw.ndim == 1 and raw.layout == "C"
            and isinstance(dtype, types.DTypeSpec) and isinstance(dtype.dtype, types.Number)):
        return None
    result = types.Array(dtype.dtype, 1, "C", readonly=not raw.mutable)
    sig = result(raw, dtype)

    def codegen(context, builder, signature, args):
        from numba.core.imputils import impl_ret_borrowed
        from numba.np.arrayobj import populate_array

        src = context.make_array(signature.args[0])(context, builder, args[0])
        out = context.make_array(signature.return_type)(context, builder)
        intp = context.get_value_type(types.intp)
        size = ir.Constant(intp, context.get_abi_sizeof(context.get_data_type(signature.return_type.dtype)))
        src_size = ir.Constant(intp, context.get_abi_sizeof(context.get_data_type(signature.args[0].dtype)))
        count = builder.udiv(builder.mul(src.nitems, src_size), size)
        populate_array(out, data=builder.bitcast(src.data, out.data.type), shape=[count], strides=[size],
                       itemsize=size, meminfo=src.meminfo, parent=src.parent)
        return impl_ret_borrowed(context, builder, signature.return_type, out._getvalue())

    return sig, codegen


@intrinsic
def frozen(typingctx, a):
    """A 1-D C array as a read-only one (the same memory, no copy): so that a kernel handing
    its own scratch to another kernel calls the variant Python callers use (they pass read-only
    column views) instead of compiling one more."""
    if not (isinstance(a, types.Array) and a.ndim == 1 and a.layout == "C"):
        return None
    result = types.Array(a.dtype, 1, "C", readonly=True)
    sig = result(a)

    def codegen(context, builder, signature, args):
        from numba.core.imputils import impl_ret_borrowed
        return impl_ret_borrowed(context, builder, signature.return_type, args[0])

    return sig, codegen


def _as_buffer(name, make, doc):
    def typer(typingctx, a):
        if not (isinstance(a, types.Array) and a.ndim == 1 and a.layout == "C"):
            return None
        result = make(a)
        if result is None:
            return None

        def codegen(context, builder, signature, args):
            # the buffer types share the array's data model: the same structure, only typed apart
            from numba.core.imputils import impl_ret_borrowed
            return impl_ret_borrowed(context, builder, signature.return_type, args[0])

        return result(a), codegen

    typer.__name__ = name
    typer.__doc__ = doc
    return intrinsic(typer)


as_pyarray = _as_buffer(
    "as_pyarray", lambda a: types.PyArray(a.dtype, 1, "C") if a.dtype == types.float64 else None,
    """A 1-D C float64 array typed as Numba types a Python ``array.array("d")`` (the same memory,
    no copy): so that a kernel passing its own scratch to a kernel Python callers give an
    ``array.array`` calls the variant they compiled (or the cache holds) instead of one more.""")

as_bytes = _as_buffer(
    "as_bytes", lambda a: types.Bytes(types.uint8, 1, "C", readonly=True) if a.dtype == types.uint8 else None,
    """A 1-D C uint8 array typed as Numba types Python ``bytes`` (read-only; the same memory, no
    copy), for the reason :func:`as_pyarray` gives.""")


# -- with NUMBA_DISABLE_JIT=1 kernels run as Python: numpy's own ------------------------------------
if config.DISABLE_JIT:
    def empty(shape, dtype):  # noqa: F811
        return np.empty(shape, dtype)

    def zeros(shape, dtype):  # noqa: F811
        return np.zeros(shape, dtype)

    def as_type(raw, dtype):  # noqa: F811
        return raw.view(dtype)

    def frozen(a):  # noqa: F811
        out = a.view()
        out.flags.writeable = False
        return out

    def as_pyarray(a):  # noqa: F811
        return a

    def as_bytes(a):  # noqa: F811
        return frozen(a)
