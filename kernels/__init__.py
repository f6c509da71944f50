"""Numba kernels of segmint.

Only ``@njit`` functions over arrays and scalars live here: no pyarrow, no classes, no
validation. Callers in ``segmint`` validate and prepare inputs; every kernel states the
shape, dtype and direction (IN / OUT / INOUT) of each argument in its docstring.
All Numba options (fastmath set, cache switch, threading) come from :mod:`segmint.kernels.settings`.
"""
