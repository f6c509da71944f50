"""Errors in segment rules: each names the position in the expression with a caret."""
from ..errors import SegmintError

_WINDOW = 60  # characters of a long rule shown around the caret


class RuleError(SegmintError, ValueError):
    """A rule that cannot be parsed, type-checked or resolved.

    Attributes
    ----------
    expression : str
    position : int or None, offset of the problem in ``expression``
    segment : str or None, the segment the rule belongs to
    """

    def __init__(self, message, expression=None, position=None, segment=None):
        self.message = message
        self.expression = expression
        self.position = position
        self.segment = segment
        super().__init__(self._render())

    def _render(self):
        where = f"segment {self.segment!r}: " if self.segment else ""
        text = f"{where}{self.message}"
        if self.expression is not None and self.position is not None:
            line_start = self.expression.rfind("\n", 0, self.position) + 1
            line_end = self.expression.find("\n", self.position)
            line = self.expression[line_start: line_end if line_end >= 0 else None]
            column = self.position - line_start
            if len(line) > 2 * _WINDOW:  # a very long rule: show the part around the caret
                start = max(0, column - _WINDOW // 2)
                line = (("..." if start else "") + line[start:start + _WINDOW]
                        + ("..." if start + _WINDOW < len(line) else ""))
                column -= start - (3 if start else 0)
            text += f"\n    {line}\n    {' ' * column}^"
        return text

    def with_segment(self, name):
        return type(self)(self.message, self.expression, self.position, name)


class RuleSyntaxError(RuleError):
    """The expression is not well formed."""


class RuleTypeError(RuleError, TypeError):
    """The expression mixes types that do not go together (``region > 5``)."""


class RuleSetError(RuleError):
    """A rule set is inconsistent: duplicate names, unknown or cyclic ``segment()`` references."""
