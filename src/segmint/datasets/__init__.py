"""Built-in synthetic data: a seeded customer base and its event log."""
from .customers import (DEFAULT_AS_OF, NUMERIC_FEATURES, PERSONAS, customer_schema, event_schema,
                        iter_customer_blocks, make_customers, write_customers)
from .matrix import CUSTOMER_FEATURES, customer_features

__all__ = ["customer_features", "CUSTOMER_FEATURES", "make_customers", "write_customers",
           "iter_customer_blocks", "customer_schema", "event_schema", "PERSONAS", "NUMERIC_FEATURES",
           "DEFAULT_AS_OF"]
