-- reserve.lua: evaluate a reservation request and, when live and allowed, hold the estimate
-- on every budgeted scope at once. Serves POST /v1/reservations (live and dry_run) and
-- POST /v1/decide.
--
-- KEYS[1] tenant mirror   KEYS[2] ledger hash    KEYS[3] idempotency record
-- KEYS[4] reservation     KEYS[5] active-by-deadline zset   KEYS[6] all-by-creation zset
-- KEYS[7] outbox stream      KEYS[8], KEYS[9] work signals (dirty set, due index; lib.lua)
-- ARGV[1] mode: live | dry | decide     ARGV[2] request hash      ARGV[3] unit
-- ARGV[4] estimate (decimal int64)      ARGV[5] ttl_ms ('' = tenant default)
-- ARGV[6] grace_ms                      ARGV[7] overage policy ('' = budget/tenant default)
-- ARGV[8] reservation id                ARGV[9] reservation document (JSON: subject, action,
--         metadata, idempotency_key; stored as it is)
-- ARGV[10] request id    ARGV[11] trace id     ARGV[12] idempotency retention ms
-- ARGV[13] scope path    ARGV[14..] affected scopes in canonical order
--
-- Returns JSON (numbers as strings), one of:
--   a stored result plus {replay, now}                         (same key, same request)
--   {e, m, ...}  error, in precedence order: IDEMPOTENCY_MISMATCH, INTERNAL_ERROR (corrupt
--                tenant), TENANT_CLOSED / FORBIDDEN (suspended; live only), UNIT_MISMATCH,
--                NOT_FOUND (live), BUDGET_FROZEN, BUDGET_CLOSED, OVERDRAFT_LIMIT_EXCEEDED,
--                DEBT_OUTSTANDING, BUDGET_EXCEEDED (live)
--   {decision=DENY, reason_code, balances, now}                 (dry / decide)
--   {decision=ALLOW, balances, now}                             (dry / decide)
--   {decision=ALLOW, reservation_id, expires_at_ms, reserved, now}   (live)
-- Every check runs before the first write; a denial writes only its outbox event (and,
-- for dry/decide, the idempotency record of the DENY, which is a success). The live path
-- makes one read of all budgets and one write of all budgets: it is the hot path.
-- Appends: reservation.denied on a denial; on a live ALLOW, budget.threshold_crossed for each
-- utilization threshold a budget crosses and budget.exhausted when one reaches 0 remaining; and
-- on a live ALLOW, usage.reserved (Tollgate's own entry, never an event: the scope path).
-- Every budget read is first rolled into its current period (lib.lua roll: budget.period_rolled).

local mode, hash, unit, E = ARGV[1], ARGV[2], ARGV[3], I(ARGV[4])
local rq, tr = ARGV[10], ARGV[11]
local now = now_ms()

local replay = idem_check(KEYS[3], hash, now)
if replay then return replay end

local scopes = {}
for i = 14, #ARGV do scopes[#scopes + 1] = ARGV[i] end

local tenant = tenant_state(KEYS[1])
if not tenant then return err('INTERNAL_ERROR', 'tenant record is corrupt') end

local function denied_event(reason)
  emit(KEYS[7], 'reservation.denied', now, ARGV[13], unit, rq, tr,
    {reason_code = reason, requested_amount = ARGV[4], request = ARGV[9], dry_run = mode ~= 'live' and '1' or '0'})
end

local function finish_deny(reason, balances)
  denied_event(reason)
  return succeed(KEYS[3], hash, {decision = 'DENY', reason_code = reason, balances = balances}, ARGV[12], now)
end

-- A live denial is an error; a dry-run or decide denial is a 200 DENY.
local function deny(code, msg, extra, budgets)
  if mode == 'live' then
    denied_event(code)
    return err(code, msg, extra)
  end
  local balances = {}
  for i, b in ipairs(budgets or {}) do balances[i] = balance(b) end
  return finish_deny(code, balances)
end

if tenant.status == 'CLOSED' then return deny('TENANT_CLOSED', 'tenant is closed') end
if tenant.status == 'SUSPENDED' then
  if mode == 'live' then return err('FORBIDDEN', 'tenant is suspended: new reservations are refused') end
  return finish_deny('TENANT_SUSPENDED', {})
end

local budgets = read_budgets(KEYS[2], scopes, unit, KEYS[7], now)

if #budgets == 0 then
  local mismatch = unit_mismatch(KEYS[2], scopes, unit)
  if mismatch then return mismatch end
  if mode == 'live' then return err('NOT_FOUND', 'Budget not found for provided scope: ' .. ARGV[13]) end
  return finish_deny('BUDGET_NOT_FOUND', {})
end

for _, b in ipairs(budgets) do
  if b.st == 'FROZEN' then return deny('BUDGET_FROZEN', 'budget is frozen: ' .. b.scope, {scope = b.scope}, budgets) end
  if b.st == 'CLOSED' then return deny('BUDGET_CLOSED', 'budget is closed: ' .. b.scope, {scope = b.scope}, budgets) end
end
for _, b in ipairs(budgets) do
  if b.x then
    return deny('OVERDRAFT_LIMIT_EXCEEDED', 'scope is over its overdraft limit: ' .. b.scope,
      {scope = b.scope, debt = S(b.d), overdraft_limit = S(b.o)}, budgets)
  end
end
for _, b in ipairs(budgets) do
  if pos(b.d) and not pos(b.o) then
    return deny('DEBT_OUTSTANDING', 'scope has outstanding debt: ' .. b.scope, {scope = b.scope, debt = S(b.d)}, budgets)
  end
end
for _, b in ipairs(budgets) do
  if lt(b.rem, E) then
    return deny('BUDGET_EXCEEDED', 'insufficient budget at ' .. b.scope,
      {scope = b.scope, remaining = S(b.rem), requested = ARGV[4]}, budgets)
  end
end

if mode ~= 'live' then
  local balances = {}
  for i, b in ipairs(budgets) do balances[i] = balance(b) end
  return succeed(KEYS[3], hash, {decision = 'ALLOW', balances = balances}, ARGV[12], now)
end

-- Live: effective TTL (request, else tenant default; capped by the tenant maximum) and
-- overage policy (request, else the deepest budget that sets one, else the tenant default).
local ttl = tenant.ttl
if ARGV[5] ~= '' then ttl = tonumber(ARGV[5]) end
if ttl > tenant.max_ttl then ttl = tenant.max_ttl end
local grace = tonumber(ARGV[6])
local policy = ARGV[7]
if policy == '' then
  for i = #budgets, 1, -1 do if budgets[i].p ~= '' then policy = budgets[i].p; break end end
end
if policy == '' then policy = tenant.policy end
local expires = now + ttl

local held = {}
for i, b in ipairs(budgets) do
  b.r = add(b.r, E)
  held[i] = b.scope
end
write_budgets(KEYS[2], budgets, now, false)
redis.call('HSET', KEYS[4], 'st', 'ACTIVE', 'u', unit, 'e', ARGV[4], 'sc', table.concat(held, '\n'), 'sp', ARGV[13],
  'd', ARGV[9], 'c', ms(now), 'x', ms(expires), 'g', ARGV[6], 'p', policy, 'ttl', ms(ttl))
redis.call('ZADD', KEYS[5], expires + grace, ARGV[8])
mark_due(KEYS[5], expires + grace)
redis.call('ZADD', KEYS[6], now, ARGV[8])
for _, b in ipairs(budgets) do
  emit_thresholds(KEYS[7], b, unit, now, rq, tr)
  if cmp(sub(b.rem, E), ZERO) == 0 and pos(b.a) then
    emit(KEYS[7], 'budget.exhausted', now, b.scope, unit, rq, tr,
      {allocated = S(b.a), spent = S(b.s), reserved = S(b.r), remaining = '0'})
  end
end
emit(KEYS[7], 'usage.reserved', now, ARGV[13], unit, rq, tr, {reservation_id = ARGV[8], reserved = ARGV[4]})
local retention = tonumber(ARGV[12])
if retention < ttl + grace then retention = ttl + grace end
-- Built by hand (every part is a decimal or an id of [a-z0-9_-]): cheaper than encoding a table.
local result = '{"decision":"ALLOW","reservation_id":"' .. ARGV[8] .. '","expires_at_ms":"' .. ms(expires)
  .. '","reserved":"' .. ARGV[4] .. '","now":"' .. ms(now) .. '"}'
redis.call('SET', KEYS[3], hash .. '\n' .. result, 'PX', retention)
return result
