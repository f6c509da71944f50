"""``segmint.Segmenter``: from a raw customer table to a named segment per customer.

A Segmenter chains a :class:`FeatureSpec` (which columns, which transforms), an optional
rule set evaluated first (exclusions, scopes), and an optional k-means model clustering the
customers of one rule segment (by default those no rule took). Scoring streams the source
batch by batch, so memory stays bounded whatever the number of customers.

Segment ids: clusters are ``0 .. k-1`` (so ``rename({0: 'Weekend bargain hunters'})`` names
cluster 0), then the rule segments that are not clustered, in rule order (the rule set's
default segment last).
"""
import functools
import os
from typing import NamedTuple

import numpy as np
import pyarrow as pa

from .._estimator import NotFittedError, ParamsMixin, check_positive_int, check_random_state
from .._parallel import ordered_map
from ..cluster import KMeans, MiniBatchKMeans
from ..cluster._matrix import FeatureError, Features, check_centers
from ..cluster._passes import assign_pass
from ..errors import (DataError, ParameterError, SourceConsumedError, UnsupportedTypeError, closest_names,
                      unknown_column)
from ..io import DEFAULT_BATCH_SIZE, ResultWriter
from ..io import open as open_source
from ..rules import RuleSet
from . import model_file
from .features import FeatureSpec
_CLUSTERERS = {"KMeans": KMeans, "MiniBatchKMeans": MiniBatchKMeans}


class ScoreBatch(NamedTuple):
    """One batch of :meth:`Segmenter.stream`.

    Attributes
    ----------
    batch : segmint.io.Batch
        The rows, with the columns the model reads and the ``columns`` asked for.
    segment_id : numpy.ndarray of int16
        Each row's segment id (an index into ``segment_names_``).
    distance : numpy.ndarray of float32 or float64
        Distance to the cluster's center in the feature space; NaN where a rule took the row.
    """
    batch: object
    segment_id: np.ndarray
    distance: np.ndarray


class UnknownSegmentError(ParameterError, KeyError):
    """A segment id or name that the model does not have (a ``KeyError`` too, as a lookup)."""

    def __str__(self):  # KeyError would quote the whole message
        return str(self.args[0]) if self.args else ""


class Segmenter(ParamsMixin):
    """Features, rules and clustering in one object, fitted once and scored every night.

    Parameters
    ----------
    features : FeatureSpec or list, optional
        The feature spec (a list is passed to :class:`FeatureSpec`). Needed with a clusterer.
    clusterer : KMeans or MiniBatchKMeans, optional
        An unfitted segmint estimator; ``fit`` fits it on the transformed features of the
        customers in scope. As in scikit-learn's Pipeline, the objects passed (this and a
        FeatureSpec) are fitted in place: give each Segmenter its own.
    rules : RuleSet, dict or list, optional
        A waterfall rule set evaluated before clustering (a dict or list is passed to
        :class:`~segmint.RuleSet`).
    cluster_within : str or list of str, optional
        The rule segments whose customers are clustered (default: the rule set's default
        segment, i.e. the customers no rule took). Only with both rules and a clusterer.
    id_column : str, optional
        Copied into scoring results (e.g. the customer id).
    fit_rows : int, optional
        Fit the clusterer on about this many customers in scope, drawn at random
        (``random_state``) when there are more; default all of them. Feature statistics
        always use every row. With rules, one more (rules-only) pass counts the customers
        in scope.
    dtype : numpy.float32 or numpy.float64, default float32
        Of the feature matrix the clusterer sees.
    random_state : int, default 0
        Seeds the ``fit_rows`` sample.

    Attributes
    ----------
    segment_names_ : list of str
        Name of every segment id.
    n_clusters_ : int
        Clusters (0 without a clusterer).
    n_rows_fit_ : int
        Rows the clusterer was fitted on.
    reference_ : segmint.monitor.reference.ReferenceStatistics or None
        What the training source looked like, for drift checks against new data alone
        (:func:`segmint.drift`): per numeric or boolean input column of the spec its decile
        bins, per one-hot (string) column its category counts (a column of more than 1,000
        categories is left out), and ``segments`` (named ``"segment"``): the training rows of
        every segment, by ``segment_names_`` in id order (zero counts included). Saved in the
        model file; None for a model loaded from a file written before segmint saved it, and
        for a (rules-only) model fitted on a one-shot stream, which cannot be read again.
    input_schema_ : pyarrow.Schema or None
        The Arrow types of the columns the model reads (the spec's input columns, the rules'
        columns, the id column), as the training source had them: what a record must hold to be
        scored alone (:meth:`scorer`). Saved in the model file (dictionary columns as their
        value type); None for a model loaded from a file written before segmint saved it.
    refit_ : segmint.monitor.refit.Refit
        Only on a model made by :meth:`refit`: what the refit did to each segment (matched,
        changed, vanished, new) and its findings. Not saved in the model file.
    """

    def __init__(self, features=None, *, clusterer=None, rules=None, cluster_within=None,
                 id_column=None, fit_rows=None, dtype=np.float32, random_state=0):
        self.features = features
        self.clusterer = clusterer
        self.rules = rules
        self.cluster_within = cluster_within
        self.id_column = id_column
        self.fit_rows = fit_rows
        self.dtype = dtype
        self.random_state = random_state

    # -- validation ----------------------------------------------------------------------------
    def _validate(self):
        spec = self.features
        if spec is not None and not isinstance(spec, FeatureSpec):
            spec = FeatureSpec(spec)
        rules = self.rules
        if rules is not None and not isinstance(rules, RuleSet):
            rules = RuleSet.from_dict(rules) if isinstance(rules, dict) and "segments" in rules else RuleSet(rules)
        if rules is not None and rules.mode != "waterfall":
            raise DataError("a Segmenter needs a waterfall rule set (each customer in one segment); "
                            f"got mode={rules.mode!r}")
        clusterer = self.clusterer
        # isinstance, not the class name: scikit-learn's KMeans is also called "KMeans" and used
        # to be accepted, fitted and saved, leaving a model file that segmint.load refused
        if clusterer is not None and not isinstance(clusterer, tuple(_CLUSTERERS.values())):
            raise UnsupportedTypeError(f"clusterer must be segmint.KMeans or segmint.MiniBatchKMeans, got "
                            f"{type(clusterer).__module__}.{type(clusterer).__name__}")
        if clusterer is None and rules is None:
            raise DataError("a Segmenter needs a clusterer, rules, or both")
        if clusterer is not None and spec is None:
            raise DataError("clustering needs features=: the columns (and transforms) to cluster on")
        try:
            dtype = np.dtype(self.dtype)
        except TypeError:
            dtype = None
        if dtype not in (np.float32, np.float64):
            raise ParameterError(f"dtype must be float32 or float64, got {self.dtype!r}")
        if self.fit_rows is not None:
            check_positive_int("fit_rows (a positive number of rows)", self.fit_rows)
        check_random_state(self.random_state)  # a bad seed fails here, before any work
        within = ()
        if rules is not None and clusterer is not None:
            within = self.cluster_within if self.cluster_within is not None else rules.default
            within = (within,) if isinstance(within, str) else tuple(within)
            known = list(rules.names) + [rules.default]
            for name in within:
                if name not in known:
                    near = closest_names(name, known)
                    hint = f"; did you mean {near[0]!r}?" if near else ""
                    raise DataError(f"cluster_within={name!r} is not a segment of the rule set "
                                    f"(segments: {', '.join(map(repr, known))}){hint}")
        elif self.cluster_within is not None:
            raise DataError("cluster_within needs both rules= and clusterer=")
        return spec, rules, clusterer, within

    # -- fitting -------------------------------------------------------------------------------
    def fit(self, source, y=None, *, as_of=None, batch_size=DEFAULT_BATCH_SIZE):
        """Fit the feature statistics, then the clusterer on the customers in scope.

        Parameters
        ----------
        source : anything :func:`segmint.open` accepts that can be read twice (a file, a
            table, a DataFrame; not a one-shot stream)
        y : None
            Ignored (scikit-learn's signature).
        as_of : datetime, date or ISO string, optional
            For rules using ``days_since``/``within_last`` (default now, UTC).
        batch_size : int, default ``segmint.io.DEFAULT_BATCH_SIZE``
            Rows per batch read at a time (bounds memory).

        Returns
        -------
        self

        Raises
        ------
        SourceConsumedError
            With a clusterer, for a one-shot source (a RecordBatchReader), which cannot be
            read twice.
        """
        return self._fit(source, as_of, batch_size)

    def _fit(self, source, as_of, batch_size, fit_spec=True, fit_clusterer=None, per_batch=None):
        """:meth:`fit`; :meth:`refit` keeps a fitted spec (``fit_spec=False``), fits the
        clusterer its own way (``fit_clusterer(X)`` returns the fitted clusterer to keep, then
        also the ``clusterer`` parameter) and sees each batch of the matrix pass
        (``per_batch(batch, mask)``, ``mask`` the rows kept in X or None for all)."""
        spec, rules, clusterer, within = self._validate()
        _check_batch_size(batch_size)
        # A failed refit must not leave the previous fit's names and centers next to feature
        # statistics refitted in place on the new data: drop the fitted state first.
        for attr in self._FITTED:
            self.__dict__.pop(attr, None)
        src = open_source(source)
        if clusterer is not None and src.one_shot:
            # Fitting a clusterer reads the source twice (feature statistics, then the matrix).
            # Re-opening a RecordBatchReader yields no rows, which used to end in a misleading
            # "the source has no rows": say what is wrong before reading anything.
            raise SourceConsumedError(
                f"{src.label} can be read only once, but fitting a clusterer reads the source "
                "twice (feature statistics, then the rows to cluster); pass a Table, a "
                "DataFrame or a file (write the stream with segmint.write_table first)")
        self._check_columns(src, spec, rules)
        self.input_schema_ = self._input_schema(src.schema, spec, rules)
        if spec is not None and fit_spec:
            spec.fit(src, batch_size=batch_size)
        self.feature_spec_, self.rules_, self.clusterer_, self.within_ = spec, rules, clusterer, within
        self.n_rows_fit_ = 0
        rule_counts, sampled, labels = None, False, None
        # The reference's numeric ranges must be this source's own: the spec's statistics are
        # when it was fitted here; a kept (refit) spec's are the old data's, so the matrix pass
        # collects them (or, without a clusterer, a pass of their own in _record_reference).
        range_columns = self._reference_columns()[0] if not fit_spec else []
        ranges = None
        if clusterer is not None:
            X, rule_counts, sampled, ranges = self._fit_matrix(src, as_of, batch_size, per_batch,
                                                               range_columns)
            if X.shape[0] == 0:
                raise DataError("no customer to cluster: the rules left none in "
                                f"{', '.join(map(repr, within))}" if within else "the source has no rows")
            try:
                if fit_clusterer is None:
                    clusterer.fit(X)
                else:
                    clusterer = self.clusterer = self.clusterer_ = fit_clusterer(X)
            except FeatureError:
                # the clusterer sees an unnamed array: say which features of the spec are bad
                self._check_matrix(X, "the features to cluster")
                raise
            self.n_rows_fit_ = int(X.shape[0])
            # labels of every row in scope, when no sample was drawn: the segment counts of the
            # reference then need no scoring pass (labels_ come from the final centers, as score's)
            labels = None if sampled else getattr(clusterer, "labels_", None)
            del X
        self.n_clusters_ = int(clusterer.cluster_centers_.shape[0]) if clusterer is not None else 0
        self._name_segments()
        if not fit_spec and ranges is None and range_columns and not src.one_shot:
            from ..monitor.reference import finite_ranges
            ranges = finite_ranges(src, range_columns, batch_size)  # no matrix pass read them
        self._record_reference(src, as_of, batch_size, known=(rule_counts, labels), ranges=ranges)
        return self

    _FITTED = ("feature_spec_", "rules_", "clusterer_", "within_", "n_rows_fit_", "n_clusters_",
               "segment_names_", "reference_", "refit_", "input_schema_")

    def _input_schema(self, schema, spec, rules):
        """The fields of ``schema`` the model reads: the spec's input columns, the rules'
        columns, the id column (each once, in that order). Scoring one record at a time
        (:class:`segmint.serve.Scorer`) reads the types from it."""
        names = list(spec.input_columns) if spec is not None else []
        if rules is not None:
            program = rules.prepare(schema)
            names += [n for n, _ in program.num_columns] + list(program.bool_columns) + list(program.str_columns)
        if self.id_column is not None:
            names.append(self.id_column)
        import pyarrow as pa
        return pa.schema([schema.field(n) for n in dict.fromkeys(names)])

    def scorer(self, *, schema=None):
        """A :class:`segmint.serve.Scorer` of this model: one customer at a time, in microseconds.

        Everything a call needs is prepared now (feature order, buffers, compiled kernels), so
        ``score_one(record)`` never compiles. The Scorer keeps what the model is now: a later
        ``rename`` or refit does not reach it (build another).

        Parameters
        ----------
        schema : pyarrow.Schema, optional
            The types of the columns the model reads, for a model saved without them
            (``input_schema_`` None); default: the types recorded at fit.

        Returns
        -------
        segmint.serve.Scorer
        """
        from ..serve import Scorer
        return Scorer(self, schema=schema)

    # -- reference statistics --------------------------------------------------------------
    def _reference_columns(self):
        """``(numeric, strings)``: the spec's numeric/boolean input columns and its one-hot
        (string) columns, in spec order; none without a spec."""
        spec = self.feature_spec_
        if spec is None:
            return [], []
        return ([f.column for f in spec.entries if f.kind == "numeric"],
                [f.column for f in spec.entries if f.kind != "numeric"])

    def _record_reference(self, src, as_of, batch_size, known=(None, None), ranges=None):
        """Set ``reference_``: the reference statistics of ``src`` (the training source).

        Numeric features are the spec's numeric and boolean input columns, categories its
        one-hot (string) columns (one with more than
        :data:`segmint.monitor.reference.MAX_CATEGORIES` categories is left out), and
        ``segments`` the exact rows of every segment (named as ``segment_names_``, in id order,
        zero counts included) over every row of ``src``.

        One pass: the numeric ranges are ``ranges`` (``(lo, hi)`` per numeric column, the finite
        range of ``src`` itself) or, when None, the fitted spec's statistics (right only when the
        spec was fitted on ``src``): the first pass of
        :func:`~segmint.monitor.reference.reference_statistics`. The segment counts come from
        ``known`` = ``(rule code counts of the fit pass or None, cluster labels of every row in
        scope or None)`` when they cover every row; otherwise the same pass scores the rows.
        A one-shot source (a stream) gets no reference (``reference_`` None).
        """
        from ..monitor.reference import CategoryReference, _KnownRangePass
        if src.one_shot:
            # a stream read once already (the spec's statistics), or a rules-only fit that reads
            # nothing: another pass is impossible, or would consume the caller's stream
            self.reference_ = None
            return
        numeric, strings = self._reference_columns()
        if ranges is None:
            stats = self.feature_spec_.stats_ if self.feature_spec_ is not None else {}
            ranges = []
            for name in numeric:
                lo, hi = stats[name]["min"], stats[name]["max"]
                ranges.append((lo, hi) if lo is not None else (np.inf, -np.inf))
        counter = _KnownRangePass(numeric, strings, ranges)
        k, n_segments = self.n_clusters_, len(self.segment_names_)
        rule_counts, labels = known
        columns = list(dict.fromkeys(numeric + strings))
        counts = np.zeros(n_segments, dtype=np.int64)
        if labels is not None and (self.rules_ is None or rule_counts is not None):
            # the fit pass saw every row: segment counts without scoring, one pass over the features
            counts[:k] += np.bincount(np.asarray(labels), minlength=k)[:k]
            if self.rules_ is not None:
                to_segment = self._rule_to_segment(k)
                for code, c in enumerate(rule_counts.tolist()):
                    if to_segment[code] >= 0:
                        counts[to_segment[code]] += c

            def items():
                for batch in src.batches(columns=columns, batch_size=batch_size):
                    views = {c: batch[c] for c in columns}  # made here, in batch order (string codes)
                    yield batch.num_rows, views, [views[c].dictionary for c in strings]

            for partial, dicts in ordered_map(lambda it: (counter.count(it[0], it[1]), it[2]), items()):
                counter.add(partial, dicts)
        else:
            # a sample was drawn, or rules only: the same pass scores every row
            to_segment = self._rule_to_segment(k) if self.rules_ is not None else None
            dicts_in_order = []

            def items():
                for item in self._score_items(src, as_of, batch_size, columns):
                    batch = item[0]
                    dicts_in_order.append([batch[c].dictionary for c in strings])  # in batch order
                    yield item

            def work(item):
                batch = item[0]
                seg = self._assign_batch(item, to_segment)[0]
                partial = counter.count(batch.num_rows, {c: batch[c] for c in columns})
                return partial, np.bincount(seg, minlength=n_segments)[:n_segments]

            for i, (partial, seg_counts) in enumerate(ordered_map(work, items())):
                counter.add(partial, dicts_in_order[i])
                dicts_in_order[i] = None
                counts += seg_counts
        segments = CategoryReference("segment", tuple(self.segment_names_), tuple(int(c) for c in counts), 0)
        self.reference_ = counter.finish(segments)

    def _fit_matrix(self, src, as_of, batch_size, per_batch=None, range_columns=()):
        """``(X, rule code counts, sampled, ranges)``: the transformed features of the rows in
        scope (a sample of ``fit_rows`` of them when ``sampled``), the rows of every rule code
        over the whole pass (None without rules), and the finite ``(lo, hi)`` of each of
        ``range_columns`` over every row of the pass (None without them)."""
        spec, dtype = self.feature_spec_, np.dtype(self.dtype)
        n_total = src.num_rows
        if self.fit_rows is not None and self.rules_ is not None and n_total is not None \
                and n_total > int(self.fit_rows):
            # fit_rows counts customers in scope: the keep probability must come from their
            # number, not from all rows (which gave too few rows, and sampled even when fewer
            # than fit_rows were in scope). One extra rules-only pass counts them.
            counts = self.rules_.counts(src, as_of=as_of, batch_size=batch_size)
            matched = dict(zip(counts.column("segment").to_pylist(), counts.column("matched").to_pylist()))
            n_total = sum(matched[name] for name in self.within_)
        keep_p = None
        if self.fit_rows is not None and n_total is not None and n_total > int(self.fit_rows):
            keep_p = int(self.fit_rows) / n_total
        # a stream of its own, drawn from the seed: default_rng(seed) itself is the stream segmint's
        # customer generator draws each customer's persona from (numpy's SeedSequence ignores
        # trailing zeros: [seed] == [seed, block 0, 0]), so keys from it chose synthetic customers
        # by persona
        rng = np.random.default_rng([int(check_random_state(self.random_state).integers(0, 2**63 - 1)),
                                     0x5E6A1E])
        to_segment = self._rule_to_segment(0) if self.rules_ is not None else None
        pieces = []
        rule_counts = np.zeros(len(to_segment), dtype=np.int64) if to_segment is not None else None
        ranges = None
        if range_columns:
            from ..monitor.reference import widen_finite_ranges
            ranges = np.empty((len(range_columns), 2))
            ranges[:, 0], ranges[:, 1] = np.inf, -np.inf
        for batch, assign in self._rule_batches(src, as_of, batch_size, list(spec.input_columns)):
            X = spec.transform_batch(batch, dtype=dtype)
            if ranges is not None:  # every row, in scope or not: the reference covers them all
                widen_finite_ranges({c: batch[c] for c in range_columns}, range_columns, ranges)
            if assign is not None:
                rule_counts += np.bincount(assign, minlength=len(rule_counts))[:len(rule_counts)]
            mask = None if assign is None else to_segment[assign] < 0
            if keep_p is not None:
                draw = rng.random(batch.num_rows) < keep_p
                mask = draw if mask is None else (mask & draw)
            pieces.append(X if mask is None else X[mask])
            if per_batch is not None:
                per_batch(batch, mask)
        sampled = keep_p is not None
        ranges = [tuple(r) for r in ranges.tolist()] if ranges is not None else None
        if not pieces:
            return np.empty((0, spec.n_features_out_), dtype=dtype), rule_counts, sampled, ranges
        return np.ascontiguousarray(np.concatenate(pieces)), rule_counts, sampled, ranges

    def _rule_batches(self, src, as_of, batch_size, columns):
        """``(batch, rule segment code of each row or None without rules)`` per batch, in order,
        reading ``columns`` besides what the rules need."""
        if self.rules_ is None:
            for batch in src.batches(columns=columns, batch_size=batch_size):
                yield batch, None
            return
        for batch, codes, _ in self.rules_.stream(src, as_of=as_of, batch_size=batch_size, columns=columns):
            yield batch, codes

    def _rule_labels(self):
        """Rule segment names by code: the rules', then the default."""
        return list(self.rules_.names) + [self.rules_.default]

    def _rule_to_segment(self, n_clusters):
        """Segment id of each rule segment code (int16), -1 for the codes that are clustered."""
        labels = self._rule_labels()
        rule_names = [n for n in labels if n not in self.within_]
        return np.asarray([-1 if n in self.within_ else n_clusters + rule_names.index(n)
                           for n in labels], dtype=np.int16)

    # -- names ---------------------------------------------------------------------------------
    def _name_segments(self):
        names = [f"segment_{i}" for i in range(self.n_clusters_)]
        if self.rules_ is not None:
            rule_names = [n for n in self._rule_labels() if n not in self.within_]
            # a rule segment named like a default cluster name keeps its name; the cluster moves
            # (to cluster_i, or cluster_i_2, ... when a rule holds that name too: names must be
            # unique, which rename() and segmint.load() rely on)
            for i, n in enumerate(names):
                if n in rule_names:
                    names[i], j = f"cluster_{i}", 1
                    while names[i] in rule_names:
                        j += 1
                        names[i] = f"cluster_{i}_{j}"
            names += rule_names
        self.segment_names_ = names

    def rename(self, mapping):
        """Rename segments: ``{segment id or current name: new name}``. Returns ``self``."""
        self._check_fitted()
        # keys are the names before this call (looking them up in the list being rewritten
        # made a swap {'a': 'b', 'b': 'a'} rename 'a' twice and silently leave both as they were)
        current = list(self.segment_names_)
        index = {n: i for i, n in enumerate(current)}  # names are unique; a dict, not list.index
        names = list(current)
        for key, new in dict(mapping).items():
            if isinstance(key, (int, np.integer)) and not isinstance(key, bool):
                if not 0 <= key < len(names):
                    raise UnknownSegmentError(f"no segment id {key}: ids run from 0 to {len(names) - 1}")
                i = int(key)
            elif key in index:
                i = index[key]
            else:
                near = closest_names(str(key), current)
                hint = f"; did you mean {near[0]!r}?" if near else ""
                raise UnknownSegmentError(f"no segment named {key!r}{hint}")
            if not isinstance(new, str) or not new.strip():
                raise ParameterError(f"a segment name must be a non-empty string, got {new!r}")
            names[i] = new
        seen, repeated = set(), set()  # one pass: thousands of names must not cost their square
        for n in names:
            (repeated if n in seen else seen).add(n)
        dup = sorted(repeated)
        if dup:
            raise ParameterError(f"segment names must be unique; {', '.join(map(repr, dup))} would repeat")
        self.segment_names_ = names
        self._rename_reference()
        return self

    def _rename_reference(self):
        """Keep ``reference_.segments.categories`` equal to ``segment_names_``."""
        ref = getattr(self, "reference_", None)
        if ref is None or ref.segments is None:
            return
        from dataclasses import replace

        from ..monitor.reference import ReferenceStatistics
        # a new object: a copy of this model (refit, deepcopy) may share the old one
        self.reference_ = ReferenceStatistics(
            ref.n_rows, ref.features.values(), ref.categories.values(),
            replace(ref.segments, categories=tuple(self.segment_names_)))

    # -- scoring -------------------------------------------------------------------------------
    def _check_fitted(self):
        if not hasattr(self, "segment_names_"):
            raise NotFittedError("This Segmenter is not fitted yet. Call 'fit' first, or load a "
                                 "saved model with segmint.load(path).")

    def _check_columns(self, src, spec, rules):
        needed = list(spec.input_columns) if spec is not None else []
        if self.id_column is not None:
            needed.append(self.id_column)
        for col in needed:
            if col not in src.column_names:
                raise unknown_column(col, src.column_names, src.label)
        if rules is not None:
            rules.prepare(src.schema)  # type errors name the rule and the column

    def score(self, source, *, out=None, as_of=None, batch_size=DEFAULT_BATCH_SIZE, progress=None):
        """Segment of every customer, streamed; the whole result or written to ``out``.

        Unlike scikit-learn's ``score`` (a fit metric), this is the nightly job: one row
        per customer with the id column (when set), ``segment_id`` (int16), ``segment``
        (dictionary string), ``distance`` (Euclidean distance to the cluster's center in the
        feature space; null for customers a rule took) and, with rules, ``rule`` (the rule
        segment the customer fell in).

        Parameters
        ----------
        source : anything :func:`segmint.open` accepts (streamed)
        out : path, optional
            Arrow IPC (``.arrow``/``.feather``) or Parquet (``.parquet`` or a folder), written
            atomically: nothing appears at ``out`` unless the whole result was written.
        as_of : datetime, date or ISO string, optional
            For rules using dates (default now, UTC).
        batch_size : int, default ``segmint.io.DEFAULT_BATCH_SIZE``
            Rows per batch; memory holds a few batches whatever the input size.
        progress : callable, optional
            Called after each batch with that batch's number of rows (a tqdm bar's
            ``update`` fits).

        Returns
        -------
        pyarrow.Table or None
            The result (None when written to ``out``).
        """
        self._check_fitted()
        _check_batch_size(batch_size)
        if self.clusterer_ is not None:  # centers loaded from a file or set by hand
            check_centers(self.clusterer_.cluster_centers_)
        src = open_source(source)
        self._check_columns(src, self.feature_spec_ if self.clusterer_ is not None else None, self.rules_)
        schema = self._result_schema(src)
        writer = ResultWriter(out, schema, inputs=src.paths) if out is not None else None
        pieces = []
        try:
            # the schema goes with each call, not through self: two threads scoring sources with
            # different id column types would otherwise build batches against the other's schema
            # (pyarrow does not check, so that read int64 buffers as strings and crashed)
            # names too: a rename() from another thread mid-score must not mix names in one result
            score_batch = functools.partial(
                self._score_batch, schema=schema, names=self._labels_array(),
                to_segment=self._rule_to_segment(self.n_clusters_) if self.rules_ is not None else None)
            for result in ordered_map(score_batch, self._score_items(src, as_of, batch_size)):
                if writer is not None:
                    writer.write(result)
                else:
                    pieces.append(result)
                if progress is not None:
                    progress(result.num_rows)
            if writer is not None:
                writer.close()
        except BaseException:
            if writer is not None:
                writer.abort()
            raise
        return None if out is not None else pa.Table.from_batches(pieces, schema=schema)

    def predict(self, source, *, as_of=None, batch_size=DEFAULT_BATCH_SIZE):
        """Segment id of every row: (n,) int32 (as scikit-learn's ``predict``)."""
        table = self.score(source, as_of=as_of, batch_size=batch_size)
        return table.column("segment_id").to_numpy().astype(np.int32)

    def transform(self, source, *, batch_size=DEFAULT_BATCH_SIZE):
        """The feature matrix (n, n_features_out) of ``dtype``: what the clusterer sees."""
        self._check_fitted()
        if self.feature_spec_ is None:
            raise DataError("this Segmenter has no features (rules only)")
        return self.feature_spec_.transform(source, dtype=np.dtype(self.dtype),
                                            batch_size=_check_batch_size(batch_size))

    def refit(self, source, *, statistics="frozen", n_clusters=None, as_of=None,
              batch_size=DEFAULT_BATCH_SIZE, random_state=None):
        """A new model fitted on ``source`` that keeps this one's segment ids and names where
        its clusters are still there (this model is left untouched).

        The clusterer is started from this model's centers (warm start) and from its usual
        init, both fitted on a sample of the rows; the start of lower inertia there is fitted
        once on every row. New clusters are matched to old ones by a minimum-cost assignment
        on center distances (shared customers break ties), a pair standing only when the
        customers agree; matched clusters keep their name (and their id when the number of
        clusters is unchanged). See :mod:`segmint.monitor.refit`.

        Parameters
        ----------
        source : anything :func:`segmint.open` accepts that can be read twice
        statistics : {"frozen", "refit"}, default "frozen"
            ``"frozen"`` keeps the fitted feature statistics, so old and new centers live in one
            feature space and the shifts compare like with like (feature drift itself shows in
            :func:`segmint.drift`); ``"refit"`` fits them again on ``source`` (old centers are
            mapped into the new space).
        n_clusters : int, optional
            Clusters of the new model (default: as now).
        as_of : datetime, date or ISO string, optional
            For rules using dates (default now, UTC).
        batch_size : int, default ``segmint.io.DEFAULT_BATCH_SIZE``
            Rows per batch.
        random_state : int, optional
            Seed of the new model and its clusterer (default: this model's).

        Returns
        -------
        Segmenter
            Fitted, with ``refit_`` (a :class:`segmint.monitor.refit.Refit`: the per-segment
            report) and ``reference_`` computed on ``source``. Save it with ``save``; never
            over this model's file.
        """
        from ..monitor.refit import refit
        return refit(self, source, statistics=statistics, n_clusters=n_clusters, as_of=as_of,
                     batch_size=batch_size, random_state=random_state)

    def fit_predict(self, source, y=None, **kwargs):
        """``fit`` then ``predict`` the same source."""
        # as_of and batch_size apply to both steps (predict used to evaluate date rules at now)
        predict_kwargs = {k: kwargs[k] for k in ("as_of", "batch_size") if k in kwargs}
        return self.fit(source, **kwargs).predict(source, **predict_kwargs)

    def _score_items(self, src, as_of, batch_size, columns=()):
        """``(batch, rule segment codes or None)`` per batch, made on the calling thread, in order."""
        extra = ([self.id_column] if self.id_column is not None else []) + list(columns)
        spec_cols = self.feature_spec_.input_columns if self.clusterer_ is not None else []
        columns = list(dict.fromkeys(spec_cols + extra))
        for batch, assign in self._rule_batches(src, as_of, batch_size, columns):
            # Build the feature columns' views here, before the batch goes to a worker: a string
            # column's view maps its codes through the pass's shared DictionaryUnifier, which is
            # not thread-safe. Built lazily by transform_batch on the workers, batches with
            # different dictionaries raced in it and got codes beyond the one-hot lookup table
            # (wrong one-hot columns, or a segfault in the kernel).
            for name in spec_cols:
                batch[name]
            yield batch, assign

    def stream(self, source, *, as_of=None, batch_size=DEFAULT_BATCH_SIZE, columns=()):
        """Score batch by batch, yielding each batch with its segments, in source order.

        For callers that do more with each batch than :meth:`score` does (profiles and
        validation read other columns of the same rows): nothing is gathered, so memory stays
        a few batches whatever the source's size. The segments are those :meth:`score` writes.

        Parameters
        ----------
        source : anything :func:`segmint.open` accepts (streamed in batches)
        as_of : datetime, date or ISO string, optional
            For rules using dates (default now, UTC).
        batch_size : int
            Rows per batch.
        columns : sequence of str
            Columns to read along with the ones the model needs.

        Yields
        ------
        ScoreBatch
            ``(batch, segment_id, distance)``: ``segment_id`` int16 (n,), ``distance`` (n,) of the
            model's dtype, NaN where a rule took the row.
        """
        self._check_fitted()
        _check_batch_size(batch_size)
        if isinstance(columns, str):
            raise ParameterError(f"columns must be a list of column names, got the string {columns!r}")
        columns = list(columns or ())
        if self.clusterer_ is not None:
            check_centers(self.clusterer_.cluster_centers_)
        src = open_source(source)
        self._check_columns(src, self.feature_spec_ if self.clusterer_ is not None else None, self.rules_)
        for col in columns:
            if col not in src.column_names:
                raise unknown_column(col, src.column_names, src.label)
        to_segment = self._rule_to_segment(self.n_clusters_) if self.rules_ is not None else None
        assign = functools.partial(self._assign_batch, to_segment=to_segment)
        for batch, (seg, dist, clustered) in ordered_map(
                lambda item: (item[0], assign(item)), self._score_items(src, as_of, batch_size, columns)):
            dist[~clustered] = np.nan  # a fresh array per batch: ours to change
            yield ScoreBatch(batch, seg, dist)

    def _score_batch(self, item, schema, names, to_segment):
        batch, assign = item
        seg, dist, clustered = self._assign_batch(item, to_segment)
        arrays = []
        if self.id_column is not None:
            arrays.append(batch.record_batch.column(self.id_column))
        arrays.append(pa.array(seg))
        arrays.append(pa.DictionaryArray.from_arrays(pa.array(seg), names, safe=False))
        arrays.append(pa.array(dist, mask=~clustered))
        if assign is not None:
            arrays.append(pa.DictionaryArray.from_arrays(pa.array(assign.astype(np.int16)),
                                                         self._rule_labels_array(), safe=False))
        return pa.RecordBatch.from_arrays(arrays, schema=schema)

    def _assign_batch(self, item, to_segment):
        """``(segment ids int16, distances, clustered mask)`` of one batch."""
        batch, assign = item
        n = batch.num_rows
        k = self.n_clusters_
        seg = np.empty(n, dtype=np.int16)
        dist = np.zeros(n, dtype=np.dtype(self.dtype))
        clustered = np.ones(n, dtype=bool)
        if assign is not None:
            seg[:] = to_segment[assign]  # clusters for the scope (filled below), else the rule's id
            clustered = seg < 0
        if k:
            rows = np.flatnonzero(clustered)
            if rows.size:
                X = self.feature_spec_.transform_batch(batch, dtype=np.dtype(self.dtype))
                if rows.size < n:
                    X = X[rows]
                labels, sq, _, bad = assign_pass(Features(X), self.clusterer_.cluster_centers_,
                                                 want_labels=True, want_distances=True, want_inertia=False)
                if bad:  # NaN or values whose distances overflow: refuse, never a silent wrong segment
                    start = getattr(batch, "start", 0)
                    self._check_matrix(X, f"the features of rows {start:,}..{start + n - 1:,}", always=True)
                seg[rows] = labels
                dist[rows] = np.sqrt(np.maximum(sq, 0))
        return seg, dist, clustered

    def _check_matrix(self, X, what, always=False):
        """Raise a :class:`FeatureError` naming the spec's output features of ``X`` that hold
        NaN, infinities or values beyond the clustering limit (an error path: reads X again);
        with ``always``, raise even when none is found."""
        data = Features(X)
        data.names = list(self.feature_spec_.feature_names_out_)
        try:
            data.check_finite()
        except FeatureError as e:
            raise FeatureError(f"{what}: {e}") from None
        if always:
            raise FeatureError(f"{what} hold NaN, infinite or too large values")

    def _labels_array(self):
        return pa.array(self.segment_names_, pa.string())

    def _rule_labels_array(self):
        return pa.array(self._rule_labels(), pa.string())

    def _result_schema(self, src):
        fields = [src.schema.field(self.id_column)] if self.id_column is not None else []
        fields += [pa.field("segment_id", pa.int16(), nullable=False),
                   pa.field("segment", pa.dictionary(pa.int16(), pa.string()), nullable=False),
                   pa.field("distance", pa.from_numpy_dtype(np.dtype(self.dtype)))]
        if self.rules_ is not None:
            fields.append(pa.field("rule", pa.dictionary(pa.int16(), pa.string()), nullable=False))
        return pa.schema(fields)

    # -- saving --------------------------------------------------------------------------------
    def save(self, path):
        """Write the fitted model to ``path`` (a ``.seg`` zip of plain data, see
        :mod:`segmint.pipeline.model_file`); ``segmint.load(path)`` reads it back.

        Returns
        -------
        path
        """
        self._check_fitted()
        model_file.write_state(path, self._state())
        return path

    @classmethod
    def load(cls, path):
        """The Segmenter saved at ``path`` by :meth:`save` (``segmint.load`` reads any saved object).

        Raises
        ------
        SourceNotFoundError
            No file at ``path``.
        ModelFormatError
            Not a segmint model, damaged, too new, or pieces that do not fit together; the
            message names the file and the field.
        """
        state = model_file.read_state(path)
        try:
            model = cls._from_state(state)
            # the file it came from: a refit's report never writes over it (Refit.inputs)
            model._model_path = os.fspath(path)
            return model
        except (ValueError, TypeError, OverflowError, DataError) as exc:
            # pieces that do not fit together (e.g. an unknown cluster_within): the file is wrong
            raise model_file.ModelFormatError(f"{path}: {exc}") from None

    def _state(self):
        """The fitted state as data (what a model file holds)."""
        params = {"id_column": self.id_column, "fit_rows": self.fit_rows,
                  "dtype": np.dtype(self.dtype).name, "random_state": self.random_state}
        return model_file.SegmenterState(
            params=params, features=self.feature_spec_, rules=self.rules_, clusterer=self.clusterer_,
            cluster_within=list(self.within_), segment_names=list(self.segment_names_),
            n_rows_fit=int(self.n_rows_fit_), reference=getattr(self, "reference_", None),
            input_schema=getattr(self, "input_schema_", None))

    @classmethod
    def _from_state(cls, state):
        """A fitted Segmenter built from ``state`` (a :class:`~.model_file.SegmenterState`),
        checking that its pieces fit together as :meth:`fit` would have left them.

        Raises
        ------
        ParameterError, DataError, UnsupportedTypeError
            Parameters out of range, an unknown ``cluster_within``, centers of another dtype,
            or segment names that do not number the clusters and rule segments.
        """
        params, clusterer, rules = state.params, state.clusterer, state.rules
        model = cls(state.features, clusterer=clusterer, rules=rules,
                    cluster_within=list(state.cluster_within) if (rules and clusterer) else None,
                    id_column=params.get("id_column"), fit_rows=params.get("fit_rows"),
                    dtype=np.dtype(params.get("dtype", "float32")),
                    random_state=params.get("random_state", 0))
        spec, rules, clusterer, within = model._validate()
        if clusterer is not None:  # fitted on a matrix of the model's dtype: anything else was edited
            if clusterer.cluster_centers_.dtype != np.dtype(model.dtype):
                raise DataError(f"centers are {clusterer.cluster_centers_.dtype} but the model's dtype "
                                f"is {np.dtype(model.dtype)}")
        model.feature_spec_, model.rules_, model.clusterer_, model.within_ = spec, rules, clusterer, within
        model.n_rows_fit_ = int(state.n_rows_fit)
        model.n_clusters_ = int(clusterer.cluster_centers_.shape[0]) if clusterer is not None else 0
        model._name_segments()
        names = list(state.segment_names)
        if len(names) != len(model.segment_names_):
            raise DataError(f"segment_names must list {len(model.segment_names_)} unique non-empty names "
                            f"(one per cluster center and rule segment), got {len(names)}")
        model.segment_names_ = names
        model.reference_ = state.reference
        model.input_schema_ = state.input_schema
        if state.reference is not None:
            model_file.check_reference(state.reference, spec, names)
        return model


def _check_batch_size(batch_size):
    """A positive int; buffers are sized by the rows a batch holds, never by ``batch_size``."""
    return check_positive_int("batch_size", batch_size)
