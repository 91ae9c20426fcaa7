-- paysvc schema, version 3: webhook endpoints and their deliveries (brief, section 7).
-- DDL only (CockroachDB runs schema changes asynchronously: no DML in this migration).

-- A tenant's endpoint. Secrets are stored as the service uses them: it must sign with them.
-- previous_secret keeps signing beside secret until previous_secret_expires_at (rotation overlap).
-- deleted_at: a deleted endpoint answers 404 and its pending deliveries stop; the row stays so that
-- its deliveries keep their endpoint.
CREATE TABLE IF NOT EXISTS webhook_endpoints (
    id UUID PRIMARY KEY,
    tenant_id UUID NOT NULL REFERENCES tenants (id),
    url TEXT NOT NULL,
    enabled_events TEXT[] NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('enabled', 'disabled')),
    description TEXT,
    metadata JSONB NOT NULL,
    secret TEXT NOT NULL,
    previous_secret TEXT,
    previous_secret_expires_at TIMESTAMPTZ,
    -- Deliveries that ended failed since the last success; reaching the configured limit disables
    -- the endpoint (PAYSVC_WEBHOOK_DISABLE_AFTER_FAILED_DELIVERIES).
    consecutive_failed_deliveries BIGINT NOT NULL CHECK (consecutive_failed_deliveries >= 0),
    created_at TIMESTAMPTZ NOT NULL,
    deleted_at TIMESTAMPTZ
);
CREATE INDEX IF NOT EXISTS webhook_endpoints_by_tenant ON webhook_endpoints (tenant_id, created_at DESC, id DESC);

-- One row per (endpoint, event): created by the events sequencer in the transaction that numbers
-- the event (ledger/events.py), so none is skipped and none is made twice.
-- A pending row is due at next_attempt_at; a worker leases it by moving next_attempt_at past the
-- attempt's timeout and stamping lease_id, so a crashed worker's lease simply runs out. NULL
-- next_attempt_at on a pending row: parked while its endpoint is disabled.
-- attempts_base: the attempts made before the last manual retry (the schedule restarts there).
CREATE TABLE IF NOT EXISTS webhook_deliveries (
    id UUID PRIMARY KEY,
    tenant_id UUID NOT NULL REFERENCES tenants (id),
    endpoint_id UUID NOT NULL REFERENCES webhook_endpoints (id),
    event_id UUID NOT NULL REFERENCES events (id),
    event_type TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed')),
    attempts BIGINT NOT NULL CHECK (attempts >= 0),
    attempts_base BIGINT NOT NULL CHECK (attempts_base >= 0 AND attempts_base <= attempts),
    last_status_code BIGINT,
    last_error TEXT,
    next_attempt_at TIMESTAMPTZ,
    lease_id UUID,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    CONSTRAINT webhook_deliveries_once UNIQUE (endpoint_id, event_id)
);
-- Due work, oldest first. On CockroachDB new deliveries and leases write at its end (now()): a
-- hash-sharded variant (migrations/cockroachdb/) is the follow-up if that range runs hot.
CREATE INDEX IF NOT EXISTS webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
-- An endpoint's deliveries, newest first (also with a status filter: one index less to write for
-- every delivery, the sequencer's cost, for a slower filtered listing).
CREATE INDEX IF NOT EXISTS webhook_deliveries_by_endpoint
    ON webhook_deliveries (endpoint_id, created_at DESC, id DESC);
