-- budget_update.lua: change a budget's overdraft limit and/or overage policy, recomputing
-- is_over_limit (debt > overdraft_limit) in the same step. Allowed on FROZEN budgets.
--
-- KEYS[1] tenant mirror   KEYS[2] ledger hash   KEYS[3] outbox
-- ARGV[1] scope  ARGV[2] unit  ARGV[3] overdraft limit ('' = unchanged)
-- ARGV[4] overage policy ('' = unchanged)  ARGV[5] request id  ARGV[6] trace id
--
-- Returns JSON: the budget document; or {e, m} in precedence order INTERNAL_ERROR,
-- TENANT_CLOSED, BUDGET_NOT_FOUND, BUDGET_CLOSED. Checks precede the writes.
-- Every budget read is first rolled into its current period (lib.lua roll: budget.period_rolled).

local scope, unit = ARGV[1], ARGV[2]
local now = now_ms()
local b, failure = admin_budget(KEYS[1], KEYS[2], scope, unit, KEYS[3], now)
if not b then return failure end
local before = state_of(b)
local before_x = b.x
if ARGV[3] ~= '' then b.o = I(ARGV[3]) end
b.x = cmp(b.d, b.o) > 0
redis.call('HSET', KEYS[2], b.prefix .. 'o', S(b.o), b.prefix .. 'x', b.x and '1' or '0', b.prefix .. 'u', ms(now))
if ARGV[4] ~= '' then redis.call('HSET', KEYS[2], b.prefix .. 'p', ARGV[4]) end
emit(KEYS[3], 'budget.updated', now, scope, unit, ARGV[5], ARGV[6],
  {operation = 'UPDATE', previous_state = before, new_state = state_of(b)})
emit_over_limit_flip(KEYS[3], before_x, b, unit, now, ARGV[5], ARGV[6])
return cjson.encode(budget_doc(KEYS[2], scope, unit))
