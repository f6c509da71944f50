"""The synthetic customers as a dense float feature matrix, ready for k-means.

Nulls are imputed with the column median, heavy-tailed counts and money are ``log1p``-scaled,
then every column is standardised: what a user's pipeline would do before clustering.
Used by benchmarks and tests that need realistic, clusterable data.
"""
import numpy as np

from .customers import NUMERIC_FEATURES, iter_customer_blocks

_LOG_SCALED = {"recency_days", "frequency", "monetary", "avg_order_value", "tenure_days",
               "days_between_orders", "income_k", "sessions_30d", "email_opens_90d",
               "email_clicks_90d", "cart_abandonments_90d", "returns_count", "support_tickets"}


def customer_features(n_customers, *, seed=0, dtype=np.float32, threads=2):
    """Generate customers and return ``(X, names, true_segment)``.

    Returns
    -------
    X : (n, 16) array of ``dtype``, C-ordered
    names : list of the 16 feature names (``NUMERIC_FEATURES``)
    true_segment : (n,) int8, the latent persona of each customer
    """
    names = list(NUMERIC_FEATURES)
    X = np.empty((n_customers, len(names)), dtype=dtype)
    truth = np.empty(n_customers, dtype=np.int8)
    start = 0
    for customers, _ in iter_customer_blocks(n_customers, seed=seed, threads=threads):
        m = customers.num_rows
        _fill(X[start:start + m], customers, names)
        truth[start:start + m] = customers.column("true_segment").to_numpy()
        start += m
    _impute_scale(X, names)
    return X, names, truth


def feature_matrix(source, names=NUMERIC_FEATURES, dtype=np.float32):
    """The prepared (imputed, log-scaled, standardised) features of an opened customer source."""
    names = list(names)
    table = source.read(names)
    X = np.empty((table.num_rows, len(names)), dtype=dtype)
    _fill(X, table, names)
    _impute_scale(X, names)
    return X


def _fill(X, table, names):
    for j, name in enumerate(names):
        col = table.column(name)
        values = col.to_numpy(zero_copy_only=False).astype(np.float64)
        if col.null_count:
            values = np.where(np.asarray(col.is_valid()), values, np.nan)
        X[:, j] = values


def _impute_scale(X, names):
    for j, name in enumerate(names):
        col = X[:, j]
        missing = np.isnan(col)
        if missing.any():
            col[missing] = np.median(col[~missing]) if (~missing).any() else 0.0
        if name in _LOG_SCALED:
            np.log1p(np.maximum(col, 0), out=col)
        mean = col.mean(dtype=np.float64)
        std = col.std(dtype=np.float64)
        col -= mean
        if std > 0:
            col /= std
