-- reserve.lua: evaluate a reservation request and, when live and allowed, hold the estimate
-- on every budgeted scope at once. Serves POST /v1/reservations (live and dry_run) and
-- POST /v1/decide.
--
-- KEYS[1] tenant mirror   KEYS[2] ledger hash    KEYS[3] idempotency record
-- KEYS[4] reservation     KEYS[5] active-by-deadline zset   KEYS[6] all-by-creation zset
-- KEYS[7] outbox stream
-- ARGV[1] mode: live | dry | decide     ARGV[2] request hash      ARGV[3] unit
-- ARGV[4] estimate (decimal int64)      ARGV[5] ttl_ms ('' = tenant default)
-- ARGV[6] grace_ms                      ARGV[7] overage policy ('' = budget/tenant default)
-- ARGV[8] reservation id                ARGV[9] idempotency key
-- ARGV[10] subject json  ARGV[11] action json  ARGV[12] metadata json ('' = none)
-- ARGV[13] request id    ARGV[14] trace id     ARGV[15] idempotency retention ms
-- ARGV[16] scope path    ARGV[17..] affected scopes in canonical order
--
-- Returns JSON (numbers as strings), one of:
--   a stored result plus {replay, now}                         (same key, same request)
--   {e, m, ...}  error, in precedence order: IDEMPOTENCY_MISMATCH, INTERNAL_ERROR (corrupt
--                tenant), TENANT_CLOSED / FORBIDDEN (suspended; live only), UNIT_MISMATCH,
--                NOT_FOUND (live), BUDGET_FROZEN, BUDGET_CLOSED, OVERDRAFT_LIMIT_EXCEEDED,
--                DEBT_OUTSTANDING, BUDGET_EXCEEDED (live)
--   {decision=DENY, reason_code, balances, now}                 (dry / decide)
--   {decision=ALLOW, reservation_id?, expires_at_ms?, balances, now}
-- Every check runs before the first write; a denial writes only its outbox event (and,
-- for dry/decide, the idempotency record of the DENY, which is a success).

local mode, hash, unit, E = ARGV[1], ARGV[2], ARGV[3], I(ARGV[4])
local rq, tr = ARGV[13], ARGV[14]
local now = now_ms()

local replay = idem_check(KEYS[3], hash, now)
if replay then return replay end

local scopes = {}
for i = 17, #ARGV do scopes[#scopes + 1] = ARGV[i] end

local tenant = tenant_state(KEYS[1])
if not tenant then return err('INTERNAL_ERROR', 'tenant record is corrupt') end

local function finish_deny(reason, balances)
  emit(KEYS[7], 'reservation.denied', now, ARGV[16], unit, rq, tr,
    {reason_code = reason, requested_amount = ARGV[4], subject = ARGV[10], action = ARGV[11], dry_run = '1'})
  return succeed(KEYS[3], hash, {decision = 'DENY', reason_code = reason, balances = balances}, ARGV[15], now)
end

-- A live denial is an error; a dry-run or decide denial is a 200 DENY.
local function deny(code, msg, extra, balances)
  if mode == 'live' then
    emit(KEYS[7], 'reservation.denied', now, ARGV[16], unit, rq, tr,
      {reason_code = code, requested_amount = ARGV[4], subject = ARGV[10], action = ARGV[11]})
    return err(code, msg, extra)
  end
  return finish_deny(code, balances or {})
end

if tenant.status == 'CLOSED' then return deny('TENANT_CLOSED', 'tenant is closed') end
if tenant.status == 'SUSPENDED' then
  if mode == 'live' then return err('FORBIDDEN', 'tenant is suspended: new reservations are refused') end
  return finish_deny('TENANT_SUSPENDED', {})
end

local budgets, balances = {}, {}
for _, scope in ipairs(scopes) do
  local b = read_budget(KEYS[2], scope, unit)
  if b then budgets[#budgets + 1] = b; balances[#balances + 1] = balance(b) end
end

if #budgets == 0 then
  local units = {'USD_MICROCENTS', 'TOKENS', 'CREDITS', 'RISK_POINTS'}
  for _, scope in ipairs(scopes) do
    local expected = {}
    for _, u in ipairs(units) do
      if u ~= unit and redis.call('HEXISTS', KEYS[2], scope .. '|' .. u .. '|st') == 1 then expected[#expected + 1] = u end
    end
    if #expected > 0 then
      return err('UNIT_MISMATCH', 'no budget in ' .. unit .. ' at any derived scope; ' .. scope .. ' is budgeted in another unit',
        {scope = scope, requested_unit = unit, expected_units = expected})
    end
  end
  if mode == 'live' then return err('NOT_FOUND', 'Budget not found for provided scope: ' .. ARGV[16]) end
  return finish_deny('BUDGET_NOT_FOUND', {})
end

for _, b in ipairs(budgets) do
  if b.st == 'FROZEN' then return deny('BUDGET_FROZEN', 'budget is frozen: ' .. b.scope, {scope = b.scope}, balances) end
  if b.st == 'CLOSED' then return deny('BUDGET_CLOSED', 'budget is closed: ' .. b.scope, {scope = b.scope}, balances) end
end
for _, b in ipairs(budgets) do
  if b.x then
    return deny('OVERDRAFT_LIMIT_EXCEEDED', 'scope is over its overdraft limit: ' .. b.scope,
      {scope = b.scope, debt = S(b.d), overdraft_limit = S(b.o)}, balances)
  end
end
for _, b in ipairs(budgets) do
  if pos(b.d) and not pos(b.o) then
    return deny('DEBT_OUTSTANDING', 'scope has outstanding debt: ' .. b.scope, {scope = b.scope, debt = S(b.d)}, balances)
  end
end
for _, b in ipairs(budgets) do
  if lt(b.rem, E) then
    return deny('BUDGET_EXCEEDED', 'insufficient budget at ' .. b.scope,
      {scope = b.scope, remaining = S(b.rem), requested = ARGV[4]}, balances)
  end
end

if mode ~= 'live' then
  return succeed(KEYS[3], hash, {decision = 'ALLOW', balances = balances}, ARGV[15], now)
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
balances = {}
for _, b in ipairs(budgets) do
  b.r = add(b.r, E)
  redis.call('HSET', KEYS[2], b.prefix .. 'r', S(b.r), b.prefix .. 'u', ms(now))
  held[#held + 1] = b.scope
  balances[#balances + 1] = balance(b)
end
redis.call('HSET', KEYS[4], 'st', 'ACTIVE', 'u', unit, 'e', ARGV[4], 'sc', table.concat(held, '\n'),
  'sp', ARGV[16], 'sj', ARGV[10], 'aj', ARGV[11], 'mj', ARGV[12], 'ik', ARGV[9],
  'c', ms(now), 'x', ms(expires), 'g', ms(grace), 'p', policy, 'n', '0', 'ttl', ms(ttl))
redis.call('ZADD', KEYS[5], expires + grace, ARGV[8])
redis.call('ZADD', KEYS[6], now, ARGV[8])
for _, b in ipairs(budgets) do
  if cmp(sub(b.rem, E), ZERO) == 0 and pos(b.a) then
    emit(KEYS[7], 'budget.exhausted', now, b.scope, unit, rq, tr,
      {allocated = S(b.a), spent = S(b.s), reserved = S(b.r), remaining = '0'})
  end
end
local retention = tonumber(ARGV[15])
if retention < ttl + grace then retention = ttl + grace end
return succeed(KEYS[3], hash, {decision = 'ALLOW', reservation_id = ARGV[8], expires_at_ms = ms(expires),
  reserved = ARGV[4], balances = balances}, retention, now)
