"""Feature specs: which columns to cluster on, and how each becomes numbers.

The package follows the seams of the design: :mod:`.parse` (the spec's keys and per-column
objects), :mod:`.spec` (the :class:`FeatureSpec` estimator), :mod:`.stats` (one-pass
statistics), :mod:`.plans` (fitted statistics turned into kernel parameters), :mod:`.checks`
(type and value checks, errors naming every offending column) and :mod:`.state` (fitted
state as plain data, and the checks of a saved one).

A :class:`FeatureSpec` is a list of per-column specs, each a plain dict (so a spec is JSON):

``{"column": "monetary", "log1p": True, "clip": [0.01, 0.99], "scale": "robust", "impute": "median", "indicator": True}``
    A numeric column (integers, floats or booleans). Keys and defaults:

    - ``log1p`` (False): replace ``x`` by ``log1p(x)``; values must be >= 0.
    - ``clip`` (None): ``[low, high]`` quantiles, ``0 <= low < high <= 1``: values below the
      ``low`` quantile become that quantile, likewise above ``high``.
    - ``scale`` ("standard"): ``"standard"`` (subtract the mean, divide by the standard
      deviation, ddof 0), ``"robust"`` (subtract the median, divide by the interquartile
      range) or None (no scaling). A constant column (std or IQR 0) gets scale 1.
    - ``impute`` (None): ``"median"`` or a number to put in place of nulls; without it a
      null is an error.
    - ``indicator`` (False): add a column ``<column>__missing``, 1.0 where the value was null
      (needs ``impute``).

    A plain string ``"monetary"`` is short for ``{"column": "monetary"}`` (standard scaling).

``{"column": "region", "one_hot": True, "max_categories": 10, "null": "indicator"}``
    A string column, one output column per category. The ``max_categories`` most frequent
    categories at fit (ties broken by name, in Python's string order) get a column each;
    the others, and categories never seen at fit, go to ``<column>__other``. ``null``
    chooses what a null is: ``"indicator"`` (default) a column ``<column>__missing``;
    ``"other"`` counted as other; ``"error"`` an error. The ``__other`` column, and the
    ``__missing`` column under ``"indicator"``, are always present, so the output's columns
    depend on the spec and on the categories kept, never on whether a batch holds nulls or
    rare values.

Per numeric column the steps run in this order: impute, log1p, clip, scale; each step's
statistics are those of the previous step's output (as in a scikit-learn Pipeline), so clip
quantiles include imputed values and are in log1p units when ``log1p`` is on. NaN and
infinite values are errors, as nulls without ``impute`` are (Arrow keeps NaN apart from null:
make them nulls to impute them); every offending column and its count are reported at once.

Output columns follow the spec's order; a numeric column keeps its name (then
``<column>__missing`` when ``indicator``); a one-hot column gives ``<column>=<category>``
for the kept categories, most frequent first, then ``<column>__other``, then
``<column>__missing``.

Fitting reads the data once, batch by batch, in bounded memory:

- counts, nulls, min, max, and the mean and variance of the (log1p'd) values, merged over
  blocks of ``BLOCK_ROWS`` rows with Chan's update: exact up to rounding, and bit-identical
  for every batch size, since blocks follow the rows, not the batches;
- for columns that need quantiles (median imputation, clipping, robust scaling), a sample of
  at most ``sample_size`` values (default 100,000): the valid rows with the smallest
  pseudo-random priorities, a fixed function of the row's index. It is the whole column when
  the column has at most ``sample_size`` valid values, and then every statistic is exact;
  above that, quantiles have a rank error of about ``sqrt(q (1 - q) / sample_size)``
  (0.16 % of the rows at the median for the default). The same rows in the same order give
  the same sample, whatever the batch size or the format.
- Statistics that one pass cannot give exactly come from the sample: the median used for
  imputation, quantiles for clipping and robust scaling, and the mean and standard deviation
  of *clipped* values (the clip bounds are known only at the end of the pass). Nulls enter
  these as the imputed value, in proportion to their count. Given the clip bounds, the
  sample's standard deviation is off by about ``sqrt((kurtosis - 1) / (4 sample_size))``
  (relative): 0.8 % for clipped log-normal spend with sigma 2 at the default size, 0.2 %
  after log1p. Mean and standard deviation without clipping come from the exact streaming
  moments.
- Integers are read as float64 (exact up to 2**53).
- For one-hot columns, the count of every category (memory: one count per distinct string).

Transforming applies the fitted statistics with a Numba kernel in exact IEEE float64
arithmetic (no fast-math), rounded once to the output dtype: the same input gives the same
bits, also after :meth:`FeatureSpec.to_dict` / :meth:`FeatureSpec.from_dict`.
"""
from .parse import (DEFAULT_MAX_CATEGORIES, DEFAULT_SAMPLE_SIZE, FORMAT, NULL_MODES, SCALES, VERSION,
                    FeatureSpecError, NumericFeature, OneHotFeature)
from .spec import FeatureSpec
from .stats import BLOCK_ROWS

__all__ = ["FeatureSpec", "FeatureSpecError", "NumericFeature", "OneHotFeature", "BLOCK_ROWS",
           "DEFAULT_SAMPLE_SIZE", "DEFAULT_MAX_CATEGORIES", "FORMAT", "VERSION", "SCALES", "NULL_MODES"]
