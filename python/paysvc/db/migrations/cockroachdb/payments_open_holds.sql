-- CockroachDB only (db/migrate.py uses it in place of the statement of the same index in 0001_init.sql).
-- status has four values and a new hold's expires_at is now() + expires_in_s (7 days by default), so
-- the holds of all tenants are appended at the end of the 'requires_capture' part of the index: a hot
-- range. Hash sharding spreads them; the sweeper's "status = 'requires_capture' AND expires_at <= now()
-- ORDER BY expires_at LIMIT n" then reads every bucket and merges (or sorts) what is due.
-- Not run here: there is no CockroachDB on our machines.
CREATE INDEX IF NOT EXISTS payments_open_holds ON payments (status, expires_at) USING HASH;
