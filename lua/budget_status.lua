-- budget_status.lua: freeze (ACTIVE → FROZEN) or unfreeze (FROZEN → ACTIVE) a budget.
--
-- KEYS[1] tenant mirror   KEYS[2] ledger hash   KEYS[3] outbox
-- ARGV[1] scope  ARGV[2] unit  ARGV[3] target status (FROZEN | ACTIVE)  ARGV[4] reason
-- ARGV[5] request id  ARGV[6] trace id
--
-- Returns JSON: the budget document; or {e, m} in precedence order INTERNAL_ERROR,
-- TENANT_CLOSED, BUDGET_NOT_FOUND, BUDGET_CLOSED, ALREADY (already in the target state).
-- Every budget read is first rolled into its current period (lib.lua roll: budget.period_rolled).

local scope, unit, target = ARGV[1], ARGV[2], ARGV[3]
local now = now_ms()
local b, failure = admin_budget(KEYS[1], KEYS[2], scope, unit, KEYS[3], now)
if not b then return failure end
if b.st == target then return err('ALREADY', 'budget is already ' .. target) end
local before = state_of(b)
redis.call('HSET', KEYS[2], b.prefix .. 'st', target, b.prefix .. 'u', ms(now))
b.st = target
local etype = 'budget.unfrozen'
if target == 'FROZEN' then etype = 'budget.frozen' end
emit(KEYS[3], etype, now, scope, unit, ARGV[5], ARGV[6],
  {operation = 'STATUS_CHANGE', reason = ARGV[4], previous_state = before, new_state = state_of(b)})
return cjson.encode(budget_doc(KEYS[2], scope, unit))
