"""segmint: fast, trustworthy customer segmentation over Arrow data.

The data layer is :func:`segmint.open` (files, tables, DataFrames, arrays) and the atomic
writers; :class:`segmint.KMeans` and :class:`segmint.MiniBatchKMeans` cluster arrays or any
source; :func:`segmint.make_customers` / :func:`segmint.write_customers` generate a seeded
synthetic customer base for demos, tests and benchmarks; :func:`segmint.warmup` compiles the
kernels ahead of time. :func:`segmint.drift` tells who moved between segments and which
features drifted since a snapshot or a model's fit, and ``Segmenter.refit`` refreshes a model
keeping its segment names. A Segmenter, a RuleSet and an RFMScorer save with ``obj.save(path)`` and
come back with :func:`segmint.load`.

``from segmint import *`` leaves out :func:`segmint.open`, which would shadow the builtin
``open``; call it as ``segmint.open``. Importing segmint imports no optional library (pandas,
polars, DuckDB, ...): those load only when data of theirs arrive.
"""
from . import _startup  # noqa: F401  (first: a Ctrl-C while the CLI imports the rest exits 130)
from . import cluster, datasets, errors, events, explain, io, monitor, pipeline, rules
from .explain import Profile, Sweep, Validation, profile, sweep_k, validate
# the function segmint.drift hides the package's name as an attribute of segmint (as
# segmint.profile does segmint.explain.profile's); import its modules by their full names:
# ``from segmint.monitor.psi import psi``
from .monitor.compare import Drift, drift
from .events import RFMScorer, aggregate, btyd_summary, lifecycle_stages, rfm_segments
from ._parallel import get_num_threads, set_num_threads, threads
from ._warmup import warmup
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
    "NotFittedError", "FeatureError", "get_num_threads", "set_num_threads", "threads", "warmup",
    "Segmenter", "FeatureSpec", "FeatureSpecError", "ModelFormatError", "load", "pipeline",
    "events", "aggregate", "btyd_summary", "RFMScorer", "rfm_segments", "lifecycle_stages", "rules",
    "RuleSet", "Segment", "RuleError", "RuleSyntaxError", "RuleTypeError", "RuleSetError",
    "explain", "profile", "Profile", "sweep_k", "Sweep", "validate", "Validation", "write_report",
    "monitor", "drift", "Drift",
]


def write_report(path, profile, *, validation=None, sweep=None, drift=None, title=None, inputs=()):
    """Write one self-contained HTML report of a :class:`Profile` (and a :class:`Validation`, a
    :class:`Sweep`, a :class:`Drift`): see :func:`segmint.report.write_report`. Needs matplotlib
    (``segmint[plot]``), imported only here."""
    from .report import write_report as _write_report
    return _write_report(path, profile, validation=validation, sweep=sweep, drift=drift, title=title,
                         inputs=inputs)
