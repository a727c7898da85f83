-- Admin access control: principals (users or services, optionally bound to one tenant),
-- roles (a named set of admin-plane permissions, platform- or tenant-scoped), assignments,
-- and personal access tokens stored as keyed digests (HMAC-SHA256 under the server secret,
-- like tenant API keys; the secret itself is stored nowhere).

CREATE TABLE principals (
    principal_id   TEXT PRIMARY KEY,
    type           TEXT NOT NULL CHECK (type IN ('user', 'service')),
    name           TEXT NOT NULL,
    status         TEXT NOT NULL CHECK (status IN ('ACTIVE', 'DEACTIVATED')),
    tenant_id      TEXT REFERENCES tenants (tenant_id),
    created_at     TIMESTAMPTZ NOT NULL,
    updated_at     TIMESTAMPTZ NOT NULL
);
CREATE INDEX principals_tenant ON principals (tenant_id);

-- Built-in roles are rows too (so assignments reference them), but their permission sets
-- live in the code (`domain::access`), so a release can extend them without a migration.
CREATE TABLE roles (
    role_id      TEXT PRIMARY KEY,
    name         TEXT NOT NULL UNIQUE,
    scope        TEXT NOT NULL CHECK (scope IN ('platform', 'tenant')),
    permissions  TEXT[] NOT NULL DEFAULT '{}',
    built_in     BOOLEAN NOT NULL DEFAULT FALSE,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);

INSERT INTO roles (role_id, name, scope, built_in) VALUES
    ('owner', 'owner', 'platform', TRUE),
    ('policy-admin', 'policy-admin', 'platform', TRUE),
    ('billing-admin', 'billing-admin', 'platform', TRUE),
    ('tenant-admin', 'admin', 'tenant', TRUE),
    ('tenant-developer', 'developer', 'tenant', TRUE),
    ('tenant-viewer', 'viewer', 'tenant', TRUE);

CREATE TABLE principal_roles (
    principal_id  TEXT NOT NULL REFERENCES principals (principal_id),
    role_id       TEXT NOT NULL REFERENCES roles (role_id),
    created_at    TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (principal_id, role_id)
);
CREATE INDEX principal_roles_role ON principal_roles (role_id);

CREATE TABLE principal_tokens (
    key_id        TEXT PRIMARY KEY,
    principal_id  TEXT NOT NULL REFERENCES principals (principal_id),
    name          TEXT NOT NULL,
    key_prefix    TEXT NOT NULL,
    key_digest    BYTEA NOT NULL UNIQUE,
    created_at    TIMESTAMPTZ NOT NULL,
    expires_at    TIMESTAMPTZ,
    revoked_at    TIMESTAMPTZ,
    last_used_at  TIMESTAMPTZ
);
CREATE INDEX principal_tokens_principal ON principal_tokens (principal_id);
