-- CockroachDB only (db/migrate.py uses it in place of the statement of the same index in 0003_webhooks.sql).
-- Every new delivery is due now() and every lease moves next_attempt_at to now() + a lease time: the
-- due index is written at its end, a hot range. Hash sharding spreads it; the deliverer's
-- "next_attempt_at <= now() ORDER BY next_attempt_at LIMIT n" then reads every bucket and merges.
-- Not run here: there is no CockroachDB on our machines.
CREATE INDEX IF NOT EXISTS webhook_deliveries_due ON webhook_deliveries (next_attempt_at) USING HASH WHERE status = 'pending';
