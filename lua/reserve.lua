-- reserve.lua: evaluate a reservation request and, when live and allowed, hold the estimate
-- on every budgeted scope at once and count it against its quotas. Serves POST
-- /v1/reservations (live, dry_run and observe mode) and POST /v1/decide.
--
-- KEYS[1] tenant mirror   KEYS[2] ledger hash    KEYS[3] idempotency record
-- KEYS[4] reservation     KEYS[5] active-by-deadline zset   KEYS[6] all-by-creation zset
-- KEYS[7] outbox stream   KEYS[8..7+n] quota counters (n = ARGV[24])
-- KEYS[8+n..7+2n] their threshold markers (set once a counter's window instance has crossed
--         its threshold, so quota.threshold_approaching is sent once per window instance)
-- KEYS[8+2n], KEYS[9+2n] work signals (dirty set, due index; lib.lua)
-- ARGV[1] mode: live | dry | decide     ARGV[2] request hash      ARGV[3] unit
-- ARGV[4] estimate (decimal int64)      ARGV[5] ttl_ms ('' = tenant default)
-- ARGV[6] grace_ms                      ARGV[7] overage policy ('' = budget/tenant default)
-- ARGV[8] reservation id                ARGV[9] reservation document (JSON: subject, action,
--         metadata, idempotency_key; stored as it is)
-- ARGV[10] request id    ARGV[11] trace id     ARGV[12] idempotency retention ms
-- ARGV[13] scope path
-- ARGV[14] the policy generation the engine evaluated   ARGV[15] policy max_extensions ('')
-- ARGV[16] policy access denial reason ('' = none)      ARGV[17] its DenyDetail (JSON)
-- ARGV[18] caps (JSON, '' = none)
-- ARGV[19] the request's observe mode: '1' OBSERVE (dry semantics + events), '0' ENFORCE or
--          DISABLED, '' none given: the tenant mirror's observe_mode decides (live and dry
--          only; decide never observes). Observing turns a live request into a dry one.
-- ARGV[20] reservation rate counter prefix ('' = no limit; the script appends ':<minute>')
-- ARGV[21] its max_reservations_per_minute   ARGV[22] commit rate counter prefix ('' = none),
-- ARGV[23] its max_commits_per_minute (both stored with the reservation for commit.lua)
-- ARGV[24] n, quota counters; then per counter i, at 25+7(i-1): max_calls, counter TTL ms,
--          '1' when a release or expiry gives the count back (per_run), violation JSON
--          (action_kind, window, window_key, scope, policy_id, risk_class), the count at
--          which the threshold is crossed, the quota.threshold_approaching data (JSON, less
--          `used`), its correlation id
-- ARGV[25+7n..] affected scopes in canonical order
-- The rate counters are named by a prefix from the keys module (tenant tag included), not in
-- KEYS, because their minute is read from the ledger clock here; they share the slot.
--
-- Returns JSON (numbers as strings), one of:
--   a stored result plus {replay, now}                         (same key, same request)
--   {stale = generation}   the tenant's policies changed since the engine's copy: nothing
--                          was written; the engine reloads them and calls again
--   {e, m, ...}  error, in precedence order: IDEMPOTENCY_MISMATCH, INTERNAL_ERROR (corrupt
--                tenant), TENANT_CLOSED / FORBIDDEN (suspended; live only), stale,
--                ACTION_KIND_DENIED / ACTION_KIND_NOT_ALLOWED, LIMIT_EXCEEDED (live; with
--                retry_after_ms), ACTION_QUOTA_EXCEEDED (each
--                with details.deny_detail), UNIT_MISMATCH, NOT_FOUND (live), BUDGET_FROZEN,
--                BUDGET_CLOSED, OVERDRAFT_LIMIT_EXCEEDED, DEBT_OUTSTANDING, BUDGET_EXCEEDED (live)
--   {decision=DENY, reason_code, deny_detail (policy denials), balances, now}   (dry / decide)
--   {decision=ALLOW, caps, balances, now}                       (dry / decide)
--   {decision=ALLOW, reservation_id, expires_at_ms, reserved, caps, now}   (live)
-- `caps` is the caps JSON as a string, absent without caps.
-- Every check runs before the first write; a denial writes only its outbox event (and,
-- for dry/decide, the idempotency record of the DENY, which is a success). The live path
-- makes one read of all budgets and one write of all budgets: it is the hot path.
-- Appends: reservation.denied on a denial (reservation.observed_denied in observe mode,
-- and reservation.observed_allowed on an observed ALLOW); on a live ALLOW,
-- quota.threshold_approaching for each quota counter whose count reaches its threshold for
-- the first time in its window instance (never in observe mode: nothing is counted),
-- budget.threshold_crossed for each utilization threshold a budget crosses,
-- budget.exhausted when one reaches 0 remaining, and usage.reserved (Tollgate's own
-- entry, never an event: the scope path).
-- Every budget read is first rolled into its current period (lib.lua roll: budget.period_rolled).

local mode, hash, unit, E = ARGV[1], ARGV[2], ARGV[3], I(ARGV[4])
local rq, tr = ARGV[10], ARGV[11]
local now = now_ms()

local replay = idem_check(KEYS[3], hash, now)
if replay then return replay end

local QA = 7 -- ARGV per quota counter
local nq = tonumber(ARGV[24])
local scopes = {}
for i = 25 + QA * nq, #ARGV do scopes[#scopes + 1] = ARGV[i] end

local tenant = tenant_state(KEYS[1])
if not tenant then return err('INTERNAL_ERROR', 'tenant record is corrupt') end
-- Effective observe mode (v0.1.26 precedence): the request's, else the tenant's, else ENFORCE.
local observe = ARGV[19] == '1' or (ARGV[19] == '' and mode ~= 'decide' and tenant.observe)
if observe then mode = 'dry' end

local function denied_event(reason, detail)
  detail = detail or {reason_code = reason}
  if observe then
    emit(KEYS[7], 'reservation.observed_denied', now, ARGV[13], unit, rq, tr,
      {reason_code = reason, deny_detail = detail, estimated_amount = ARGV[4], request = ARGV[9],
       observe_mode = 'OBSERVE', would_have_blocked_at = detail.blocked_by_scope or ARGV[13]})
    return
  end
  emit(KEYS[7], 'reservation.denied', now, ARGV[13], unit, rq, tr,
    {reason_code = reason, requested_amount = ARGV[4], request = ARGV[9], dry_run = mode ~= 'live' and '1' or '0',
     deny_detail = detail})
end

-- `detail` (a policy denial's DenyDetail) is stored only when given: a v0.1.25 denial keeps the
-- v0.1.25 answer, which strict v0.1.25 clients require.
local function finish_deny(reason, balances, detail)
  denied_event(reason, detail)
  return succeed(KEYS[3], hash, {decision = 'DENY', reason_code = reason, deny_detail = detail, balances = balances},
    ARGV[12], now)
end

-- A live denial is an error; a dry-run or decide denial is a 200 DENY. A policy denial's
-- DenyDetail travels in extra.deny_detail.
local function deny(code, msg, extra, budgets)
  local detail = extra and extra.deny_detail
  if mode == 'live' then
    denied_event(code, detail)
    return err(code, msg, extra)
  end
  local balances = {}
  for i, b in ipairs(budgets or {}) do balances[i] = balance(b) end
  return finish_deny(code, balances, detail)
end

if tenant.status == 'CLOSED' then return deny('TENANT_CLOSED', 'tenant is closed') end
if tenant.status == 'SUSPENDED' then
  if mode == 'live' then return err('FORBIDDEN', 'tenant is suspended: new reservations are refused') end
  return finish_deny('TENANT_SUSPENDED', {})
end

-- Policies (v0.1.26 steps 1 to 3). The engine evaluated its copy of the tenant's policies;
-- a newer generation in force means that copy is stale: nothing is written, it reloads.
if ARGV[14] ~= tenant.gen then return '{"stale":"' .. tenant.gen .. '"}' end
if ARGV[16] ~= '' then
  return deny(ARGV[16], 'action kind refused by policy', {deny_detail = cjson.decode(ARGV[17])})
end
-- A policy's reservation rate limit (live reservations only), per minute of the ledger clock.
local rate_key
if mode == 'live' and ARGV[20] ~= '' then
  rate_key = ARGV[20] .. ':' .. ms(math.floor(now / 60000))
  if tonumber(redis.call('GET', rate_key) or '0') >= tonumber(ARGV[21]) then
    return err('LIMIT_EXCEEDED', 'more than ' .. ARGV[21] .. ' reservations per minute at this scope',
      {retry_after_ms = ms(60000 - now % 60000)})
  end
end
local quotas = {}
for i = 1, nq do
  local a = 24 + QA * (i - 1)
  quotas[i] = {key = KEYS[7 + i], limit = tonumber(ARGV[a + 1]), ttl = ARGV[a + 2], per_run = ARGV[a + 3] == '1',
    v = ARGV[a + 4], at = tonumber(ARGV[a + 5]), th = ARGV[a + 6], corr = ARGV[a + 7], mark = KEYS[7 + nq + i],
    used = tonumber(redis.call('GET', KEYS[7 + i]) or '0')}
end
for _, q in ipairs(quotas) do
  if q.used >= q.limit then
    local v = cjson.decode(q.v)
    v.used, v.limit = q.used, q.limit
    local what = v.risk_class or v.action_kind
    return deny('ACTION_QUOTA_EXCEEDED', 'action quota exceeded: ' .. what .. ' ' .. v.window .. ' at ' .. v.scope,
      {deny_detail = {reason_code = 'ACTION_QUOTA_EXCEEDED', quota_violation = v, blocked_by_policy = v.policy_id,
        blocked_by_scope = v.scope, suggested_fix = 'Raise the ' .. what .. ' ' .. v.window .. ' quota above '
          .. ms(q.limit) .. " in policy '" .. v.policy_id .. "', or wait for the next window"}})
  end
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

local caps = ARGV[18] ~= '' and ARGV[18] or nil

if mode ~= 'live' then
  local balances = {}
  for i, b in ipairs(budgets) do balances[i] = balance(b) end
  if observe then
    emit(KEYS[7], 'reservation.observed_allowed', now, ARGV[13], unit, rq, tr,
      {decision = caps and 'ALLOW_WITH_CAPS' or 'ALLOW', caps_applied = caps and cjson.decode(caps) or nil,
       estimated_amount = ARGV[4], request = ARGV[9], observe_mode = 'OBSERVE'})
  end
  return succeed(KEYS[3], hash, {decision = 'ALLOW', caps = caps, balances = balances}, ARGV[12], now)
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
-- Quotas count the reservation; per-run counts are recorded so release or expiry give them back.
if rate_key and redis.call('INCR', rate_key) == 1 then redis.call('PEXPIRE', rate_key, 120000) end
local taken = {}
for _, q in ipairs(quotas) do
  local n = redis.call('INCR', q.key)
  if q.per_run then
    redis.call('PEXPIRE', q.key, q.ttl)
    redis.call('PEXPIRE', q.mark, q.ttl)
    taken[#taken + 1] = q.key
  elseif n == 1 then
    redis.call('PEXPIRE', q.key, q.ttl)
  end
  -- The count reached the threshold: reported once per window instance (the marker outlives
  -- a per_run give-back and an operator's reset, which may bring the count back here).
  if n == q.at and redis.call('SET', q.mark, '1', 'NX', 'PX', q.ttl) then
    local data = cjson.decode(q.th)
    data.used = n
    emit(KEYS[7], 'quota.threshold_approaching', now, data.scope, '', rq, tr, data, q.corr)
  end
end
redis.call('HSET', KEYS[4], 'st', 'ACTIVE', 'u', unit, 'e', ARGV[4], 'sc', table.concat(held, '\n'), 'sp', ARGV[13],
  'd', ARGV[9], 'c', ms(now), 'x', ms(expires), 'g', ARGV[6], 'p', policy, 'ttl', ms(ttl), 'mx', ARGV[15],
  'qk', table.concat(taken, '\n'), 'ck', ARGV[22], 'cl', ARGV[23])
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
  .. '","reserved":"' .. ARGV[4] .. '","now":"' .. ms(now) .. '"'
if caps then result = result .. ',"caps":' .. cjson.encode(caps) end
result = result .. '}'
redis.call('SET', KEYS[3], hash .. '\n' .. result, 'PX', retention)
return result
