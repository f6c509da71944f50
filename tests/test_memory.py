"""segmint._memory: scratch from Arrow's pool, large results in mappings of their own."""
import gc
import weakref

import numpy as np
import pyarrow as pa
import pytest

from segmint._memory import _MAPPED_RESULT, pool_array, result_array


@pytest.mark.parametrize("make", [pool_array, result_array])
@pytest.mark.parametrize("shape,dtype", [(0, np.int64), (1, np.uint8), ((3, 5), np.float32),
                                         ((2, _MAPPED_RESULT // 8 + 3), np.float64), (_MAPPED_RESULT, np.int8)])
def test_arrays_are_writable_numpy_arrays_of_the_shape_asked(make, shape, dtype):
    a = make(shape, dtype)
    expected = np.zeros(shape, dtype)
    assert a.shape == expected.shape and a.dtype == expected.dtype and a.flags.c_contiguous
    assert a.flags.writeable
    a[...] = 7
    assert (a == 7).all()
    # Arrow takes the memory without a copy
    if a.size:
        assert pa.array(a.reshape(-1)).buffers()[1].address == a.ctypes.data


def test_a_large_result_lives_in_its_own_mapping_while_referenced():
    n = _MAPPED_RESULT // 8 * 2
    pool = pa.default_memory_pool().bytes_allocated()
    a = result_array(n, np.float64)
    assert pa.default_memory_pool().bytes_allocated() < pool + a.nbytes  # not the pool's memory
    a[:] = np.arange(n)
    column = pa.array(a)  # zero-copy: the column keeps the mapping alive
    del a
    gc.collect()
    assert column[n - 1].as_py() == n - 1 and column.sum().as_py() == n * (n - 1) / 2
    probe = weakref.ref(column)
    del column
    gc.collect()
    assert probe() is None


def test_small_results_come_from_the_pool():
    a = result_array(16, np.int64)
    assert a.nbytes < _MAPPED_RESULT
    pool = pa.default_memory_pool().bytes_allocated()
    b = result_array(1024, np.int64)
    assert pa.default_memory_pool().bytes_allocated() >= pool + b.nbytes
