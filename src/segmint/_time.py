"""Time in segmint: the units every module counts in, and the evaluation instant (``as_of``)
that rules and event aggregation count back from.

segmint computes with int64 (or float64) microseconds since 1970-01-01 UTC. The unit
constants below are the only definitions of a day, a week or a duration suffix: the rule
language, event aggregation and the data generator all read them from here.
"""
import datetime as _dt

from .errors import ParameterError

US_PER_SECOND = 1_000_000
US_PER_DAY = 86_400 * US_PER_SECOND
US_PER_WEEK = 7 * US_PER_DAY
# The suffixes of durations, in the rule language ("90d") and in aggregate's windows ("12h")
DURATION_UNITS = {"s": US_PER_SECOND, "m": 60 * US_PER_SECOND, "h": 3_600 * US_PER_SECOND,
                  "d": US_PER_DAY, "w": US_PER_WEEK}
# Microseconds per stored unit of Arrow timestamp and duration types
ARROW_UNIT_US = {"s": 1e6, "ms": 1e3, "us": 1.0, "ns": 1e-3}
# The years 1..9999 (Python's datetime, the range as_of can take): every time in them fits
# int64 microseconds, and so does every age (as_of - time) between two of them.
MIN_US = -62_135_596_800_000_000       # 0001-01-01T00:00:00
MAX_US = 253_402_300_799_999_999       # 9999-12-31T23:59:59.999999
MAX_DURATION_US = MAX_US - MIN_US      # no two instants in those years lie further apart


def time_scale(arrow_type):
    """Multiplier from an Arrow column's stored unit to microseconds (1 for non-temporal types).

    Parameters
    ----------
    arrow_type : pyarrow.DataType

    Returns
    -------
    float
        ``US_PER_DAY`` for date32 (days), 1e3 for date64 (milliseconds), the unit's
        microseconds for timestamps and durations, else 1.0.
    """
    import pyarrow as pa  # here: segmint._time stays importable without touching pyarrow
    if pa.types.is_date32(arrow_type):
        return float(US_PER_DAY)
    if pa.types.is_date64(arrow_type):
        return 1e3
    if pa.types.is_timestamp(arrow_type) or pa.types.is_duration(arrow_type):
        return ARROW_UNIT_US[arrow_type.unit]
    return 1.0


def as_of_microseconds(as_of):
    """``(as_of in microseconds since the epoch, midnight UTC of its date in microseconds)``."""
    if as_of is None:
        moment = _dt.datetime.now(_dt.timezone.utc)
    elif isinstance(as_of, _dt.datetime):
        moment = as_of if as_of.tzinfo else as_of.replace(tzinfo=_dt.timezone.utc)
    elif isinstance(as_of, _dt.date):
        moment = _dt.datetime(as_of.year, as_of.month, as_of.day, tzinfo=_dt.timezone.utc)
    elif type(as_of).__name__ == "datetime64" and type(as_of).__module__ == "numpy":
        moment = _numpy_moment(as_of)
    elif isinstance(as_of, str):
        if len(as_of) > 64:  # an ISO datetime with offset and nanoseconds fits in 40
            raise ParameterError(f"as_of {as_of[:40]!r}... is not an ISO date or datetime")
        try:
            text = as_of.strip()
            moment = _dt.datetime.fromisoformat(text) if ("T" in text or " " in text or ":" in text) \
                else _dt.datetime.combine(_dt.date.fromisoformat(text), _dt.time())
        except ValueError:
            raise ParameterError(f"as_of {as_of!r} is not an ISO date or datetime (YYYY-MM-DD, "
                                 "or YYYY-MM-DD HH:MM:SS with an optional offset)") from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=_dt.timezone.utc)
    else:
        raise ParameterError(f"as_of must be a datetime, a date, a numpy datetime64 or an ISO string, "
                             f"got {type(as_of).__name__}")
    try:
        moment = moment.astimezone(_dt.timezone.utc)
    except OverflowError:  # 0001-01-01 with a positive offset, 9999-12-31 with a negative one
        raise ParameterError(f"as_of {as_of!r} is outside the years 1 to 9999 in UTC") from None
    us = epoch_microseconds(moment)
    return float(us), float(us // US_PER_DAY * US_PER_DAY)


def _numpy_moment(value):
    """A numpy ``datetime64`` (timezone-naive: read as UTC, like a naive datetime) as an aware
    datetime, to the microsecond below (finer units are truncated toward the past)."""
    if value != value:  # NaT
        raise ParameterError("as_of is NaT (not a time)")
    try:
        moment = value.astype("datetime64[us]").item()  # floor to microseconds; an int out of range
    except (TypeError, ValueError, OverflowError):
        raise ParameterError(f"as_of {value!r} is not a time numpy can convert to microseconds") from None
    if not isinstance(moment, _dt.datetime):  # microseconds give a datetime, or an int beyond 9999
        raise ParameterError(f"as_of {value!r} is outside the years 1 to 9999")
    return moment.replace(tzinfo=_dt.timezone.utc)


def epoch_microseconds(moment):
    """Exact microseconds since 1970-01-01 UTC of an aware datetime (a naive one is UTC).

    Parameters
    ----------
    moment : datetime.datetime

    Returns
    -------
    int
    """
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=_dt.timezone.utc)
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * US_PER_SECOND + delta.microseconds


_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)
