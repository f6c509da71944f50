"""Built-in synthetic data: a seeded customer base and its event log."""
from .features import customer_features
from .customers import (DEFAULT_AS_OF, NUMERIC_FEATURES, PERSONAS, customer_schema, event_schema,
                        iter_customer_blocks, make_customers, write_customers)

__all__ = ["customer_features", "make_customers", "write_customers", "iter_customer_blocks", "customer_schema",
           "event_schema", "PERSONAS", "NUMERIC_FEATURES", "DEFAULT_AS_OF"]
