-- event.lua: apply a usage event (a debit with no reservation) across every budgeted scope.
-- Serves POST /v1/events.
--
-- KEYS[1] tenant mirror   KEYS[2] ledger hash   KEYS[3] idempotency record   KEYS[4] outbox
-- ARGV[1] request hash    ARGV[2] unit          ARGV[3] actual (decimal int64)
-- ARGV[4] overage policy ('' = budget/tenant default)    ARGV[5] event id
-- ARGV[6] request id      ARGV[7] trace id      ARGV[8] idempotency retention ms
-- ARGV[9] scope path      ARGV[10] usage json (the caller's key id, the metrics, the model)
-- ARGV[11..] affected scopes in canonical order
--
-- Returns JSON: a stored result plus {replay, now}; or {e, m, ...} in precedence order
-- IDEMPOTENCY_MISMATCH, INTERNAL_ERROR, TENANT_CLOSED, FORBIDDEN (suspended), UNIT_MISMATCH,
-- NOT_FOUND, BUDGET_FROZEN, BUDGET_CLOSED, BUDGET_EXCEEDED (REJECT), OVERDRAFT_LIMIT_EXCEEDED,
-- INVALID_REQUEST (overflow); or {status=APPLIED, event_id, charged, capped, debt_added, balances, now}.
-- Debt and over-limit do not block events (they block new reservations only).
-- Appends: budget.threshold_crossed, budget.over_limit_entered, budget.debt_incurred and
-- budget.exhausted, per budget, as they happen; and usage.applied (Tollgate's own entry, never
-- an event: what each budget's spent moved by, the charge and the usage json).
-- Every budget read is first rolled into its current period (lib.lua roll: budget.period_rolled).

local hash, unit, A = ARGV[1], ARGV[2], I(ARGV[3])
local rq, tr = ARGV[6], ARGV[7]
local now = now_ms()

local replay = idem_check(KEYS[3], hash, now)
if replay then return replay end

local tenant = tenant_state(KEYS[1])
if not tenant then return err('INTERNAL_ERROR', 'tenant record is corrupt') end
if tenant.status == 'CLOSED' then return err('TENANT_CLOSED', 'tenant is closed') end
if tenant.status == 'SUSPENDED' then return err('FORBIDDEN', 'tenant is suspended: new events are refused') end

local scopes = {}
for i = 11, #ARGV do scopes[#scopes + 1] = ARGV[i] end
local budgets = read_budgets(KEYS[2], scopes, unit, KEYS[4], now)
if #budgets == 0 then
  local mismatch = unit_mismatch(KEYS[2], scopes, unit)
  if mismatch then return mismatch end
  return err('NOT_FOUND', 'Budget not found for provided scope: ' .. ARGV[9])
end
for _, b in ipairs(budgets) do
  if b.st == 'FROZEN' then return err('BUDGET_FROZEN', 'budget is frozen: ' .. b.scope, {scope = b.scope}) end
  if b.st == 'CLOSED' then return err('BUDGET_CLOSED', 'budget is closed: ' .. b.scope, {scope = b.scope}) end
end

local policy = ARGV[4]
if policy == '' then
  for i = #budgets, 1, -1 do if budgets[i].p ~= '' then policy = budgets[i].p; break end end
end
if policy == '' then policy = tenant.policy end
local charged, plans = plan_charge(budgets, ZERO, A, policy, false)
if not charged then return plans end
local overflow = check_plans(budgets, ZERO, plans)
if overflow then return overflow end

local balances = {}
local debt_added = ZERO
local moved = {}
for i, b in ipairs(budgets) do
  debt_added = add(debt_added, plans[i].add_d)
  moved[b.scope] = S(plans[i].add_s)
  local before_x = b.x
  b.s = add(b.s, plans[i].add_s)
  b.d = add(b.d, plans[i].add_d)
  b.x = b.x or plans[i].over or cmp(b.d, b.o) > 0
  emit_budget_changes(KEYS[4], before_x, b, unit, now, rq, tr, '', plans[i].add_d, policy)
  balances[#balances + 1] = balance(b)
end
write_budgets(KEYS[2], budgets, now, true)
emit(KEYS[4], 'usage.applied', now, ARGV[9], unit, rq, tr,
  {event_id = ARGV[5], charged = S(charged), spent = moved, x = ARGV[10]})
return succeed(KEYS[3], hash, {status = 'APPLIED', event_id = ARGV[5], unit = unit, charged = S(charged),
  capped = lt(charged, A) and '1' or '0', debt_added = S(debt_added), balances = balances}, ARGV[8], now)
