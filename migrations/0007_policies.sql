-- The policy catalogue: each tenant's policies (the current content as JSONB, with copies of
-- the fields lists filter and sort on), their last versions, and the tenant's policy
-- generation, a number bumped by every policy change (runtime enforcement reads it to know
-- when its copy of a tenant's policies is stale).

CREATE TABLE policies (
    policy_id        TEXT PRIMARY KEY,
    tenant_id        TEXT NOT NULL REFERENCES tenants (tenant_id),
    name             TEXT NOT NULL,
    scope_pattern    TEXT NOT NULL,
    status           TEXT NOT NULL CHECK (status IN ('ACTIVE', 'DISABLED')),
    priority         INTEGER NOT NULL CHECK (priority >= 0),
    has_quotas       BOOLEAN NOT NULL,
    -- Every action kind the policy's quotas and allow/deny lists name.
    action_kinds     TEXT[] NOT NULL DEFAULT '{}',
    version          INTEGER NOT NULL CHECK (version >= 1),
    -- The policy's rules (every mutable field), as `domain::policy::Rules` serializes them.
    rules            JSONB NOT NULL,
    created_at       TIMESTAMPTZ NOT NULL,
    updated_at       TIMESTAMPTZ NOT NULL,
    UNIQUE (tenant_id, name)
);
CREATE INDEX policies_tenant_created ON policies (tenant_id, created_at, policy_id);
CREATE INDEX policies_action_kinds ON policies USING GIN (action_kinds);

-- Every change of a policy stores its resulting rules as a new version; the last 10 are kept.
CREATE TABLE policy_versions (
    policy_id   TEXT NOT NULL REFERENCES policies (policy_id),
    version     INTEGER NOT NULL CHECK (version >= 1),
    rules       JSONB NOT NULL,
    -- create, update or rollback (with the version restored).
    change      TEXT NOT NULL,
    restored_from INTEGER,
    created_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (policy_id, version)
);

CREATE TABLE policy_generations (
    tenant_id   TEXT PRIMARY KEY REFERENCES tenants (tenant_id),
    generation  BIGINT NOT NULL CHECK (generation >= 1)
);
