"""Risk scoring: per-tenant settings, rules and models (serving) and the offline train/evaluate loop."""
