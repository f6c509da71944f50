"""Behaviour from event logs: per-customer features computed in one streaming pass, RFM scores,
the named RFM segments and lifecycle stages."""
from .aggregate import EVENT_BATCH_SIZE, AggregateResult, aggregate, btyd_summary
from .lifecycle import STAGES, lifecycle_stages
from .rfm import RFMScorer, rfm_segments

__all__ = ["aggregate", "btyd_summary", "AggregateResult", "EVENT_BATCH_SIZE", "RFMScorer", "rfm_segments", "lifecycle_stages", "STAGES"]
