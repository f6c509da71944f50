"""The in-process :class:`Scorer`: one record in, its segment out, with the batch path's bits.

A record is a mapping of column name to scalar: ``None`` for a null, a number (or a numpy
scalar) for a numeric column, ``True``/``False`` for a boolean one, a string for a category,
a ``date``/``datetime`` or its ISO 8601 string for a time column (rules only). Extra fields
are ignored.

How a call goes (measured on the benchmark's model, 16 features, k=8, 20 rules: ~6 us):

1. the record is read once: one ``itemgetter`` call for every field the model reads (rules
   and features), then a reader generated for the model (:func:`_reader`, straight-line code,
   ~1.5 us) converts each field once into a *slot* (a field the rules and the features both
   read, ``monetary``, has one) and packs values and states into this thread's buffer with
   one :mod:`struct` call;
2. one compiled call, :func:`segmint.kernels.record.score_customer`, through the entry point
   compiled (or loaded from the cache) when the Scorer was built, so neither Numba's type
   dispatch nor a compile happens on a call: it runs the rule program (the batch engine's, on
   one record: :func:`segmint.kernels.rules.run_record`), the batch transform kernel on each
   feature and the batch assignment kernel on the one-row matrix;
3. a customer a rule took gets a ``Score`` made at build; the others one tuple.

How the result stays bit-identical to :meth:`Segmenter.score` for the same customer: no
arithmetic is written twice. Values are rounded to their column's type (a float32 column's
value is a float32, as the batch path reads it), the kernels are the batch path's, and the
distance is the square root of its squared distance, rounded to the model's dtype, as in the
batch path. Values the batch path cannot hold are refused as pyarrow refuses them (an int
beyond 2**53 in a float64 column, an inexact int in a float32 one, an int outside an integer
column's type: int8..int64, uint8..uint64).

Where the Scorer is stricter than the batch path: a customer's features are checked (NaN,
a null without imputation, a negative value under log1p) even when a rule takes the
customer. :meth:`Segmenter.score` transforms, so checks, the features of a batch
(``batch_size`` rows at a time) only when some customer in it goes to the clustering, and
then those of every row in it, rule-taken ones too: a batch whose customers rules all took
(a one-row batch of such a customer) is not checked, a batch with one clustered customer is.
The Scorer refuses such a record every time, never depending on its batch neighbours.
"""
import dataclasses
import datetime as _dt
import math
import numbers
import operator
import struct
import threading
import time
from collections.abc import Mapping
from typing import NamedTuple, Optional

import numpy as np
import pyarrow as pa

from .._estimator import NotFittedError
from .._time import US_PER_DAY
from ..cluster._matrix import FeatureError, check_centers
from ..cluster._passes import prepare as prepare_centers
from ..errors import ParameterError, UnknownColumnError, UnsupportedTypeError, closest_names
from ..kernels import record as kr
from ..pipeline.features.checks import _problem_error
from ..rules import RuleSet
from ..rules.parse import Column
from ..rules.record import INSTANTS, integer_limits, out_of_range
from ..rules.record import _wrong_type as _rule_wrong_type


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


# How a slot's value is taken without a call (see Scorer._read): the Python types a field of
# each kind takes as they are; any other value goes through the slot's converter.
FAST_FLOAT = 0   # a float (float32 columns: an int must be checked for exactness)
FAST_NUMBER = 1  # a float, or an int within +-2**53 (float64 columns)
FAST_INT = 2     # an int within +-2**53 and the column type's range (a float: checked for a fraction)
FAST_DATE = 3    # a datetime.date (date32 rule columns)
FAST_BOOL = 4    # True or False (boolean features)
FAST_NONE = 5    # only None without a call
_EXACT_INT = 2 ** 53  # ints beyond it are not exact in float64 (pyarrow refuses them in a float64 column)
_EPOCH_ORDINAL = _dt.date(1970, 1, 1).toordinal()
_new_tuple = tuple.__new__
_time_ns = time.time_ns


class _NumericField:
    __slots__ = ("name", "index", "kind", "expected", "fast", "limits", "lo", "hi")

    def __init__(self, name, index, arrow_type):
        self.name, self.index = name, index
        if arrow_type is not None and pa.types.is_dictionary(arrow_type):
            arrow_type = arrow_type.value_type
        # an integer column's type range (pyarrow refuses an int outside it), and the ints the
        # reader takes inline (the rest through convert)
        self.limits = None if arrow_type is None else integer_limits(arrow_type)
        self.lo, self.hi = -_EXACT_INT, _EXACT_INT
        if self.limits is not None:
            self.lo, self.hi = max(self.lo, self.limits[0]), min(self.hi, self.limits[1])
        if arrow_type is None:  # a model saved without its input types: a number or a boolean
            self.kind, self.expected, self.fast = "loose", "a number or a boolean", FAST_NUMBER
        elif pa.types.is_boolean(arrow_type):
            self.kind, self.expected, self.fast = "bool", "True or False (a boolean column)", FAST_BOOL
        elif pa.types.is_integer(arrow_type):
            # an integer column holds integers: a float with a fraction is refused (never
            # truncated to another customer's value)
            self.kind, self.expected, self.fast = "int", "a number (an integer: an integer column)", FAST_INT
        elif pa.types.is_floating(arrow_type) and arrow_type.bit_width < 64:
            # ints must be exact in float32, as pyarrow requires when it builds the column
            self.kind, self.expected, self.fast = "float32", "a number", FAST_FLOAT
        else:
            self.kind, self.expected, self.fast = "number", "a number", FAST_NUMBER

    def convert(self, v):
        """The float64 of a value the quick look did not take (the kernel rounds a float32
        column's), or the error naming the field."""
        return _feature_number(self, v)


def _feature_number(f, v):
    if f.kind == "bool" or f.kind == "loose":
        if isinstance(v, (bool, np.bool_)):
            return 1.0 if v else 0.0
    if f.kind != "bool" and isinstance(v, numbers.Real) and not isinstance(v, (bool, np.bool_)):
        integer = isinstance(v, (int, np.integer))
        # a float64 column (known as one: not a "loose" column of a model saved without its
        # types, which may be int64 and take such ints, as the batch path does)
        if integer and f.kind == "number" and not -_EXACT_INT <= v <= _EXACT_INT:
            raise UnsupportedTypeError(f"field {f.name!r}: the integer {v!r} is beyond 2**53, not exact in "
                                       "this float64 column (as pyarrow refuses it); give a float")
        if integer and f.limits is not None and not f.limits[0] <= v <= f.limits[1]:
            raise out_of_range(f.name, v, f.limits)
        try:
            x = float(v)
        except OverflowError:  # an int beyond float64: as the batch path's cast, infinite
            x = math.inf if v > 0 else -math.inf
        if f.kind == "int" and not integer and not (math.isfinite(x) and x.is_integer()):
            raise UnsupportedTypeError(f"field {f.name!r}: expected {f.expected}, got "
                                       f"{_type_name(v)} {v!r} (a fraction or not finite)")
        if f.kind == "int" and not integer and not f.limits[0] <= x <= f.limits[1]:
            raise out_of_range(f.name, v, f.limits)
        if f.kind == "float32" and integer and float(np.float32(x)) != v:
            raise UnsupportedTypeError(f"field {f.name!r}: the integer {v!r} is not exact in this "
                                       "float32 column (as pyarrow refuses it); give a float")
        return x  # a float32 column's value is rounded by the kernel
    raise UnsupportedTypeError(f"field {f.name!r}: expected {f.expected}, got {_type_name(v)} {v!r}")


class _OneHotField:
    __slots__ = ("name", "columns", "other", "null_col")

    def __init__(self, plan):
        self.name = plan.column
        kept = plan.categories  # not plan.value_set: building that Arrow array imports pandas
        self.columns = {s: plan.first + i for i, s in enumerate(kept)}
        self.other = plan.first + plan.other
        self.null_col = plan.null_col

    def column(self, v):
        """The output column a value sets (a category's, ``__other``'s or the null column)."""
        if isinstance(v, str):
            return self.columns.get(v, self.other)  # unseen categories: __other, as the batch path
        if v is None:
            if self.null_col < 0:
                raise FeatureError(f"cannot score the record: field {self.name!r} is null and its spec "
                                   "has \"null\": \"error\"; use \"indicator\" or \"other\" to encode nulls")
            return self.null_col
        raise UnsupportedTypeError(f"field {self.name!r}: expected a string (a category), got "
                                   f"{_type_name(v)} {v!r}")


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
    return (kr.score_customer, vm.run_record)


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
    :class:`~segmint.rules.record.RecordEvaluator` calls it with: an empty program (the
    Scorer builds one when it learns a model's rule types from a first record)."""
    from array import array
    from ..kernels import rules as vm
    vm.run_record(np.array([0, 0, 0, 0, 0], np.int64), np.zeros(2, np.float64), 0.0, 0.0, array("d"),
                  b"", np.zeros(0, np.uint8))


def _python_kernel(*args):
    """The record kernel run as Python (NUMBA_DISABLE_JIT=1), its results as Python numbers
    (the compiled kernel boxes them so; numpy scalars would reach a caller's JSON encoder)."""
    status, code, segment, distance = kr.score_customer(*args)
    return int(status), int(code), int(segment), float(distance)


def _getter(names):
    """A function from a record to the tuple of its values of ``names`` (KeyError names the
    first missing one)."""
    if not names:
        return lambda record: ()
    if len(names) == 1:
        name = names[0]
        return lambda record: (record[name],)
    return operator.itemgetter(*names)


def _both(rule, feature):
    """A converter for a field the rules and the features read: the rules' checks, then the
    features' (as the two readers refused values before they shared a slot)."""
    def convert(v):
        x = rule(v)
        feature(v)
        return x
    return convert


class _Plan:
    """How a record becomes the kernel's packed buffer, for one set of rule types.

    Built once per Scorer (or once the first record told the rules' types); read-only after,
    so every thread shares it.
    """

    def __init__(self, scorer, evaluator):
        numeric, onehot = scorer._numeric, scorer._onehot
        fields = {}  # every field read once: name -> its index in the getter's tuple

        def index(name):
            return fields.setdefault(name, len(fields))

        slots = []  # (value index, fast, converter, lo, hi: the ints taken inline)
        float32 = []
        slot_of = {}
        if evaluator is not None:
            # the evaluator's reading of each rule column (rules.record is this module's
            # partner: its loaders are the ones the Scorer must agree with)
            from ..rules import record as rr
            for name, fast, kind, per_us, scale, lo, hi, limits in evaluator._num:
                fast = {rr._FAST_NUMBER: FAST_NUMBER, rr._FAST_INT: FAST_INT,
                        rr._FAST_DATE32: FAST_DATE}.get(fast, FAST_NONE)
                if kind == rr._FLOAT32:
                    fast = FAST_FLOAT
                    float32.append(len(slots))

                def rule(v, name=name, kind=kind, per_us=per_us, scale=scale, limits=limits):
                    return rr._number(name, v, kind, per_us, scale, limits)
                slot_of[name] = len(slots)
                slots.append([index(name), fast, rule, lo, hi])
        feature_slots = []
        for f in numeric:
            s = slot_of.get(f.name)
            if s is not None and f.kind != "bool":
                # one slot for both readers: the quick look both accept, both checks on the rest
                slot = slots[s]
                slot[1] = slot[1] if slot[1] == f.fast else FAST_NONE
                slot[2] = _both(slot[2], f.convert)
                slot[3], slot[4] = max(slot[3], f.lo), min(slot[4], f.hi)
            else:
                s = len(slots)
                slots.append([index(f.name), f.fast, f.convert, f.lo, f.hi])
            if f.kind == "float32" and s not in float32:
                float32.append(s)
            feature_slots.append(s)
        self.slots = [tuple(s) for s in slots]
        self.onehot = [(index(f.name), f) for f in onehot]
        self.bools, self.strings = [], []
        if evaluator is not None:
            self.bools = [(index(name), name) for name in evaluator._bool]
            self.strings = [(index(c.name), c) for c in evaluator._str]
        self.names = list(fields)
        self.get = _getter(self.names)
        self.has_rules = evaluator is not None
        n_slots = len(self.slots)
        n_values = n_slots + len(onehot)
        n_states = n_slots + (0 if evaluator is None else
                              len(evaluator._bool) + sum(len(c.nodes) for c in evaluator._str))
        self.n_values = n_values
        self.problems, _, _, self.size = kr.raw_layout(n_values, n_states, len(numeric))
        self.pack_into = struct.Struct(f"={n_values}d{n_states}B").pack_into
        # the model's constants, in the kernel's two arrays
        consts = np.zeros(0, np.float64) if evaluator is None else evaluator._consts
        if evaluator is not None:
            prog = evaluator._code.copy()
            prog[0] = n_slots  # the three-valued states start after every slot's validity
        else:
            prog = np.zeros(0, np.int64)
        iparams = scorer._iparams.copy()
        iparams[:, kr.I_SLOT] = feature_slots
        to_segment = np.array(scorer._to_segment if scorer._to_segment is not None else [], np.int64)
        parts = [prog, iparams.ravel(), scorer._blocks.ravel(), to_segment, np.array(float32, np.int64)]
        header = np.zeros(kr.N_HEADER, np.int64)
        offsets = np.cumsum([kr.N_HEADER] + [len(p) for p in parts])
        header[kr.H_N_SLOTS] = n_slots
        header[kr.H_N_NUM] = len(numeric)
        header[kr.H_N_ONEHOT] = len(onehot)
        header[kr.H_PROG] = offsets[0] if evaluator is not None else -1
        header[kr.H_PROG_END] = offsets[1]
        header[kr.H_DEFAULT] = 0 if evaluator is None else evaluator._default
        header[kr.H_FEATURES] = offsets[1]
        header[kr.H_ONEHOT] = offsets[2]
        header[kr.H_TO_SEGMENT] = offsets[3]
        header[kr.H_FLOAT32] = offsets[4]
        header[kr.H_N_FLOAT32] = len(float32)
        header[kr.H_CLUSTER] = int(scorer._k > 0)
        header[kr.H_CONSTS_END] = len(consts)
        header[kr.H_N_VALUES] = n_values
        header[kr.H_RAW_PROBLEMS], header[kr.H_RAW_LABELS], header[kr.H_RAW_BITS], _ = kr.raw_layout(
            n_values, n_states, len(numeric))
        header[kr.H_D] = max(scorer._d, 1)
        header[kr.H_KP], header[kr.H_DP] = scorer._C2.shape
        self.ints = np.concatenate([header] + parts).astype(np.int64)
        self.floats = np.concatenate([consts, scorer._fparams.ravel()]).astype(np.float64)
        # what a rule segment's customer gets: one Score per rule code, made once
        self.rule_scores = []
        if scorer._to_segment is not None:
            for code, seg in enumerate(scorer._to_segment):
                self.rule_scores.append(None if seg < 0 else
                                        Score(seg, scorer.segment_names[seg], None, scorer._labels[code]))
        self.read, self.source = _reader(self)


# ISO date strings of date32 columns -> their value (microseconds at midnight, as float64):
# the value depends on the string only, so one memo serves every such column; bounded
_ISO_DAYS = {}
_ISO_DAYS_SIZE = 4096


def _iso_day(convert, text):
    """``convert(text)`` (the rules' date32 loader: checks, parses, or raises naming the field),
    remembered."""
    value = convert(text)
    if len(_ISO_DAYS) >= _ISO_DAYS_SIZE:
        _ISO_DAYS.clear()  # a flood of distinct dates costs parses again, never memory
    _ISO_DAYS[text] = value
    return value


def _reader(plan):
    """A function ``read(values, raw)`` that converts a record's values (the tuple of
    ``plan.get``) and packs them into ``raw``; and its source.

    The function is generated for the plan, straight-line: one block per field, each taking
    the common Python types inline (a float, an int within +-2**53, a date or a memoised ISO
    date string, None, a known category or string: a loop over the fields with a branch per
    kind cost 3.3 us against 2.1 us here for the benchmark's 23 fields, packing included),
    anything else through the field's converter, which checks it and
    raises naming the field. The source holds only names made here (``v3``, ``c3``...) and
    numbers: field names and values never enter it, they stay in the namespace it runs in.
    """
    env = {"_pack": plan.pack_into, "_float": float, "_int": int, "_date": _dt.date, "_bool": bool,
           "_np_bool": np.bool_, "_str": str, "_EPOCH": _EPOCH_ORDINAL,
           "_DAY": float(US_PER_DAY), "_bool_error": _rule_wrong_type, "_iso_days": _ISO_DAYS,
           "_iso_day": _iso_day}
    n = len(plan.names)
    lines = ["def read(values, raw):"]
    if n:
        lines.append("    " + ", ".join(f"v{i}" for i in range(n)) + (", = values" if n == 1 else " = values"))
    items, marks = [], []
    for j, (i, fast, convert, lo, hi) in enumerate(plan.slots):
        env[f"c{j}"] = convert
        v = f"v{i}"
        lines.append(f"    t = type({v})")
        branches = []  # (test, value, validity)
        if fast <= FAST_NUMBER:
            branches.append(("t is _float", v, 1))
        branches.append((f"{v} is None", "0.0", 0))
        if fast in (FAST_NUMBER, FAST_INT):
            # within +-2**53 and the integer column's type (the bounds are ints made here)
            branches.append((f"t is _int and {int(lo)} <= {v} <= {int(hi)}", v, 1))
        if fast == FAST_DATE:
            branches.append(("t is _date", f"_float({v}.toordinal() - _EPOCH) * _DAY", 1))
            # an ISO string (JSON's date) seen before by its memo (a miss, or 1970-01-01's 0.0,
            # through the converter, which also refuses a bad string naming the field)
            branches.append(("t is _str", f"_iso_days.get({v}) or _iso_day(c{j}, {v})", 1))
        if fast == FAST_BOOL:
            branches.append(("t is _bool", f"1.0 if {v} else 0.0", 1))
        branches.append((None, f"c{j}({v})", 1))  # anything else: checked, or refused naming the field
        for k, (test, value, valid) in enumerate(branches):
            lines.append(f"    {'else' if test is None else ('if ' if k == 0 else 'elif ') + test}:")
            lines.append(f"        a{j} = {value}; m{j} = {valid}")
        items.append(f"a{j}")
        marks.append(f"m{j}")
    for b, (i, field) in enumerate(plan.onehot):
        # a known category by its dict inline; anything else (unseen, None, a wrong type)
        # through the field's method
        env[f"h{b}"], env[f"k{b}"] = field.column, field.columns
        lines.append(f"    o{b} = k{b}.get(v{i}) if type(v{i}) is _str else None")
        lines.append(f"    if o{b} is None: o{b} = h{b}(v{i})")
        items.append(f"o{b}")
    for b, (i, name) in enumerate(plan.bools):
        env[f"n{b}"] = name
        v = f"v{i}"
        lines.append(f"    if {v} is True: b{b} = 2")
        lines.append(f"    elif {v} is False: b{b} = 0")
        lines.append(f"    elif {v} is None: b{b} = 1")
        lines.append(f"    elif isinstance({v}, _np_bool): b{b} = 2 if {v} else 0")
        lines.append(f"    else: raise _bool_error(n{b}, {v}, 'a boolean (True or False)')")
        marks.append(f"b{b}")
    for b, (i, column) in enumerate(plan.strings):
        # a string seen before by its memo inline; anything else through the column's method
        env[f"r{b}"], env[f"q{b}"] = column.results, column.cache
        lines.append(f"    s{b} = q{b}.get(v{i}) if type(v{i}) is _str else None")
        lines.append(f"    if s{b} is None: s{b} = r{b}(v{i})")
        marks.append(f"*s{b}")
    lines.append("    _pack(" + ", ".join(["raw", "0"] + items + marks) + ")")
    source = "\n".join(lines) + "\n"
    exec(compile(source, "<segmint record reader>", "exec"), env)
    return env["read"], source


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
        is loaded at construction all the same; only the program waits for the types),
        except a column the rules use only as a time, typed from the rules whatever the
        record holds (:func:`segmint.rules.record.time_columns`): date32 when compared only
        with ``date '...'`` literals, else timestamp[us, tz=UTC] (a date or
        ``'2026-09-20'`` is then midnight UTC, a naive datetime UTC).

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
        self._plan = None
        start = time.perf_counter()
        before = _compile_counts()
        # the kernel's argument types do not depend on the rules' column types: it is loaded
        # (or compiled) now with the features' plan, before any record is seen
        self._warm(_Plan(self, None))
        if self._rules is None:
            self._plan = _Plan(self, None)
        elif self._rule_types_known():
            self._rule_evaluator = self._make_evaluator(self._rule_types)
            self._plan = _Plan(self, self._rule_evaluator)
        else:
            # the plan waits for the first record's types, but the evaluator's kernel (one
            # signature for every program; it is run when an evaluator is built) is loaded
            # or compiled now, never in a request
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
        self._C2, self._cn = np.zeros((4, 4), np.float64), np.zeros(4, np.float64)  # no centers: never read
        self._centers = np.concatenate([self._C2.ravel(), self._cn])

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
        else:  # a rules-only Segmenter: no centers, never read
            self._C2, self._cn = np.zeros((4, 4), self._dtype), np.zeros(4, self._dtype)
        self._centers = np.concatenate([self._C2.ravel(), self._cn])  # one argument: C2, then cn

    def _type_of(self, name, given, default=None):
        for schema in (given, self._model_schema):
            if schema is not None and name in schema.names:
                return schema.field(name).type
        return default

    def _resolve_types(self, given):
        self._numeric, self._onehot = [], []
        self._d = 0
        self._entries = []
        self._fparams = np.zeros((0, kr.N_FLOAT_PARAMS), np.float64)
        self._iparams = np.zeros((0, kr.N_INT_PARAMS), np.int64)
        self._blocks = np.zeros((0, 2), np.int64)
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

    def _rule_types_known(self):
        return all(name in self._rule_types for name in self._rule_fields)

    def _buffers(self, plan):
        """This thread's buffers for ``plan`` (made on its first call; two small arrays):
        ``(plan, raw, X, problems, args)``: ``raw`` takes the packed record (and the kernel's
        integer scratch), ``X`` and ``problems`` are views of the kernel's outputs that the
        errors read, ``args`` the kernel's arguments but the instant."""
        raw = np.zeros(plan.size, np.uint8)
        row, size = kr.work_layout(self._d, self._C2.shape[1])
        work = np.zeros(size, self._dtype)
        n = len(self._numeric)
        X = work[row:row + max(self._d, 1)].reshape(1, -1)
        problems = raw[plan.problems:plan.problems + 24 * n].view(np.int64).reshape(n, 3)
        b = self._local.buffers = (plan, raw, X, problems, (raw, plan.ints, plan.floats, self._centers, work))
        return b

    def _warm(self, plan):
        """Load (or compile) the record kernel for this model's argument types, run it once, and
        keep its compiled entry point: every call passes arguments of exactly these types (the
        same five arrays, two floats), so Numba's type dispatch (a tenth of a call) is skipped,
        and nothing can compile later. With NUMBA_DISABLE_JIT=1 the plain Python function is
        called."""
        args = self._buffers(plan)[4] + (0.0, 0.0)
        kr.score_customer(*args)
        import numba
        signature = tuple(numba.typeof(a) for a in args)
        compiled = getattr(kr.score_customer, "overloads", {}).get(signature)
        self._kernel = getattr(compiled, "entry_point", None) or _python_kernel

    def _make_evaluator(self, types):
        """The rule evaluator for these column types (the instant is given per call)."""
        schema = pa.schema([pa.field(n, types[n]) for n in self._rule_fields])
        return self._rules.record_evaluator(schema)

    # -- errors --------------------------------------------------------------------------------
    def _missing(self, name, record):
        near = closest_names(str(name), [str(k) for k in record])
        hint = f"; did you mean {' or '.join(map(repr, near))}?" if near else ""
        # a caller who sent a partial record learns every gap at once, not one per attempt
        others = [c for c in self.columns if c != name and c not in record]
        if others:
            shown = ", ".join(map(repr, others[:8])) + (", ..." if len(others) > 8 else "")
            hint += f" ({len(others)} more fields the model reads are missing: {shown})"
        return UnknownColumnError(f"the record has no field {name!r}, which the model reads{hint}")

    def _record_check(self, record):
        if not isinstance(record, Mapping):
            raise UnsupportedTypeError(f"a record is a mapping of column name to value (a dict), got "
                                       f"{type(record).__name__}")

    def _learn_rule_types(self, record):
        """The record plan, built from the types of the first record that the rules accept:
        types the model does not know are taken from the record, and kept only once the
        evaluator is built on them (a record of wrong types is refused and teaches nothing).
        A column the rules use only as a time is typed from the rules instead
        (:func:`segmint.rules.record.time_columns`: date32 or timestamp[us, tz=UTC]), so the
        answers never depend on which record came first."""
        with self._lock:
            if self._plan is not None:  # another thread built it meanwhile
                return self._plan
            from ..rules.record import _TIME_VALUES, time_columns
            times = time_columns(self._rules._asts)
            types = dict(self._rule_types)
            for name in self._rule_fields:
                if name not in types:
                    if name not in record:
                        raise self._missing(name, record)
                    value = record[name]
                    numeric = any(f.name == name for f in self._numeric)
                    if name in times and (value is None or isinstance(value, _TIME_VALUES)):
                        # a time column: the rules' type, never the first record's (a date or
                        # an ISO string of one would otherwise fix it for every later record)
                        types[name] = times[name]
                    else:
                        types[name] = pa.float64() if value is None and numeric else _infer_type(name, value)
            evaluator = self._make_evaluator(types)
            plan = _Plan(self, evaluator)
            self._rule_types = types
            self._rule_evaluator = evaluator
            self._plan = plan
            return plan

    # -- scoring -------------------------------------------------------------------------------
    def score_one(self, record, *, as_of=None):
        """The segment of one customer.

        Parameters
        ----------
        record : mapping of str to scalar
            Column name to value: None for a null, a number for a numeric column, True/False
            for a boolean one, a string for a category, a date/datetime (or an ISO 8601
            string, as JSON carries them) for a time column (numpy scalars too). Fields the
            model does not read are ignored.
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
            numeric column, a number for a category, an integer a float column cannot hold
            exactly or an integer column's type cannot hold (pyarrow refuses both too), an
            unparsable date string.
        FeatureError
            NaN or infinities, a null without imputation, a negative value under log1p,
            values too large to cluster. Checked even when a rule takes the customer, where
            the batch path checks them only when another customer of the same batch goes to
            the clustering (a one-row batch of a rule-taken customer is not checked): the
            Scorer keeps to the stricter, whatever the neighbours (see the module).
        RuleError
            For a model that does not know its rule columns' types (saved without them, or a
            RuleSet scored without ``schema=``): the first record's types do not fit the
            rules (nothing is learnt from it; the next record is tried afresh).
        """
        if type(record) is not dict:
            self._record_check(record)
        plan = self._plan
        if plan is None:
            plan = self._learn_rule_types(record)
        b = getattr(self._local, "buffers", None)
        if b is None or b[0] is not plan:
            b = self._buffers(plan)
        # the record read once, each field converted once, packed into this thread's buffer
        # (the kernel's values and states are views of it)
        try:
            values = plan.get(record)
        except KeyError as e:
            name = e.args[0] if e.args else None
            if name not in plan.names:
                raise
            raise self._missing(name, record) from None
        plan.read(values, b[1])
        if not plan.has_rules:
            us = day = 0.0
        elif as_of is None:  # now, as the batch path takes it per call (INSTANTS.get(None), inline)
            us = _time_ns() // 1000
            day = float(us // US_PER_DAY * US_PER_DAY)
            us = float(us)
        else:
            us, day = INSTANTS.get(as_of)
        status, code, seg, distance = self._kernel(*b[4], us, day)
        if status == 0:
            if code >= 0:
                score = plan.rule_scores[code]
                if score is not None:
                    return score
                return _new_tuple(Score, (seg, self.segment_names[seg], distance, self._labels[code]))
            return _new_tuple(Score, (seg, self.segment_names[seg], distance, None))
        if status < 0:
            raise _problem_error(self._entries, list(b[3]), "cannot score the record: ")
        self._model._check_matrix(b[2], "the record's features", always=True)

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
