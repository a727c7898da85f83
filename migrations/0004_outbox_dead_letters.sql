-- Outbox entries the drain could not store as events, set aside so the tenant's later
-- entries keep flowing. `raw` is the stream entry's field names and values alternating,
-- each as a netstring (`<length>:<bytes>,`): bytea, because text cannot hold the NUL bytes
-- that are a common reason for an entry to be here. One row per stream entry, so an entry
-- delivered twice (a crash before the acknowledgement, two drains racing a reclaim) is set
-- aside once. Rows are kept until an operator deletes them; retention does not prune them.
CREATE TABLE outbox_dead_letters (
    id          BIGSERIAL PRIMARY KEY,
    tenant_id   TEXT NOT NULL,
    stream_id   TEXT NOT NULL,
    raw         BYTEA NOT NULL,
    -- 'undecodable' (not an event) or 'unstorable' (Postgres refused the event).
    reason      TEXT NOT NULL CHECK (reason IN ('undecodable', 'unstorable')),
    error       TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, stream_id)
);
CREATE INDEX outbox_dead_letters_time ON outbox_dead_letters (created_at, id);
