-- paysvc schema, version 2: the payment lifecycle (capture, cancel, expiry, refunds) and the events feed.
-- DDL only (CockroachDB runs schema changes asynchronously: no DML on these tables in this migration).

-- Time of the payment's latest event. Each new event of the payment is stamped strictly later, so
-- the events of one payment sort in the order they happened even when transactions start out of order.
ALTER TABLE payments ADD COLUMN IF NOT EXISTS last_event_at TIMESTAMPTZ;

CREATE TABLE IF NOT EXISTS refunds (
    id UUID PRIMARY KEY,
    tenant_id UUID NOT NULL REFERENCES tenants (id),
    payment_id UUID NOT NULL REFERENCES payments (id),
    amount BIGINT NOT NULL CHECK (amount > 0),
    status TEXT NOT NULL CHECK (status = 'succeeded'),
    metadata JSONB NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX IF NOT EXISTS refunds_by_payment ON refunds (payment_id, created_at DESC, id DESC);

-- The outbox: one row per state change, written in the transaction that makes the change.
-- seq is NULL until the sequencer (ledger/events.py) numbers the row; it numbers only committed
-- rows, in batches, each batch after all earlier ones, so a consumer paging by seq never misses
-- an event and never sees one twice. Several NULLs are allowed by the unique constraint.
CREATE TABLE IF NOT EXISTS events (
    id UUID PRIMARY KEY,
    tenant_id UUID NOT NULL REFERENCES tenants (id),
    seq BIGINT CHECK (seq > 0),
    type TEXT NOT NULL CHECK (type IN ('payment.authorized', 'payment.succeeded', 'payment.canceled',
                                       'payment.expired', 'payment.failed', 'refund.succeeded')),
    data BYTEA NOT NULL,                         -- the object's JSON as it was, byte for byte
    created_at TIMESTAMPTZ NOT NULL,
    CONSTRAINT events_tenant_seq UNIQUE (tenant_id, seq)
);
CREATE INDEX IF NOT EXISTS events_unsequenced ON events (tenant_id, created_at, id) WHERE seq IS NULL;
CREATE INDEX IF NOT EXISTS events_by_tenant_type_seq ON events (tenant_id, type, seq);

-- The last seq handed out per tenant (only the sequencer writes it; payments never touch it).
CREATE TABLE IF NOT EXISTS event_sequences (
    tenant_id UUID PRIMARY KEY REFERENCES tenants (id),
    last_seq BIGINT NOT NULL CHECK (last_seq >= 0)
);
