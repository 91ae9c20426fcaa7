-- paysvc schema, version 4: risk scoring (brief section 8): per-account risk state, the payment's
-- outcome, review and fraud report, per-tenant settings and rules, reviews, and the new event types.
-- DDL only (CockroachDB runs schema changes asynchronously: no DML on these tables in this migration).

-- The account's compact risk state (velocity windows, declines, recent destinations; the format is
-- the Rust core's, opaque here). NULL is the empty state. Read by the group commit's lock-and-read
-- statement and written by its write statement: no extra round trip.
ALTER TABLE accounts ADD COLUMN IF NOT EXISTS risk_state BYTEA;

-- The payment's risk outcome as shown in the API ({"type","risk_score",…}); NULL for payments made
-- before risk existed (rendered as not assessed). review_id: the review it opened, if any.
ALTER TABLE payments ADD COLUMN IF NOT EXISTS outcome JSONB;
ALTER TABLE payments ADD COLUMN IF NOT EXISTS review_id UUID;
ALTER TABLE payments ADD COLUMN IF NOT EXISTS user_report TEXT
    CONSTRAINT payments_user_report_known CHECK (user_report IN ('fraudulent', 'safe'));

-- One row per tenant that changed its settings (no row: the defaults).
CREATE TABLE IF NOT EXISTS risk_settings (
    tenant_id UUID PRIMARY KEY REFERENCES tenants (id),
    mode TEXT NOT NULL CHECK (mode IN ('off', 'shadow', 'enforce')),
    elevated BIGINT NOT NULL,
    highest BIGINT NOT NULL,
    champion TEXT NOT NULL,
    challenger TEXT,
    challenger_percent BIGINT NOT NULL DEFAULT 0 CHECK (challenger_percent BETWEEN 0 AND 100),
    shadow_models JSONB NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    CHECK (0 <= elevated AND elevated <= highest AND highest <= 100)
);

-- A tenant's rules in order (position 0 first); PUT replaces them all.
CREATE TABLE IF NOT EXISTS risk_rules (
    tenant_id UUID NOT NULL REFERENCES tenants (id),
    position BIGINT NOT NULL CHECK (position >= 0),
    id UUID NOT NULL,
    action TEXT NOT NULL CHECK (action IN ('allow', 'block', 'review')),
    predicate TEXT NOT NULL,
    PRIMARY KEY (tenant_id, position)
);

-- Reviews opened by `review` rules. payment_id has no foreign key: the review is inserted by the
-- same statement as its payment (the group commit's write statement).
CREATE TABLE IF NOT EXISTS reviews (
    id UUID PRIMARY KEY,
    tenant_id UUID NOT NULL REFERENCES tenants (id),
    payment_id UUID NOT NULL,
    reason TEXT NOT NULL CHECK (reason = 'rule'),
    rule_id UUID NOT NULL,
    rule_action TEXT NOT NULL,
    rule_predicate TEXT NOT NULL,
    open BOOLEAN NOT NULL,
    closed_reason TEXT CHECK (closed_reason IN ('approved', 'refunded', 'refunded_as_fraud', 'canceled')),
    created_at TIMESTAMPTZ NOT NULL,
    CHECK (open = (closed_reason IS NULL))
);
CREATE INDEX IF NOT EXISTS reviews_by_tenant ON reviews (tenant_id, created_at DESC, id DESC);

-- The events' type CHECK gains the risk events. 0002 declared it inline, unnamed: PostgreSQL named it
-- events_type_check, CockroachDB check_type. Drop whichever exists and add it again, named.
ALTER TABLE events DROP CONSTRAINT IF EXISTS events_type_check;
ALTER TABLE events DROP CONSTRAINT IF EXISTS check_type;
ALTER TABLE events ADD CONSTRAINT events_type_known CHECK (type IN (
    'payment.authorized', 'payment.succeeded', 'payment.canceled', 'payment.expired', 'payment.failed',
    'payment.fraud_reported', 'refund.succeeded', 'review.opened', 'review.closed'));
