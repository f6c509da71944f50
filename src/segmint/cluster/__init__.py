"""Clustering: k-means (Lloyd) and mini-batch k-means over arrays and segmint sources."""
from ._base import NotFittedError
from ._features import FeatureError, Features
from .init import kmeans_plusplus
from .kmeans import KMeans
from .minibatch import MiniBatchKMeans

__all__ = ["KMeans", "MiniBatchKMeans", "NotFittedError", "FeatureError", "Features", "kmeans_plusplus"]
