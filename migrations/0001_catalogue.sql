-- The admin catalogue: tenants, API keys, and the hash-chained audit log.

CREATE TABLE tenants (
    tenant_id                     TEXT PRIMARY KEY,
    name                          TEXT NOT NULL,
    status                        TEXT NOT NULL CHECK (status IN ('ACTIVE', 'SUSPENDED', 'CLOSED')),
    tier                          TEXT NOT NULL DEFAULT 'free' CHECK (tier IN ('free', 'dev', 'pro', 'enterprise')),
    parent_tenant_id              TEXT,
    default_commit_overage_policy TEXT NOT NULL DEFAULT 'ALLOW_IF_AVAILABLE',
    default_reservation_ttl_ms    BIGINT NOT NULL DEFAULT 60000,
    max_reservation_ttl_ms        BIGINT NOT NULL DEFAULT 3600000,
    max_reservation_extensions    BIGINT NOT NULL DEFAULT 10,
    reservation_expiry_policy     TEXT NOT NULL DEFAULT 'AUTO_RELEASE',
    metadata                      JSONB,
    created_at                    TIMESTAMPTZ NOT NULL,
    updated_at                    TIMESTAMPTZ NOT NULL,
    suspended_at                  TIMESTAMPTZ,
    closed_at                     TIMESTAMPTZ
);
CREATE INDEX tenants_created_at ON tenants (created_at, tenant_id);

CREATE TABLE api_keys (
    key_id         TEXT PRIMARY KEY,
    tenant_id      TEXT NOT NULL REFERENCES tenants (tenant_id),
    key_prefix     TEXT NOT NULL,
    -- HMAC-SHA256 of the full secret under the server's key-hash secret; the secret itself is never stored.
    key_digest     BYTEA NOT NULL UNIQUE,
    name           TEXT NOT NULL,
    description    TEXT,
    permissions    TEXT[] NOT NULL,
    scope_filter   TEXT[] NOT NULL DEFAULT '{}',
    status         TEXT NOT NULL CHECK (status IN ('ACTIVE', 'REVOKED')),
    metadata       JSONB,
    created_at     TIMESTAMPTZ NOT NULL,
    last_used_at   TIMESTAMPTZ,
    expires_at     TIMESTAMPTZ NOT NULL,
    revoked_at     TIMESTAMPTZ,
    revoked_reason TEXT
);
CREATE INDEX api_keys_tenant ON api_keys (tenant_id, created_at, key_id);
CREATE INDEX api_keys_created_at ON api_keys (created_at, key_id);

-- Append-only; each row stores the hash of its predecessor so that an altered or deleted
-- row breaks the chain. `audit_chain_head` serialises appends and remembers the tip.
CREATE TABLE audit_log (
    seq           BIGINT PRIMARY KEY,
    log_id        UUID NOT NULL UNIQUE,
    "timestamp"   TIMESTAMPTZ NOT NULL,
    tenant_id     TEXT NOT NULL,
    key_id        TEXT,
    user_agent    TEXT,
    source_ip     TEXT,
    operation     TEXT NOT NULL,
    resource_type TEXT,
    resource_id   TEXT,
    request_id    TEXT,
    trace_id      TEXT,
    status        INTEGER NOT NULL,
    error_code    TEXT,
    metadata      JSONB,
    prev_hash     BYTEA NOT NULL,
    hash          BYTEA NOT NULL
);
CREATE INDEX audit_log_timestamp ON audit_log ("timestamp", seq);
CREATE INDEX audit_log_tenant ON audit_log (tenant_id, "timestamp");

CREATE TABLE audit_chain_head (
    id   SMALLINT PRIMARY KEY CHECK (id = 1),
    seq  BIGINT NOT NULL,
    hash BYTEA NOT NULL
);
INSERT INTO audit_chain_head (id, seq, hash) VALUES (1, 0, '\x0000000000000000000000000000000000000000000000000000000000000000');

-- Server-wide secrets generated once and shared by every instance (e.g. the API-key hash
-- secret when none is configured).
CREATE TABLE server_secrets (
    name       TEXT PRIMARY KEY,
    value      BYTEA NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
