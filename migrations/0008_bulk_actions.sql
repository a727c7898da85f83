-- The responses of every bulk action (tenants, budgets, webhooks), by operation, the tenant
-- the request was confined to ('' for none) and idempotency key: a repeated request within
-- the replay window returns the first response. Replaces webhook_bulk_actions.
CREATE TABLE bulk_actions (
    operation       TEXT NOT NULL,
    scope           TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    request_hash    TEXT NOT NULL,
    response        JSONB NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (operation, scope, idempotency_key)
);

INSERT INTO bulk_actions (operation, scope, idempotency_key, request_hash, response, created_at)
SELECT 'bulkActionWebhooks', '', idempotency_key, request_hash, response, created_at FROM webhook_bulk_actions;

DROP TABLE webhook_bulk_actions;
