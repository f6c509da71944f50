"""The one place for Numba settings of every segmint kernel.

- ``FASTMATH``: the LLVM fast-math flags kernels compile with. ``nnan`` and ``ninf`` are
  deliberately absent: NaN and null are real data here, and under those flags NaN checks
  are folded away. ``EXACT`` (no flags) is for kernels that must round like IEEE/SQL.
- ``CACHE``: on-disk caching of compiled kernels, on unless the environment variable
  ``SEGMINT_NUMBA_CACHE`` is ``0``/``false``/``no``/``off``. Numba writes the cache next to
  the installed sources, or below ``NUMBA_CACHE_DIR`` when that is set.
- :func:`kernel` / :func:`parallel_kernel`: the decorators every kernel uses, so no kernel
  hard-codes an option.
"""
import os

import numba

FASTMATH = frozenset({"nsz", "arcp", "contract", "afn", "reassoc"})

# For kernels whose arithmetic must be exactly IEEE (the rule VM: ``x / 10 > 0.7`` must not
# turn into ``x * 0.1 > 0.7``, nor ``a * b + c`` into a fused multiply-add, or comparisons at
# boundaries would flip). Their loops are elementwise and vectorise without fast-math.
EXACT = frozenset()


def _env_flag(name, default):
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() not in ("0", "false", "no", "off", "")


CACHE = _env_flag("SEGMINT_NUMBA_CACHE", True)


def kernel(*args, **overrides):
    """``numba.njit`` with segmint's options: ``nogil=True``, our fastmath set, the cache switch.

    Use bare (``@kernel``) or with overrides (``@kernel(cache=False)``) for the rare kernel
    that must differ, e.g. one taking a function argument.
    """
    options = dict(nogil=True, fastmath=set(FASTMATH), cache=CACHE, error_model="numpy")
    options.update(overrides)
    return numba.njit(*args, **options)


def parallel_kernel(*args, **overrides):
    """Like :func:`kernel` with ``parallel=True``; work must be split into data-sized chunks."""
    return kernel(*args, **dict(overrides, parallel=True))
