-- The generation of each tenant's policy set last written to Redis, where the runtime reads
-- it. A change commits in Postgres, then publishes; a publication that failed (Redis out, the
-- engine died) leaves `published_generation` behind `generation`, and the recovery pass
-- publishes again until the two agree.

ALTER TABLE policy_generations ADD COLUMN published_generation BIGINT NOT NULL DEFAULT 0;
