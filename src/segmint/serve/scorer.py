"""The in-process :class:`Scorer`: one record in, its segment out, with the batch path's bits.

A record is a mapping of column name to scalar: ``None`` for a null, a number (or a numpy
scalar) for a numeric column, ``True``/``False`` for a boolean one, a string for a category,
a ``date``/``datetime`` for a time column (rules only). Extra fields are ignored.

How the result stays bit-identical to :meth:`Segmenter.score` for the same customer: no
arithmetic is written twice. The record's numeric values are rounded to their column's type
(a float32 column's value is a float32, as the batch path reads it), then one kernel call
(:func:`segmint.kernels.record.score_record`) runs the batch transform kernel on each value
and the batch assignment kernel on the one-row matrix; the distance is the square root of its
squared distance, rounded to the model's dtype, as in the batch path.

Rules go through the rule set's record evaluator (``RuleSet.record_evaluator``: the batch
engine's program, run on one record), one for every ``as_of``: the instant is a kernel argument.
"""
import dataclasses
import datetime as _dt
import math
import numbers
import operator
import threading
import time
from collections.abc import Mapping
from typing import NamedTuple, Optional

import numpy as np
import pyarrow as pa

from .._estimator import NotFittedError
from ..cluster._matrix import FeatureError, check_centers
from ..cluster._passes import prepare as prepare_centers
from ..errors import ParameterError, UnknownColumnError, UnsupportedTypeError, closest_names
from ..kernels import record as kr
from ..pipeline.features.checks import _problem_error
from ..rules import RuleSet
from ..rules.parse import Column


class Score(NamedTuple):
    """One customer's segment, with the meaning of :meth:`Segmenter.score`'s columns.

    Attributes
    ----------
    segment_id : int
        Index into the model's ``segment_names_``.
    segment : str
        The segment's name.
    distance : float or None
        Euclidean distance to the cluster's center in the feature space (the model's dtype,
        as a Python float); None where a rule took the customer.
    rule : str or None
        The rule segment the customer fell in (the rule set's default when no rule took
        them); None for a model without rules.
    """
    segment_id: int
    segment: str
    distance: Optional[float]
    rule: Optional[str]


class _NumericField:
    __slots__ = ("name", "index", "kind", "expected", "plain")

    def __init__(self, name, index, arrow_type):
        self.name, self.index = name, index
        # the Python types taken as they are, without a look at the value
        self.plain = ()
        if arrow_type is not None and pa.types.is_dictionary(arrow_type):
            arrow_type = arrow_type.value_type
        if arrow_type is None:  # a model saved without its input types: a number or a boolean
            self.kind, self.expected = "loose", "a number or a boolean"
        elif pa.types.is_boolean(arrow_type):
            self.kind, self.expected = "bool", "True or False (a boolean column)"
        elif pa.types.is_integer(arrow_type):
            # an integer column holds integers: a float with a fraction is refused (never
            # truncated to another customer's value)
            self.kind, self.expected, self.plain = "int", "a number (an integer: an integer column)", (int,)
        elif pa.types.is_floating(arrow_type) and arrow_type.bit_width < 64:
            # ints must be exact in float32, as pyarrow requires when it builds the column
            self.kind, self.expected, self.plain = "float32", "a number", (float,)
        else:
            self.kind, self.expected, self.plain = "number", "a number", (float, int)


class _OneHotField:
    __slots__ = ("name", "columns", "other", "null_col")

    def __init__(self, plan):
        self.name = plan.column
        kept = plan.categories  # not plan.value_set: building that Arrow array imports pandas
        self.columns = {s: plan.first + i for i, s in enumerate(kept)}
        self.other = plan.first + plan.other
        self.null_col = plan.null_col


def _type_name(value):
    return "None" if value is None else type(value).__name__


def _infer_type(name, value):
    """The Arrow type a record's value suggests (for rule columns of a model saved without its
    input types)."""
    if isinstance(value, (bool, np.bool_)):
        return pa.bool_()
    if isinstance(value, numbers.Real):
        return pa.float64()
    if isinstance(value, str):
        return pa.string()
    if isinstance(value, _dt.datetime):
        return pa.timestamp("us", tz="UTC" if value.tzinfo is not None else None)
    if isinstance(value, np.datetime64):
        return pa.timestamp("us")
    if isinstance(value, np.timedelta64):
        return pa.duration("us")
    if isinstance(value, _dt.date):
        return pa.date32()
    if isinstance(value, _dt.timedelta):
        return pa.duration("us")
    raise UnsupportedTypeError(
        f"field {name!r}: cannot tell the column type from {_type_name(value)} {value!r}; this model "
        "was saved without its input types: pass schema= (a pyarrow schema) to the Scorer "
        "(Scorer(model, schema=...) or model.scorer(schema=...))")


def _rule_columns(rules):
    """Names of the columns a rule set reads, in first-use order (from its syntax trees)."""
    names = []

    def walk(node):
        if isinstance(node, Column):
            names.append(node.name)
        elif dataclasses.is_dataclass(node):
            for f in dataclasses.fields(node):
                walk(getattr(node, f.name))
        elif isinstance(node, (list, tuple)):
            for item in node:
                walk(item)

    for tree, _text in rules._asts.values():
        walk(tree)
    return list(dict.fromkeys(names))


def _scoring_kernels():
    from ..kernels import rules as vm
    return (kr.score_record, vm.run_record)


def _compile_counts():
    """Per scoring kernel: (signatures, cache hits, cache misses) so far in this process (all
    zero with NUMBA_DISABLE_JIT=1, where a kernel is a plain Python function)."""
    out = []
    for kernel in _scoring_kernels():
        stats = getattr(kernel, "stats", None)
        if stats is None:
            out.append((0, 0, 0))
            continue
        out.append((len(getattr(kernel, "signatures", ())), sum(stats.cache_hits.values()),
                    sum(stats.cache_misses.values())))
    return out


def _compiled_since(before):
    """True when a scoring kernel was compiled since ``before`` (a new signature that Numba's
    cache did not provide: a cache miss, or no cache hit at all with the cache off)."""
    for (n0, hits0, misses0), (n1, hits1, misses1) in zip(before, _compile_counts()):
        if misses1 > misses0 or (n1 > n0 and hits1 == hits0):
            return True
    return False


def _warm_rule_kernel():
    """Load (or compile) the record rule kernel with the argument types every
    :class:`~segmint.rules.record.RecordEvaluator` calls it with: an empty program."""
    from array import array
    from ..kernels import rules as vm
    vm.run_record(np.array([0, 0, 0, 0, 0], np.int64), np.zeros(2, np.float64), 0.0, 0.0, array("d"),
                  b"", np.zeros(0, np.uint8))


def _getter(names):
    """A function from a record to the tuple of its values of ``names`` (KeyError names the
    first missing one)."""
    if not names:
        return lambda record: ()
    if len(names) == 1:
        name = names[0]
        return lambda record: (record[name],)
    return operator.itemgetter(*names)


class Scorer:
    """One customer's segment in microseconds: a fitted model prepared for single records.

    Built once (the feature order fixed, parameters packed, the kernel compiled or loaded
    from Numba's cache, centers prepared); then :meth:`score_one` never compiles and many
    threads may share one Scorer (each thread gets its own buffers).

    Parameters
    ----------
    model : Segmenter or RuleSet
        A fitted :class:`~segmint.Segmenter`, or a waterfall :class:`~segmint.RuleSet`
        alone (segment ids are then the rule codes: rules in order, the default last, as a
        rules-only Segmenter numbers them).
    schema : pyarrow.Schema, optional
        The types of the columns the model reads. Default: the types recorded at fit
        (``input_schema_``); for a model saved before segmint recorded them, numeric
        features are float64 and one-hot features strings, and the types of columns only
        the rules read are taken from the first record the rules accept (the rule kernel
        is loaded at construction all the same; only the program waits for the types).

    Attributes
    ----------
    ready : bool
        True once built (everything a call needs is loaded and warm).
    compiled : bool
        True when building had to compile a kernel (Numba's cache was cold: run
        ``segmint warmup`` when building the image); False when it was loaded from the cache.
    warm_seconds : float
        Time spent loading or compiling and warming the kernels.
    segment_names : list of str
        The name of every segment id.
    columns : list of str
        The fields a record must have.
    """

    def __init__(self, model, *, schema=None):
        from ..pipeline.segmenter import Segmenter
        self.ready = False
        if isinstance(model, RuleSet):
            self._init_rules_only(model)
        elif isinstance(model, Segmenter):
            self._init_segmenter(model)
        else:
            raise UnsupportedTypeError(f"a Scorer is built from a fitted Segmenter or a RuleSet, got "
                                       f"{type(model).__module__}.{type(model).__name__}")
        if schema is not None and not isinstance(schema, pa.Schema):
            raise ParameterError(f"schema must be a pyarrow.Schema, got {type(schema).__name__}")
        self._resolve_types(schema)
        self._local = threading.local()
        self._lock = threading.Lock()
        self._rule_evaluator = None
        start = time.perf_counter()
        before = _compile_counts()
        self._warm()
        if self._rules is not None:
            if self._rule_types_known():
                self._rule_evaluator = self._make_evaluator(self._rule_types)  # its kernel loaded now
            else:
                # the evaluator waits for the first record's types, but its kernel (one
                # signature for every program) is loaded or compiled now, never in a request
                _warm_rule_kernel()
        self.compiled = _compile_counts() != before and _compiled_since(before)
        self.warm_seconds = time.perf_counter() - start
        self.ready = True

    # -- construction --------------------------------------------------------------------------
    def _init_rules_only(self, rules):
        if rules.mode != "waterfall":
            raise ParameterError(f"a Scorer needs a waterfall rule set (one segment per customer); got "
                                 f"mode={rules.mode!r}")
        self._rules, self._spec, self._k, self._dtype = rules, None, 0, np.dtype(np.float64)
        self._labels = list(rules.names) + [rules.default]
        self.segment_names = list(self._labels)
        self._to_segment = list(range(len(self._labels)))
        self._model_schema, self._id_column = None, None
        self._model = None

    def _init_segmenter(self, model):
        if not hasattr(model, "segment_names_"):
            raise NotFittedError("This Segmenter is not fitted yet: fit it (or segmint.load a saved "
                                 "model) before building a Scorer")
        self._model = model
        self._rules = model.rules_
        self._k = model.n_clusters_
        self._spec = model.feature_spec_ if self._k else None
        self._dtype = np.dtype(model.dtype)
        self.segment_names = list(model.segment_names_)
        self._labels = model._rule_labels() if self._rules is not None else None
        self._to_segment = (model._rule_to_segment(self._k).tolist() if self._rules is not None else None)
        self._model_schema = getattr(model, "input_schema_", None)
        self._id_column = model.id_column
        if self._k:
            centers = model.clusterer_.cluster_centers_
            check_centers(centers)
            self._C2, self._cn = prepare_centers(centers.astype(self._dtype, copy=False))

    def _type_of(self, name, given, default=None):
        for schema in (given, self._model_schema):
            if schema is not None and name in schema.names:
                return schema.field(name).type
        return default

    def _resolve_types(self, given):
        self._numeric, self._onehot = [], []
        self._d = 0
        if self._spec is not None:
            fitted = self._spec._check_fitted()
            self._d = len(fitted.names)
            fparams, iparams, blocks = [], [], []
            for plan in fitted.plans:
                if plan.kind == "numeric":
                    t = self._type_of(plan.column, given)
                    self._numeric.append(_NumericField(plan.column, len(self._numeric), t))
                    row = [0.0] * kr.N_FLOAT_PARAMS
                    row[kr.F_IMPUTE], row[kr.F_CLIP_LO], row[kr.F_CLIP_HI] = plan.impute, plan.clip_lo, plan.clip_hi
                    row[kr.F_CENTER], row[kr.F_SCALE] = plan.center, plan.scale
                    fparams.append(row)
                    flags = [0] * kr.N_INT_PARAMS
                    flags[kr.I_HAS_IMPUTE], flags[kr.I_LOG1P] = int(plan.has_impute), int(plan.feature.log1p)
                    flags[kr.I_USE_CLIP], flags[kr.I_COL] = int(plan.use_clip), plan.first
                    flags[kr.I_INDICATOR] = plan.indicator_col
                    flags[kr.I_FLOAT32] = int(self._numeric[-1].kind == "float32")
                    iparams.append(flags)
                else:
                    self._onehot.append(_OneHotField(plan))
                    blocks.append([plan.first, plan.width])
            self._entries = [p.feature for p in fitted.plans if p.kind == "numeric"]
            self._fparams = np.array(fparams, dtype=np.float64).reshape(-1, kr.N_FLOAT_PARAMS)
            self._iparams = np.array(iparams, dtype=np.int64).reshape(-1, kr.N_INT_PARAMS)
            self._blocks = np.array(blocks, dtype=np.int64).reshape(-1, 2)
        self._rule_fields = []
        self._rule_types = {}
        if self._rules is not None:
            self._rule_fields = _rule_columns(self._rules)
            for name in self._rule_fields:
                t = self._type_of(name, given)
                if t is None and any(f.name == name for f in self._onehot):
                    t = pa.string()  # a one-hot column holds strings (a numeric one may be boolean)
                if t is not None:
                    self._rule_types[name] = t
        self.columns = list(dict.fromkeys([f.name for f in self._numeric] + [f.name for f in self._onehot]
                                          + self._rule_fields))
        self._id_type = self._type_of(self._id_column, given) if self._id_column is not None else None
        self._n_num = len(self._numeric)
        self._get_numeric = _getter([f.name for f in self._numeric])
        self._get_onehot = _getter([f.name for f in self._onehot])
        self._all_valid = [1.0] * self._n_num
        # the common case, taken without a per-field look: each numeric field holding a value
        # of its column's own Python type (an int for an integer column, a float for a float one)
        kinds = [f.kind for f in self._numeric]
        self._plain_types = (None if any(k in ("bool", "loose") for k in kinds)
                             else tuple(int if k == "int" else float for k in kinds))

    def _rule_types_known(self):
        return all(name in self._rule_types for name in self._rule_fields)

    def _buffers(self):
        """This thread's buffers (made on its first call; a few small arrays):
        the arguments of :func:`segmint.kernels.record.score_record` but ``want_cluster``."""
        b = getattr(self._local, "buffers", None)
        if b is None:
            n = len(self._numeric)
            dp = self._C2.shape[1] if self._k else 0
            inputs, X, problems = (np.zeros(2 * n + len(self._onehot), np.float64),
                                   np.zeros((1, max(self._d, 1)), self._dtype), np.zeros((n, 3), np.int64))
            # the kernel's arguments but the last, in order: one tuple, looked up once per call
            b = self._local.buffers = (inputs, n, self._fparams, self._iparams, self._blocks, X, self._C2,
                                       self._cn, problems, np.zeros(max(1, (n + 7) // 8), np.uint8),
                                       np.zeros((dp + 6, kr.TILE), self._dtype), np.zeros(kr.TILE, np.int32))
        return b

    def _warm(self):
        """Run the record kernel once, in both modes (compiled only if Numba's cache is cold)."""
        if self._spec is None:
            return
        args = self._buffers()
        inputs, n = args[0], args[1]
        inputs[:n] = np.abs(self._fparams[:, kr.F_CENTER])  # any finite value; log1p columns take it too
        inputs[n:2 * n] = 1.0
        inputs[2 * n:] = [f.other for f in self._onehot]
        for want in (False, True):
            kr.score_record(*args, want)

    def _make_evaluator(self, types):
        """The rule evaluator for these column types (the instant is given per call)."""
        schema = pa.schema([pa.field(n, types[n]) for n in self._rule_fields])
        return self._rules.record_evaluator(schema)

    # -- errors --------------------------------------------------------------------------------
    def _missing(self, name, record):
        near = closest_names(str(name), [str(k) for k in record])
        hint = f"; did you mean {' or '.join(map(repr, near))}?" if near else ""
        return UnknownColumnError(f"the record has no field {name!r}, which the model reads{hint}")

    def _record_check(self, record):
        if not isinstance(record, Mapping):
            raise UnsupportedTypeError(f"a record is a mapping of column name to value (a dict), got "
                                       f"{type(record).__name__}")

    def _learn_rule_types(self, record):
        """The rule evaluator, built from the types of the first record that the rules accept:
        types the model does not know are taken from the record, and kept only once the
        evaluator is built on them (a record of wrong types is refused and teaches nothing)."""
        with self._lock:
            if self._rule_evaluator is not None:  # another thread built it meanwhile
                return self._rule_evaluator
            types = dict(self._rule_types)
            for name in self._rule_fields:
                if name not in types:
                    if name not in record:
                        raise self._missing(name, record)
                    value = record[name]
                    numeric = any(f.name == name for f in self._numeric)
                    types[name] = pa.float64() if value is None and numeric else _infer_type(name, value)
            evaluator = self._make_evaluator(types)
            self._rule_types = types
            self._rule_evaluator = evaluator
            return evaluator

    # -- scoring -------------------------------------------------------------------------------
    def score_one(self, record, *, as_of=None):
        """The segment of one customer.

        Parameters
        ----------
        record : mapping of str to scalar
            Column name to value: None for a null, a number for a numeric column, True/False
            for a boolean one, a string for a category, a date/datetime for a time column
            (numpy scalars too). Fields the model does not read are ignored.
        as_of : datetime, date or ISO string, optional
            For rules using dates (default now, UTC, at each call). Any value per call costs
            nothing extra but its conversion (the last 256 converted are kept).

        Returns
        -------
        Score
            ``(segment_id, segment, distance, rule)``, as :meth:`Segmenter.score`'s columns.

        Raises
        ------
        UnknownColumnError
            A field the model reads is missing (naming it and the nearest field given).
        UnsupportedTypeError
            A field of the wrong type (naming it and the type expected): a string for a
            numeric column, a number for a category.
        FeatureError
            Values the batch path refuses too: NaN or infinities, a null without imputation,
            a negative value under log1p, values too large to cluster. The features are
            checked even when a rule takes the customer (a one-row batch takes such a customer
            with a NaN feature, a longer batch refuses it: the Scorer keeps to the stricter).
        RuleError
            For a model that does not know its rule columns' types (saved without them, or a
            RuleSet scored without ``schema=``): the first record's types do not fit the
            rules (nothing is learnt from it; the next record is tried afresh).
        """
        if type(record) is not dict:
            self._record_check(record)
        code = -1
        seg = -1
        rules = self._rules
        if rules is not None:
            evaluator = self._rule_evaluator
            if evaluator is None:
                evaluator = self._learn_rule_types(record)
            try:
                code = evaluator.code(record, as_of=as_of)
            except KeyError as e:
                if isinstance(e, UnknownColumnError) or not e.args or e.args[0] not in self.columns:
                    raise
                raise self._missing(e.args[0], record) from None
            seg = self._to_segment[code]
            if seg >= 0 and not self._k:
                return Score(seg, self.segment_names[seg], None, self._labels[code])
        b = getattr(self._local, "buffers", None)
        if b is None:
            b = self._buffers()
        values = self._inputs(record)
        try:
            b[0][:] = values
        except OverflowError:  # an int beyond float64: infinite, refused as the kernel finds it
            n = self._n_num
            b[0][:] = [self._number(f, v) for f, v in zip(self._numeric, values[:n])] + values[n:]
        result, label, distance = kr.score_record(*b, seg < 0)
        if result < 0:
            raise _problem_error(self._entries, list(b[8]), "cannot score the record: ")
        rule = self._labels[code] if rules is not None else None
        if seg >= 0:  # a rule took the customer: features checked as the batch path does, no cluster
            return Score(seg, self.segment_names[seg], None, rule)
        if result > 0:
            self._model._check_matrix(b[5], "the record's features", always=True)
        return Score(label, self.segment_names[label], distance, rule)

    def _inputs(self, record):
        """The record's feature fields, checked, as the kernel's ``inputs``: the numeric values,
        their validity, the one-hot columns (a list)."""
        try:
            values = self._get_numeric(record)
            categories = self._get_onehot(record)
        except KeyError as e:
            name = e.args[0] if e.args else None
            if name not in self.columns:
                raise
            raise self._missing(name, record) from None
        if tuple(map(type, values)) == self._plain_types:
            # the common case: Python numbers for numeric columns, all valid (floats of a
            # float32 column are rounded by the kernel)
            out = list(values) + self._all_valid
        else:
            out, ok = [], []
            for f, v in zip(self._numeric, values):
                t = type(v)
                if t in f.plain:
                    out.append(v)
                    ok.append(1.0)
                elif v is None:
                    out.append(0.0)
                    ok.append(0.0)
                else:
                    out.append(self._number(f, v))
                    ok.append(1.0)
            out += ok
        for f, v in zip(self._onehot, categories):
            if isinstance(v, str):
                out.append(f.columns.get(v, f.other))  # unseen categories: __other, as the batch path
            elif v is None:
                if f.null_col < 0:
                    raise FeatureError(f"cannot score the record: field {f.name!r} is null and its spec "
                                       "has \"null\": \"error\"; use \"indicator\" or \"other\" to encode nulls")
                out.append(f.null_col)
            else:
                raise UnsupportedTypeError(f"field {f.name!r}: expected a string (a category), got "
                                           f"{_type_name(v)} {v!r}")
        return out

    @staticmethod
    def _number(f, v):
        if f.kind == "bool" or f.kind == "loose":
            if isinstance(v, (bool, np.bool_)):
                return 1.0 if v else 0.0
        if f.kind != "bool" and isinstance(v, numbers.Real) and not isinstance(v, (bool, np.bool_)):
            try:
                x = float(v)
            except OverflowError:  # an int beyond float64: as the batch path's cast, infinite
                x = math.inf if v > 0 else -math.inf
            integer = isinstance(v, (int, np.integer))
            if f.kind == "int" and not integer and not (math.isfinite(x) and x.is_integer()):
                raise UnsupportedTypeError(f"field {f.name!r}: expected {f.expected}, got "
                                           f"{_type_name(v)} {v!r} (a fraction or not finite)")
            if f.kind == "float32" and integer and float(np.float32(x)) != v:
                raise UnsupportedTypeError(f"field {f.name!r}: the integer {v!r} is not exact in this "
                                           "float32 column (as pyarrow refuses it); give a float")
            return x  # a float32 column's value is rounded by the kernel
        raise UnsupportedTypeError(f"field {f.name!r}: expected {f.expected}, got {_type_name(v)} {v!r}")

    def score_many(self, records, *, as_of=None):
        """The segments of several customers, as a table of :meth:`Segmenter.score`'s columns.

        Parameters
        ----------
        records : list of mappings, or a pyarrow Table or RecordBatch
            A small batch (each row is scored as :meth:`score_one` scores it).
        as_of : datetime, date or ISO string, optional
            For rules using dates (default now, UTC; one instant for the whole batch).

        Returns
        -------
        pyarrow.Table
            The id column (when the model has one and any record carries it; null for a
            record without it), ``segment_id``
            (int16), ``segment`` (dictionary string), ``distance`` (the model's dtype, null
            where a rule took the customer) and, with rules, ``rule``.
        """
        if isinstance(records, (pa.Table, pa.RecordBatch)):
            records = records.to_pylist()
        elif isinstance(records, Mapping) or not hasattr(records, "__iter__"):
            raise UnsupportedTypeError(f"records must be a list of mappings or an Arrow table, got "
                                       f"{type(records).__name__}")
        records = list(records)
        if as_of is None and self._rules is not None:  # one instant for the whole batch
            as_of = _dt.datetime.now(_dt.timezone.utc)
        scores = [self.score_one(r, as_of=as_of) for r in records]
        arrays, fields = [], []
        if self._id_column is not None and any(self._id_column in r for r in records):
            # a record without the id gets a null id (never a dropped column)
            ids = pa.array([r.get(self._id_column) for r in records], type=self._id_type)
            arrays.append(ids)
            fields.append(pa.field(self._id_column, ids.type))
        seg = np.array([s.segment_id for s in scores], dtype=np.int16)
        names = pa.array(self.segment_names, pa.string())
        dist = np.array([np.nan if s.distance is None else s.distance for s in scores], dtype=self._dtype)
        mask = np.array([s.distance is None for s in scores], dtype=bool)
        arrays += [pa.array(seg), pa.DictionaryArray.from_arrays(pa.array(seg), names, safe=False),
                   pa.array(dist, mask=mask)]
        fields += [pa.field("segment_id", pa.int16(), nullable=False),
                   pa.field("segment", pa.dictionary(pa.int16(), pa.string()), nullable=False),
                   pa.field("distance", pa.from_numpy_dtype(self._dtype))]
        if self._labels is not None:
            index = {n: i for i, n in enumerate(self._labels)}
            codes = pa.array(np.array([index[s.rule] for s in scores], dtype=np.int16))
            arrays.append(pa.DictionaryArray.from_arrays(codes, pa.array(self._labels, pa.string()), safe=False))
            fields.append(pa.field("rule", pa.dictionary(pa.int16(), pa.string()), nullable=False))
        return pa.Table.from_arrays(arrays, schema=pa.schema(fields))

    def __repr__(self):
        what = f"k={self._k}" + (f", {len(self._labels)} rule segments" if self._labels else "")
        return f"Scorer({what}, {len(self.columns)} fields, ready={self.ready})"
