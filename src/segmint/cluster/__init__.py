"""Clustering: k-means (Lloyd) and mini-batch k-means over arrays and segmint sources."""
from .._estimator import ConvergenceWarning, NotFittedError
from ._matrix import FeatureError
from .init import kmeans_plusplus
from .kmeans import KMeans
from .minibatch import MiniBatchKMeans

__all__ = ["KMeans", "MiniBatchKMeans", "ConvergenceWarning", "NotFittedError", "FeatureError", "kmeans_plusplus"]
