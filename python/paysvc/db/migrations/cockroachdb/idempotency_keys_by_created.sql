-- CockroachDB only (db/migrate.py uses it in place of the statement of the same index in 0001_init.sql).
-- Every payment inserts an idempotency record stamped now(): ordered by created_at alone, all inserts
-- land at the end of one range, which load-based splitting cannot split (CockroachDB docs, "Index
-- Sequential Keys with Hash-sharded Indexes"). Hash sharding spreads them over the default number of
-- buckets; the purge's range scan (created_at < now() - retention) then reads every bucket.
-- Not run here: there is no CockroachDB on our machines.
CREATE INDEX IF NOT EXISTS idempotency_keys_by_created ON idempotency_keys (created_at) USING HASH;
