"""What KMeans and MiniBatchKMeans share: input checks, predict/transform/score, feature names.

The parameter contract and checks every estimator of segmint shares live in
:mod:`segmint._estimator`.
"""
import numbers
import os
import sys
import warnings

import numpy as np

from .._estimator import ConvergenceWarning, NotFittedError, ParamsMixin, SetOutputMixin
from .._lazy import lazy_import
from .._parallel import chunk_bounds, run_chunks
from ..errors import ParameterError
from ._matrix import MAX_TOTAL_WEIGHT, FeatureError, Features, check_centers, kernel_layout
from ._passes import assign_pass

kd = lazy_import("segmint.kernels.distance")  # on first use: see segmint._lazy


def check_sample_weight(sample_weight, n, dtype):
    """Sample weights as an (n,) array of ``dtype``, or None; refuses what cannot be weighed."""
    if sample_weight is None:
        return None
    w = weights_float64(sample_weight)
    if w.ndim == 0:
        w = np.full(n, float(w))
    if w.shape != (n,):
        raise weight_shape_error(n, w.shape)
    valid = bool(np.all(np.isfinite(w))) and not np.any(w < 0)
    check_weight_values(valid, n == 0 or bool(np.any(w > 0)), float(np.sum(w)) if valid else 0.0)
    return w.astype(dtype)


def weights_float64(values):
    """``values`` as a float64 array (any shape), or the error naming what is not a number."""
    try:
        return np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise ParameterError(f"sample_weight must be numbers: {e}") from None


def weight_shape_error(n, shape):
    return ParameterError(f"sample_weight must have shape ({n},), got {shape}")


def check_weight_values(finite_non_negative, some_positive, total):
    """The checks of :func:`check_sample_weight` on summaries of the weights (so a distributed
    fit, :mod:`segmint.dask.data`, folds them from its blocks and raises the same errors).

    finite_non_negative, some_positive : bool (``some_positive`` True for no rows)
    total : float, the weights' sum in float64
    """
    if not finite_non_negative:
        raise ParameterError("sample_weight must be finite and non-negative")
    if not some_positive:
        raise ParameterError("sample_weight must not be all zero: no row would count")
    if not total <= MAX_TOTAL_WEIGHT:  # weighted sums of squared distances would overflow
        raise ParameterError(f"sample_weight sums to {total:.3g}, more than the 2^64 (1.8e19) segmint "
                             "weighs without overflow; scale the weights down (only their ratios matter)")


class KMeansBase(SetOutputMixin, ParamsMixin):
    """Predict, transform and score for a fitted k-means model, and scikit-learn's
    transformer extras (``get_feature_names_out``, ``set_output``)."""

    def _matrix(self, X, columns=None, reset=False):
        from ._matrix import _is_array_like, _is_sparse
        if columns is None and not reset and not _is_sparse(X):  # sparse: refused just below
            # scikit-learn's warnings when names were known at fit time and not now, or the reverse
            named = getattr(self, "feature_names_in_", None) is not None
            if _is_array_like(X):
                if named:
                    warn_caller(f"X does not have valid feature names, but {type(self).__name__} was "
                                "fitted with feature names", UserWarning)
            elif named:
                columns = list(self.feature_names_in_)  # a source is read by the fitted names
            else:
                warn_caller(f"X has feature names, but {type(self).__name__} was fitted without "
                            "feature names", UserWarning)
        dtype = None if reset else self.cluster_centers_.dtype
        data = Features(X, columns=columns, dtype=dtype)
        if reset:
            self.n_features_in_ = data.n_features
            if data.names is not None:
                self.feature_names_in_ = np.asarray(data.names, dtype=object)
            elif hasattr(self, "feature_names_in_"):
                del self.feature_names_in_
        elif data.n_features != self.n_features_in_:
            raise FeatureError(f"X has {data.n_features} features, but {type(self).__name__} is "
                             f"expecting {self.n_features_in_} features as input")
        return data

    def _check_verbose(self):
        verbose = self.verbose
        if isinstance(verbose, (bool, np.bool_)) or isinstance(verbose, (numbers.Integral, np.integer)):
            if verbose >= 0:
                return int(verbose)
        raise ParameterError(f"The 'verbose' parameter of {type(self).__name__} must be an int in the "
                             f"range [0, inf) or a bool. Got {verbose!r:.80} instead.")

    def _check_fitted(self):
        if not hasattr(self, "cluster_centers_"):
            raise NotFittedError(f"This {type(self).__name__} instance is not fitted yet. Call 'fit' "
                                 "with appropriate arguments before using this estimator.")

    def _assign(self, X, columns=None, sample_weight=None, want_labels=True, want_inertia=True):
        self._check_fitted()
        data = self._matrix(X, columns)
        w = check_sample_weight(sample_weight, data.n_rows, data.dtype)
        check_centers(self.cluster_centers_)
        labels, _, inertia, nonfinite = assign_pass(data, self.cluster_centers_, w, want_labels,
                                                    want_inertia=want_inertia)
        if nonfinite:  # NaN, infinities, or values so large that the arithmetic overflowed
            data.raise_nonfinite(data.nonfinite_counts())
            data.raise_overflow()
        return labels, inertia

    def predict(self, X, columns=None):
        """Index of the nearest center for each row.

        Parameters
        ----------
        X : (n, d) array or any source :func:`segmint.open` accepts
        columns : list of str, optional
            Columns of a source (default: the columns the model was fitted on).

        Returns
        -------
        labels : (n,) int32
        """
        labels, _ = self._assign(X, columns, want_inertia=False)
        return labels

    def fit_predict(self, X, y=None, sample_weight=None, columns=None):
        """``fit`` then return ``labels_``."""
        return self.fit(X, sample_weight=sample_weight, columns=columns).labels_

    def transform(self, X, columns=None):
        """Euclidean distance of each row to every center.

        Distances are computed directly (a row on a center is at distance exactly 0), summed
        in float64 and returned in the model's dtype.

        Parameters
        ----------
        X : (n, d) array or any source :func:`segmint.open` accepts
        columns : list of str, optional
            Columns of a source (default: the columns the model was fitted on).

        Returns
        -------
        (n, n_clusters) array, or a pandas / Polars frame after :meth:`set_output`
        """
        return self._wrap_output(self._distances(X, columns), X)

    def _distances(self, X, columns=None):
        self._check_fitted()
        data = self._matrix(X, columns)
        centers = self.cluster_centers_
        check_centers(centers)
        limit = data.limit
        out = np.empty((data.n_rows, centers.shape[0]), dtype=data.dtype)
        centers = np.ascontiguousarray(centers, dtype=data.dtype)
        bad = np.zeros(data.n_features, dtype=np.int64)
        for start, block in data.blocks():
            view = out[start:start + block.shape[0]]
            parts = run_chunks(lambda b, block=block, view=view: _distances_chunk(block, b, centers, view, limit),
                               chunk_bounds(block.shape[0], 1 << 14))
            for part in parts:  # NaN, infinities, values beyond the limit
                bad += part
        data.raise_nonfinite(bad)
        return out

    def fit_transform(self, X, y=None, sample_weight=None, columns=None):
        """``fit`` then ``transform`` the same data."""
        return self.fit(X, sample_weight=sample_weight, columns=columns).transform(X, columns)

    def score(self, X, y=None, sample_weight=None, columns=None):
        """Minus the weighted sum of squared distances of X to its nearest centers."""
        _, inertia = self._assign(X, columns, sample_weight, want_labels=False)
        return -inertia

    def get_feature_names_out(self, input_features=None):
        """Names of ``transform``'s output columns, as scikit-learn names them.

        Parameters
        ----------
        input_features : array-like of str, optional
            Only checked against the fitted input (scikit-learn's contract).

        Returns
        -------
        (n_clusters,) object array: ``kmeans0, kmeans1, ...`` (``minibatchkmeans0, ...``)
        """
        self._check_fitted()
        if input_features is not None:
            given = np.asarray(input_features, dtype=object)
            names = getattr(self, "feature_names_in_", None)
            if names is not None and not np.array_equal(given, names):
                raise ParameterError("input_features is not equal to feature_names_in_")
            if names is None and len(given) != self.n_features_in_:
                raise ParameterError(f"input_features should have length equal to number of features "
                                     f"({self.n_features_in_}), got {len(given)}")
        prefix = type(self).__name__.lower()
        return np.asarray([f"{prefix}{i}" for i in range(self.cluster_centers_.shape[0])], dtype=object)

    def __sklearn_tags__(self):
        from sklearn.utils import Tags, TargetTags, TransformerTags, InputTags
        return Tags(estimator_type="clusterer", target_tags=TargetTags(required=False),
                    transformer_tags=TransformerTags(preserves_dtype=["float64", "float32"]),
                    input_tags=InputTags(two_d_array=True))


def _distances_chunk(block, bounds, centers, out, limit):
    counts = np.zeros(block.shape[1], dtype=np.int64)
    kd.center_distances(*kernel_layout(block), bounds[0], bounds[1], centers, out, limit, counts)
    return counts


def warn_caller(message, category):
    """``warnings.warn`` pointing at the first frame outside this package (the user's call),
    however deep in the estimator the warning is raised."""
    here = os.path.dirname(os.path.abspath(__file__))
    frame, level = sys._getframe(1), 2
    while frame is not None and os.path.dirname(os.path.abspath(frame.f_code.co_filename)) == here:
        frame, level = frame.f_back, level + 1
    warnings.warn(message, category, stacklevel=level)


def warn_distinct(labels, n_clusters):
    """scikit-learn's warning when fewer clusters than asked hold rows (duplicate points)."""
    distinct = int(np.count_nonzero(np.bincount(labels, minlength=n_clusters)))
    if distinct < n_clusters:
        warnings.warn(f"Number of distinct clusters ({distinct}) found smaller than n_clusters "
                      f"({n_clusters}). Possibly due to duplicate points in X.", ConvergenceWarning,
                      stacklevel=3)
