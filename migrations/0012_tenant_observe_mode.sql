-- A tenant's default observe mode (governance extension v0.1.26, `Tenant.observe_mode`):
-- ENFORCE holds budget as always, OBSERVE evaluates every reservation without holding anything
-- and reports it, DISABLED is the spec's synonym for ENFORCE. Tenants that predate the column
-- are ENFORCE, as the spec says ("absent → stored as ENFORCE").
ALTER TABLE tenants
    ADD COLUMN observe_mode TEXT NOT NULL DEFAULT 'ENFORCE'
        CHECK (observe_mode IN ('DISABLED', 'OBSERVE', 'ENFORCE'));
