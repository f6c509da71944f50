"""Behaviour from event logs: per-customer features computed in one streaming pass, RFM scores,
the named RFM segments and lifecycle stages."""
from .aggregate import AggregateResult, aggregate, btyd_summary
from .lifecycle import STAGES, lifecycle_stages
from .rfm import RFMScorer, rfm_segments

__all__ = ["aggregate", "btyd_summary", "AggregateResult", "RFMScorer", "rfm_segments", "lifecycle_stages", "STAGES"]
