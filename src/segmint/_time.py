"""The evaluation instant (``as_of``) that rules and event aggregation count back from."""
import datetime as _dt

from .errors import ParameterError


def as_of_microseconds(as_of):
    """``(as_of in microseconds since the epoch, midnight UTC of its date in microseconds)``."""
    if as_of is None:
        moment = _dt.datetime.now(_dt.timezone.utc)
    elif isinstance(as_of, _dt.datetime):
        moment = as_of if as_of.tzinfo else as_of.replace(tzinfo=_dt.timezone.utc)
    elif isinstance(as_of, _dt.date):
        moment = _dt.datetime(as_of.year, as_of.month, as_of.day, tzinfo=_dt.timezone.utc)
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
        raise ParameterError(f"as_of must be a datetime, a date or an ISO string, got {type(as_of).__name__}")
    try:
        moment = moment.astimezone(_dt.timezone.utc)
    except OverflowError:  # 0001-01-01 with a positive offset, 9999-12-31 with a negative one
        raise ParameterError(f"as_of {as_of!r} is outside the years 1 to 9999 in UTC") from None
    epoch = _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)
    delta = moment - epoch
    us = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    day_us = delta.days * 86_400 * 1_000_000
    return float(us), float(day_us)
