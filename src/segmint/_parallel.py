"""Threads for segmint's kernels: one place decides how many and runs the chunks.

Kernels are serial, ``nogil`` Numba functions over one chunk of rows; this module runs
chunks on a shared pool of Python threads. Work is always split into chunks whose number and
bounds depend on the data size only, each chunk writes its own partial result, and callers
combine partials in chunk order, so results are bit-identical whatever the thread count.
Using Python threads rather than Numba's ``parallel=True`` keeps every call safe when several
Python threads use segmint at once (Numba's default ``workqueue`` layer aborts on concurrent
parallel calls) and needs no OpenMP or TBB runtime.

The thread count is ``os.cpu_count()`` unless ``SEGMINT_NUM_THREADS`` is set or
:func:`set_num_threads` is called.
"""
import numbers
import os
import threading
from concurrent.futures import ThreadPoolExecutor

from .errors import ParameterError

# More threads than this buys nothing on any machine, and ordered_map keeps twice the thread
# count of batches in flight: a huge count would read a whole input into memory at once.
MAX_THREADS = 1024

_lock = threading.Lock()
_pool = None
_pool_size = 0
_threads = None


def _default_threads():
    value = os.environ.get("SEGMINT_NUM_THREADS")
    if value:
        return _checked(value, "SEGMINT_NUM_THREADS")
    return min(os.cpu_count() or 1, MAX_THREADS)


def _checked(value, what):
    """``value`` as a thread count in 1..MAX_THREADS, or a ParameterError naming ``what``."""
    n = value
    if isinstance(n, str):  # the environment variable
        text = n.strip()
        n = int(text) if text.isdecimal() and len(text) < 8 else None
    elif isinstance(n, float) and n.is_integer():
        n = int(n)
    elif isinstance(n, bool) or not isinstance(n, numbers.Integral):
        n = None
    if n is None or not 1 <= n <= MAX_THREADS:
        raise ParameterError(f"{what} must be a whole number from 1 to {MAX_THREADS}, "
                             f"got {repr(value)[:40]}")
    return int(n)


def get_num_threads():
    """Threads segmint's kernels use."""
    return _threads if _threads is not None else _default_threads()


def set_num_threads(n):
    """Set the threads segmint's kernels use (results do not depend on it).

    Parameters
    ----------
    n : int
        From 1 to :data:`MAX_THREADS`; anything else raises :class:`~segmint.errors.ParameterError`.
    """
    global _threads
    _threads = _checked(n, "the number of threads")


class threads:
    """Context manager: ``with segmint.threads(1): ...`` runs the block with that many threads."""

    def __init__(self, n):
        self.n = _checked(n, "the number of threads")

    def __enter__(self):
        global _threads
        self._old = _threads
        set_num_threads(self.n)
        return self

    def __exit__(self, *exc):
        global _threads
        _threads = self._old


def _get_pool(n):
    global _pool, _pool_size
    with _lock:
        if _pool is None or _pool_size < n:
            _pool = ThreadPoolExecutor(max_workers=n, thread_name_prefix="segmint")
            _pool_size = n
        return _pool


def chunk_bounds(n, chunk):
    """``[(lo, hi), ...]`` covering ``0..n`` in pieces of ``chunk`` rows (the last may be shorter)."""
    return [(lo, min(n, lo + chunk)) for lo in range(0, n, chunk)]


def run_chunks(func, items, n_threads=None):
    """``[func(item) for item in items]``, on up to ``n_threads`` threads, results in item order."""
    items = list(items)
    n = get_num_threads() if n_threads is None else n_threads
    if n <= 1 or len(items) <= 1 or threading.current_thread().name.startswith("segmint"):
        return [func(item) for item in items]
    pool = _get_pool(n)
    return list(pool.map(func, items))


def ordered_map(func, items, n_threads=None, in_flight=None):
    """Yield ``func(item)`` for each item, in order, computing ahead on the thread pool.

    Items are taken from the iterable as results are consumed, with at most ``in_flight``
    (default twice the thread count) under way, so the caller's own work of producing the
    next item overlaps the workers' computing of earlier ones, and memory stays bounded.
    """
    n = get_num_threads() if n_threads is None else n_threads
    if n <= 1 or threading.current_thread().name.startswith("segmint"):
        for item in items:
            yield func(item)
        return
    pool = _get_pool(n)
    window = in_flight or 2 * n
    pending = []
    for item in items:
        pending.append(pool.submit(func, item))
        if len(pending) >= window:
            yield pending.pop(0).result()
    for fut in pending:
        yield fut.result()
