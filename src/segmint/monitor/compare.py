"""``segmint.drift(...)``: how the customer base moved since an earlier snapshot or since the fit.

Two ways in, which can come together:

- **two snapshots**: ``previous`` and ``current`` (id, segment) tables, matched on
  ``id_column``: the migration matrix (:class:`~segmint.monitor.migration.Migration`);
- **a model and current customer data**: the model scores ``current`` (one streaming pass) and
  its reference statistics, saved at fit, are compared with it: the PSI of every feature
  (:func:`~segmint.monitor.psi.feature_drift`, a second pass over the feature columns) and of the
  segment shares (one bin per segment of the model). With ``previous`` too, the model's
  assignments are the current snapshot of the migration.

The result, :class:`Drift`, holds one Arrow table (or object) per view and plain-words findings,
most important first.

How many false alarms: the features are tested as one family at ``alpha`` (Bonferroni: each
at ``alpha / k`` for ``k`` features), so ``alpha`` is the chance that current data with no drift
at all get any feature called drifted; the segment-share PSI is one more test, at ``alpha``.
A verdict needs enough rows (Cochran's rule, see :mod:`segmint.monitor.psi`): with too few
current customers it is ``"too few rows"``, and the findings say for which features.
"""
import json
import math
import os

import numpy as np
import pyarrow as pa

from .._documents import short_repr as _short
from .._estimator import check_positive_int
from ..errors import DataError, ParameterError
from ..io import DEFAULT_BATCH_SIZE
from ..io import open as open_source
from ..io.writers import write_text
from .migration import DEPARTED, MIN_SHARE_CHANGE, NEW, NONE, _from_snapshots, _md, _Snapshot, points, share_moved
from .migration import migration as _migration
from .psi import (ALPHA, DRIFTED, EPSILON, MAJOR, MODERATE, STABLE, TOO_FEW, WITHIN_NOISE, _check_epsilon_alpha,
                  feature_drift, most_bins, psi, psi_terms)

FORMAT = "segmint-drift"
VERSION = 1

# At most this many lines of findings: past it, the least important ones are counted in a last
# line (the tables hold everything).
MAX_FINDINGS = 12
# A segment whose share moved by at least this much (absolute) ranks with major feature drift.
LARGE_SHARE_CHANGE = 0.05
# Features drifted "slightly" (in the stable band, beyond noise) named in their summary line.
MAX_NAMED = 5

SEGMENTS_SCHEMA = pa.schema([
    ("segment", pa.string()),
    ("count_reference", pa.int64()),
    ("count_current", pa.int64()),
    ("share_reference", pa.float64()),
    ("share_current", pa.float64()),
    ("share_change", pa.float64()),
    ("psi_term", pa.float64()),
])

_WAYS_IN = ("give previous= (--previous: an earlier (id, segment) snapshot, matched on id_column= / "
            "--id-column) to see who moved where, and/or model= (--model: a fitted Segmenter or a .seg "
            "file) to compare the current data with the reference statistics saved at fit (feature and "
            "segment-share drift)")


def drift(current, *, previous=None, model=None, id_column=None, segments="segment", as_of=None,
          epsilon=EPSILON, alpha=ALPHA, batch_size=DEFAULT_BATCH_SIZE):
    """How the customer base moved: who changed segment, which features and segment shares drifted.

    Parameters
    ----------
    current : anything :func:`segmint.open` accepts
        Without ``model``: the current (id, segment) snapshot. With ``model``: the current
        customer data, scored by the model (its segments are the current assignments); read
        twice when the model has reference statistics (scoring, then the feature columns; a
        stream that can be read only once is read into memory first).
    previous : anything :func:`segmint.open` accepts, optional
        An earlier (id, segment) snapshot: adds the migration matrix. With a model, its segments
        are compared with the model's names: those that are not the model's are named in the
        first finding (their customers count as moved), and a snapshot sharing no segment with
        the model (another model's, or segment ids instead of names) is refused.
    model : Segmenter or path, optional
        A fitted :class:`~segmint.Segmenter` or the path of a saved ``.seg`` model.
    id_column : str, optional
        The customer id column, needed with ``previous`` (in both snapshots); with a model it
        defaults to the model's ``id_column``.
    segments : str, default ``"segment"``
        The segment column of the snapshots (a column name, the same in both; with a model, only
        ``previous`` has one).
    as_of : datetime, date or ISO string, optional
        For the model's rules using dates (default now, UTC).
    epsilon : float, default 1e-4
        Floor of an empty bin's share in the PSI (see :mod:`segmint.monitor.psi`); below
        ``1 / bins`` for the feature with the most bins and for the model's segments (checked
        before any pass).
    alpha : float, default 0.05
        False-alarm rate of the sample-size-aware verdicts: the features are one family of
        tests (each at ``alpha / k`` for ``k`` features), so ``alpha`` is the chance that data
        with no drift at all get any feature called drifted; the segment-share PSI is one test
        at ``alpha``. Too few current customers for a verdict give ``"too few rows"``.
    batch_size : int, default ``segmint.io.DEFAULT_BATCH_SIZE``
        Rows per batch.

    Returns
    -------
    Drift

    Raises
    ------
    ParameterError
        Neither ``previous`` nor ``model``; ``previous`` without an id column; a bad
        ``epsilon``, ``alpha``, ``batch_size`` or ``segments``; a ``model`` that is not a
        fitted Segmenter.
    DataError
        A model without reference statistics (saved by an older segmint) and no ``previous``;
        a ``previous`` snapshot sharing no segment name with the model;
        what :func:`~segmint.monitor.migration.migration` and
        :func:`~segmint.monitor.psi.feature_drift` refuse.
    UnknownColumnError
        A column named here (or a feature of the reference) missing from its source, with the
        nearest names.
    ModelFormatError
        ``model`` is a path to a file that is not a segmint model.
    """
    if previous is None and model is None:
        raise ParameterError("segmint.drift needs something to compare the current data with: " + _WAYS_IN)
    if not isinstance(segments, str) or not segments:
        raise ParameterError(f"segments must be the name of the snapshots' segment column (a non-empty str), "
                             f"got {_short(segments)}")
    if id_column is not None and (not isinstance(id_column, str) or not id_column):
        raise ParameterError(f"id_column must be the name of a column (a non-empty str), got {_short(id_column)}")
    _check_epsilon_alpha(epsilon, alpha, 2)  # up front; the bins are checked again per view
    batch_size = check_positive_int("batch_size", batch_size)
    model, model_path = _model(model)
    inputs = [model_path] if model_path is not None else []

    if model is None:
        if id_column is None:
            raise ParameterError("id_column= (--id-column) is needed: it matches the customers of the previous "
                                 "and the current snapshot")
        result = _migration(previous, current, id_column=id_column, segments=segments)
        return Drift(migration=result, n_current=result.current_rows, n_previous=result.previous_rows,
                     inputs=list(result.inputs) + inputs, epsilon=epsilon, alpha=alpha)

    reference = getattr(model, "reference_", None)
    if id_column is None:
        id_column = model.id_column
    notes = []
    if reference is None:
        where = f"the model {model_path}" if model_path is not None else "the model"
        if previous is None:
            raise DataError(f"{where} holds no reference statistics (it was saved by an older segmint), "
                            "so there is nothing to compare the current data with: fit the model again, "
                            "or refit it (Segmenter.refit, segmint refit), to record them; or give "
                            "previous= (--previous: an earlier (id, segment) snapshot) to see who moved where")
        notes.append(f"feature and segment-share drift skipped: {where} holds no reference statistics "
                     "(saved by an older segmint); fit it again or refit it to record them")
    if previous is not None and id_column is None:
        raise ParameterError("id_column= (--id-column) is needed to match the previous snapshot with the "
                             "current customers, and the model has no id_column")

    if reference is not None:  # before any pass
        if reference.n_rows == 0:
            raise DataError("the model's reference statistics describe no rows: nothing to compare with")
        if reference.segments is not None and tuple(reference.segments.categories) != tuple(model.segment_names_):
            raise DataError(f"the model's reference statistics list the segments "
                            f"{_names(reference.segments.categories)}, but the model's segments are "
                            f"{_names(model.segment_names_)}: the model is inconsistent")
        bins, where = most_bins(reference)
        if reference.segments is not None and len(model.segment_names_) > bins:
            bins, where = len(model.segment_names_), "the segment shares (one bin per segment of the model)"
        _check_epsilon_alpha(epsilon, alpha, bins, where)  # before the scoring pass, not after it
    src = open_source(current, label="the current data")
    inputs = list(src.paths) + inputs
    prev = None
    if previous is not None:
        # read (and checked) before the scoring pass, not after it
        prev = _Snapshot.read(previous, "the previous snapshot", id_column, segments)
        inputs += list(prev.paths)
        notes += _foreign_segments(prev, model.segment_names_, segments)
    if reference is not None and src.one_shot:
        # two passes (scoring, then the feature columns): keep the rows of a stream
        src = open_source(src.read(), label=src.label)

    ids, counts, n_current = _score(model, src, id_column if previous is not None else None,
                                    as_of, batch_size)
    moved = None
    if previous is not None:
        names = pa.array(model.segment_names_, pa.string())
        snapshot = pa.table({id_column: pa.chunked_array(ids[0], type=ids[1]),
                             segments: pa.chunked_array(
                                 [pa.DictionaryArray.from_arrays(pa.array(c), names, safe=False) for c in ids[2]],
                                 type=pa.dictionary(pa.int16(), pa.string()))})
        del ids
        scored = _Snapshot.read(snapshot, "the current data (scored by the model)", id_column, segments)
        moved = _from_snapshots(prev, scored, id_column, order=model.segment_names_)

    features = shares = segment_psi = None
    if reference is not None:
        features = feature_drift(reference, src, epsilon=epsilon, alpha=alpha, batch_size=batch_size)
        if reference.segments is not None:
            shares, segment_psi = _segment_view(reference.segments, model.segment_names_, counts,
                                                epsilon, alpha)
    return Drift(migration=moved, features=features, segments=shares, segment_psi=segment_psi,
                 n_current=n_current, n_previous=moved.previous_rows if moved is not None else None,
                 n_reference=reference.n_rows if reference is not None else None, inputs=inputs,
                 notes=notes, epsilon=epsilon, alpha=alpha)


def _model(model):
    """``(fitted Segmenter or None, its path or None)``."""
    from ..pipeline.segmenter import Segmenter  # the pipeline imports monitor.reference: not at import
    if model is None:
        return None, None
    path = None
    if isinstance(model, (str, os.PathLike)):
        path = os.fspath(model)
        model = Segmenter.load(path)
    if not isinstance(model, Segmenter):
        raise ParameterError(f"model must be a fitted Segmenter or the path of a .seg model file, got "
                             f"{type(model).__name__} {_short(model)}")
    model._check_fitted()
    return model, path


def _foreign_segments(prev, names, column):
    """The note naming the previous snapshot's segments that are not the model's (none: no
    note); a DataError when it shares none with the model: every customer would count as moved."""
    theirs = [n for n in prev.names if n != NONE]
    foreign = [n for n in theirs if n not in set(names)]
    if not foreign:
        return []
    if len(foreign) == len(theirs):
        raise DataError(f"the segments of the previous snapshot (column {column!r}: {_names(theirs)}) are none "
                        f"of the model's {_names(names)}: every customer would count as moved. Was it "
                        "scored by another model, renamed since, or does its column hold segment ids "
                        "instead of names?")
    counts = dict(zip(prev.names, np.bincount(prev.codes, minlength=len(prev.names)).tolist()))
    n = sum(counts[f] for f in foreign)
    which = ", ".join(foreign[:6]) + (f" and {len(foreign) - 6} more" if len(foreign) > 6 else "")
    return [f"the previous snapshot's {_plural(len(foreign), 'segment')} {which} "
            f"{'is' if len(foreign) == 1 else 'are'} not the model's (renamed, or another model's?): "
            f"{_count(n, 'customer')} in {'it' if len(foreign) == 1 else 'them'} count as moved"]


def _score(model, src, id_column, as_of, batch_size):
    """Score ``src`` once: ``(ids, counts, rows)``; ``ids`` is ``(id chunks, id type, segment id
    chunks)`` when ``id_column`` is given (the current snapshot, kept as Arrow chunks: no copy),
    else None; ``counts`` the rows per segment id (int64, one per segment name)."""
    counts = np.zeros(len(model.segment_names_), dtype=np.int64)
    id_chunks, seg_chunks = [], []
    id_type = None
    columns = [id_column] if id_column is not None else []
    n = 0
    for batch, seg, _ in model.stream(src, as_of=as_of, batch_size=batch_size, columns=columns):
        n += seg.size
        counts += np.bincount(seg, minlength=counts.size)[:counts.size]
        if id_column is not None:
            column = batch.record_batch.column(id_column)
            id_type = column.type
            id_chunks.append(column)
            seg_chunks.append(seg)
    if id_column is not None and id_type is None:  # no rows: the column's type from the schema
        id_type = src.schema.field(id_column).type
    return ((id_chunks, id_type, seg_chunks) if id_column is not None else None), counts, n


def _segment_view(reference, names, counts, epsilon, alpha):
    """The segment-share table and the PSI over the model's segments (one bin each: ``reference``'s
    categories are ``names``, checked by :func:`drift`)."""
    expected = np.asarray(reference.counts, dtype=np.int64)
    n_ref, n_cur = int(expected.sum()), int(counts.sum())
    if n_cur == 0:
        raise DataError("the current data have no rows: nothing to compare with the reference")
    if n_ref == 0:
        raise DataError("the model's reference statistics count no customer in any segment: nothing to "
                        "compare with")
    result = psi(expected, counts, epsilon=epsilon, n_reference=n_ref, n_current=n_cur, alpha=alpha)
    terms = psi_terms(expected, counts, epsilon=epsilon)
    share_ref, share_cur = expected / n_ref, counts / n_cur
    table = pa.table([pa.array(list(names), pa.string()), pa.array(expected, pa.int64()),
                      pa.array(counts, pa.int64()), pa.array(share_ref, pa.float64()),
                      pa.array(share_cur, pa.float64()), pa.array(share_cur - share_ref, pa.float64()),
                      pa.array(terms, pa.float64())], schema=SEGMENTS_SCHEMA)
    return table, result


def _names(names):
    names = list(names)
    shown = ", ".join(repr(n) for n in names[:6])
    return f"[{shown}{', ...' if len(names) > 6 else ''}] ({len(names)})"


class Drift:
    """What :func:`drift` found: one view per comparison, and the findings in plain words.

    Attributes
    ----------
    migration : Migration or None
        Who moved from which segment to which since the previous snapshot (with ``previous``).
    features : pyarrow.Table or None
        The PSI of every feature against the model's reference statistics, as
        :func:`~segmint.monitor.psi.feature_drift` returns it (``feature``, ``kind``, ``bins``,
        ``psi``, ``band``, ``statistic``, ``threshold``, ``verdict``, ...; the features tested
        as one family at ``alpha``, each at ``alpha / k``); with a model that has them.
    segments : pyarrow.Table or None
        One row per segment of the model (in segment-id order): ``segment``,
        ``count_reference`` (training rows), ``count_current``, ``share_reference``,
        ``share_current``, ``share_change`` (current minus reference share), ``psi_term``
        (the segment's term of the PSI sum, after the epsilon floor: where the PSI comes from).
    segment_psi : PSIResult or None
        The PSI over the segment distribution (one bin per segment), its ``band``
        (``"stable"``, ``"moderate"``, ``"major"``) and ``verdict`` (``"drifted"``,
        ``"within noise"``, or ``"too few rows"`` for a verdict; one test at ``alpha``).
    findings : list of str
        Plain words, most important first (at most :data:`MAX_FINDINGS` lines): major drift
        and large share changes, then moderate drift and the overall movement, then smaller
        share changes, then slight drift and what stayed within noise. Features with too few
        current customers for a verdict are named ("too few customers to tell for: ...").
        With both a previous snapshot and a model's reference, segment shares are compared
        with the fit (the largest move since the previous snapshot added); the migration's
        lines about other segments follow, marked "since the previous snapshot". Share
        changes are in percentage points ("pts") everywhere.
    n_current : int
        Customers in the current data.
    n_previous : int or None
        Customers in the previous snapshot.
    n_reference : int or None
        Customers the model's reference statistics describe (its training data).
    inputs : tuple of str
        The files read (current, previous, model): :meth:`to_json` never writes over them.
    epsilon, alpha : float
        As given to :func:`drift`.
    """

    # Built by drift() with keyword parts (as Profile): the attributes above, plus ``notes`` (lines
    # that go first in the findings, e.g. why a view was skipped). Keywords, not a signature, keep
    # internal names out of the public API's parameter names.
    _PARTS = {"migration": None, "features": None, "segments": None, "segment_psi": None,
              "n_current": 0, "n_previous": None, "n_reference": None, "inputs": (), "notes": (),
              "epsilon": EPSILON, "alpha": ALPHA}

    def __init__(self, **parts):
        unknown = sorted(set(parts) - set(self._PARTS))
        if unknown:
            raise TypeError(f"Drift() got unexpected parts: {', '.join(unknown)}")
        parts = {**self._PARTS, **parts}
        self.migration = parts["migration"]
        self.features = parts["features"]
        self.segments = parts["segments"]
        self.segment_psi = parts["segment_psi"]
        self.n_current = int(parts["n_current"])
        self.n_previous = None if parts["n_previous"] is None else int(parts["n_previous"])
        self.n_reference = None if parts["n_reference"] is None else int(parts["n_reference"])
        self.inputs = tuple(dict.fromkeys(str(p) for p in parts["inputs"] if p is not None))
        self.epsilon, self.alpha = float(parts["epsilon"]), float(parts["alpha"])
        self._notes = list(parts["notes"])
        self.findings = self._findings()

    # -- the words ------------------------------------------------------------------------------
    def _findings(self):
        """``(tier, -weight, text)`` candidates, sorted: tier 0 major drift and large share changes,
        1 moderate drift and the overall movement, 2 smaller share changes, 3 slight drift (in
        the stable band, beyond noise), 4 what stayed within noise."""
        items = [(-1, 0.0, note) for note in self._notes]
        items += self._feature_items()
        items += self._segment_items()
        items += self._migration_items()
        order = sorted(range(len(items)), key=lambda i: (items[i][0], items[i][1], i))
        words = [items[i][2] for i in order]
        if len(words) > MAX_FINDINGS:
            rest = len(words) - (MAX_FINDINGS - 1)
            words = words[:MAX_FINDINGS - 1] + [f"and {rest} more finding{'s' if rest > 1 else ''} "
                                                "(see the tables)"]
        return words

    def _feature_items(self):
        if self.features is None or self.features.num_rows == 0:
            return []
        rows = self.features.to_pylist()
        items, slight = [], []
        for r in rows:
            if r["verdict"] != DRIFTED:
                continue
            if r["band"] == STABLE:
                slight.append(r)
                continue
            tier = 0 if r["band"] == MAJOR else 1
            items.append((tier, -r["psi"], f"{r['feature']} drifted (PSI {_psi(r['psi'])}, {r['band']})"))
        if slight:
            slight.sort(key=lambda r: -r["psi"])
            named = ", ".join(f"{r['feature']} ({_psi(r['psi'])})" for r in slight[:MAX_NAMED])
            more = f" and {len(slight) - MAX_NAMED} more" if len(slight) > MAX_NAMED else ""
            items.append((3, 0.0, f"{_count(len(slight), 'feature')} drifted slightly (PSI below 0.1, "
                                  f"beyond noise at these sample sizes): {named}{more}"))
        few = [r["feature"] for r in rows if r["verdict"] == TOO_FEW]
        if few:
            named = ", ".join(few[:MAX_NAMED]) + (f" and {len(few) - MAX_NAMED} more" if len(few) > MAX_NAMED else "")
            items.append((1, 0.0, f"too few customers to tell for: {named} ({self.n_current:,} now; "
                                  "the PSI is in the table, but no verdict)"))
        quiet = [r for r in rows if r["verdict"] == WITHIN_NOISE]
        if quiet:
            top = max(quiet, key=lambda r: r["psi"])
            if len(quiet) == len(rows):
                largest = f"largest PSI {_psi(top['psi'])}, {top['feature']}" if top["psi"] > 0 else "every PSI 0"
                text = f"no feature drifted beyond noise ({len(rows)} compared; {largest})"
            else:
                text = (f"{_count(len(quiet), 'feature')} within noise (largest PSI {_psi(top['psi'])}, "
                        f"{top['feature']})")
            items.append((4, 0.0, text))
        return items

    def _segment_items(self):
        if self.segment_psi is None:
            return []
        result = self.segment_psi
        if result.verdict == TOO_FEW:
            return [(1, 0.0, f"segment shares: too few customers to tell ({self.n_current:,} now; "
                             f"PSI {_psi(result.psi)}, no verdict)")]
        if result.verdict != DRIFTED:
            return [(4, 0.0, f"segment shares within noise of the fit (PSI {_psi(result.psi)})")]
        tier = {MAJOR: 0, MODERATE: 1}.get(result.band, 3)
        how = result.band if result.band != STABLE else "in the stable band, beyond noise at these sample sizes"
        items = [(tier, -result.psi, f"segment shares drifted since the fit (PSI {_psi(result.psi)}, {how})")]
        for r in self.segments.to_pylist():
            change = r["share_change"]
            if not share_moved(change):
                continue
            name, before, now = r["segment"], r["share_reference"], r["share_current"]
            if r["count_current"] == 0:
                text = f"{name} is empty now (was {before:.1%} at fit)"
            elif r["count_reference"] == 0:
                text = f"{name} had no customers at fit, {now:.1%} now"
            else:
                verb = "grew" if change > 0 else "shrank"
                text = f"{name} {verb} from {before:.1%} at fit to {now:.1%}"
            text += self._moves(name, change)
            items.append((0 if abs(change) >= LARGE_SHARE_CHANGE else 2, -abs(change), text))
        return items

    def _moves(self, name, change):
        """'; 38.0% of its customers moved to segment_1 since the previous snapshot'."""
        if self.migration is None:
            return ""
        if change < 0:
            move = self.migration.largest_outflow(name)
            if move is None:
                return ""
            to, share = move
            where = "departed" if to == DEPARTED else f"moved to {to}"
            return f"; {share:.1%} of its customers {where} since the previous snapshot"
        move = self.migration.largest_inflow(name)
        if move is None:
            return ""
        source, share = move
        where = "are new" if source == NEW else f"came from {source}"
        return f"; {share:.1%} of its customers {where} since the previous snapshot"

    def _named_segments(self):
        """Segments the segment-share findings already name (compared with the fit)."""
        if self.segment_psi is None or self.segment_psi.verdict != DRIFTED:
            return set()
        return {r["segment"] for r in self.segments.to_pylist() if share_moved(r["share_change"])}

    def _migration_items(self):
        if self.migration is None:
            return []
        words = self.migration.findings
        items = [(1, 0.0, words[0])]  # the overall movement
        named = self._named_segments()
        # with a model, the share lines compare with the fit: the migration's say "since the
        # previous snapshot", and a segment already named keeps one line
        since = "" if self.segment_psi is None else " since the previous snapshot"
        rows = {r["segment"]: r for r in self.migration.sizes.to_pylist()}
        for (weight, text), name in zip(self.migration.weighted_findings[1:], self.migration._finding_segments[1:]):
            if name in named:
                continue
            if since:
                text = self.migration._segment_line(rows[name], since) or text
            items.append((0 if weight >= LARGE_SHARE_CHANGE else 2, -weight, text))
        if len(words) == 1:
            items.append((4, 0.0, f"no segment's share moved by {points(MIN_SHARE_CHANGE)[1:]} or more "
                                  "since the previous snapshot"))
        return items

    # -- documents ------------------------------------------------------------------------------
    def to_dict(self):
        """Plain data (JSON-ready): sizes, findings and every view (None where not computed)."""
        def rows(table):
            return None if table is None else _finite(table.to_pylist())

        return {
            "format": FORMAT,
            "version": VERSION,
            "n_current": self.n_current,
            "n_previous": self.n_previous,
            "n_reference": self.n_reference,
            "epsilon": self.epsilon,
            "alpha": self.alpha,
            "findings": list(self.findings),
            "segment_psi": None if self.segment_psi is None else _finite(self.segment_psi._asdict()),
            "segments": rows(self.segments),
            "features": rows(self.features),
            "migration": None if self.migration is None else _finite(self.migration.to_dict()),
            "inputs": list(self.inputs),
        }

    def to_json(self, path=None):
        """The :meth:`to_dict` document as JSON text; written atomically to ``path`` when given
        (never over one of :attr:`inputs`). Returns the text."""
        text = json.dumps(self.to_dict(), indent=2, ensure_ascii=False, allow_nan=False) + "\n"
        if path is not None:
            write_text(path, text, inputs=self.inputs)
        return text

    def to_markdown(self):
        """Findings, then the segment-share, feature and migration tables, as Markdown."""
        lines = ["# Drift", "", self._headline(), ""] + [f"- {_md(f)}" for f in self.findings]
        if self.segments is not None:
            p = self.segment_psi
            lines += ["", "## Segment shares", "",
                      f"PSI {_psi(p.psi)} ({p.band}; {p.verdict}) over {p.bins} segments.", "",
                      "| segment | at fit | share at fit | now | share now | change | PSI term |",
                      "|---|---:|---:|---:|---:|---:|---:|"]
            for r in self.segments.to_pylist():
                lines.append(f"| {_md(r['segment'])} | {r['count_reference']:,} | {r['share_reference']:.1%} | "
                             f"{r['count_current']:,} | {r['share_current']:.1%} | {points(r['share_change'])} | "
                             f"{r['psi_term']:.4f} |")
        if self.features is not None:
            lines += ["", "## Feature drift", "",
                      "| feature | kind | bins | PSI | band | verdict | missing at fit | missing now |",
                      "|---|---|---:|---:|---|---|---:|---:|"]
            for r in self.features.to_pylist():
                lines.append(f"| {_md(r['feature'])} | {r['kind']} | {r['bins']} | {r['psi']:.4f} | {r['band']} | "
                             f"{r['verdict']} | {r['null_share_reference']:.1%} | {r['null_share_current']:.1%} |")
        if self.migration is not None:
            lines += [""] + self.migration.to_markdown().rstrip("\n").split("\n")
        return "\n".join(lines) + "\n"

    def _headline(self):
        parts = [f"{self.n_current:,} customers now"]
        if self.n_reference is not None:
            parts.append(f"{self.n_reference:,} at fit (the model's reference)")
        if self.n_previous is not None:
            parts.append(f"{self.n_previous:,} in the previous snapshot")
        return "; ".join(parts)

    def __str__(self):
        lines = ["Drift: " + self._headline()] + [f"  {f}" for f in self.findings]
        if self.segments is not None:
            rows = self.segments.to_pylist()
            width = max([len(r["segment"]) for r in rows] + [7])
            p = self.segment_psi
            lines += ["", f"  Segment shares (PSI {_psi(p.psi)}, {p.band}, {p.verdict})",
                      f"  {'segment':<{width}}  {'at fit':>7}  {'now':>7}  {'change':>9}"]
            lines += [f"  {r['segment']:<{width}}  {r['share_reference']:>7.1%}  {r['share_current']:>7.1%}  "
                      f"{points(r['share_change']):>9}" for r in rows]
        if self.features is not None and self.features.num_rows:
            rows = self.features.to_pylist()
            width = max([len(r["feature"]) for r in rows] + [7])
            lines += ["", "  Feature drift", f"  {'feature':<{width}}  {'PSI':>8}  {'band':<8}  verdict"]
            lines += [f"  {r['feature']:<{width}}  {r['psi']:>8.4f}  {r['band']:<8}  {r['verdict']}" for r in rows]
        if self.migration is not None:
            rows = self.migration.sizes.to_pylist()
            width = max([len(r["segment"]) for r in rows] + [7])
            lines += ["", "  Migration since the previous snapshot"]
            lines += [f"    {f}" for f in self.migration.findings]
            lines += [f"  {'segment':<{width}}  {'previous':>12}  {'current':>12}  {'change':>9}  status"]
            lines += [f"  {r['segment']:<{width}}  {r['previous_count']:>12,}  {r['current_count']:>12,}  "
                      f"{points(r['change']):>9}  {r['status']}" for r in rows]
        return "\n".join(lines)

    def __repr__(self):
        views = [name for name, view in (("migration", self.migration), ("features", self.features),
                                         ("segments", self.segments)) if view is not None]
        return f"Drift({self.n_current:,} current customers; views: {', '.join(views) or 'none'})"


def _psi(value):
    """A PSI for words: two decimals from 0.1 on, three below (0.012), then '<0.001' or '0'."""
    if value == 0:
        return "0"
    return f"{value:.2f}" if value >= 0.1 else f"{value:.3f}" if value >= 0.001 else "<0.001"


def _count(n, word):
    return f"{n:,} {_plural(n, word)}"


def _plural(n, word):
    return word + ("" if n == 1 else "s")


def _finite(value):
    """``value`` with NaN and infinities as None (JSON has neither), recursively."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


__all__ = ["drift", "Drift"]
