"""Tokens of the segment rule language."""
import re
from dataclasses import dataclass

from .errors import RuleSyntaxError

KEYWORDS = {"and", "or", "not", "in", "is", "null", "between", "true", "false", "date", "timestamp"}
DURATION_UNITS = {"s": 1_000_000, "m": 60_000_000, "h": 3_600_000_000, "d": 86_400_000_000,
                  "w": 7 * 86_400_000_000}
MAX_LENGTH = 100_000

_TOKEN = re.compile(r"""
    (?P<ws>\s+)
  | (?P<number>(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)(?P<unit>[smhdw](?![A-Za-z0-9_]))?
  | (?P<string>'(?:[^']|'')*'?)
  | (?P<qident>"(?:[^"]|"")*"?)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op><=|>=|!=|<>|=|<|>|\+|-|\*|/|\(|\)|,)
""", re.VERBOSE)


@dataclass(frozen=True)
class Token:
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
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise RuleSyntaxError(f"unexpected character {text[pos]!r}", text, pos)
        kind = m.lastgroup if m.lastgroup != "unit" else "number"
        start, end = m.start(), m.end()
        if m.group("ws"):
            pass
        elif m.group("number") is not None:
            raw = m.group("number")
            unit = m.group("unit")
            if unit:
                tokens.append(Token("duration", float(raw) * DURATION_UNITS[unit], start, end))
            elif re.fullmatch(r"\d+", raw):
                tokens.append(Token("number", int(raw), start, end))
            else:
                tokens.append(Token("number", float(raw), start, end))
        elif m.group("string") is not None:
            raw = m.group("string")
            if len(raw) < 2 or not raw.endswith("'") or _odd_trailing_quotes(raw):
                raise RuleSyntaxError("unterminated string: add a closing '", text, start)
            tokens.append(Token("string", raw[1:-1].replace("''", "'"), start, end))
        elif m.group("qident") is not None:
            raw = m.group("qident")
            if len(raw) < 2 or not raw.endswith('"') or raw == '"':
                raise RuleSyntaxError('unterminated quoted name: add a closing "', text, start)
            tokens.append(Token("ident", raw[1:-1].replace('""', '"'), start, end))
        elif m.group("ident") is not None:
            word = m.group("ident")
            if word.lower() in KEYWORDS:
                tokens.append(Token("keyword", word.lower(), start, end))
            else:
                tokens.append(Token("ident", word, start, end))
        else:
            op = m.group("op")
            tokens.append(Token("op", "!=" if op == "<>" else op, start, end))
        pos = end
    tokens.append(Token("end", None, len(text), len(text)))
    return tokens


def _odd_trailing_quotes(raw):
    # 'abc'' is an unterminated string whose last quote is an escaped one
    body = raw[1:]
    count = len(body) - len(body.rstrip("'"))
    return count % 2 == 0
