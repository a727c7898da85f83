-- Per-tenant override of the admission rate limit (requests per second and burst, per
-- instance); NULL means the tier's default.
ALTER TABLE tenants ADD COLUMN rate_limit_per_second INTEGER CHECK (rate_limit_per_second > 0);
ALTER TABLE tenants ADD COLUMN rate_limit_burst INTEGER CHECK (rate_limit_burst > 0);
