-- Events, webhook subscriptions and their deliveries, and the webhook security config.

-- The canonical event log. `body` is the spec's Event envelope as served and delivered;
-- the other columns are copies of its fields for filtering and ordering. Ledger events
-- arrive from the per-tenant Redis outboxes (their ids derive from the stream entry id,
-- so a redelivered entry lands on the same row); catalogue events are written in the
-- transaction of the change they describe.
CREATE TABLE events (
    event_id       TEXT PRIMARY KEY,
    event_type     TEXT NOT NULL,
    category       TEXT NOT NULL,
    tenant_id      TEXT NOT NULL,
    scope          TEXT,
    occurred_at    TIMESTAMPTZ NOT NULL,
    correlation_id TEXT,
    request_id     TEXT,
    trace_id       TEXT,
    body           JSONB NOT NULL
);
CREATE INDEX events_time ON events (occurred_at, event_id);
CREATE INDEX events_tenant_time ON events (tenant_id, occurred_at, event_id);
CREATE INDEX events_type_time ON events (event_type, occurred_at, event_id);
CREATE INDEX events_correlation ON events (correlation_id) WHERE correlation_id IS NOT NULL;

CREATE TABLE webhook_subscriptions (
    subscription_id        TEXT PRIMARY KEY,
    -- '__system__' for system-wide subscriptions; otherwise a tenant of the catalogue.
    tenant_id              TEXT NOT NULL,
    name                   TEXT,
    description            TEXT,
    url                    TEXT NOT NULL,
    event_types            TEXT[] NOT NULL,
    event_categories       TEXT[] NOT NULL DEFAULT '{}',
    scope_filter           TEXT,
    thresholds             JSONB,
    -- AES-256-GCM (nonce || ciphertext) under a key derived from the server secret.
    signing_secret_sealed  BYTEA NOT NULL,
    headers_sealed         BYTEA,
    status                 TEXT NOT NULL CHECK (status IN ('ACTIVE', 'PAUSED', 'DISABLED')),
    retry_policy           JSONB NOT NULL,
    disable_after_failures INTEGER NOT NULL CHECK (disable_after_failures >= 1),
    consecutive_failures   INTEGER NOT NULL DEFAULT 0,
    metadata               JSONB,
    created_at             TIMESTAMPTZ NOT NULL,
    updated_at             TIMESTAMPTZ,
    last_triggered_at      TIMESTAMPTZ,
    last_success_at        TIMESTAMPTZ,
    last_failure_at        TIMESTAMPTZ,
    -- Neither selector may be empty on its own: INVARIANT 1 holds for every write path.
    CONSTRAINT webhook_selector_present CHECK (cardinality(event_types) > 0 OR cardinality(event_categories) > 0)
);
CREATE INDEX webhook_subscriptions_tenant ON webhook_subscriptions (tenant_id, status);

CREATE TABLE webhook_deliveries (
    delivery_id       TEXT PRIMARY KEY,
    subscription_id   TEXT NOT NULL,
    event_id          TEXT NOT NULL REFERENCES events (event_id),
    event_type        TEXT NOT NULL,
    status            TEXT NOT NULL CHECK (status IN ('PENDING', 'SUCCESS', 'FAILED', 'RETRYING')),
    created_at        TIMESTAMPTZ NOT NULL,
    attempted_at      TIMESTAMPTZ NOT NULL,
    completed_at      TIMESTAMPTZ,
    attempts          INTEGER NOT NULL DEFAULT 0,
    response_status   INTEGER,
    response_time_ms  BIGINT,
    error_message     TEXT,
    -- When the next attempt is due (PENDING and RETRYING only).
    next_attempt_at   TIMESTAMPTZ,
    -- An instance holds a claimed delivery until this time; a crashed holder's claim lapses.
    lease_until       TIMESTAMPTZ,
    replay_id         TEXT,
    trace_id          TEXT,
    trace_flags       TEXT,
    traceparent_inbound_valid BOOLEAN
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at)
    WHERE status IN ('PENDING', 'RETRYING');
CREATE INDEX webhook_deliveries_subscription ON webhook_deliveries (subscription_id, attempted_at, delivery_id);
CREATE UNIQUE INDEX webhook_deliveries_live_once ON webhook_deliveries (subscription_id, event_id)
    WHERE replay_id IS NULL;

-- The server-level webhook security configuration: one row, absent until first PUT.
CREATE TABLE webhook_security_config (
    id         BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (id),
    config     JSONB NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);

-- Webhook bulk actions by idempotency key: a repeated request returns the first response.
CREATE TABLE webhook_bulk_actions (
    idempotency_key TEXT PRIMARY KEY,
    request_hash    TEXT NOT NULL,
    response        JSONB NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL
);

-- Whether `api_key.expired` has been emitted for a key past its expiry (once per key).
ALTER TABLE api_keys ADD COLUMN expiry_announced BOOLEAN NOT NULL DEFAULT FALSE;
