"""Segments age: who moved where between snapshots, which features drifted since a model's fit,
and refreshes that keep segment names.

- :mod:`.migration`: the migration matrix of two (id, segment) snapshots;
- :mod:`.reference`: reference statistics of a customer table as plain data (a Segmenter
  records them at fit and saves them in its model file);
- :mod:`.psi`: the population stability index, its bands and a sample-size-aware verdict;
- :mod:`.compare`: :func:`segmint.drift` and its :class:`Drift` result, combining the three;
- :mod:`.refit`: :meth:`segmint.Segmenter.refit` (warm start, then matching new clusters to old
  ones) and its :class:`~segmint.monitor.refit.Refit` report.

``segmint.drift`` (the function) and ``segmint.Drift`` come from :mod:`.compare`; this package
is ``segmint.monitor``, imported at first use: ``import segmint`` loads none of it.
"""
