-- Spend an operator can see: token usage records, usage rollups and alerts. All of it is
-- written by the outbox drain in the transaction that stores the outbox entries it comes from,
-- so each entry counts exactly once however often it is delivered.

-- The outbox entries of Tollgate's own kinds (`usage.*`: reserve, commit, event, release) that
-- have been applied. They are not events, so this is what makes a redelivered entry a no-op.
-- Pruned with the events (an entry is redelivered within minutes, if ever).
CREATE TABLE usage_entries (
    entry_id    TEXT PRIMARY KEY,
    recorded_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX usage_entries_time ON usage_entries (recorded_at);

-- One record per commit and per usage event (POST /v1/events), tokens or not.
CREATE TABLE token_usage (
    record_id      TEXT PRIMARY KEY,
    tenant_id      TEXT NOT NULL,
    api_key_id     TEXT,
    source         TEXT NOT NULL CHECK (source IN ('commit', 'event')),
    reservation_id TEXT,
    scope          TEXT NOT NULL,
    unit           TEXT NOT NULL,
    model          TEXT NOT NULL,
    tokens_input   BIGINT,
    tokens_output  BIGINT,
    latency_ms     BIGINT,
    charged        BIGINT NOT NULL,
    occurred_at    TIMESTAMPTZ NOT NULL,
    request_id     TEXT,
    trace_id       TEXT,
    metrics        JSONB
);
CREATE INDEX token_usage_time ON token_usage (occurred_at, record_id);
CREATE INDEX token_usage_tenant_time ON token_usage (tenant_id, occurred_at, record_id);

-- Per tenant, scope, unit and UTC day. Counts are kept at every scope of the operation's
-- subject path (so the `tenant:<t>` row counts the whole tenant); `committed` (what the
-- budget's spent moved by) only at the budgeted scopes. Amounts are NUMERIC: a sum of int64
-- amounts may exceed int64.
CREATE TABLE usage_daily (
    tenant_id     TEXT NOT NULL,
    scope         TEXT NOT NULL,
    unit          TEXT NOT NULL,
    day           DATE NOT NULL,
    committed     NUMERIC NOT NULL DEFAULT 0,
    charged       NUMERIC NOT NULL DEFAULT 0,
    reserves      BIGINT NOT NULL DEFAULT 0,
    commits       BIGINT NOT NULL DEFAULT 0,
    events        BIGINT NOT NULL DEFAULT 0,
    releases      BIGINT NOT NULL DEFAULT 0,
    expiries      BIGINT NOT NULL DEFAULT 0,
    denials       BIGINT NOT NULL DEFAULT 0,
    tokens_input  NUMERIC NOT NULL DEFAULT 0,
    tokens_output NUMERIC NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, scope, unit, day)
);
CREATE INDEX usage_daily_day ON usage_daily (day);

-- What each budget's spent moved by, per UTC hour: the burn rates.
CREATE TABLE usage_hourly (
    tenant_id TEXT NOT NULL,
    scope     TEXT NOT NULL,
    unit      TEXT NOT NULL,
    hour      TIMESTAMPTZ NOT NULL,
    committed NUMERIC NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, scope, unit, hour)
);

-- Alerts raised from the ledger's own events and from burn rates. `condition` names what is
-- wrong with which budget; at most one open alert per condition.
CREATE TABLE alerts (
    alert_id     TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL,
    scope        TEXT NOT NULL,
    unit         TEXT NOT NULL,
    kind         TEXT NOT NULL,
    condition    TEXT NOT NULL,
    severity     TEXT NOT NULL CHECK (severity IN ('info', 'warning', 'critical')),
    message      TEXT NOT NULL,
    details      JSONB NOT NULL DEFAULT '{}',
    created_at   TIMESTAMPTZ NOT NULL,
    resolved     BOOLEAN NOT NULL DEFAULT FALSE,
    resolved_at  TIMESTAMPTZ,
    resolved_by  TEXT
);
CREATE UNIQUE INDEX alerts_open_once ON alerts (condition) WHERE NOT resolved;
CREATE INDEX alerts_time ON alerts (created_at, alert_id);
CREATE INDEX alerts_budget ON alerts (tenant_id, scope, unit) WHERE NOT resolved;
