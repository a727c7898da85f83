-- budget_create.lua: create one (scope, unit) budget in the tenant's ledger.
--
-- KEYS[1] tenant mirror   KEYS[2] ledger hash   KEYS[3] budget index zset   KEYS[4] outbox
-- ARGV[1] scope  ARGV[2] unit  ARGV[3] allocated  ARGV[4] overdraft limit  ARGV[5] overage
-- policy ('' = inherit)  ARGV[6] rollover policy  ARGV[7] period start ('' none)
-- ARGV[8] period end ('' none)  ARGV[9] ledger id  ARGV[10] request id  ARGV[11] trace id
-- ARGV[12] period start ms  ARGV[13] period end ms  ARGV[14] period length (decimal ms, P1D,
-- P1W or P1M; all three '' for a budget without a period). Validated by the caller.
--
-- Returns JSON: the budget document {scope, unit, st, a, s, r, d, o, x, p, id, c, u, rp, ps,
-- pe, pl, pa, psm, pem}; or {e, m} in precedence order INTERNAL_ERROR, TENANT_CLOSED, INVALID_REQUEST
-- (suspended tenant), DUPLICATE_RESOURCE. Checks precede the writes.
-- Appends: budget.created, then budget.period_rolled per period already over (lib.lua roll).

local scope, unit = ARGV[1], ARGV[2]
local now = now_ms()
local tenant = tenant_state(KEYS[1])
if not tenant then return err('INTERNAL_ERROR', 'tenant record is corrupt') end
if tenant.status == 'CLOSED' then return err('TENANT_CLOSED', 'tenant is closed') end
if tenant.status ~= 'ACTIVE' then return err('INVALID_REQUEST', 'tenant must be ACTIVE to create a budget') end
local p = scope .. '|' .. unit .. '|'
if redis.call('HEXISTS', KEYS[2], p .. 'st') == 1 then
  return err('DUPLICATE_RESOURCE', 'a budget already exists for ' .. scope .. ' in ' .. unit)
end
redis.call('HSET', KEYS[2], p .. 'st', 'ACTIVE', p .. 'a', ARGV[3], p .. 's', '0', p .. 'r', '0', p .. 'd', '0',
  p .. 'o', ARGV[4], p .. 'x', '0', p .. 'p', ARGV[5], p .. 'id', ARGV[9], p .. 'c', ms(now), p .. 'u', ms(now),
  p .. 'rp', ARGV[6], p .. 'ps', ARGV[7], p .. 'pe', ARGV[8], p .. 'pa', ARGV[3], p .. 'psm', ARGV[12],
  p .. 'pem', ARGV[13], p .. 'pl', ARGV[14])
redis.call('ZADD', KEYS[3], 0, scope .. '|' .. unit)
-- Read as created (time 0 rolls nothing), reported, then rolled if its first period is over.
local b = read_budget(KEYS[2], scope, unit, false, 0)
emit(KEYS[4], 'budget.created', now, scope, unit, ARGV[10], ARGV[11],
  {ledger_id = ARGV[9], operation = 'CREATE', new_state = state_of(b)})
roll(KEYS[2], b, unit, now, KEYS[4])
return cjson.encode(budget_doc(KEYS[2], scope, unit))
