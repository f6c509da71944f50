"""Real-time scoring: one customer's segment in microseconds, in process.

:class:`Scorer` is built once from a fitted :class:`~segmint.Segmenter` (``model.scorer()``)
or a :class:`~segmint.RuleSet`, and then scores records (mappings of column name to scalar)
from any number of threads, with the batch path's results bit for bit. Nothing here imports a
web framework: the HTTP service sits on top of this package.
"""
from .scorer import Score, Scorer

__all__ = ["Score", "Scorer"]
