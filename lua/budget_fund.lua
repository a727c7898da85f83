-- budget_fund.lua: CREDIT, DEBIT, RESET, RESET_SPENT or REPAY_DEBT one budget.
--   CREDIT       allocated += a (debt is kept; operators repay it with REPAY_DEBT)
--   DEBIT        allocated -= a; refused when remaining would go below 0
--   RESET        allocated = a (and one period's allocation, for the periods to come)
--   RESET_SPENT  allocated = a, spent = s (default 0); one period's allocation = a too
--   REPAY_DEBT   debt -= min(debt, a); the excess is credited to allocated
-- Every operation then sets is_over_limit = debt > overdraft_limit.
--
-- KEYS[1] tenant mirror   KEYS[2] ledger hash   KEYS[3] idempotency record   KEYS[4] outbox
-- ARGV[1] request hash ('' = no idempotency key)  ARGV[2] scope  ARGV[3] unit
-- ARGV[4] operation  ARGV[5] amount  ARGV[6] spent ('' = none)  ARGV[7] reason
-- ARGV[8] request id  ARGV[9] trace id  ARGV[10] idempotency retention ms
-- ARGV[11] '1' when a tenant API key asks (a SUSPENDED tenant's keys are read-only), else '0'
-- ARGV[12] correlation id of the operation's event ('' = its type's default)
--
-- Returns JSON: a stored result plus {replay, now}; or {e, m} in precedence order
-- IDEMPOTENCY_MISMATCH, INTERNAL_ERROR, TENANT_CLOSED, FORBIDDEN (suspended, tenant key), BUDGET_NOT_FOUND, BUDGET_CLOSED,
-- BUDGET_FROZEN, BUDGET_EXCEEDED (DEBIT), INVALID_REQUEST (int64 overflow); or
-- {operation, previous: state, new: state, now}. Checks precede the writes.
-- The budget is first rolled into its current period (lib.lua roll), so the operation applies
-- to the current period.
-- Appends: budget.period_rolled per period crossed, the operation's budget.* event, budget.over_limit_entered/exited on a flip and
-- budget.threshold_crossed for each threshold the new allocation moves utilization across.

local hash, scope, unit, op, amt = ARGV[1], ARGV[2], ARGV[3], ARGV[4], I(ARGV[5])
local now = now_ms()
if hash ~= '' then
  local replay = idem_check(KEYS[3], hash, now)
  if replay then return replay end
end
if ARGV[11] == '1' then
  local tenant = tenant_state(KEYS[1])
  if tenant and tenant.status == 'SUSPENDED' then
    return err('FORBIDDEN', 'tenant is suspended: its API keys are read-only')
  end
end
local b, failure = admin_budget(KEYS[1], KEYS[2], scope, unit, KEYS[4], now)
if not b then return failure end
if b.st == 'FROZEN' then return err('BUDGET_FROZEN', 'budget is frozen: ' .. scope) end

local before = state_of(b)
local before_x = b.x
local a, s, d = b.a, b.s, b.d
if op == 'CREDIT' then
  a = add(a, amt)
elseif op == 'DEBIT' then
  if lt(sub(b.rem, amt), ZERO) then
    return err('BUDGET_EXCEEDED', 'insufficient funds: remaining ' .. S(b.rem) .. ' is less than the debit',
      {remaining = S(b.rem)})
  end
  a = sub(a, amt)
elseif op == 'RESET' then
  a = amt
elseif op == 'RESET_SPENT' then
  a = amt
  s = I(ARGV[6])
elseif op == 'REPAY_DEBT' then
  local repaid = min(d, amt)
  d = sub(d, repaid)
  a = add(a, sub(amt, repaid))
end
if not fits(a) or not fits(add(add(s, b.r), d)) then
  return err('INVALID_REQUEST', 'the operation would overflow the budget')
end
b.a, b.s, b.d = a, s, d
b.x = cmp(b.d, b.o) > 0
redis.call('HSET', KEYS[2], b.prefix .. 'a', S(a), b.prefix .. 's', S(s), b.prefix .. 'd', S(d),
  b.prefix .. 'x', b.x and '1' or '0', b.prefix .. 'u', ms(now))
-- CREDIT, DEBIT and REPAY_DEBT change this period only; a RESET sets every period's allocation.
if op == 'RESET' or op == 'RESET_SPENT' then redis.call('HSET', KEYS[2], b.prefix .. 'pa', S(a)) end
local after = state_of(b)
local etypes = {CREDIT = 'budget.funded', DEBIT = 'budget.debited', RESET = 'budget.reset',
  RESET_SPENT = 'budget.reset_spent', REPAY_DEBT = 'budget.debt_repaid'}
local data = {operation = op, reason = ARGV[7], previous_state = before, new_state = after}
if op == 'RESET_SPENT' then data.spent_override_provided = ARGV[6] ~= '' and '1' or '0' end
emit(KEYS[4], etypes[op], now, scope, unit, ARGV[8], ARGV[9], data, ARGV[12])
emit_over_limit_flip(KEYS[4], before_x, b, unit, now, ARGV[8], ARGV[9])
emit_thresholds(KEYS[4], b, unit, now, ARGV[8], ARGV[9])
local result = {operation = op, previous = before, new = after, ts = ms(now)}
if hash == '' then
  result.now = ms(now)
  return cjson.encode(result)
end
return succeed(KEYS[3], hash, result, ARGV[10], now)
