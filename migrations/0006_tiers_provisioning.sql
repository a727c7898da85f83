-- Tiers as templates, and one-call provisioning.
--
-- A tier holds the admission class and rate limit of its tenants (read with each API key by
-- the runtime's key cache), the settings a tenant created in it starts with, its default
-- budgets (scopes relative to the tenant) and default policies. The four built-in tiers are
-- created here with the compiled-in defaults; each start copies the `--tier-classes` and
-- `--rate-limits` flags into them unless an operator has patched the tier.

CREATE TABLE tiers (
    tier                          TEXT PRIMARY KEY CHECK (tier ~ '^[a-z0-9][a-z0-9-]{0,63}$'),
    description                   TEXT,
    built_in                      BOOLEAN NOT NULL DEFAULT FALSE,
    operator_modified             BOOLEAN NOT NULL DEFAULT FALSE,
    admission_class               TEXT NOT NULL CHECK (admission_class IN ('premium', 'standard', 'bulk')),
    rate_limit_per_second         INTEGER CHECK (rate_limit_per_second > 0),
    rate_limit_burst              INTEGER CHECK (rate_limit_burst > 0),
    default_commit_overage_policy TEXT NOT NULL,
    default_reservation_ttl_ms    BIGINT NOT NULL,
    max_reservation_ttl_ms        BIGINT NOT NULL,
    max_reservation_extensions    BIGINT NOT NULL,
    default_budgets               JSONB NOT NULL DEFAULT '[]',
    default_policies              JSONB NOT NULL DEFAULT '[]',
    created_at                    TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at                    TIMESTAMPTZ NOT NULL DEFAULT now()
);

INSERT INTO tiers (tier, built_in, admission_class, rate_limit_per_second, rate_limit_burst,
                   default_commit_overage_policy, default_reservation_ttl_ms, max_reservation_ttl_ms,
                   max_reservation_extensions)
VALUES ('free', TRUE, 'bulk', 50, 100, 'ALLOW_IF_AVAILABLE', 60000, 3600000, 10),
       ('dev', TRUE, 'bulk', 200, 400, 'ALLOW_IF_AVAILABLE', 60000, 3600000, 10),
       ('pro', TRUE, 'standard', 1000, 2000, 'ALLOW_IF_AVAILABLE', 60000, 3600000, 10),
       ('enterprise', TRUE, 'premium', 5000, 10000, 'ALLOW_IF_AVAILABLE', 60000, 3600000, 10);

-- A tenant's tier is any tier of the catalogue, no longer one of four names.
ALTER TABLE tenants DROP CONSTRAINT tenants_tier_check;
ALTER TABLE tenants ADD CONSTRAINT tenants_tier_fkey FOREIGN KEY (tier) REFERENCES tiers (tier);
CREATE INDEX tenants_tier ON tenants (tier);

-- One row per provisioning call, written in the transaction that creates the tenant and its
-- key. `budgets` is the plan (absolute scopes, amounts, ledger ids) the Redis step carries
-- out; `state` turns COMPLETE once every planned budget exists. A PENDING row left by a crash
-- or a Redis outage is finished by the recovery pass of any instance, under a lease.
CREATE TABLE provisions (
    idempotency_key  TEXT PRIMARY KEY,
    request_hash     TEXT NOT NULL,
    -- Checked at commit: the record is written first, so a second call with the same key
    -- waits on it before touching the tenant.
    tenant_id        TEXT NOT NULL UNIQUE REFERENCES tenants (tenant_id) DEFERRABLE INITIALLY DEFERRED,
    key_id           TEXT NOT NULL REFERENCES api_keys (key_id) DEFERRABLE INITIALLY DEFERRED,
    state            TEXT NOT NULL CHECK (state IN ('PENDING', 'COMPLETE')),
    budgets          JSONB NOT NULL,
    policies         JSONB NOT NULL DEFAULT '[]',
    -- The key's secret sealed under the server secret, until a response has carried it.
    secret_sealed    BYTEA,
    request_id       TEXT NOT NULL,
    trace_id         TEXT NOT NULL,
    lease_until      TIMESTAMPTZ,
    created_at       TIMESTAMPTZ NOT NULL,
    completed_at     TIMESTAMPTZ
);
CREATE INDEX provisions_pending ON provisions (created_at) WHERE state = 'PENDING';
