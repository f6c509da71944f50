import os
import tempfile

# Compiled kernels go to a throw-away folder unless the caller chose one (CI sets it too).
os.environ.setdefault("NUMBA_CACHE_DIR", tempfile.mkdtemp(prefix="segmint-numba-"))
