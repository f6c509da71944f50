"""Segment rules: a small language, SQL null logic, rule sets evaluated without compiling."""
from .errors import RuleError, RuleSetError, RuleSyntaxError, RuleTypeError
from .parse import parse
from .ruleset import RuleBatch, RuleResult, RuleSet, Segment

__all__ = ["RuleSet", "Segment", "RuleResult", "RuleBatch", "RuleError", "RuleSyntaxError", "RuleTypeError",
           "RuleSetError", "parse"]
