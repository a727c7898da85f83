-- commit.lua: settle a reservation with its actual cost, under the reservation's overage
-- policy. Serves POST /v1/reservations/{id}/commit.
--
-- KEYS[1] tenant mirror   KEYS[2] ledger hash   KEYS[3] idempotency record (per reservation)
-- KEYS[4] reservation     KEYS[5] active-by-deadline zset   KEYS[6] outbox stream
-- ARGV[1] request hash    ARGV[2] actual unit   ARGV[3] actual amount (decimal int64)
-- ARGV[4] commit metadata json ('' = none)      ARGV[5] reservation id
-- ARGV[6] request id      ARGV[7] trace id      ARGV[8] retention ms of a finalized reservation
-- ARGV[9] usage json: the caller's key id and the commit's metrics, carried into the outbox
--         as they are ('{"model":' first when the metrics name one)
--
-- Returns JSON (numbers as strings): a stored result plus {replay, now}; or {e, m, ...} in
-- precedence order IDEMPOTENCY_MISMATCH, NOT_FOUND, INTERNAL_ERROR (corrupt tenant),
-- TENANT_CLOSED, RESERVATION_EXPIRED (status), RESERVATION_FINALIZED, UNIT_MISMATCH,
-- RESERVATION_EXPIRED (past expires_at + grace), LIMIT_EXCEEDED (the policy's commit rate
-- limit stored with the reservation; counter named by its stored prefix plus the minute, in
-- the tenant's slot), BUDGET_EXCEEDED (REJECT),
-- OVERDRAFT_LIMIT_EXCEEDED, INVALID_REQUEST (int64 overflow); or
-- {status=COMMITTED, charged, released, debt_added, unit, balances, now} (debt_added: summed over
-- the reservation's scopes).
-- Every check runs before the first write.
-- Appends: budget.threshold_crossed, budget.over_limit_entered, budget.debt_incurred,
-- budget.exhausted (per budget, as they happen) and reservation.commit_overage; and
-- usage.committed (Tollgate's own entry, never an event: the scope path, what each budget's
-- spent moved by, the charge, the usage json and, without a model, the action's name).
-- Every budget read is first rolled into its current period (lib.lua roll: budget.period_rolled).

local hash, rq, tr, rid = ARGV[1], ARGV[6], ARGV[7], ARGV[5]
local now = now_ms()

local replay = idem_check(KEYS[3], hash, now)
if replay then return replay end

local r = redis.call('HMGET', KEYS[4], 'st', 'u', 'e', 'sc', 'x', 'g', 'p', 'sp', 'd', 'ck', 'cl')
local tenant, failure = settleable(KEYS[1], r[1])
if not tenant then return failure end
local unit = r[2]
if ARGV[2] ~= unit then
  return err('UNIT_MISMATCH', 'actual unit ' .. ARGV[2] .. ' differs from the reserved unit ' .. unit,
    {requested_unit = ARGV[2], expected_units = {unit}})
end
if now > tonumber(r[5]) + tonumber(r[6]) then return err('RESERVATION_EXPIRED', 'reservation expired') end
-- A policy's commit rate limit, fixed when the reservation was made ('ck' prefix, 'cl' limit).
local rate_key
if r[10] and r[10] ~= '' then
  rate_key = r[10] .. ':' .. ms(math.floor(now / 60000))
  if tonumber(redis.call('GET', rate_key) or '0') >= tonumber(r[11]) then
    return err('LIMIT_EXCEEDED', 'more than ' .. r[11] .. ' commits per minute at this scope',
      {retry_after_ms = ms(60000 - now % 60000)})
  end
end

local E, A, policy = I(r[3]), I(ARGV[3]), r[7]
local held = {}
for scope in string.gmatch(r[4], '[^\n]+') do held[#held + 1] = scope end
local budgets = read_budgets(KEYS[2], held, unit, KEYS[6], now)
if #budgets ~= #held then return err('INTERNAL_ERROR', 'a budget held by the reservation is missing') end
local charged, plans = plan_charge(budgets, E, A, policy, true)
if not charged then return plans end
local overflow = check_plans(budgets, E, plans)
if overflow then return overflow end
if rate_key and redis.call('INCR', rate_key) == 1 then redis.call('PEXPIRE', rate_key, 120000) end

local balances = {}
local moved = {}
for i, b in ipairs(budgets) do
  local before_x = b.x
  moved[b.scope] = S(plans[i].add_s)
  b.s = add(b.s, plans[i].add_s)
  b.d = add(b.d, plans[i].add_d)
  b.r = sub(b.r, E)
  b.x = b.x or plans[i].over or cmp(b.d, b.o) > 0
  emit_budget_changes(KEYS[6], before_x, b, unit, now, rq, tr, rid, plans[i].add_d, policy)
  balances[#balances + 1] = balance(b)
end
write_budgets(KEYS[2], budgets, now, true)
redis.call('HSET', KEYS[4], 'st', 'COMMITTED', 'cm', S(charged), 'cmj', ARGV[4], 'f', ms(now))
redis.call('PEXPIRE', KEYS[4], ARGV[8])
redis.call('ZREM', KEYS[5], rid)
local debt_added = ZERO
for _, p in ipairs(plans) do debt_added = add(debt_added, p.add_d) end
if lt(E, A) then
  emit(KEYS[6], 'reservation.commit_overage', now, r[8], unit, rq, tr,
    {reservation_id = rid, estimated_amount = r[3], actual_amount = ARGV[3], overage = S(sub(A, E)),
     overage_policy = policy, debt_incurred = S(debt_added)})
end
local usage = {reservation_id = rid, charged = S(charged), spent = moved, x = ARGV[9]}
if string.sub(ARGV[9], 1, 9) ~= '{"model":' then
  local ok, doc = pcall(cjson.decode, r[9] or '')
  if ok and type(doc) == 'table' and type(doc.action) == 'table' then usage.action = doc.action.name end
end
emit(KEYS[6], 'usage.committed', now, r[8], unit, rq, tr, usage)
local released = ZERO
if lt(charged, E) then released = sub(E, charged) end
return succeed(KEYS[3], hash, {status = 'COMMITTED', unit = unit, charged = S(charged), released = S(released),
  debt_added = S(debt_added), balances = balances}, ARGV[8], now)
