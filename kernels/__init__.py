"""Numba kernels of segmint.

Only ``@njit`` functions over arrays and scalars live here: no pyarrow, no classes, no
validation. Callers in ``segmint`` validate and prepare inputs; every kernel states the
shape, dtype and direction (IN / OUT / INOUT) of each argument in its docstring.
All Numba options (fastmath set, cache switch, threading) come from :mod:`segmint.kernels.settings`.
"""


def _module_names():
    """The kernel modules of this package (``distance``, ``assign``, ...), found on disk."""
    import pkgutil

    return {info.name for info in pkgutil.iter_modules(__path__)}


def __getattr__(name):
    # PEP 562: kernel modules are imported when first used (``import segmint`` loads only the
    # ones scoring needs), yet ``segmint.kernels.distance`` still works as it did when the
    # package imported them all.
    if not name.startswith("_") and name in _module_names():
        import importlib

        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | _module_names())
