"""What KMeans and MiniBatchKMeans share: parameters, input checks, predict/transform/score."""
import inspect
import numbers

import numpy as np

from ..errors import ParameterError, SegmintError, closest_names
from ._features import MAX_TOTAL_WEIGHT, FeatureError, Features, check_centers
from ._passes import assign_pass


class NotFittedError(SegmintError, ValueError, AttributeError):
    """A method that needs a fitted model was called before ``fit``."""


class ParamsMixin:
    """scikit-learn's parameter contract: keyword-only ``__init__`` arguments stored as is."""

    @classmethod
    def _param_names(cls):
        sig = inspect.signature(cls.__init__)
        return sorted(p.name for p in sig.parameters.values() if p.name != "self"
                      and p.kind != p.VAR_KEYWORD)

    def get_params(self, deep=True):
        """Parameters of this estimator, as given to ``__init__``."""
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params):
        """Set parameters; unknown names raise ``ValueError`` naming the closest valid ones."""
        valid = self._param_names()
        for name, value in params.items():
            if name not in valid:
                near = closest_names(name, valid)
                hint = f"; did you mean {' or '.join(map(repr, near))}?" if near else f"; valid: {valid}"
                raise ParameterError(f"invalid parameter {name!r} for {type(self).__name__}{hint}")
            setattr(self, name, value)
        return self

    def __repr__(self):
        sig = inspect.signature(type(self).__init__)
        changed = []
        for name in self._param_names():
            default = sig.parameters[name].default
            value = getattr(self, name, default)
            if isinstance(value, np.ndarray) or isinstance(default, np.ndarray):
                if not (isinstance(value, np.ndarray) and isinstance(default, np.ndarray)
                        and np.array_equal(value, default)):
                    changed.append(f"{name}=array(shape={np.shape(value)})")
            elif value != default:
                changed.append(f"{name}={value!r}")
        return f"{type(self).__name__}({', '.join(changed)})"


def check_random_state(seed):
    """A numpy Generator from None, a non-negative int, a Generator or a legacy RandomState.

    Negative seeds are refused as scikit-learn refuses them (numpy's SeedSequence would raise
    a bare ``ValueError``).
    """
    if seed is None:
        return np.random.default_rng()
    if isinstance(seed, (numbers.Integral, np.integer)) and not isinstance(seed, bool):
        if seed < 0:
            raise ParameterError(f"The 'random_state' parameter must be a non-negative int, a numpy "
                                 f"Generator or RandomState, or None. Got {seed!r} instead.")
        return np.random.default_rng(int(seed))
    if isinstance(seed, np.random.Generator):
        return seed
    if isinstance(seed, np.random.RandomState):
        return np.random.default_rng(seed.randint(0, 2**31 - 1))
    raise ParameterError(f"The 'random_state' parameter must be a non-negative int, a numpy Generator "
                         f"or RandomState, or None. Got {seed!r:.80} ({type(seed).__name__}) instead.")


def check_positive_int(name, value, minimum=1, maximum=None):
    """``value`` as an int when it is an integer (not a bool) in ``minimum..maximum``."""
    if isinstance(value, bool) or not isinstance(value, (numbers.Integral, np.integer)) or value < minimum \
            or (maximum is not None and value > maximum):
        upper = f" and <= {maximum:,}" if maximum is not None else ""
        raise ParameterError(f"{name} must be an integer >= {minimum}{upper}, got {value!r:.80}")
    return int(value)


def check_sample_weight(sample_weight, n, dtype):
    """Sample weights as an (n,) array of ``dtype``, or None; refuses what cannot be weighed."""
    if sample_weight is None:
        return None
    try:
        w = np.asarray(sample_weight, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise ParameterError(f"sample_weight must be numbers: {e}") from None
    if w.ndim == 0:
        w = np.full(n, float(w))
    if w.shape != (n,):
        raise ParameterError(f"sample_weight must have shape ({n},), got {w.shape}")
    if not np.all(np.isfinite(w)) or np.any(w < 0):
        raise ParameterError("sample_weight must be finite and non-negative")
    if n and not np.any(w > 0):
        raise ParameterError("sample_weight must not be all zero: no row would count")
    total = float(np.sum(w))
    if not total <= MAX_TOTAL_WEIGHT:  # weighted sums of squared distances would overflow
        raise ParameterError(f"sample_weight sums to {total:.3g}, more than the 2^64 (1.8e19) segmint "
                             "weighs without overflow; scale the weights down (only their ratios matter)")
    return w.astype(dtype)


class KMeansBase(ParamsMixin):
    """Predict, transform and score for a fitted k-means model."""

    def _features(self, X, features=None, reset=False):
        from ._features import _is_array_like
        if features is None and not reset and getattr(self, "feature_names_in_", None) is not None \
                and not _is_array_like(X):
            features = list(self.feature_names_in_)
        dtype = None if reset else self.cluster_centers_.dtype
        data = Features(X, features=features, dtype=dtype)
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

    def _check_fitted(self):
        if not hasattr(self, "cluster_centers_"):
            raise NotFittedError(f"This {type(self).__name__} instance is not fitted yet. Call 'fit' "
                                 "with appropriate arguments before using this estimator.")

    def _assign(self, X, features=None, sample_weight=None, want_labels=True, want_inertia=True):
        self._check_fitted()
        data = self._features(X, features)
        w = check_sample_weight(sample_weight, data.n_rows, data.dtype)
        check_centers(self.cluster_centers_)
        labels, _, inertia, nonfinite = assign_pass(data, self.cluster_centers_, w, want_labels,
                                                    want_inertia=want_inertia, limit=data.limit)
        if nonfinite:
            data.raise_nonfinite(data.nonfinite_counts())
        return labels, inertia

    def predict(self, X, features=None):
        """Index of the nearest center for each row.

        Parameters
        ----------
        X : (n, d) array or any source :func:`segmint.open` accepts
        features : list of str, optional
            Feature columns of a source (default: the columns the model was fitted on).

        Returns
        -------
        labels : (n,) int32
        """
        labels, _ = self._assign(X, features, want_inertia=False)
        return labels

    def fit_predict(self, X, y=None, sample_weight=None, features=None):
        """``fit`` then return ``labels_``."""
        return self.fit(X, sample_weight=sample_weight, features=features).labels_

    def transform(self, X, features=None):
        """Euclidean distance of each row to every center: (n, k) array of the model's dtype."""
        self._check_fitted()
        data = self._features(X, features)
        centers = self.cluster_centers_
        check_centers(centers)
        limit = data.limit
        out = np.empty((data.n_rows, centers.shape[0]), dtype=data.dtype)
        cn = np.einsum("ij,ij->i", centers, centers, dtype=np.float64)
        bad = np.zeros(data.n_features, dtype=np.int64)
        for start, block in data.blocks():
            b = np.asarray(block, dtype=np.float64)
            xn = np.einsum("ij,ij->i", b, b)
            sq = xn[:, None] + cn[None, :] - 2.0 * (b @ centers.T.astype(np.float64))
            np.maximum(sq, 0, out=sq)
            out[start:start + block.shape[0]] = np.sqrt(sq)
            bad += (~(np.abs(b) <= limit)).sum(axis=0)  # NaN, infinities, values beyond the limit
        data.raise_nonfinite(bad)
        return out

    def fit_transform(self, X, y=None, sample_weight=None, features=None):
        """``fit`` then ``transform`` the same data."""
        return self.fit(X, sample_weight=sample_weight, features=features).transform(X, features)

    def score(self, X, y=None, sample_weight=None, features=None):
        """Minus the weighted sum of squared distances of X to its nearest centers."""
        _, inertia = self._assign(X, features, sample_weight, want_labels=False)
        return -inertia

    def __sklearn_tags__(self):
        from sklearn.utils import Tags, TargetTags, TransformerTags, InputTags
        return Tags(estimator_type="clusterer", target_tags=TargetTags(required=False),
                    transformer_tags=TransformerTags(preserves_dtype=["float64", "float32"]),
                    input_tags=InputTags(two_d_array=True))

