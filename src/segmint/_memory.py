"""Large scratch and result arrays from Arrow's memory pool, or in mappings of their own.

The pool recycles freed memory, so repeated calls (predict in a loop, a service scoring batches,
a nightly aggregation) do not fault fresh pages in from the OS each time, which on virtual
machines can cost more than the work itself. The arrays are ordinary writable numpy arrays that
keep their buffer alive. :func:`result_array` is for large results the caller keeps (see there
why they stay out of the pool).
"""
import mmap

import numpy as np
import pyarrow as pa


def pool_array(shape, dtype, fill=None):
    """An uninitialised (or ``fill``-ed) numpy array of ``shape`` whose memory is Arrow's."""
    dtype = np.dtype(dtype)
    shape = (shape,) if np.isscalar(shape) else tuple(shape)
    size = int(np.prod(shape))
    a = np.frombuffer(pa.allocate_buffer(max(1, size) * dtype.itemsize), dtype=dtype)[:size].reshape(shape)
    if fill is not None:
        a.fill(fill)
    return a


def result_array(shape, dtype):
    """An uninitialised numpy array for a large result the caller keeps (an output column).

    Results outlive the call, so the next call cannot reuse their memory and must fault fresh
    pages in. Arrow's pool (mimalloc) asks for transparent huge pages on its arenas; where the
    kernel compacts memory synchronously for them (THP ``defrag=madvise``, a common setting),
    faulting in a 250 MB result cost up to 0.6 s of system time now and then (an event-log
    aggregation of 2M customers ran 0.6 s or 0.95 s by chance). A private anonymous mapping of
    its own gets ordinary pages: a steady cost of a few tens of ms, released when the last view
    of it goes. Small results come from the pool.
    """
    dtype = np.dtype(dtype)
    shape = (shape,) if np.isscalar(shape) else tuple(shape)
    size = int(np.prod(shape))
    nbytes = size * dtype.itemsize
    if nbytes < _MAPPED_RESULT:
        return pool_array(shape, dtype)
    return np.frombuffer(pa.py_buffer(mmap.mmap(-1, nbytes)), dtype=dtype).reshape(shape)


_MAPPED_RESULT = 1 << 22  # bytes from which a result gets a mapping of its own
