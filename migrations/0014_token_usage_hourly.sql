-- Token usage summed per tenant, API key, model, unit and UTC hour: what the token usage
-- summary answers from, so a summary over a month reads a few hundred rows per key and model
-- instead of every record. Kept by the outbox drain in the transaction that inserts each
-- token_usage record (and only when the record is new), so every record counts exactly once.
-- A summary window's whole hours come from here; its partial hours at the two edges from
-- token_usage itself, through its time indexes.

CREATE TABLE token_usage_hourly (
    tenant_id     TEXT NOT NULL,
    -- '' for records made without an API key (a key id is never empty).
    api_key_id    TEXT NOT NULL,
    model         TEXT NOT NULL,
    unit          TEXT NOT NULL,
    hour          TIMESTAMPTZ NOT NULL,
    -- Sums of int64 values: NUMERIC, as they may exceed int64. A record without a token
    -- count adds 0 (the summary's sums treat it the same way).
    tokens_input  NUMERIC NOT NULL DEFAULT 0,
    tokens_output NUMERIC NOT NULL DEFAULT 0,
    calls         BIGINT NOT NULL DEFAULT 0,
    charged       NUMERIC NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, hour, api_key_id, model, unit)
);
-- A summary without a tenant filter reads a range of hours.
CREATE INDEX token_usage_hourly_hour ON token_usage_hourly (hour);

-- The records stored before this migration.
INSERT INTO token_usage_hourly (tenant_id, api_key_id, model, unit, hour, tokens_input, tokens_output, calls, charged)
SELECT tenant_id, coalesce(api_key_id, ''), model, unit,
       date_trunc('hour', occurred_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC',
       coalesce(sum(tokens_input), 0), coalesce(sum(tokens_output), 0), count(*), sum(charged)
FROM token_usage
GROUP BY 1, 2, 3, 4, 5;
