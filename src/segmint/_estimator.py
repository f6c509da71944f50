"""Estimator basics every segmint package shares: the parameter contract, the not-fitted
error, the convergence warning, common argument checks and scikit-learn's ``set_output``.

Kept free of scikit-learn imports: segmint follows scikit-learn's estimator API without
depending on it at run time.
"""
import inspect
import numbers
import sys

import numpy as np

from .errors import ParameterError, SegmintError, closest_names


class NotFittedError(SegmintError, ValueError, AttributeError):
    """A method that needs a fitted model was called before ``fit``."""


class ConvergenceWarning(UserWarning):
    """A fit converged to a degenerate or unfinished result (scikit-learn's warning of that name,
    also a ``UserWarning``, so filters written for scikit-learn's categories keep working)."""


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


OUTPUTS = ("default", "pandas", "polars")


class SetOutputMixin:
    """scikit-learn's ``set_output`` for transformers: ``transform`` / ``fit_transform`` return
    a pandas or Polars frame named by ``get_feature_names_out()`` when asked.

    pandas and Polars are imported only when such output is asked for. Without a
    ``set_output`` call, scikit-learn's global ``transform_output`` setting applies when
    scikit-learn is already imported (as for its own transformers).
    """

    def set_output(self, *, transform=None):
        """Choose the container ``transform`` and ``fit_transform`` return.

        Parameters
        ----------
        transform : {'default', 'pandas', 'polars'} or None
            'default': numpy arrays; None leaves the setting unchanged.

        Returns
        -------
        self
        """
        if transform is None:
            return self
        if transform not in OUTPUTS:
            raise ParameterError(f"output config must be in {set(OUTPUTS)}, got {transform!r:.80}")
        self._sklearn_output_config = {"transform": transform}
        return self

    def _output_kind(self):
        kind = getattr(self, "_sklearn_output_config", {}).get("transform")
        if kind is None:
            sklearn = sys.modules.get("sklearn")  # honour set_config only if the user uses sklearn
            kind = sklearn.get_config().get("transform_output", "default") if sklearn else "default"
        return kind

    def _wrap_output(self, out, X):
        """``out`` (an (n, m) array) in the container chosen by :meth:`set_output`."""
        kind = self._output_kind()
        if kind == "default":
            return out
        columns = list(self.get_feature_names_out())
        if kind == "pandas":
            import pandas as pd
            index = X.index if isinstance(X, pd.DataFrame) else None
            return pd.DataFrame(out, index=index, columns=columns, copy=False)
        import polars as pl
        return pl.DataFrame(out, schema=columns, orient="row")


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
