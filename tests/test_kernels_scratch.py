"""segmint.kernels.scratch: the allocation and view intrinsics against numpy's own functions."""
from array import array

import numba
import numpy as np
import pytest

from segmint.kernels.scratch import as_bytes, as_pyarray, as_type, empty, frozen, zeros


@numba.njit
def _allocate(n, m, fill):
    a = zeros((n, m), np.float32)
    b = empty(n * m + 1, np.int64)
    c = zeros(n, np.uint8)
    b[:] = fill
    return a, b, c


@numba.njit
def _addresses(count):
    out = np.empty(2 * count, np.int64)
    keep_a, keep_b = [], []
    for i in range(count):
        a = empty((i % 7 + 1, 3), np.float32)
        b = zeros(i % 5 + 1, np.float64)
        out[2 * i], out[2 * i + 1] = a.ctypes.data, b.ctypes.data
        keep_a.append(a)  # all alive at once: the allocator cannot hand the same block back
        keep_b.append(b)
    return out


@numba.njit
def _as_type(raw):
    return as_type(raw, np.int32), as_type(frozen(raw), np.uint8)


@pytest.mark.parametrize("n,m", [(0, 0), (0, 3), (1, 1), (3, 5), (17, 129)])
def test_empty_and_zeros_match_numpy(n, m):
    a, b, c = _allocate(n, m, -3)
    expected = np.zeros((n, m), np.float32)
    assert a.shape == expected.shape and a.dtype == expected.dtype and a.flags.c_contiguous
    assert (a == 0).all()
    assert b.shape == (n * m + 1,) and b.dtype == np.int64 and (b == -3).all()
    assert c.shape == (n,) and c.dtype == np.uint8 and (c == 0).all()


def test_scratch_is_aligned_to_a_cache_line():
    # numba's own np.empty aligns to 32 bytes; an AVX-512 load must not straddle two lines
    assert set((_addresses(300) % 64).tolist()) == {0}


def test_negative_size_raises_like_numpy():
    with pytest.raises(ValueError):
        np.empty(-1)
    with pytest.raises(ValueError):
        _allocate(-1, 2, 0)


@pytest.mark.parametrize("dtype", [np.float64, np.int64, np.uint8])
@pytest.mark.parametrize("n", [0, 1, 8, 13])
def test_as_type_and_frozen_are_numpy_views(dtype, n):
    raw = np.arange(n * 8, dtype=np.uint8).view(dtype) if n else np.empty(0, dtype)
    ints, octets = _as_type(raw)
    whole = raw.view(np.uint8)
    np.testing.assert_array_equal(ints, whole[:len(whole) // 4 * 4].view(np.int32))
    np.testing.assert_array_equal(octets, whole)
    # read-only is a property of the numba type (boxing may hand back the writable parent)
    result = _as_type.nopython_signatures[-1].return_type
    assert result[0].mutable and not result[1].mutable
    if n:  # the same memory: no copy
        assert ints.ctypes.data == raw.ctypes.data == octets.ctypes.data


@numba.njit
def _read_buffers(values, states):
    total = 0.0
    for i in range(len(values)):
        total += values[i] * (i + 1)
    weighted = 0
    for i in range(len(states)):
        weighted += states[i] * (i + 1)
    return total, weighted, len(values), len(states)


@numba.njit
def _through_buffers(values, states):
    return _read_buffers(as_pyarray(values), as_bytes(states))


@pytest.mark.parametrize("n", [0, 1, 7, 64])
def test_as_pyarray_and_as_bytes_call_the_python_callers_variant(n):
    rng = np.random.default_rng(n)
    values = rng.normal(size=n)
    states = rng.integers(0, 3, size=n + 2, dtype=np.uint8)
    expected = _read_buffers(array("d", values.tolist()), bytes(states.tolist()))
    assert _through_buffers(values, states) == expected
    # the callee compiled once: the types Python gives array.array("d") and bytes
    assert _read_buffers.signatures == [(numba.typeof(array("d")), numba.typeof(b""))]


@pytest.mark.parametrize("dtype", [np.float32, np.int64])
def test_as_pyarray_takes_float64_only(dtype):
    @numba.njit
    def view(a):
        return len(as_pyarray(a))

    with pytest.raises(numba.core.errors.TypingError):
        view(np.zeros(3, dtype))
