"""Explain and judge segments: profiles, choosing k, validation.

:func:`profile` describes each segment (size, revenue, reach, what sets it apart, one line of
words); :func:`sweep_k` fits k-means over a range of k and scores each; :func:`validate` flags
segments too small, too close, unstable or unreachable. ``segments=`` is a column, a fitted
Segmenter, a RuleSet, a table of (id, segment) or per-row labels: see :mod:`.segments`.
"""
from .profile import Profile, profile
from .segments import SegmentBatch, SegmentSource, cli_segments, resolve_segments
from .sweep import Sweep, sweep_k
from .validate import Validation, validate

__all__ = ["profile", "Profile", "sweep_k", "Sweep", "validate", "Validation",
           "SegmentBatch", "SegmentSource", "cli_segments", "resolve_segments"]
