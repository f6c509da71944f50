"""Warm-up of a Dask cluster: every worker compiles segmint's kernels once, or loads them.

Numba compiles a kernel at its first call in each process, which costs seconds per kernel; on a
cluster, that would happen in every worker, inside the first tasks, and make their timings and
the scheduler's estimates wrong. :func:`warmup` runs :func:`segmint.warmup` on every worker
(``Client.run``: outside the task graph, on each worker once) before any work is submitted.
With Numba's cache on disk (``NUMBA_CACHE_DIR``, or beside the installed package), the first
worker to warm up compiles and writes the cache, and every later worker process loads from it
in a fraction of the time; a cluster image that ships a warm cache never compiles.
"""
import os
from typing import NamedTuple

from ._inputs import resolve_client


class WorkerWarmup(NamedTuple):
    """What :func:`warmup` did on one worker.

    Attributes
    ----------
    action : {'loaded', 'compiled'}
        ``'loaded'``: the worker's Numba cache held every kernel signature before the call
        (:func:`segmint.cache_status` said warm), so nothing compiled; ``'compiled'``: some
        kernels were compiled and written to the cache.
    seconds : float
        Time :func:`segmint.warmup` took on the worker.
    cache : str
        The folder holding segmint's compiled kernels on the worker.
    numba_cache_dir : str or None
        The worker's ``NUMBA_CACHE_DIR`` (None: the cache lives beside the installed package).
    before : str
        Why the cache was warm or cold before the call (:attr:`segmint.CacheStatus.reason`).
    """

    action: str
    seconds: float
    cache: str
    numba_cache_dir: object
    before: str


def warmup(client=None):
    """Compile or load segmint's kernels on every worker of ``client``'s cluster, once.

    Call it after the cluster starts and before the first segmint job, so that no task
    compiles on the hot path. Each worker runs :func:`segmint.warmup` (through
    ``Client.run``, outside the task graph); workers that join later are not covered: call it
    again after scaling up (it costs little on a warm worker).

    Parameters
    ----------
    client : distributed.Client, optional
        Default: the current client (``distributed.get_client()``).

    Returns
    -------
    dict
        ``{worker address: WorkerWarmup}``: whether the worker compiled or loaded the kernels,
        how long it took, and where its Numba cache lives. To ship a warm cache in a cluster
        image, run ``NUMBA_CACHE_DIR=/opt/segmint-cache segmint warmup`` while building the
        image, on the workers' CPU type, and set the same ``NUMBA_CACHE_DIR`` on the workers.

    Raises
    ------
    ParameterError
        No client given and none is running.
    """
    client = resolve_client(client)
    return {address: WorkerWarmup(*result) for address, result in sorted(client.run(_warm_worker).items())}


def _warm_worker():
    """On a worker: warm up, saying whether the cache was warm before (plain data for the
    client)."""
    import segmint

    status = segmint.cache_status()  # read from the cache's files, compiles nothing
    # one process per worker: the workers of a machine already compile side by side
    seconds = segmint.warmup(n_jobs=1)
    return ("loaded" if status.warm else "compiled", float(seconds), status.path,
            os.environ.get("NUMBA_CACHE_DIR"), status.reason)
