"""segmint on a Dask cluster: fits, predictions, scoring, profiles and event aggregation beyond one machine.

Needs the ``dask`` extra (``pip install 'segmint[dask]'``: dask and distributed); ``import
segmint`` never imports it. Every function takes ``client=`` (default: the current
``distributed`` client) and cuts its input into chunks of fixed global row ranges
(:mod:`segmint.dask.chunks`), so results are the same bits for any number of workers, threads
and partitions, and equal to local segmint on the same data.
"""
import importlib

from ..errors import MissingExtraError

try:
    import dask  # noqa: F401
    import distributed  # noqa: F401
except ImportError as e:  # pragma: no cover - exercised without the extra
    raise MissingExtraError(f"segmint.dask needs the dask extra ({e.name} is missing): "
                            "pip install 'segmint[dask]'") from None

# public name -> the module defining it (imported on first use)
_PUBLIC = {
    "fit": "cluster", "predict": "cluster",
    "aggregate": "events", "btyd_summary": "events",
    "score": "scoring", "ScoreResult": "scoring", "warmup": "warm", "WorkerWarmup": "warm",
    "profile": "profiling",  # not "profile.py": importing that submodule would shadow the function
    "parquet_chunks": "chunks", "read_chunk": "chunks", "Chunk": "chunks", "CHUNK_ROWS": "chunks",
}

__all__ = sorted(_PUBLIC)


def __getattr__(name):
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'segmint.dask' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_PUBLIC))
