"""The one Numba settings module: flags, cache switch, nogil."""
import os
import subprocess
import sys

import numpy as np

from segmint.kernels import settings


def test_fastmath_never_assumes_no_nan_or_inf():
    assert "nnan" not in settings.FASTMATH and "ninf" not in settings.FASTMATH
    assert "fast" not in settings.FASTMATH


def test_kernel_decorator_keeps_nan_checks():
    @settings.kernel
    def count_nan(x):
        n = 0
        for v in x:
            if np.isnan(v):
                n += 1
        return n

    assert count_nan(np.array([1.0, np.nan, np.inf, np.nan])) == 2
    assert count_nan.targetoptions["nogil"] is True


def test_cache_switch_from_environment():
    code = "from segmint.kernels import settings; print(settings.CACHE)"
    for value, expected in (("0", "False"), ("off", "False"), ("1", "True")):
        env = dict(os.environ, SEGMINT_NUMBA_CACHE=value)
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
        assert out.stdout.strip() == expected
