"""The one place for Numba settings of every segmint kernel.

- ``FASTMATH``: the LLVM fast-math flags kernels compile with. ``nnan`` and ``ninf`` are
  deliberately absent: NaN and null are real data here, and under those flags NaN checks
  are folded away. ``EXACT`` (no flags) is for kernels that must round like IEEE/SQL.
- ``CACHE``: on-disk caching of compiled kernels, on unless the environment variable
  ``SEGMINT_NUMBA_CACHE`` is ``0``/``false``/``no``/``off``. Numba writes the cache next to
  the installed sources, or below ``NUMBA_CACHE_DIR`` when that is set.
- :func:`kernel` / :func:`parallel_kernel`: the decorators every kernel uses, so no kernel
  hard-codes an option (and none pays for a C-callable wrapper it never uses);
  :func:`subroutine` for helpers that only kernels call.
- Start-up: the first kernel a process runs, even from a warm cache, makes Numba load its
  implementations (~130 ms), among them ``numba.np.arraymath``, which asks whether BLAS is
  there by importing ``scipy.linalg`` (another 120-160 ms). :class:`_QuickBlasProbe` answers
  that one question without the import (see there), unless ``SEGMINT_QUICK_BLAS_PROBE`` is
  ``0``/``false``/``no``/``off``.
"""
import importlib.util
import os
import sys

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
    # no_cfunc_wrapper: Numba otherwise builds, for every signature (helpers called from other
    # kernels included), a C-callable wrapper that only a kernel passed as a first-class function
    # value would use; none is. ~4% of a cold warm-up's compile time. (Not no_cpython_wrapper:
    # a kernel without it crashes when called from Python.)
    options = dict(nogil=True, fastmath=set(FASTMATH), cache=CACHE, error_model="numpy", no_cfunc_wrapper=True)
    options.update(overrides)
    return numba.njit(*args, **options)


def subroutine(*args, **overrides):
    """A helper only kernels call, compiled into each caller rather than as a kernel of its own.

    Numba compiles a kernel that another kernel calls through the callee's dispatcher: typed,
    lowered, optimised by LLVM and turned into machine code with a CPython wrapper of its own,
    then optimised again inside the caller. A function given to ``register_jitable`` still goes
    through a dispatcher of its own (machine code included), but without a CPython wrapper, a
    cache entry or a specialisation per literal argument; ``no_cfunc_wrapper`` drops the
    C-callable wrapper too, as in :func:`kernel`. Measured on the rule VM's helpers: -0.35 s of
    a cold warm-up. Called from Python it runs as plain Python, so its slow twin is
    itself. Options as :func:`kernel`'s (``nogil`` and ``cache`` belong to the calling kernel);
    use bare (``@subroutine``) or with overrides (``@subroutine(fastmath=set(EXACT))``).
    """
    from numba.extending import register_jitable

    options = dict(fastmath=set(FASTMATH), error_model="numpy", no_cfunc_wrapper=True)
    options.update(overrides)
    if len(args) == 1 and callable(args[0]) and not overrides:
        return register_jitable(**options)(args[0])
    return register_jitable(**options)


def parallel_kernel(*args, **overrides):
    """Like :func:`kernel` with ``parallel=True``; work must be split into data-sized chunks."""
    return kernel(*args, **dict(overrides, parallel=True))


class _QuickBlasProbe:
    """Lets ``numba.np.arraymath`` learn whether BLAS is there without importing scipy.linalg.

    At its import (inside the first kernel call of a process), ``numba.np.arraymath`` sets
    ``_HAVE_BLAS`` by calling ``numba.np.linalg.ensure_blas``, which imports
    ``scipy.linalg.cython_blas``: 120-160 ms of start-up, for a flag that only decides how
    ``np.dot`` of two 1-D arrays compiles (no segmint kernel calls BLAS). This import hook sees
    ``numba.np.arraymath`` coming and swaps in, for that one call, a probe that asks only
    whether scipy's ``linalg/cython_blas`` extension file is there (:func:`_cython_blas_installed`):
    the same answer as numba's import in a working install. Then numba's
    own ``ensure_blas`` is back: a kernel compiled later that calls BLAS still goes through
    numba's full check (the import, the LAPACK integer width), and the BLAS functions
    themselves are bound by numba's helper library when first called, as always.
    """

    def find_spec(self, name, path=None, target=None):
        if name != "numba.np.arraymath":
            return None
        _remove_hook(self)
        try:
            import numba.np.linalg as linalg
            real = linalg.ensure_blas
        except (ImportError, AttributeError):  # another numba layout: leave it alone
            return None

        def ensure_blas():
            # once: arraymath's question at its import; then numba's own check everywhere
            linalg.ensure_blas = real
            arraymath = sys.modules.get("numba.np.arraymath")
            if arraymath is not None and vars(arraymath).get("ensure_blas") is ensure_blas:
                arraymath.ensure_blas = real
            if not _cython_blas_installed():
                raise ImportError("scipy 0.16+ is required for linear algebra")

        linalg.ensure_blas = ensure_blas
        return None  # the usual finders import the module


def _cython_blas_installed():
    """Whether ``import scipy.linalg.cython_blas`` (numba's own check) would find the module,
    found without importing anything: its compiled extension file is in scipy's folder.

    Checking only that scipy is importable would answer yes for a scipy whose BLAS extension
    is missing or blocked; numba would then compile ``np.dot``/``np.correlate`` of 1-D arrays
    to BLAS calls that fail, instead of its non-BLAS fallback.
    """
    import importlib.machinery

    for name in ("scipy", "scipy.linalg", "scipy.linalg.cython_blas"):
        if name in sys.modules:
            if sys.modules[name] is None:  # import blocked (``sys.modules[name] = None``)
                return False
            if name == "scipy.linalg.cython_blas":
                return True
    try:
        spec = importlib.util.find_spec("scipy")
    except (ImportError, ValueError):
        return False
    if spec is None or not spec.submodule_search_locations:
        return False
    for folder in spec.submodule_search_locations:
        for suffix in importlib.machinery.EXTENSION_SUFFIXES:
            if os.path.isfile(os.path.join(folder, "linalg", "cython_blas" + suffix)):
                return True
    return False


def _remove_hook(hook):
    try:
        sys.meta_path.remove(hook)
    except ValueError:
        pass


if _env_flag("SEGMINT_QUICK_BLAS_PROBE", True) and "numba.np.arraymath" not in sys.modules and not any(
        isinstance(hook, _QuickBlasProbe) for hook in sys.meta_path):
    sys.meta_path.insert(0, _QuickBlasProbe())
