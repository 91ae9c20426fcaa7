-- paysvc schema, version 1. Runs identically on PostgreSQL and CockroachDB (see shared/design/sql-rules.md):
-- random UUID keys, BIGINT money, single-row CHECKs, no sequences, no triggers.

CREATE TABLE IF NOT EXISTS tenants (
    id UUID PRIMARY KEY,
    name TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS api_keys (
    key_hash BYTEA PRIMARY KEY,                 -- SHA-256 of the key; the key itself is never stored
    tenant_id UUID NOT NULL REFERENCES tenants (id),
    key_prefix TEXT NOT NULL,                   -- first characters, for support
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    revoked_at TIMESTAMPTZ
);
CREATE INDEX IF NOT EXISTS api_keys_by_tenant ON api_keys (tenant_id);

CREATE TABLE IF NOT EXISTS accounts (
    id UUID PRIMARY KEY,
    tenant_id UUID NOT NULL REFERENCES tenants (id),
    currency TEXT NOT NULL CHECK (length(currency) = 3),
    allow_negative BOOL NOT NULL,
    purpose TEXT NOT NULL CHECK (purpose IN ('general', 'fees')),
    posted BIGINT NOT NULL DEFAULT 0,
    pending BIGINT NOT NULL DEFAULT 0 CHECK (pending >= 0),
    entry_seq BIGINT NOT NULL DEFAULT 0 CHECK (entry_seq >= 0),   -- seq of the account's newest entry
    metadata JSONB NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    CONSTRAINT accounts_available_not_negative CHECK (allow_negative OR posted - pending >= 0)
);
CREATE INDEX IF NOT EXISTS accounts_by_tenant_created ON accounts (tenant_id, created_at DESC, id DESC);

-- The fee account of each (tenant, currency): created with the first fee rule, kept when the rule goes.
CREATE TABLE IF NOT EXISTS fee_accounts (
    tenant_id UUID NOT NULL REFERENCES tenants (id),
    currency TEXT NOT NULL,
    account_id UUID NOT NULL UNIQUE REFERENCES accounts (id),
    PRIMARY KEY (tenant_id, currency)
);

CREATE TABLE IF NOT EXISTS fee_rules (
    tenant_id UUID NOT NULL REFERENCES tenants (id),
    currency TEXT NOT NULL,
    percent_bps BIGINT NOT NULL CHECK (percent_bps BETWEEN 0 AND 10000),
    fixed_minor BIGINT NOT NULL CHECK (fixed_minor >= 0),
    min_minor BIGINT CHECK (min_minor >= 0),
    max_minor BIGINT CHECK (max_minor >= 0),
    PRIMARY KEY (tenant_id, currency),
    CHECK (min_minor IS NULL OR max_minor IS NULL OR min_minor <= max_minor)
);

CREATE TABLE IF NOT EXISTS payments (
    id UUID PRIMARY KEY,
    tenant_id UUID NOT NULL REFERENCES tenants (id),
    amount BIGINT NOT NULL CHECK (amount > 0),
    amount_captured BIGINT NOT NULL DEFAULT 0 CHECK (amount_captured >= 0),
    amount_refunded BIGINT NOT NULL DEFAULT 0 CHECK (amount_refunded >= 0),
    fee BIGINT CHECK (fee >= 0),
    net BIGINT,
    currency TEXT NOT NULL,
    source_id UUID NOT NULL REFERENCES accounts (id),
    destination_id UUID NOT NULL REFERENCES accounts (id),
    status TEXT NOT NULL CHECK (status IN ('requires_capture', 'succeeded', 'canceled', 'failed')),
    failure_code TEXT,
    cancellation_reason TEXT,
    description TEXT,
    metadata JSONB NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ,
    CHECK (amount_captured <= amount),
    CHECK (amount_refunded <= amount_captured),
    CHECK (source_id <> destination_id)
);
CREATE INDEX IF NOT EXISTS payments_by_tenant_created ON payments (tenant_id, created_at DESC, id DESC);
CREATE INDEX IF NOT EXISTS payments_by_tenant_status_created
    ON payments (tenant_id, status, created_at DESC, id DESC);
CREATE INDEX IF NOT EXISTS payments_open_holds ON payments (status, expires_at);

-- One row per account per posting. seq is the account's own sequence number, written in the same
-- transaction as the balance it follows; history is ordered by it, never by time.
CREATE TABLE IF NOT EXISTS entries (
    id UUID PRIMARY KEY,
    tenant_id UUID NOT NULL,
    account_id UUID NOT NULL REFERENCES accounts (id),
    seq BIGINT NOT NULL CHECK (seq > 0),
    currency TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('payment', 'fee', 'refund')),
    amount BIGINT NOT NULL CHECK (amount <> 0),
    balance_after BIGINT NOT NULL,
    payment_id UUID,                             -- no FK: written in the same statement as the payment
    refund_id UUID,
    created_at TIMESTAMPTZ NOT NULL,
    CONSTRAINT entries_account_seq UNIQUE (account_id, seq)
);
CREATE INDEX IF NOT EXISTS entries_by_payment ON entries (payment_id);

-- Idempotency records: written in the same transaction as the money they guard.
CREATE TABLE IF NOT EXISTS idempotency_keys (
    tenant_id UUID NOT NULL,
    idem_key TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    status_code SMALLINT,
    response_body BYTEA,
    payment_id UUID,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, idem_key)
);
CREATE INDEX IF NOT EXISTS idempotency_keys_by_created ON idempotency_keys (created_at);
