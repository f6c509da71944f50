"""segmint: fast, trustworthy customer segmentation over Arrow data.

The data layer is :func:`segmint.open` (files, tables, DataFrames, arrays) and the atomic
writers; :class:`segmint.KMeans` and :class:`segmint.MiniBatchKMeans` cluster arrays or any
source; :func:`segmint.make_customers` / :func:`segmint.write_customers` generate a seeded
synthetic customer base for demos, tests and benchmarks; :func:`segmint.warmup` compiles the
kernels ahead of time and :func:`segmint.cache_status` tells, without compiling, whether a
process here would find them compiled. :func:`segmint.drift` tells who moved between segments and which
features drifted since a snapshot or a model's fit, and ``Segmenter.refit`` refreshes a model
keeping its segment names. A Segmenter, a RuleSet and an RFMScorer save with ``obj.save(path)`` and
come back with :func:`segmint.load`.

``from segmint import *`` leaves out :func:`segmint.open`, which would shadow the builtin
``open``; call it as ``segmint.open``. Importing segmint imports no optional library (pandas,
polars, DuckDB, ...): those load only when data of theirs arrive. It also leaves out what a
service that loads a model and scores customers never calls: ``segmint.explain``,
``segmint.monitor`` and ``segmint.events`` (and the names taken from them) are imported at
first use, as are ``pyarrow.compute``/``pyarrow.parquet`` and most kernel modules.
"""
from . import _startup  # noqa: F401  (first: a Ctrl-C while the CLI imports the rest exits 130)
from . import cluster, datasets, errors, io, pipeline, rules
from ._parallel import get_num_threads, set_num_threads, threads
from ._warmup import cache_status, warmup
from .cluster import ConvergenceWarning, FeatureError, KMeans, MiniBatchKMeans, NotFittedError
from .datasets import make_customers, write_customers
from .errors import (CorruptFileError, DataError, DuplicateColumnError, MissingExtraError, OutputError,
                     ParameterError, SegmintError, SourceConsumedError, SourceNotFoundError,
                     UnknownColumnError, UnsupportedTypeError)
from .io import ResultWriter, Source, open, write_table
from .pipeline import FeatureSpec, FeatureSpecError, ModelFormatError, Segmenter
from .persist import load
from .rules import RuleError, RuleSet, RuleSetError, RuleSyntaxError, RuleTypeError, Segment

__version__ = "0.1.0"

# not "open": a star import would shadow the builtin open (segmint.open stays the public name)
__all__ = [
    "Source", "ResultWriter", "write_table", "make_customers", "write_customers",
    "SegmintError", "DataError", "SourceNotFoundError", "CorruptFileError",
    "UnsupportedTypeError", "UnknownColumnError", "DuplicateColumnError", "SourceConsumedError",
    "OutputError", "ParameterError", "MissingExtraError", "ConvergenceWarning", "datasets", "errors", "io", "__version__", "cluster", "KMeans",
    "MiniBatchKMeans",
    "NotFittedError", "FeatureError", "get_num_threads", "set_num_threads", "threads", "warmup", "cache_status",
    "Segmenter", "FeatureSpec", "FeatureSpecError", "ModelFormatError", "load", "pipeline",
    "events", "aggregate", "btyd_summary", "RFMScorer", "rfm_segments", "lifecycle_stages", "rules",
    "RuleSet", "Segment", "RuleError", "RuleSyntaxError", "RuleTypeError", "RuleSetError",
    "explain", "profile", "Profile", "sweep_k", "Sweep", "validate", "Validation", "write_report",
    "monitor", "drift", "Drift", "serve", "Scorer", "Score",
]


# Imported at first use (PEP 562 ``__getattr__``): explaining segments, drift and event logs
# are not on the path of a service that imports segmint, loads a model and scores customers.
# The functions and their packages have different names (segmint.drift is the function,
# segmint.monitor its package), except inside segmint.explain, where the function
# segmint.explain.profile hides the module of that name: import it as
# ``from segmint.explain.profile import ...``.
_LAZY = {
    "explain": ("segmint.explain", None), "Profile": ("segmint.explain", "Profile"),
    "Sweep": ("segmint.explain", "Sweep"), "Validation": ("segmint.explain", "Validation"),
    "profile": ("segmint.explain", "profile"), "sweep_k": ("segmint.explain", "sweep_k"),
    "validate": ("segmint.explain", "validate"),
    "monitor": ("segmint.monitor", None), "Drift": ("segmint.monitor.compare", "Drift"),
    "drift": ("segmint.monitor.compare", "drift"),
    "serve": ("segmint.serve", None), "Scorer": ("segmint.serve", "Scorer"), "Score": ("segmint.serve", "Score"),
    "events": ("segmint.events", None), "RFMScorer": ("segmint.events", "RFMScorer"),
    "aggregate": ("segmint.events", "aggregate"), "btyd_summary": ("segmint.events", "btyd_summary"),
    "lifecycle_stages": ("segmint.events", "lifecycle_stages"), "rfm_segments": ("segmint.events", "rfm_segments"),
}


def __getattr__(name):
    target = _LAZY.get(name)
    if target is None:
        raise AttributeError(f"module 'segmint' has no attribute {name!r}")
    import importlib
    module = importlib.import_module(target[0])
    value = module if target[1] is None else getattr(module, target[1])
    globals()[name] = value  # once: later reads are plain attribute reads
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY))


def write_report(path, profile, *, validation=None, sweep=None, drift=None, title=None, inputs=()):
    """Write one self-contained HTML report of a :class:`Profile` (and a :class:`Validation`, a
    :class:`Sweep`, a :class:`Drift`): see :func:`segmint.report.write_report`. Needs matplotlib
    (``segmint[plot]``), imported only here."""
    from .report import write_report as _write_report
    return _write_report(path, profile, validation=validation, sweep=sweep, drift=drift, title=title,
                         inputs=inputs)
