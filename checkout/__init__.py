"""Stock holds in Redis, idempotent checkout, payments, the order pipeline and order states."""
