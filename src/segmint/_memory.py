"""Large scratch and result arrays from Arrow's memory pool.

The pool recycles freed memory, so repeated calls (predict in a loop, a service scoring batches,
a nightly aggregation) do not fault fresh pages in from the OS each time, which on virtual
machines can cost more than the work itself. The arrays are ordinary writable numpy arrays that
keep their buffer alive.
"""
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
