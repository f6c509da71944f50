"""Compile every Numba kernel ahead of time.

With caching on (the default), compiled kernels are written to the Numba cache: next to the
installed package, or below ``NUMBA_CACHE_DIR``. Run ``segmint.warmup()`` (or
``python -c "import segmint; segmint.warmup()"``) once when building a container image, with
``NUMBA_CACHE_DIR`` pointing at a folder kept in the image, and later processes start warm.
"""
import numpy as np


def warmup(verbose=False):
    """Compile the kernels for float32 and float64, for arrays and for columnar sources.

    Returns
    -------
    float
        Seconds spent (mostly compiling on a cold cache, loading on a warm one).
    """
    import time

    import pyarrow as pa

    from .cluster import KMeans, MiniBatchKMeans

    t0 = time.perf_counter()
    rng = np.random.default_rng(0)
    for dtype in (np.float32, np.float64):
        X = rng.normal(size=(300, 5)).astype(dtype)
        w = np.ones(300)
        table = pa.table({f"x{j}": X[:, j] for j in range(X.shape[1])})
        for data in (X, table):
            km = KMeans(n_clusters=3, random_state=0, max_iter=3).fit(data, sample_weight=w)
            km.predict(data)
            km.score(data)
            mb = MiniBatchKMeans(n_clusters=3, random_state=0, batch_size=64, max_iter=2).fit(data)
            mb.predict(data)
        MiniBatchKMeans(n_clusters=3, random_state=0).partial_fit(X)
    elapsed = time.perf_counter() - t0
    if verbose:
        print(f"segmint kernels ready in {elapsed:.2f} s")
    return elapsed
