"""RFM scores (recency, frequency, monetary value on a 1..bins scale) and the named RFM segments.

:class:`RFMScorer` learns quantile boundaries from one customer table and scores any table
against them, so this quarter's customers can be scored on last quarter's scale.
:func:`rfm_segments` is the classic table of named segments (Champions ... Lost), written as an
ordinary :class:`~segmint.rules.RuleSet` over the scores: readable, editable, extensible.
"""
import json
import numbers
import os

import numpy as np
import pyarrow as pa

from .._estimator import NotFittedError, ParamsMixin
from .._documents import read_document
from .._documents import short_repr as _short
from ..errors import CorruptFileError, DataError, ParameterError, UnsupportedTypeError, unknown_column
from ..io import open as open_source
from ..rules import RuleSet

SCORE_COLUMNS = ("r_score", "f_score", "m_score", "rfm")
MAX_BINS = 127  # scores are int8
_ROLES = ("recency", "frequency", "monetary")
FORMAT = "segmint-rfm-boundaries"  # the "format" of a saved scorer (segmint.load dispatches on it)
_OLD_KIND = "segmint.RFMScorer"     # documents written before "format": {"kind": _OLD_KIND, ...}
_DOC_VERSION = 1


class RFMScorer(ParamsMixin):
    """Score recency, frequency and monetary value from 1 to ``bins`` by quantiles.

    ``fit`` learns, for each of the three columns, ``bins - 1`` boundaries: the
    ``1/bins, 2/bins, ...`` quantiles of the customers' values (the inverted-CDF quantile,
    always one of the values seen, so integer columns get integer boundaries). ``transform``
    scores each value by how many boundaries it beats::

        f_score = 1 + (number of frequency boundaries strictly below the value)
        m_score = 1 + (number of monetary boundaries strictly below the value)
        r_score = 1 + (number of recency boundaries strictly above the value)

    so higher is always better, recency included (5 = bought most recently). On the fitted
    customers this is ``1 + floor(bins * p)`` with ``p`` the share of customers whose value is
    strictly worse: a customer with score 4 of 5 beats at least 60% of the customers.

    Ties. Scores depend on the value only: equal values get equal scores whatever the row
    order, and a tie group gets the score of its lowest-placed member (ties round down). When
    one value holds several quantiles, boundaries coincide and some scores go unused: if 60% of
    customers bought once, the first three frequency boundaries are all 1, so one-time buyers
    get F=1 and two-time buyers jump to F=4 (they beat 60% of customers); F=2 and F=3 stay
    empty. Scores still mean "higher is better" and stay within ``1..bins``. One customer, or
    customers who all share one value, all score 1 (no one is beaten). Values beyond last
    quarter's range score 1 or ``bins``.

    Nulls. Boundaries are learned from the customers who bought (recency not null: the
    aggregation leaves recency null when a customer had no qualifying event), so prospects with
    frequency 0 do not push every buyer's F and M up; within them, null and NaN values are
    skipped. When scoring, a null or NaN value scores 1 (no evidence counts as the lowest
    score): a customer who never bought scores R=1, and typically F=1 and M=1.

    Parameters
    ----------
    bins : int, default 5
        Number of scores, 2 to 127 (5 gives quintiles, 10 deciles).
    recency : str, default 'recency_days'
        Days since the last purchase (lower is better); integers or floats.
    frequency : str, default 'frequency'
        Number of purchases.
    monetary : str, default 'monetary'
        Money spent.

    Attributes
    ----------
    boundaries_ : dict of str to ndarray of float64
        ``{'recency': ..., 'frequency': ..., 'monetary': ...}``, each of length ``bins - 1``;
        frequency and monetary ascending, recency descending (the first recency boundary
        separates R=1 from R=2: the oldest last purchases).
    n_customers_ : int
        Customers the boundaries were learned from (those with a non-null recency).

    Examples
    --------
    >>> import pyarrow as pa
    >>> t = pa.table({"recency_days": [3, 40, 200, 10, 90, None],
    ...               "frequency": [9, 2, 1, 4, 3, 0],
    ...               "monetary": [900.0, 80.0, 15.0, 300.0, 120.0, 0.0]})
    >>> scorer = RFMScorer().fit(t)
    >>> scorer.transform(t).column("rfm").to_pylist()
    ['555', '322', '111', '444', '233', '111']
    >>> scorer.boundaries_["recency"].tolist()   # R=5 needs a last purchase under 10 days ago
    [200.0, 90.0, 40.0, 10.0]
    """

    def __init__(self, bins=5, *, recency="recency_days", frequency="frequency", monetary="monetary"):
        self.bins = bins
        self.recency = recency
        self.frequency = frequency
        self.monetary = monetary

    # -- fitting and scoring -------------------------------------------------------------------
    def fit(self, table, y=None):
        """Learn the quantile boundaries of the three columns.

        Parameters
        ----------
        table : pyarrow.Table or anything :func:`segmint.open` accepts
            One row per customer, e.g. ``segmint.aggregate(...).table``.
        y : ignored

        Returns
        -------
        self

        Raises
        ------
        ValueError
            ``bins`` is not an integer from 2 to 127.
        UnknownColumnError, UnsupportedTypeError
            A column is missing (the message names the closest columns) or not numeric.
        DataError
            No customer has a purchase, or a column has no valid value among those who do.
        """
        bins = self._check_bins()
        table = as_table(table)
        values = self._columns(table)
        buyers = values["recency"][1]
        n_buyers = int(buyers.sum())
        if n_buyers == 0:
            raise DataError(f"cannot learn RFM boundaries from {table.num_rows:,} rows: no customer has "
                            f"a purchase (recency column {self.recency!r} is null or NaN in every row)")
        boundaries = {}
        for role in _ROLES:
            v, ok = values[role]
            sample = v[ok & buyers]
            if sample.size == 0:
                raise DataError(f"cannot learn RFM boundaries: {role} column {getattr(self, role)!r} "
                                f"is null or NaN for all {n_buyers:,} customers with a purchase")
            boundaries[role] = _quantile_boundaries(sample, bins, reverse=role == "recency")
        self.boundaries_ = boundaries
        self.n_customers_ = n_buyers
        return self

    def transform(self, table):
        """Score every row against the fitted boundaries.

        Parameters
        ----------
        table : pyarrow.Table or anything :func:`segmint.open` accepts

        Returns
        -------
        pyarrow.Table
            The input columns, then ``r_score``, ``f_score``, ``m_score`` (int8, never null)
            and ``rfm``: the three scores as one dictionary-encoded string, ``'545'`` for R=5,
            F=4, M=5 (with ``bins`` of 10 or more, joined by dashes: ``'10-4-7'``). Columns of
            the input with these names are replaced.
        """
        self._check_fitted()
        bins = int(self.bins)
        table = as_table(table)
        values = self._columns(table)
        scores = {}
        for role, name in zip(_ROLES, SCORE_COLUMNS):
            v, ok = values[role]
            scores[name] = _score(v, ok, self.boundaries_[role], reverse=role == "recency")
        scores["rfm"] = _rfm_labels(scores["r_score"], scores["f_score"], scores["m_score"], bins)
        for name in SCORE_COLUMNS:
            column = scores[name] if name == "rfm" else pa.array(scores[name], pa.int8())
            at = table.schema.get_field_index(name)
            table = table.set_column(at, name, column) if at >= 0 else table.append_column(name, column)
        return table

    def fit_transform(self, table, y=None):
        """``fit(table)`` then ``transform(table)`` (the table is read once)."""
        table = as_table(table)
        return self.fit(table).transform(table)

    # -- saving boundaries ---------------------------------------------------------------------
    def save(self, path):
        """Write the scorer (parameters and, when fitted, boundaries) to ``path`` as JSON, atomically.

        ``RFMScorer.load(path)`` or ``segmint.load(path)`` reads it back.

        Parameters
        ----------
        path : str or os.PathLike

        Returns
        -------
        path
        """
        from ..io.writers import write_text
        write_text(path, json.dumps(self.to_dict(), indent=1) + "\n")
        return path

    @classmethod
    def load(cls, path):
        """The scorer saved at ``path`` by :meth:`save` (a ``.json``, ``.yaml`` or ``.yml`` file).

        Raises
        ------
        SourceNotFoundError
            No file at ``path``.
        CorruptFileError
            Not UTF-8 JSON/YAML, too large, or not a valid scorer document; the message names
            the file and the field.
        """
        return cls._from_document(read_document(path, "the RFM boundaries", CorruptFileError), path)

    @classmethod
    def _from_document(cls, data, path):
        """:meth:`from_dict` of a document read from ``path``: its complaints name the file."""
        try:
            return cls.from_dict(data)
        except ParameterError as exc:  # the file is what is wrong, not an argument
            raise CorruptFileError(f"{os.fspath(path)}: {exc}") from None

    def to_dict(self):
        """Parameters and learned boundaries as plain JSON-able data (no pickle).

        Returns
        -------
        dict
            ``{"format": "segmint-rfm-boundaries", "version": 1, "bins": 5, "columns": {...},
            "boundaries": {"recency": [...], "frequency": [...], "monetary": [...]},
            "n_customers": ...}``; ``boundaries`` and ``n_customers`` only when fitted.
        """
        out = {"format": FORMAT, "version": _DOC_VERSION, "bins": self.bins,
               "columns": {role: getattr(self, role) for role in _ROLES}}
        if hasattr(self, "boundaries_"):
            out["boundaries"] = {role: [float(b) for b in self.boundaries_[role]] for role in _ROLES}
            out["n_customers"] = int(self.n_customers_)
        return out

    @classmethod
    def from_dict(cls, data):
        """Rebuild a scorer saved with :meth:`to_dict` (fitted if the boundaries are there).

        Documents written before the ``format`` field (``"kind": "segmint.RFMScorer"``) are
        read too.

        Raises
        ------
        ParameterError (a ValueError)
            The document is not a scorer, a field has the wrong type, or its boundaries have
            the wrong length or order, or are not finite numbers.
        """
        if not isinstance(data, dict) or ("format" not in data and "kind" not in data) \
                or data.get("format", FORMAT) != FORMAT or data.get("kind", _OLD_KIND) != _OLD_KIND:
            if not isinstance(data, dict):
                found = f"a {type(data).__name__}"
            elif data.get("kind", _OLD_KIND) != _OLD_KIND:
                found = f"kind {_short(data['kind'])}"
            else:
                found = f"format {_short(data.get('format'))}"
            raise ParameterError(f"not an RFMScorer document: expected a dict with format {FORMAT!r}, "
                                 f"got {found}")
        version = data.get("version")
        if type(version) is not int or version != _DOC_VERSION:
            raise ParameterError(f"RFMScorer document version {_short(version)} is not supported "
                                 f"(this segmint reads version {_DOC_VERSION})")
        unknown = set(data) - {"format", "kind", "version", "bins", "columns", "boundaries", "n_customers"}
        if unknown:
            raise ParameterError(f"unknown keys in the RFMScorer document: "
                                 f"{', '.join(sorted(map(_short, unknown)))}")
        columns = data.get("columns", {})
        if not isinstance(columns, dict) or set(columns) - set(_ROLES):
            raise ParameterError(f"'columns' must map some of {', '.join(_ROLES)} to column names")
        for role, name in columns.items():
            if not isinstance(name, str) or not name:
                raise ParameterError(f"'columns': the {role} column must be a column name (a string), "
                                     f"got {_short(name)}")
        scorer = cls(data.get("bins", 5), **columns)
        bins = scorer._check_bins()
        if "boundaries" in data:
            given = data["boundaries"]
            if not isinstance(given, dict) or set(given) != set(_ROLES):
                raise ParameterError(f"'boundaries' must hold exactly {', '.join(_ROLES)}")
            boundaries = {}
            for role in _ROLES:
                b = given[role]
                if not isinstance(b, (list, tuple)) or len(b) != bins - 1 or not all(
                        isinstance(x, numbers.Real) and not isinstance(x, bool) for x in b):
                    raise ParameterError(f"{role} boundaries must be a list of {bins - 1} numbers for "
                                         f"bins={bins}, got {_short(b)}")
                try:
                    b = np.asarray(b, dtype=np.float64)
                except OverflowError:  # an integer like 10**400 has no float64
                    b = np.full(bins - 1, np.inf)
                if not np.isfinite(b).all():
                    raise ParameterError(f"{role} boundaries must be finite numbers (no NaN, no "
                                         f"infinity, nothing beyond float64), got {_short(given[role])}")
                steps = np.diff(b if role != "recency" else b[::-1])
                if (steps < 0).any():
                    order = "descending" if role == "recency" else "ascending"
                    raise ParameterError(f"{role} boundaries must be {order} numbers, got {_short(given[role])}")
                boundaries[role] = b
            n_customers = data.get("n_customers", 0)
            if type(n_customers) is not int or not 0 <= n_customers < 2 ** 63:
                raise ParameterError(f"'n_customers' must be a count of customers, got {_short(n_customers)}")
            scorer.boundaries_ = boundaries
            scorer.n_customers_ = n_customers
        return scorer

    # -- checks --------------------------------------------------------------------------------
    def _check_bins(self):
        bins = self.bins
        if isinstance(bins, bool) or not isinstance(bins, numbers.Integral) or not 2 <= bins <= MAX_BINS:
            raise ParameterError(f"bins must be an integer from 2 to {MAX_BINS}, got {_short(bins)}")
        return int(bins)

    def _check_fitted(self):
        if not hasattr(self, "boundaries_"):
            raise NotFittedError(f"This {type(self).__name__} instance is not fitted yet. Call 'fit' "
                                 "with a customer table, or load saved boundaries with RFMScorer.load or from_dict, first.")

    def _columns(self, table):
        return {role: numeric_column(table, getattr(self, role), role) for role in _ROLES}




def _quantile_boundaries(sample, bins, reverse):
    """The ``j/bins`` inverted-CDF quantiles, ``j = 1..bins-1`` (descending when ``reverse``).

    Boundary j is the value at sorted position ``ceil(j n / bins) - 1``: the smallest value with
    at least ``j/bins`` of the sample at or below it. Positions use integer arithmetic so that
    no rounding can move a boundary onto a neighbouring value.
    """
    n = sample.size
    ordered = np.sort(sample)
    if reverse:
        ordered = ordered[::-1]
    j = np.arange(1, bins, dtype=np.int64)
    return ordered[(j * n + bins - 1) // bins - 1].astype(np.float64)


def _score(values, valid, boundaries, reverse):
    """``1 +`` the number of boundaries the value beats; invalid values score 1."""
    if reverse:
        ascending = boundaries[::-1]
        beaten = ascending.size - np.searchsorted(ascending, values, side="right")
    else:
        beaten = np.searchsorted(boundaries, values, side="left")
    return np.where(valid, beaten + 1, 1).astype(np.int8)


def _rfm_labels(r, f, m, bins):
    """The scores as one dictionary string column; the dictionary holds only the cells present."""
    codes = (r.astype(np.int32) - 1) * bins * bins + (f.astype(np.int32) - 1) * bins + (m - 1)
    # codes are bounded by bins**3, so marking the cells present is linear where np.unique sorts
    present = np.zeros(bins ** 3, dtype=bool)
    present[codes] = True
    cells = np.flatnonzero(present)
    position = np.cumsum(present, dtype=np.int32) - 1
    sep = "" if bins <= 9 else "-"
    labels = [f"{c // (bins * bins) + 1}{sep}{c // bins % bins + 1}{sep}{c % bins + 1}" for c in cells.tolist()]
    return pa.DictionaryArray.from_arrays(pa.array(position[codes]), pa.array(labels, pa.string()))


# -- the named segments ----------------------------------------------------------------------
# R against FM, the mean of F and M, on the 1..5 grid. FM moves in half steps; band b holds
# b <= FM < b + 1, so FM 1.5 (one of F, M is 2) still counts as low.
#
#            FM < 2          2 <= FM < 3     3 <= FM < 4     4 <= FM < 5     FM = 5
#   R = 5    New Customers   Potential L.    Potential L.    Champions       Champions
#   R = 4    Promising       Potential L.    Potential L.    Loyal           Loyal
#   R = 3    About to Sleep  About to Sleep  Need Attention  Loyal           Loyal
#   R = 2    Hibernating     Hibernating     At Risk         At Risk         Can't Lose Them
#   R = 1    Lost            Hibernating     At Risk         At Risk         Can't Lose Them
#
# The rules do not overlap, so the waterfall order matters only once a user adds rules.
_FM = "(f_score + m_score) / 2"
_SEGMENTS = (
    ("Champions", f"r_score = 5 and {_FM} >= 4",
     "Bought very recently, buy often and spend the most.",
     "Reward them; early access and new products; ask for reviews and referrals."),
    ("Loyal Customers", f"r_score between 3 and 4 and {_FM} >= 4",
     "Buy often and spend well, and bought fairly recently.",
     "Upsell higher-value products; loyalty programme; ask for feedback."),
    ("Potential Loyalists", f"r_score >= 4 and {_FM} >= 2 and {_FM} < 4",
     "Recent customers with average frequency and spend.",
     "Offer membership or a loyalty programme; recommend related products."),
    ("New Customers", f"r_score = 5 and {_FM} < 2",
     "Bought most recently, but rarely and for little so far.",
     "Onboarding; make the first weeks count; build the relationship early."),
    ("Promising", f"r_score = 4 and {_FM} < 2",
     "Bought recently, but rarely and for little.",
     "Build awareness of the range; a modest offer to bring them back."),
    ("Need Attention", f"r_score = 3 and {_FM} >= 3 and {_FM} < 4",
     "Average recency, frequency and spend: could go either way.",
     "Limited-time offers and recommendations based on past purchases."),
    ("About to Sleep", f"r_score = 3 and {_FM} < 3",
     "Below-average recency, frequency and spend: drifting away.",
     "Share popular products and discounts; reconnect before they lapse."),
    ("At Risk", f"r_score <= 2 and {_FM} >= 3 and {_FM} < 5",
     "Bought often and spent well, but a long time ago.",
     "Personalised win-back messages, renewals, helpful resources."),
    ("Can't Lose Them", f"r_score <= 2 and {_FM} >= 5",
     "Were among the best customers (most orders, most spend) but have not bought for a long time.",
     "Win them back with new products or a strong offer; talk to them; do not lose them to a competitor."),
    ("Hibernating", f"r_score <= 2 and {_FM} < 3 and (r_score = 2 or {_FM} >= 2)",
     "Last purchase long ago, few orders and low spend.",
     "Offer other relevant products and special discounts; recreate brand value."),
    ("Lost", f"r_score = 1 and {_FM} < 2",
     "Lowest recency, frequency and spend.",
     "A single reactivation attempt at most; otherwise leave them out of campaigns."),
)
DEFAULT_SEGMENT = "Other"


def rfm_segments():
    """The named RFM segments as a rule set over ``r_score``, ``f_score`` and ``m_score``.

    The widely used grid of recency against the mean of frequency and monetary scores,
    ``FM = (f_score + m_score) / 2``, on 1..5 scores (``RFMScorer(bins=5)``). FM moves in half
    steps; each FM band is closed below and open above, so ``FM < 2`` holds 1 and 1.5::

                   FM < 2          2 <= FM < 3     3 <= FM < 4     4 <= FM < 5     FM = 5
          R = 5    New Customers   Potential L.    Potential L.    Champions       Champions
          R = 4    Promising       Potential L.    Potential L.    Loyal Cust.     Loyal Cust.
          R = 3    About to Sleep  About to Sleep  Need Attention  Loyal Cust.     Loyal Cust.
          R = 2    Hibernating     Hibernating     At Risk         At Risk         Can't Lose Them
          R = 1    Lost            Hibernating     At Risk         At Risk         Can't Lose Them

    The rules cover every cell of the 5 x 5 x 5 grid exactly once; rows with a null or
    out-of-range score (e.g. from a scorer with ``bins`` other than 5) go to the default
    segment ``'Other'``. Each segment carries a ``description`` (who they are) and a
    ``purpose`` (the usual action).

    Returns
    -------
    RuleSet
        A new waterfall rule set named ``'rfm_segments'`` (each call returns a fresh copy).

    Examples
    --------
    Read it, edit it, add to it:

    >>> rules = rfm_segments()
    >>> rules.names[:3]
    ['Champions', 'Loyal Customers', 'Potential Loyalists']
    >>> doc = rules.to_dict()              # plain data: save as JSON or YAML
    >>> doc["segments"].insert(0, {"name": "VIP", "rule": "m_score = 5 and f_score = 5"})
    >>> RuleSet.from_dict(doc).names[:2]
    ['VIP', 'Champions']
    """
    segments = [{"name": name, "rule": rule, "description": who, "purpose": action}
                for name, rule, who, action in _SEGMENTS]
    return RuleSet(segments, mode="waterfall", default=DEFAULT_SEGMENT, name="rfm_segments")


# -- shared with lifecycle.py ------------------------------------------------------------------
def as_table(data):
    """A pyarrow Table from a Table, a RecordBatch or anything :func:`segmint.open` accepts."""
    if isinstance(data, pa.Table):
        return data
    if isinstance(data, pa.RecordBatch):
        return pa.Table.from_batches([data])
    return open_source(data).read()


def numeric_column(table, name, role, where="the customer table"):
    """``(values, valid)`` of a numeric column: float64 values and a mask of non-null, non-NaN rows."""
    if name not in table.column_names:
        raise unknown_column(name, table.column_names, where)
    column = table.column(name)
    t = column.type
    if not (pa.types.is_integer(t) or pa.types.is_floating(t)):
        raise UnsupportedTypeError(f"the {role} column {name!r} must hold numbers (integers or floats), "
                                   f"got {t}")
    array = column.combine_chunks()
    valid = array.is_valid().to_numpy(zero_copy_only=False)
    values = array.fill_null(0).to_numpy(zero_copy_only=False).astype(np.float64)
    if pa.types.is_floating(t):
        valid &= ~np.isnan(values)
    return values, valid
