-- release.lua: return a reservation's whole hold to its budgets. Serves
-- POST /v1/reservations/{id}/release (tenant key, or admin key on behalf of the tenant).
--
-- KEYS[1] tenant mirror   KEYS[2] ledger hash   KEYS[3] idempotency record (per reservation)
-- KEYS[4] reservation     KEYS[5] active-by-deadline zset   KEYS[6] outbox stream
-- ARGV[1] request hash    ARGV[2] reason ('' = none)   ARGV[3] reservation id
-- ARGV[4] request id      ARGV[5] trace id      ARGV[6] retention ms of a finalized reservation
--
-- Returns JSON: a stored result plus {replay, now}; or {e, m} in precedence order
-- IDEMPOTENCY_MISMATCH, NOT_FOUND, INTERNAL_ERROR, TENANT_CLOSED, RESERVATION_EXPIRED
-- (status, unless its hold was kept), RESERVATION_FINALIZED, RESERVATION_EXPIRED (past
-- expires_at + grace; under GRACE_ONLY past expires_at; never under MANUAL_CLEANUP); or
-- {status=RELEASED, released, unit, balances, now}. Every check runs before the first write.
-- Appends: budget.threshold_crossed (falling) for each threshold a budget drops back under, and
-- usage.released (Tollgate's own entry, never an event: the reservation's scope path).
-- Every budget read is first rolled into its current period (lib.lua roll: budget.period_rolled).
-- Gives back the per-run quota counts the reservation took (lib.lua give_back_quotas: keys
-- named in the reservation, in its slot).

local hash, rid = ARGV[1], ARGV[3]
local now = now_ms()

local replay = idem_check(KEYS[3], hash, now)
if replay then return replay end

local r = redis.call('HMGET', KEYS[4], 'st', 'u', 'e', 'sc', 'x', 'g', 'h', 'sp', 'qk')
-- An EXPIRED reservation whose hold was kept (MANUAL_CLEANUP) is released like an active one.
local kept = r[1] == 'EXPIRED' and r[7] == '1'
local tenant, failure = settleable(KEYS[1], kept and 'ACTIVE' or r[1])
if not tenant then return failure end
if not kept and tenant.expiry ~= 'MANUAL_CLEANUP' then
  -- GRACE_ONLY: the grace period admits commits only.
  local deadline = tonumber(r[5]) + tonumber(r[6])
  if tenant.expiry == 'GRACE_ONLY' then deadline = tonumber(r[5]) end
  if now > deadline then return err('RESERVATION_EXPIRED', 'reservation expired') end
end

local unit, E = r[2], I(r[3])
local held = {}
for scope in string.gmatch(r[4], '[^\n]+') do held[#held + 1] = scope end
local budgets = read_budgets(KEYS[2], held, unit, KEYS[6], now)
if #budgets ~= #held then return err('INTERNAL_ERROR', 'a budget held by the reservation is missing') end
local balances = {}
for _, b in ipairs(budgets) do
  b.r = sub(b.r, E)
  balances[#balances + 1] = balance(b)
end
write_budgets(KEYS[2], budgets, now, false)
for _, b in ipairs(budgets) do emit_thresholds(KEYS[6], b, unit, now, ARGV[4], ARGV[5]) end
redis.call('HSET', KEYS[4], 'st', 'RELEASED', 'f', ms(now), 'rr', ARGV[2], 'h', '0')
give_back_quotas(r[9])
redis.call('PEXPIRE', KEYS[4], ARGV[6])
redis.call('ZREM', KEYS[5], rid)
emit(KEYS[6], 'usage.released', now, r[8], unit, ARGV[4], ARGV[5], {reservation_id = rid, released = r[3]})
return succeed(KEYS[3], hash, {status = 'RELEASED', unit = unit, released = r[3], balances = balances}, ARGV[6], now)
