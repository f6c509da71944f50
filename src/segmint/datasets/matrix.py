"""The synthetic customers as a dense float feature matrix, ready for k-means.

Built on :class:`~segmint.FeatureSpec`, the transforms a user's pipeline would apply before
clustering: nulls imputed with the column median, heavy-tailed counts and money ``log1p``-scaled,
every column standardised. Used by benchmarks and tests that need realistic, clusterable data.
"""
import numpy as np
import pyarrow as pa

from ..pipeline.features import FeatureSpec
from .customers import NUMERIC_FEATURES, iter_customer_blocks

_LOG_SCALED = {"recency_days", "frequency", "monetary", "avg_order_value", "tenure_days",
               "days_between_orders", "income_k", "sessions_30d", "email_opens_90d",
               "email_clicks_90d", "cart_abandonments_90d", "returns_count", "support_tickets"}

# One entry per numeric feature: median imputation (the generator leaves nulls where real data
# has them), log1p for the heavy-tailed ones, standard scaling (FeatureSpec's default).
CUSTOMER_FEATURES = [{"column": name, "impute": "median", "log1p": name in _LOG_SCALED}
                     for name in NUMERIC_FEATURES]


def customer_features(n_customers, *, random_state=0, dtype=np.float32):
    """Generate customers and return ``(X, names, true_segment)``.

    Parameters
    ----------
    n_customers : int
    random_state : int, default 0
        Seed of the generator (see :func:`segmint.make_customers`).
    dtype : numpy.float32 or numpy.float64

    Returns
    -------
    X : (n, 16) array of ``dtype``, C-ordered
        The features of :data:`CUSTOMER_FEATURES`, fitted and transformed by a FeatureSpec.
    names : list of the 16 feature names (``NUMERIC_FEATURES``)
    true_segment : (n,) int8, the latent persona of each customer
    """
    names = list(NUMERIC_FEATURES)
    # only the feature columns and the persona are kept: about 60 bytes per customer, under
    # the matrix's 64 (float32), while the whole customer table would take several times that
    batches = [c.select(names + ["true_segment"])
               for c, _ in iter_customer_blocks(n_customers, random_state=random_state)]
    table = pa.Table.from_batches(batches) if batches else None
    if table is None or table.num_rows == 0:
        return np.empty((0, len(names)), dtype=dtype), names, np.empty(0, dtype=np.int8)
    X = FeatureSpec(CUSTOMER_FEATURES).fit_transform(table, dtype=dtype)
    truth = table.column("true_segment").to_numpy()
    return X, names, truth
