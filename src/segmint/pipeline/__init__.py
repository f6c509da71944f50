"""From customer tables to clustered segments: feature specs (and, built on them, the Segmenter)."""
from .features import FeatureSpec, FeatureSpecError, NumericFeature, OneHotFeature
from .model_file import ModelFormatError, load
from .segmenter import Segmenter

__all__ = ["FeatureSpec", "FeatureSpecError", "NumericFeature", "OneHotFeature", "Segmenter", "load",
           "ModelFormatError"]
