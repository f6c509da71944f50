"""Tokens of the segment rule language."""
import re
from typing import NamedTuple

from .._time import DURATION_UNITS
from .errors import RuleSyntaxError

KEYWORDS = {"and", "or", "not", "in", "is", "null", "between", "true", "false", "date", "timestamp"}
MAX_LENGTH = 100_000
MAX_INT_DIGITS = 300  # beyond that an integer is no float64 (and Python's int() refuses 4,300 digits)

_TOKEN = re.compile(r"""
    (?P<ws>\s+)
  | (?P<number>(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)(?P<unit>[smhdw](?![A-Za-z0-9_]))?
  | (?P<string>'(?:[^']|'')*'?)
  | (?P<qident>"(?:[^"]|"")*"?)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op><=|>=|!=|<>|=|<|>|\+|-|\*|/|\(|\)|,)
""", re.VERBOSE)


class Token(NamedTuple):
    kind: str      # number, duration, string, ident, keyword, op, end
    value: object  # the number / microseconds / string / name / keyword / operator
    pos: int
    end: int


def tokenize(text):
    """Split a rule into tokens; raises :class:`RuleSyntaxError` with the position."""
    if not isinstance(text, str):
        raise RuleSyntaxError(f"a rule must be a string, got {type(text).__name__}")
    if len(text) > MAX_LENGTH:
        raise RuleSyntaxError(f"the rule is {len(text):,} characters long; the limit is {MAX_LENGTH:,}",
                              text, MAX_LENGTH)
    tokens = []
    append = tokens.append
    pos = 0
    for m in _TOKEN.finditer(text):
        kind = m.lastgroup
        start, end = m.span()
        if start != pos:  # finditer skipped characters no token matches
            raise RuleSyntaxError(f"unexpected character {text[pos]!r}", text, pos)
        pos = end
        if kind == "ws":
            continue
        raw = m.group()
        if kind == "ident":
            low = raw.lower()
            append(Token("keyword", low, start, end) if low in KEYWORDS else Token("ident", raw, start, end))
        elif kind == "op":
            append(Token("op", "!=" if raw == "<>" else raw, start, end))
        elif kind == "unit":  # a number with a duration unit: 90d, 12h
            append(Token("duration", float(raw[:-1]) * DURATION_UNITS[raw[-1]], start, end))
        elif kind == "number":
            if raw.isdigit() and len(raw) > MAX_INT_DIGITS:
                raise RuleSyntaxError(f"the number has {len(raw):,} digits; integers in rules have at most "
                                      f"{MAX_INT_DIGITS} (rules compute in float64: write 1e{len(raw) - 1} "
                                      "if you mean it)", text, start)
            append(Token("number", int(raw) if raw.isdigit() else float(raw), start, end))
        elif kind == "string":
            if len(raw) < 2 or not raw.endswith("'") or _odd_trailing_quotes(raw):
                raise RuleSyntaxError("unterminated string: add a closing '", text, start)
            append(Token("string", raw[1:-1].replace("''", "'"), start, end))
        else:  # qident
            if len(raw) < 2 or not raw.endswith('"') or raw == '"':
                raise RuleSyntaxError('unterminated quoted name: add a closing "', text, start)
            append(Token("ident", raw[1:-1].replace('""', '"'), start, end))
    if pos < len(text):
        raise RuleSyntaxError(f"unexpected character {text[pos]!r}", text, pos)
    tokens.append(Token("end", None, len(text), len(text)))
    return tokens


def _odd_trailing_quotes(raw):
    # 'abc'' is an unterminated string whose last quote is an escaped one
    body = raw[1:]
    count = len(body) - len(body.rstrip("'"))
    return count % 2 == 0
