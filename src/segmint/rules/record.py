"""Rules on one customer: a rule set's program run over a single record, in microseconds.

A *record* is a mapping of column name to a Python scalar: None for null, int/float (numpy
scalars too), bool, str, ``datetime.date``/``datetime.datetime`` for date and timestamp
columns, ``datetime.timedelta`` for durations. The program is the one the batch engine runs
(same typing pass, same code generator, so the same semantics); a scalar interpreter kernel
(:func:`segmint.kernels.rules.run_record`) runs it. String predicates are evaluated in Python
for the record's one value, memoised per distinct string in a bounded cache.

:class:`RecordEvaluator` is prepared once per schema (program, kernel, constants); a call only
converts the record's values and runs the kernel: nothing is compiled or allocated that lives
beyond the call, so one evaluator serves many threads.
"""
import datetime as _dt
import functools
import math
import threading
import time
from array import array

import numpy as np
import pyarrow as pa

from .._time import ARROW_UNIT_US, US_PER_DAY, epoch_microseconds
from .._time import as_of_microseconds as _as_of
from ..errors import DataError, ParameterError, UnknownColumnError, UnsupportedTypeError, closest_names
from ..kernels import rules as vm
from .parse import COMPARISONS, Between, Binary, Call, Column, InList, Literal, Unary, children
from .pyeval import evaluate as py_evaluate
from .types import BOOL, DATE, DUR, NUM, STR, TS, column_type

# distinct strings remembered per string column (their predicates' results): bounded, so a
# flood of distinct values (emails, ids) costs a re-evaluation, never memory
STRING_CACHE_SIZE = 4096
_EXACT_INT = 2 ** 53
_EPOCH_ORDINAL = _dt.date(1970, 1, 1).toordinal()
_NO_MEMBER = np.zeros(0, dtype=np.uint8)
_DAY = float(US_PER_DAY)  # the scale of a date32 column
_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)
_EPOCH_NAIVE = _dt.datetime(1970, 1, 1)  # naive datetimes are UTC, as in the batch path
_FAST_NONE, _FAST_NUMBER, _FAST_DATE32, _FAST_MICROSECONDS, _FAST_INT = range(5)

# loaders of numeric columns: how a record's value becomes the stored value times the scale
_NUMBER, _FLOAT32, _DATE, _TIMESTAMP, _DURATION, _INTEGER = range(6)
# what each kind of column expects, for error messages
_ISO_FORMS = "'2026-10-01', '2026-10-01T12:00:00', with 'Z' or an offset such as '+02:00'"
_EXPECTED = {_NUMBER: "a number (int or float)", _FLOAT32: "a number (int or float)",
             _INTEGER: "a whole number (an integer column: an int, or a float without fraction)",
             _DATE: f"a date (datetime.date, or an ISO 8601 string: {_ISO_FORMS})",
             _TIMESTAMP: f"a timestamp (datetime.datetime, or an ISO 8601 string: {_ISO_FORMS})",
             _DURATION: "a duration (datetime.timedelta)"}
_TYPE_NAMES = {NUM: "a number (int or float)", BOOL: "a boolean (True or False)", STR: "a string",
               DATE: "a date (datetime.date)", TS: "a timestamp (datetime.datetime)",
               DUR: "a duration (datetime.timedelta)"}


class InstantCache:
    """Converted ``as_of`` values, bounded (the oldest converted goes first): a caller passing
    a new instant per call costs one conversion each, never memory. Thread-safe; a hit takes
    no lock (a dict read is atomic), so a service's fixed ``as_of`` costs a dict look-up."""

    def __init__(self, size=256):
        self.size = size
        self.items = {}
        self.lock = threading.Lock()

    def get(self, as_of):
        """``(as_of_us, as_of_day_us)`` of ``as_of`` (None: now, never cached)."""
        if as_of is None:
            us = time.time_ns() // 1000  # now, as the batch path takes it per call
            return float(us), float(us // US_PER_DAY * US_PER_DAY)
        try:
            hit = self.items.get(as_of)
        except TypeError:  # unhashable: converted (and refused) below
            return _as_of(as_of)
        if hit is not None:
            return hit
        hit = _as_of(as_of)
        with self.lock:
            items = self.items
            while len(items) >= self.size:  # dicts keep insertion order: the oldest first
                items.pop(next(iter(items)))
            items[as_of] = hit
        return hit


INSTANTS = InstantCache()


class RecordEvaluator:
    """A rule set prepared for one customer at a time against one schema.

    Built by :meth:`segmint.RuleSet.record_evaluator`; everything a call needs (the program,
    the compiled kernel) is ready when it is built, and calls share nothing mutable (buffers
    are per call), so many threads may call one evaluator at once.

    Parameters
    ----------
    rules : segmint.RuleSet
    schema : pyarrow.Schema
        The types of the columns the rules read (other fields are ignored).
    as_of : datetime, date or ISO string, optional
        A fixed evaluation instant; default: now (UTC), taken at each call.

    Attributes
    ----------
    columns : list of str
        The columns a record must hold (the ones the rules read), in a fixed order.
    names : list of str
        Waterfall: the segment names indexed by :meth:`code` (the rules, then the default);
        multi mode: the rules' names, indexed like :meth:`members`.
    mode : {'waterfall', 'multi'}
    """

    def __init__(self, rules, schema, as_of=None):
        if not isinstance(schema, pa.Schema):
            raise ParameterError(f"schema must be a pyarrow.Schema, got {type(schema).__name__}")
        program = rules.prepare(schema)
        self.mode = rules.mode
        self.names = list(rules.names) + ([rules.default] if rules.mode == "waterfall" else [])
        self._default = len(rules.names)
        self._consts = program.consts.copy()  # never written; private all the same
        self._as_of = None if as_of is None else _as_of(as_of)
        self._n_rules = len(rules.names)
        # numeric columns: (name, fast path, loader kind, stored units per microsecond, scale,
        # the ints taken inline (lo, hi), an integer column's type range or None)
        self._num = []
        for name, scale in program.num_columns:
            t = schema.field(name).type
            kind, per_us = _numeric_loader(t)
            limits = integer_limits(t)
            lo, hi = -_EXACT_INT, _EXACT_INT
            if limits is not None:
                lo, hi = max(lo, limits[0]), min(hi, limits[1])
            self._num.append((name, _fast_path(kind, per_us, scale), kind, per_us, float(scale), lo, hi, limits))
        self._bool = list(program.bool_columns)
        # string columns: each with the string predicates (lookup tables) that read it. A
        # record's predicate results follow the boolean columns column by column, so each
        # lookup-table instruction is renumbered to its result's place
        self._str = []
        place = {}
        for j, name in enumerate(program.str_columns):
            ids = [i for i, lut in enumerate(program.luts) if lut[1] == j]
            for i in ids:
                place[i] = len(place)
            self._str.append(_StringColumn(name, [(program.luts[i][0], program.luts[i][3]) for i in ids]))
        code = np.array(program.code, dtype=np.int64)
        for row in range(code.shape[0]):
            if code[row, 0] in (vm.LUT, vm.LUT64):
                code[row, 3] = place[int(code[row, 3])]
        self._lut_base = len(self._bool)
        header = [len(self._num), self._lut_base, int(program.n_num), int(program.n_bool), 0]
        self._code = np.concatenate([np.array(header, dtype=np.int64), code.ravel()])  # see run_record
        self.columns = [c[0] for c in self._num] + self._bool + [c.name for c in self._str]
        self._k = len(self.names)
        self._label = np.dtype(np.int8 if self._k < 127 else (np.int16 if self._k < 32_767 else np.int32))
        self._check_compiled()

    def __repr__(self):
        return f"RecordEvaluator({len(self.columns)} columns, {self._n_rules} rules, mode={self.mode!r})"

    # -- calls ------------------------------------------------------------------------------
    def code(self, record, *, as_of=None):
        """The record's segment: its index in :attr:`names` (waterfall mode).

        Parameters
        ----------
        record : mapping
            Column name -> scalar (None for null); :attr:`columns` must all be present.
        as_of : datetime, date or ISO string, optional
            This call's evaluation instant (default: the evaluator's, else now). The instant
            is a kernel argument: a new one per call builds nothing (conversions are cached,
            bounded).

        Returns
        -------
        int
            As :meth:`segmint.RuleSet.stream` codes it: the first rule that is true, else
            ``len(rules.names)`` (the default segment).
        """
        if self.mode != "waterfall":
            raise ParameterError("code() gives a waterfall's segment; this rule set is mode='multi': "
                                 "use members()")
        return self._run(record, self._instant() if as_of is None else INSTANTS.get(as_of), _NO_MEMBER)

    def codes_many(self, records, *, as_of=None):
        """:meth:`code` of each record of a list.

        Parameters
        ----------
        records : sequence of mapping
        as_of : datetime, date or ISO string, optional
            As in :meth:`code`.

        Returns
        -------
        numpy.ndarray
            ``(len(records),)``, the narrowest signed integer type that holds the codes (as
            :meth:`segmint.RuleSet.stream`); one evaluation instant for the whole list.
        """
        instant = self._instant() if as_of is None else INSTANTS.get(as_of)  # one for the list, as a batch has one
        if self.mode != "waterfall":
            raise ParameterError("codes_many() gives a waterfall's segments; this rule set is "
                                 "mode='multi': use members()")
        out = np.empty(len(records), dtype=self._label)
        for i, record in enumerate(records):
            out[i] = self._run(record, instant, _NO_MEMBER)
        return out

    def members(self, record, *, as_of=None):
        """The segments the record is in (mode='multi').

        Parameters
        ----------
        record : mapping
            Column name -> scalar (None for null); :attr:`columns` must all be present.
        as_of : datetime, date or ISO string, optional
            As in :meth:`code`.

        Returns
        -------
        numpy.ndarray
            ``(len(rules.names),)`` bool, True where the segment's rule is true, in rule order.
        """
        if self.mode != "multi":
            raise ParameterError("members() gives a multi-mode rule set's memberships; this rule "
                                 "set is a waterfall: use code()")
        member = np.zeros(self._n_rules, dtype=np.uint8)
        self._run(record, self._instant() if as_of is None else INSTANTS.get(as_of), member)
        return member.view(np.bool_)

    # -- internals --------------------------------------------------------------------------
    def _instant(self):
        if self._as_of is not None:
            return self._as_of
        us = time.time_ns() // 1000  # now, as the batch path takes it per call
        return float(us), float(us // US_PER_DAY * US_PER_DAY)

    def _run(self, record, instant, member):
        """Convert ``record``'s values and run the kernel (returns the waterfall code).

        The values go into a fresh ``array.array`` and ``bytes`` (nothing shared between
        threads); building them from lists costs a third of setting numpy elements one by one.
        """
        values = []
        states = []
        put = values.append
        state = states.append
        try:
            for name, fast, kind, per_us, scale, lo, hi, limits in self._num:
                value = record[name]
                t = type(value)
                # the common cases inline (a call costs as much as the conversion)
                if t is float and fast == _FAST_NUMBER:
                    put(value)
                    state(1)
                elif t is int and (fast == _FAST_NUMBER or fast == _FAST_INT) and lo <= value <= hi:
                    put(value)
                    state(1)
                elif t is _dt.date and fast == _FAST_DATE32:
                    put(float(value.toordinal() - _EPOCH_ORDINAL) * _DAY)
                    state(1)
                elif t is _dt.datetime and fast == _FAST_MICROSECONDS:
                    d = value - (_EPOCH if value.tzinfo is not None else _EPOCH_NAIVE)
                    us = (d.days * 86_400 + d.seconds) * 1_000_000 + d.microseconds
                    put(float(us) if -_EXACT_INT <= us <= _EXACT_INT
                        else _number(name, value, kind, per_us, scale, limits))
                    state(1)
                elif value is None:
                    put(0.0)
                    state(0)
                else:
                    put(_number(name, value, kind, per_us, scale, limits))
                    state(1)
            for name in self._bool:
                value = record[name]
                if value is True:
                    state(2)
                elif value is False:
                    state(0)
                elif value is None:
                    state(1)
                elif isinstance(value, np.bool_):
                    state(2 if value else 0)
                else:
                    raise _wrong_type(name, value, _TYPE_NAMES[BOOL])
            for column in self._str:
                states.extend(column.results(record[column.name]))
        except KeyError as exc:
            name = exc.args[0] if exc.args else None
            if name in self.columns:
                raise _missing(name, record) from None
            raise
        except TypeError:
            if not hasattr(record, "__getitem__"):
                raise UnsupportedTypeError(f"a record must be a mapping of column name to value, "
                                           f"got {type(record).__name__}") from None
            raise
        code = self._kernel(self._code, self._consts, instant[0], instant[1], array("d", values),
                            bytes(states), member)
        return self._default if code < 0 else code

    def _check_compiled(self):
        """Run the kernel once on an all-null record: compiled (or loaded from the cache) now,
        never inside a request."""
        member = np.zeros(self._n_rules if self.mode == "multi" else 0, dtype=np.uint8)
        n = len(self._num)
        flags = self._lut_base + sum(len(c.nodes) for c in self._str)
        vm.run_record(self._code, self._consts, 0.0, 0.0, array("d", [0.0] * n),
                      bytes([0] * n + [1] * flags), member)
        # then the compiled function itself: the arguments always have these types (built in
        # _run), so the dispatcher's type resolution, a tenth of a call, can be skipped
        # (no overloads with NUMBA_DISABLE_JIT=1: the plain Python function is called)
        compiled = getattr(vm.run_record, "overloads", {}).get(kernel_argtypes())
        self._kernel = getattr(compiled, "entry_point", None) or vm.run_record


class _StringColumn:
    """A string column's predicates for one value at a time, memoised per distinct string."""

    def __init__(self, name, nodes):
        self.name = name
        self.nodes = nodes
        self.null = tuple(_three(py_evaluate(node, {name: None}, segs)) for node, segs in nodes)
        self.cache = {}

    def results(self, value):
        if value is None:
            return self.null
        try:
            hit = self.cache.get(value)
        except TypeError:  # unhashable (a list, a dict): not a string
            raise _wrong_type(self.name, value, _TYPE_NAMES[STR]) from None
        if hit is not None:
            return hit
        if not isinstance(value, str):  # np.str_ is a str
            raise _wrong_type(self.name, value, _TYPE_NAMES[STR])
        out = tuple(_three(py_evaluate(node, {self.name: str(value)}, segs)) for node, segs in self.nodes)
        cache = self.cache
        if len(cache) >= STRING_CACHE_SIZE:  # the oldest goes; another thread may have taken it
            try:
                cache.pop(next(iter(cache)), None)
            except (StopIteration, RuntimeError):  # emptied or resized by another thread meanwhile
                pass
        cache[value] = out
        return out


def _three(value):
    return 1 if value is None else (2 if value else 0)


def _numeric_loader(arrow_type):
    """``(kind, stored units per microsecond)`` of a numeric rule column's Arrow type."""
    t = arrow_type.value_type if pa.types.is_dictionary(arrow_type) else arrow_type
    if pa.types.is_floating(t) and t.bit_width < 64:
        return _FLOAT32, 1.0
    if pa.types.is_date(t):
        return _DATE, (1.0 / US_PER_DAY if pa.types.is_date32(t) else 1e-3)
    # nanoseconds are read as whole microseconds (floored), as the batch path reads them
    if pa.types.is_timestamp(t):
        return _TIMESTAMP, (1.0 if t.unit == "ns" else 1.0 / ARROW_UNIT_US[t.unit])
    if pa.types.is_duration(t):
        return _DURATION, (1.0 if t.unit == "ns" else 1.0 / ARROW_UNIT_US[t.unit])
    if pa.types.is_integer(t):
        return _INTEGER, 1.0
    return _NUMBER, 1.0


def _fast_path(kind, per_us, scale):
    """Which of the inline conversions of :meth:`RecordEvaluator._run` a column may take."""
    if kind == _NUMBER:
        return _FAST_NUMBER
    if kind == _INTEGER:
        return _FAST_INT
    if kind == _DATE and scale == _DAY:
        return _FAST_DATE32
    if kind == _TIMESTAMP and per_us == 1.0 and scale == 1.0:
        return _FAST_MICROSECONDS
    return _FAST_NONE


def integer_limits(arrow_type):
    """``(min, max)`` of an integer Arrow type (int8..int64, uint8..uint64; a dictionary's
    values), None for any other type."""
    t = arrow_type.value_type if pa.types.is_dictionary(arrow_type) else arrow_type
    if not pa.types.is_integer(t):
        return None
    if pa.types.is_signed_integer(t):
        return -(1 << (t.bit_width - 1)), (1 << (t.bit_width - 1)) - 1
    return 0, (1 << t.bit_width) - 1


def out_of_range(name, value, limits):
    """The error for an integer outside its column's type (pyarrow refuses to build such a
    column: "Value ... too large to fit in C integer type", or an OverflowError)."""
    lo, hi = limits
    kind = f"int{hi.bit_length() + 1}" if lo < 0 else f"uint{hi.bit_length()}"
    return UnsupportedTypeError(f"field {name!r}: {value!r} is out of range for this {kind} column, "
                                f"which holds {lo}..{hi} (pyarrow refuses it too)")


def _number(name, value, kind, per_us, scale, limits=None):
    """The float64 the batch path computes for this value: the stored value (in the column's
    unit) converted to float64, times the column's scale, exactly as ``load_numeric`` does.
    ``limits``: an integer column's type range (an integer outside it is refused)."""
    if kind == _NUMBER or kind == _FLOAT32 or kind == _INTEGER:
        if limits is not None and not isinstance(value, (bool, np.bool_)):  # as pyarrow refuses it
            if isinstance(value, (int, np.integer)):
                out = not limits[0] <= int(value) <= limits[1]
            elif isinstance(value, (float, np.floating)):  # NaN, infinities: refused below
                out = math.isfinite(value) and not limits[0] <= float(value) <= limits[1]
            else:
                out = False
            if out:
                raise out_of_range(name, value, limits)
        if isinstance(value, (float, np.floating)) and kind == _INTEGER:
            # an integer column holds integers: a fraction would be truncated by pyarrow to
            # another customer's value; refused instead
            x = float(value)
            if not (np.isfinite(x) and x.is_integer()):
                raise _wrong_type(name, value, _EXPECTED[kind])
            if abs(x) > _EXACT_INT:
                raise DataError(f"column {name!r} holds {x!r}, beyond 2**53, which rules compare as "
                                "float64 and could get wrong; compare such ids as strings")
            return x
        if isinstance(value, float):
            x = value
        elif isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)):
            if abs(int(value)) > _EXACT_INT:
                raise DataError(f"column {name!r} holds the integer {int(value)}, beyond 2**53, which "
                                "rules compare as float64 and could get wrong; compare such ids as strings")
            x = float(value)
            if kind == _FLOAT32 and float(np.float32(x)) != x:  # as pyarrow refuses it
                raise DataError(f"column {name!r} is float32, which cannot hold the integer "
                                f"{int(value)} exactly; give a float")
        elif isinstance(value, np.floating):
            x = float(value)
        else:
            raise _wrong_type(name, value, _EXPECTED[kind])
        return float(np.float32(x)) if kind == _FLOAT32 else x
    stored = _stored_time(name, value, kind, per_us)
    if abs(stored) > _EXACT_INT:  # as the batch path refuses such a column (after the year 2255)
        raise DataError(f"column {name!r} holds integers beyond 2**53, which rules compare "
                        "as float64 and could get wrong; compare such ids as strings")
    return float(stored) * scale if scale != 1.0 else float(stored)


@functools.lru_cache(maxsize=4096)
def iso_value(text):
    """The ``datetime.date`` or ``datetime.datetime`` an ISO 8601 string stands for
    (``date.fromisoformat``, else ``datetime.fromisoformat``: ``'2026-10-01'``,
    ``'2026-10-01T12:00:00'``, ``'...Z'``, ``'...+02:00'``), None when it is neither.

    JSON has no dates, so a service receives them as strings. Memoised (bounded): customers
    share dates, and a parse costs as much as the rest of a field's reading.
    """
    if len(text) > 64:  # the longest ISO datetime with offset and fraction fits in 40
        return None
    try:
        return _dt.date.fromisoformat(text)
    except ValueError:
        pass
    try:
        return _dt.datetime.fromisoformat(text)
    except ValueError:
        return None


def _stored_time(name, value, kind, per_us):
    """A date, timestamp or duration in the column's stored unit (an int, as Arrow holds it);
    a date or timestamp also from its ISO 8601 string, converted as the date/datetime it
    stands for."""
    if isinstance(value, str) and kind != _DURATION:
        parsed = iso_value(str(value))
        if parsed is None:
            raise _wrong_type(name, value, _EXPECTED[kind])
        value = parsed
    if kind == _DURATION:
        if isinstance(value, _dt.timedelta):
            us = (value.days * 86_400 + value.seconds) * 1_000_000 + value.microseconds
        elif isinstance(value, np.timedelta64):
            us = int(value.astype("timedelta64[us]").astype(np.int64))
        else:
            raise _wrong_type(name, value, _EXPECTED[kind])
    elif isinstance(value, _dt.datetime):
        if kind == _DATE:  # a date column holds the datetime's own calendar date, as pyarrow takes it
            us = (value.date().toordinal() - _EPOCH_ORDINAL) * US_PER_DAY
        else:
            us = epoch_microseconds(value)
    elif isinstance(value, _dt.date):
        us = (value.toordinal() - _EPOCH_ORDINAL) * US_PER_DAY
    elif isinstance(value, np.datetime64):
        us = int(value.astype("datetime64[us]").astype(np.int64))
        if kind == _DATE:
            us = us // US_PER_DAY * US_PER_DAY
    else:
        raise _wrong_type(name, value, _EXPECTED[kind])
    if per_us == 1.0:  # us, and ns (read as whole microseconds: see _numeric_loader)
        return us
    return us // int(round(1.0 / per_us))  # s, ms, days: whole stored units


def _wrong_type(name, value, expected):
    shown = repr(value)
    if len(shown) > 40:
        shown = shown[:37] + "..."
    return UnsupportedTypeError(f"column {name!r} holds {shown} ({type(value).__name__}) where the "
                                f"rules expect {expected}")


def _missing(name, record):
    keys = [k for k in record.keys() if isinstance(k, str)] if hasattr(record, "keys") else []
    near = closest_names(name, keys)
    hint = f"; did you mean {' or '.join(repr(c) for c in near)}?" if near else ""
    return UnknownColumnError(f"the record has no column {name!r}, which the rules read{hint}")


# -- types of a record given without a schema -------------------------------------------------
_PY_TYPES = {int: pa.int64(), float: pa.float64(), bool: pa.bool_(), str: pa.string(),
             _dt.date: pa.date32(), _dt.datetime: pa.timestamp("us"), _dt.timedelta: pa.duration("us")}


def value_arrow_type(value):
    """The Arrow type a record's non-null value stands for, or None when rules read no such value."""
    t = _PY_TYPES.get(type(value))
    if t is not None:
        return t
    if isinstance(value, (bool, np.bool_)):
        return pa.bool_()
    if isinstance(value, (int, np.integer)):
        return pa.int64()
    if isinstance(value, (float, np.floating)):
        return pa.float64()
    if isinstance(value, str):
        return pa.string()
    if isinstance(value, (_dt.datetime, np.datetime64)):
        return pa.timestamp("us")
    if isinstance(value, _dt.date):
        return pa.date32()
    if isinstance(value, (_dt.timedelta, np.timedelta64)):
        return pa.duration("us")
    return None


# The type of a time column of a record given without a schema, when the rules' literals do
# not tell (``days_since(seen)`` alone): one fixed choice, never the record's (a first
# record's '2026-09-20' must not make the column a date for every later customer, nor its
# '...T23:30-05:00' a timestamp). A date (object or 'YYYY-MM-DD') is then midnight UTC of
# that day, as a timestamp[us, tz=UTC] column holds datetime(2026, 9, 20, tzinfo=UTC); a
# naive datetime is UTC (as pyarrow stores it in such a column).
TIME_DEFAULT = pa.timestamp("us", tz="UTC")
_TIME_VALUES = (str, _dt.date, np.datetime64)  # values a time column takes (a datetime is a date)


def time_columns(segments):
    """Column name -> the Arrow type a record's value of it has when no schema says, for the
    columns the rules use only as a time (a date or a timestamp, never as a string).

    The type follows the rules, never the record: a column compared with a ``timestamp '...'``
    literal (or moved by a duration) is :data:`TIME_DEFAULT`, one compared only with
    ``date '...'`` literals is date32 (a datetime value then takes its own calendar date, as
    pyarrow takes it), and any other (``days_since(col)``, ``within_last(col, ...)`` only) is
    :data:`TIME_DEFAULT`. So the same customer gets the same segment whatever came before it,
    and a date object and its ISO string agree.

    Parameters
    ----------
    segments : dict
        Segment name -> ``(syntax tree, rule text)``.

    Returns
    -------
    dict of str to pyarrow.DataType
    """
    uses = usage_hints(segments)
    literals = usage_hints(segments, functions=False)
    out = {}
    for name, used in uses.items():
        if STR in used or not (DATE in used or TS in used):
            continue
        told = literals.get(name, ())
        out[name] = pa.date32() if DATE in told and TS not in told else TIME_DEFAULT
    return out


_HINT_TYPES = {NUM: pa.float64(), BOOL: pa.bool_(), STR: pa.string(), DATE: pa.date32(),
               TS: pa.timestamp("us"), DUR: pa.duration("us")}
_LITERAL_HINTS = {"number": NUM, "string": STR, "bool": BOOL, "date": DATE, "timestamp": TS,
                  "duration": DUR}


def usage_hints(segments, *, functions=True):
    """Column name -> the rule types its uses ask for (a comparison with a literal, a function
    argument, a condition), from the syntax trees of a rule set; the first one seen first.

    Parameters
    ----------
    segments : dict
        Segment name -> ``(syntax tree, rule text)``.
    functions : bool
        False: ``days_since``/``within_last`` arguments give no hint (they take a date or a
        timestamp alike).
    """
    hints = {}

    def hint(node, t):
        if isinstance(node, Column) and t is not None:
            seen = hints.setdefault(node.name, [])
            if t not in seen:
                seen.append(t)

    def literal_type(node):
        return _LITERAL_HINTS.get(node.kind) if isinstance(node, Literal) else None

    def walk(node, condition):
        if condition:
            hint(node, BOOL)
        if isinstance(node, Binary):
            if node.op in ("and", "or"):
                walk(node.left, True)
                walk(node.right, True)
                return
            if node.op in COMPARISONS:
                hint(node.left, literal_type(node.right))
                hint(node.right, literal_type(node.left))
            elif node.op in ("*", "/"):
                hint(node.left, NUM if literal_type(node.right) == NUM else None)
                hint(node.right, NUM)
            else:  # + -: a number with a number, a time with a duration
                other = {NUM: NUM, DUR: TS, DATE: DATE, TS: TS}
                hint(node.left, other.get(literal_type(node.right)))
                hint(node.right, other.get(literal_type(node.left)))
        elif isinstance(node, Unary):
            hint(node.arg, BOOL if node.op == "not" else NUM)
            walk(node.arg, node.op == "not")
            return
        elif isinstance(node, (Between, InList)):
            others = [node.low, node.high] if isinstance(node, Between) else node.items
            for other in others:
                hint(node.arg, literal_type(other))
        elif isinstance(node, Call):
            if node.name in ("days_since", "within_last"):
                hint(node.args[0], TS if functions else None)
            elif node.name in ("starts_with", "contains"):
                hint(node.args[0], STR)
            elif node.name == "abs":
                hint(node.args[0], NUM)
            elif node.name == "coalesce":
                for arg in node.args:
                    for other in node.args:
                        hint(arg, literal_type(other))
                for arg in node.args:  # a coalesce used as a condition: conditions inside
                    walk(arg, condition)
                return
        for child in children(node):
            walk(child, False)

    for tree, _text in segments.values():
        walk(tree, True)
    return hints


def rule_columns(segments):
    """Every column name a rule set's trees read, in first-seen order."""
    out = {}
    for tree, _text in segments.values():
        stack = [tree]
        while stack:
            node = stack.pop()
            if isinstance(node, Column):
                out[node.name] = None
            stack.extend(reversed(list(children(node))))
    return list(out)


def infer_schema(record_types, hints, try_types):
    """A schema for a record's columns: each value's own type; a null one typed from how the
    rules use the column (hints), else by trying the types in turn with ``try_types``.

    Parameters
    ----------
    record_types : dict
        Column -> Arrow type of its value, None for a null value.
    hints : dict
        From :func:`usage_hints`.
    try_types : callable
        ``try_types(schema)`` -> None when the rule set type-checks against ``schema``, else the error.

    Returns
    -------
    pyarrow.Schema
    """
    nulls = [c for c, t in record_types.items() if t is None]
    chosen = dict(record_types)
    for c in nulls:
        chosen[c] = _HINT_TYPES[(hints.get(c) or [NUM])[0]]

    def schema_of(types):
        return pa.schema([(c, t) for c, t in types.items()])

    error = try_types(schema_of(chosen))
    if error is None:
        return schema_of(chosen)
    for c, t in record_types.items():  # a value that contradicts how every rule uses its column
        wanted = hints.get(c)
        if t is not None and wanted and column_type(t) not in wanted:
            raise UnsupportedTypeError(
                f"column {c!r} holds a {column_type(t)} value where the rules expect "
                f"{' or '.join(_TYPE_NAMES[w] for w in wanted)}")
    for t in (NUM, STR, BOOL, DATE, TS, DUR):  # all null columns of one type (coalesce(a, b))
        trial = dict(chosen, **{c: _HINT_TYPES[t] for c in nulls})
        if try_types(schema_of(trial)) is None:
            return schema_of(trial)
    for c in nulls:  # greedy: each null column's other types in turn
        for t in (NUM, STR, BOOL, DATE, TS, DUR):
            trial = dict(chosen, **{c: _HINT_TYPES[t]})
            if try_types(schema_of(trial)) is None:
                return schema_of(trial)
    if nulls:
        raise DataError(f"cannot tell from the record which type the null column"
                        f"{'s' if len(nulls) > 1 else ''} {', '.join(map(repr, nulls))} "
                        f"{'have' if len(nulls) > 1 else 'has'} for these rules ({error}); pass schema=")
    raise error


class RecordCache:
    """Per rule set: record evaluators by schema, and by the Python types of a record's values.

    Bounded: a stream of records of ever new type signatures cannot grow memory without end.
    """

    MAX = 256

    def __init__(self, rules):
        self.rules = rules
        self.columns = rule_columns(rules._asts)
        self.read = frozenset(self.columns)
        self.hints = usage_hints(rules._asts)
        self.times = time_columns(rules._asts)
        self.by_schema = {}
        self.by_id = {}
        self.by_types = {}
        self.lock = threading.Lock()

    def for_schema(self, schema):
        # by identity first: hashing a pyarrow schema costs microseconds, a call's whole budget
        hit = self.by_id.get(id(schema))
        if hit is not None and hit[0] is schema:
            return hit[1]
        if not isinstance(schema, pa.Schema):
            raise ParameterError(f"schema must be a pyarrow.Schema, got {type(schema).__name__}")
        # keyed by the columns the rules read: a record schema's other columns must not
        # multiply the evaluators (one per full schema would grow without need)
        read = self.read
        key = tuple((f.name, str(f.type)) for f in schema if f.name in read)
        ev = self.by_schema.get(key)
        if ev is None:
            ev = RecordEvaluator(self.rules, schema)
        with self.lock:
            if len(self.by_schema) >= self.MAX:
                self.by_schema.clear()
            if len(self.by_id) >= self.MAX:
                self.by_id.clear()
            self.by_schema[key] = ev
            self.by_id[id(schema)] = (schema, ev)  # the schema kept alive: its id stays its own
        return ev

    def for_record(self, record):
        try:
            values = [record[c] for c in self.columns]
        except KeyError:
            missing = next(c for c in self.columns if c not in record)
            raise _missing(missing, record) from None
        except TypeError:
            raise UnsupportedTypeError(f"a record must be a mapping of column name to value, got "
                                       f"{type(record).__name__}") from None
        key = tuple(map(type, values))
        ev = self.by_types.get(key)
        if ev is not None:
            return ev
        types = {}
        times = self.times
        for c, v in zip(self.columns, values):
            if c in times and (v is None or isinstance(v, _TIME_VALUES)):
                types[c] = times[c]  # the rules' type, never the value's (see time_columns)
                continue
            t = None if v is None else value_arrow_type(v)
            if v is not None and t is None:
                raise UnsupportedTypeError(f"column {c!r} holds a {type(v).__name__}, which rules cannot "
                                           "read (give None, a number, a bool, a str, a date, a datetime "
                                           "or a timedelta)")
            types[c] = t
        schema = infer_schema(types, self.hints, self._type_error)
        ev = self.for_schema(schema)
        with self.lock:
            if len(self.by_types) >= self.MAX:
                self.by_types.clear()
            self.by_types[key] = ev
        return ev

    def instant(self, as_of):
        return INSTANTS.get(as_of)

    def _type_error(self, schema):
        from .errors import RuleError
        try:
            self.rules.prepare(schema)
        except RuleError as exc:
            return exc
        return None


def kernel_argtypes():
    """The Numba argument types every :class:`RecordEvaluator` calls its kernel with.

    One signature serves every rule set and schema (the program is data), so readiness checks
    can ask, without compiling, whether it would load from the cache:
    ``segmint._warmup.is_cached(segmint.kernels.rules.run_record, kernel_argtypes())``.

    Returns
    -------
    tuple of numba types
    """
    import numba
    sample = (np.zeros(5, np.int64), np.zeros(3, np.float64), 0.0, 0.0, array("d"), b"", _NO_MEMBER)
    return tuple(numba.typeof(a) for a in sample)
