"""paysvc: a low-latency, idempotent payment service with a double-entry ledger."""

__version__ = "0.1.0"
