"""Segment rules: a small language, SQL null logic, rule sets evaluated without compiling."""
from .errors import RuleError, RuleSetError, RuleSyntaxError, RuleTypeError
from .parse import parse
from .ruleset import RuleResult, RuleSet, Segment

__all__ = ["RuleSet", "Segment", "RuleResult", "RuleError", "RuleSyntaxError", "RuleTypeError",
           "RuleSetError", "parse"]
