"""Lifecycle stages of customers: new, active, at risk, lapsed, lost, and won back.

Stages come from day thresholds on the days since the last purchase, or, in adaptive mode,
from each customer's own rhythm: a customer who buys every week is at risk sooner than one who
buys twice a year.
"""
import numbers

import numpy as np
import pyarrow as pa

from .._lazy import lazy_import
from ..errors import DataError, ParameterError, closest_names, unknown_column
from .rfm import as_table, numeric_column

pc = lazy_import("pyarrow.compute")  # on first use: see segmint._lazy

STAGES = ("prospect", "new", "active", "reactivated", "at_risk", "lapsed", "lost")
PROSPECT, NEW, ACTIVE, REACTIVATED, AT_RISK, LAPSED, LOST = range(len(STAGES))
#: Previous stages from which a return counts as a reactivation.
WON_BACK_FROM = ("lapsed", "lost")
STAGE_TYPE = pa.dictionary(pa.int8(), pa.string())


def lifecycle_stages(table, *, new_days=30, active_days=90, at_risk_days=180, lapsed_days=365,
                     adaptive=False, gap_multiples=(2.0, 4.0, 8.0), min_gap_days=7.0,
                     previous=None, id_column=None, previous_stage="lifecycle_stage",
                     recency="recency_days", tenure="tenure_days", mean_gap="mean_gap_days"):
    """The lifecycle stage of every customer.

    With ``r`` the days since the last purchase (``recency``) and ``t`` the days since the
    customer was first seen (``tenure``), the stage is the first that applies:

    ============  ==============================================================
    prospect      no purchase at all (recency null or NaN)
    new           ``t <= new_days``: first seen recently (whatever ``r``)
    active        ``r <= active_days``
    at_risk       ``active_days < r <= at_risk_days``
    lapsed        ``at_risk_days < r <= lapsed_days``
    lost          ``r > lapsed_days``
    reactivated   with ``previous``: now new or active, and ``lapsed`` or ``lost`` in the
                  previous snapshot (see below)
    ============  ==============================================================

    Each threshold is the last day of its stage (a customer whose last purchase is exactly
    ``active_days`` old is still active). Equal thresholds switch a stage off: with
    ``at_risk_days == lapsed_days`` nobody is lapsed.

    Adaptive mode replaces the three recency thresholds of each customer by multiples of that
    customer's mean gap between purchases, ``g = mean_gap_days``: active while
    ``r <= gap_multiples[0] * g``, at risk up to ``gap_multiples[1] * g``, lapsed up to
    ``gap_multiples[2] * g``. Gaps shorter than ``min_gap_days`` count as ``min_gap_days``, so
    a burst of orders on one day does not make its buyer lost a week later. Customers without
    a gap (null or NaN: fewer than two purchases) keep the fixed thresholds. ``new_days``
    applies in both modes.

    Parameters
    ----------
    table : pyarrow.Table or anything :func:`segmint.open` accepts
        One row per customer, e.g. ``segmint.aggregate(...).table``.
    new_days : int or float or None, default 30
        New while first seen at most this many days ago; None: no ``new`` stage. Tenure counts
        from the first event of any kind (as ``aggregate`` computes it); to count from the
        first purchase, pass such a column as ``tenure``. A null tenure is not new.
    active_days, at_risk_days, lapsed_days : int or float, default 90, 180, 365
        The last day (since the last purchase) of the active, at-risk and lapsed stages;
        non-negative and non-decreasing.
    adaptive : bool, default False
        Use each customer's own mean gap between purchases (see above).
    gap_multiples : three numbers, default (2.0, 4.0, 8.0)
        Adaptive mode: the active, at-risk and lapsed thresholds in mean gaps; positive and
        non-decreasing.
    min_gap_days : float, default 7.0
        Adaptive mode: the shortest gap used.
    previous : pyarrow.Table or anything :func:`segmint.open` accepts, optional
        The previous snapshot: ``id_column`` and ``previous_stage`` columns, e.g. the result of
        an earlier call. A customer is ``reactivated`` when its stage now is ``new`` or
        ``active`` and its previous stage was ``lapsed`` or ``lost``. A customer absent from
        the previous snapshot, or whose previous stage is null, is not reactivated. A customer
        previously ``at_risk`` who buys again is ``active``: it returned before lapsing. A
        ``reactivated`` customer becomes ``active`` at the next snapshot, unless it lapses again.
    id_column : str, optional
        The customer id column (integers or strings), copied into the result; needed with
        ``previous``, whose rows are matched on it.
    previous_stage : str, default 'lifecycle_stage'
        The stage column of ``previous``.
    recency, tenure, mean_gap : str
        Column names: days since the last purchase (null when none), days since first seen,
        mean days between purchases (read in adaptive mode only). Defaults: ``recency_days``,
        ``tenure_days``, ``mean_gap_days``.

    Returns
    -------
    pyarrow.Table
        ``id_column`` (when given) and ``lifecycle_stage``: dictionary-encoded strings whose
        dictionary is always ``STAGES`` in this order: prospect, new, active, reactivated,
        at_risk, lapsed, lost. It is never null.

    Raises
    ------
    ValueError
        A threshold is negative or the thresholds decrease, or ``previous`` comes without
        ``id_column``.
    UnknownColumnError, UnsupportedTypeError
        A column is missing (the message names the closest columns) or not numeric.
    DataError
        ``previous`` holds unknown stage names or repeated ids, or its ids do not have the
        type of the current ids.

    Examples
    --------
    >>> import pyarrow as pa
    >>> now = pa.table({"id": [1, 2, 3, 4, 5], "recency_days": [5, 100, 400, None, 3],
    ...                 "tenure_days": [10, 500, 900, 20, 700]})
    >>> lifecycle_stages(now, id_column="id").column("lifecycle_stage").to_pylist()
    ['new', 'at_risk', 'lost', 'prospect', 'active']
    >>> before = pa.table({"id": [5], "lifecycle_stage": ["lapsed"]})
    >>> lifecycle_stages(now, id_column="id", previous=before).column("lifecycle_stage").to_pylist()
    ['new', 'at_risk', 'lost', 'prospect', 'reactivated']
    """
    thresholds = _check_days(new_days, active_days, at_risk_days, lapsed_days)
    if adaptive:
        multiples, min_gap = _check_adaptive(gap_multiples, min_gap_days)
    if previous is not None and id_column is None:
        raise ParameterError("a previous snapshot is matched on customer ids: pass id_column= as well")
    table = as_table(table)
    if id_column is not None and id_column not in table.column_names:
        raise unknown_column(id_column, table.column_names, "the customer table")
    r, bought = numeric_column(table, recency, "recency")
    limits = [np.full(r.size, d, dtype=np.float64) for d in thresholds[1:]]
    if adaptive:
        gap, has_gap = numeric_column(table, mean_gap, "mean gap")
        gap = np.maximum(gap, min_gap)
        for limit, k in zip(limits, multiples):
            np.copyto(limit, k * gap, where=has_gap)
    stage = np.full(r.size, LOST, dtype=np.int8)
    # from the loosest threshold to the tightest: each later assignment overrides
    for code, limit in ((LAPSED, limits[2]), (AT_RISK, limits[1]), (ACTIVE, limits[0])):
        stage[r <= limit] = code
    if thresholds[0] is not None:
        t, t_ok = numeric_column(table, tenure, "tenure")
        stage[t_ok & (t <= thresholds[0])] = NEW
    stage[~bought] = PROSPECT
    if previous is not None:
        before = _previous_stages(table.column(id_column), as_table(previous), id_column, previous_stage)
        won_back = np.isin(before, [STAGES.index(s) for s in WON_BACK_FROM])
        stage[won_back & ((stage == NEW) | (stage == ACTIVE))] = REACTIVATED
    column = pa.DictionaryArray.from_arrays(pa.array(stage, pa.int8()), pa.array(STAGES, pa.string()))
    if id_column is None:
        return pa.table({"lifecycle_stage": column})
    return pa.Table.from_arrays([table.column(id_column), pa.chunked_array([column], STAGE_TYPE)],
                                names=[id_column, "lifecycle_stage"])


def _previous_stages(ids, previous, id_column, stage_column):
    """Each current customer's previous stage code, -1 when absent or null."""
    where = "the previous snapshot"
    for name in (id_column, stage_column):
        if name not in previous.column_names:
            raise unknown_column(name, previous.column_names, where)
    now_ids, before_ids = _comparable_ids(ids, previous.column(id_column), id_column)
    if now_ids is None:  # a column of nulls only (Arrow type null): nobody can match
        return np.full(len(ids), -1, dtype=np.int64)
    non_null = len(before_ids) - before_ids.null_count
    if non_null and pc.count_distinct(before_ids).as_py() != non_null:
        counts = pc.value_counts(before_ids.drop_null())
        repeated = [str(v) for v, c in zip(counts.field("values").to_pylist(),
                                          counts.field("counts").to_pylist()) if c > 1]
        raise DataError(f"{where} lists some customers more than once in {id_column!r} "
                        f"(e.g. {', '.join(repeated[:5])}); give one stage per customer")
    names = previous.column(stage_column)
    if pa.types.is_dictionary(names.type):
        names = names.cast(names.type.value_type)
    if not (pa.types.is_string(names.type) or pa.types.is_large_string(names.type)):
        raise DataError(f"stage column {stage_column!r} of {where} must hold stage names (strings), "
                        f"got {names.type}")
    codes = pc.index_in(names, value_set=pa.array(STAGES, names.type), skip_nulls=True)
    unknown = pc.and_(pc.is_null(codes), pc.is_valid(names))
    if pc.any(unknown).as_py():
        bad = pc.unique(pc.filter(names, unknown)).to_pylist()
        near = closest_names(bad[0], STAGES)
        hint = f"; did you mean {' or '.join(map(repr, near))}?" if near else ""
        raise DataError(f"stage column {stage_column!r} of {where} holds unknown stages "
                        f"{', '.join(map(repr, bad[:5]))}{hint} (stages are {', '.join(STAGES)})")
    row = pc.index_in(now_ids, value_set=before_ids, skip_nulls=True)
    found = row.is_valid().to_numpy(zero_copy_only=False)
    codes = codes.combine_chunks() if isinstance(codes, pa.ChunkedArray) else codes
    stage_of_row = codes.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)
    out = np.full(len(now_ids), -1, dtype=np.int64)
    out[found] = stage_of_row[row.fill_null(0).to_numpy(zero_copy_only=False)[found]]
    return out


def _comparable_ids(now, before, id_column):
    """Both id columns as int64, or both as strings (None, None when one holds only nulls)."""

    def kind(t):
        if pa.types.is_null(t):
            return "null", None
        if pa.types.is_dictionary(t):
            t = t.value_type
        if pa.types.is_integer(t):
            return "integer", pa.int64()
        if pa.types.is_string(t) or pa.types.is_large_string(t):
            return "string", pa.large_string()
        return None, None

    (k_now, target), (k_before, _) = kind(now.type), kind(before.type)
    if k_now is None:
        raise DataError(f"id column {id_column!r} must hold integers or strings, got {now.type}")
    if "null" in (k_now, k_before):
        return None, None
    if k_now != k_before:
        raise DataError(f"id column {id_column!r} holds {now.type} in the customer table but "
                        f"{before.type} in the previous snapshot; give both the same kind of ids")
    return now.cast(target).combine_chunks(), before.cast(target).combine_chunks()


def _check_days(new_days, active_days, at_risk_days, lapsed_days):
    named = {"active_days": active_days, "at_risk_days": at_risk_days, "lapsed_days": lapsed_days}
    if new_days is not None:
        named = {"new_days": new_days, **named}
    for name, value in named.items():
        if not _finite_non_negative(value):
            raise ParameterError(f"{name} must be a non-negative number of days, got {value!r:.40}")
    if not active_days <= at_risk_days <= lapsed_days:
        raise ParameterError(f"thresholds must not decrease: active_days={active_days!r} <= "
                         f"at_risk_days={at_risk_days!r} <= lapsed_days={lapsed_days!r}")
    return (None if new_days is None else float(new_days), float(active_days), float(at_risk_days),
            float(lapsed_days))


def _check_adaptive(gap_multiples, min_gap_days):
    try:
        multiples = [float(k) for k in gap_multiples]
    except (TypeError, ValueError, OverflowError):
        multiples = None
    if multiples is None or len(multiples) != 3 or any(isinstance(k, bool) for k in gap_multiples) \
            or not all(np.isfinite(k) and k > 0 for k in multiples) \
            or not multiples[0] <= multiples[1] <= multiples[2]:
        raise ParameterError("gap_multiples must be three positive, non-decreasing numbers (the active, "
                         f"at-risk and lapsed thresholds in mean gaps), got {gap_multiples!r}")
    if not _finite_non_negative(min_gap_days):
        raise ParameterError(f"min_gap_days must be a non-negative number, got {min_gap_days!r:.40}")
    return multiples, float(min_gap_days)


def _finite_non_negative(value):
    """Whether ``value`` is a real number (not a bool), finite and >= 0; an int too large for
    a float (10**400) is not finite here rather than an OverflowError."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return False
    try:
        v = float(value)
    except OverflowError:
        return False
    return v >= 0 and np.isfinite(v)
