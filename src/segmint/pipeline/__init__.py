"""From customer tables to clustered segments: feature specs (and, built on them, the Segmenter).

``model_file`` turns model files into fitted state and back; the Segmenter builds itself from
that state (``segmenter`` imports ``model_file``, never the reverse).
"""
from .features import FeatureSpec, FeatureSpecError, NumericFeature, OneHotFeature
from .model_file import ModelFormatError, SegmenterState
from .segmenter import Segmenter

__all__ = ["FeatureSpec", "FeatureSpecError", "NumericFeature", "OneHotFeature", "Segmenter",
           "ModelFormatError", "SegmenterState"]
