"""Behaviour from event logs: per-customer features computed in one streaming pass."""
from .aggregate import AggregateResult, aggregate

__all__ = ["aggregate", "AggregateResult"]
