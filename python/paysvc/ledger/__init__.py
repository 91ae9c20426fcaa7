"""The ledger engine: the one place that writes money."""
