-- cascade.lua: one step of a tenant close. Releases the given ACTIVE reservations, and EXPIRED
-- ones whose hold was kept (MANUAL_CLEANUP) (reason
-- tenant_closed, no debt, each exactly once: the status check makes a re-run a no-op) and,
-- when ARGV[2] is '1', closes every budget of the tenant.
--
-- KEYS[1] tenant mirror   KEYS[2] ledger hash   KEYS[3] active-by-deadline zset
-- KEYS[4] budget index zset   KEYS[5] outbox   KEYS[6..n-2] reservations
-- KEYS[n-1], KEYS[n] work signals (dirty set, due index; lib.lua)
-- ARGV[1] retention ms of a finalized reservation   ARGV[2] close budgets ('1' | '0')
-- ARGV[3] request id   ARGV[4] trace id   ARGV[5..] reservation ids (same order as KEYS[6..])
--
-- Refuses (e=NOT_CLOSED) unless the tenant mirror already says CLOSED, so no cascade can
-- run ahead of the flip. Returns JSON {released, closed}.
-- Every budget read is first rolled into its current period (lib.lua roll: budget.period_rolled).

local now = now_ms()
if redis.call('HGET', KEYS[1], 'status') ~= 'CLOSED' then return err('NOT_CLOSED', 'tenant is not closed') end
local released, closed = 0, 0
local drained = {}
for i = 6, #KEYS - 2 do
  local rid = ARGV[i - 1]
  local r = redis.call('HMGET', KEYS[i], 'st', 'u', 'e', 'sc', 'h')
  -- An EXPIRED reservation whose hold was kept (MANUAL_CLEANUP) still holds: release it too.
  if r[1] == 'ACTIVE' or (r[1] == 'EXPIRED' and r[5] == '1') then
    local unit, E = r[2], I(r[3])
    for scope in string.gmatch(r[4], '[^\n]+') do
      local b = read_budget(KEYS[2], scope, unit, KEYS[5], now)
      if b then
        b.r = sub(b.r, E)
        redis.call('HSET', KEYS[2], b.prefix .. 'r', S(b.r), b.prefix .. 'u', ms(now))
        local k = scope .. '|' .. unit
        drained[k] = add(drained[k] or ZERO, E)
      end
    end
    redis.call('HSET', KEYS[i], 'st', 'RELEASED', 'f', ms(now), 'rr', 'tenant_closed', 'h', '0')
    redis.call('PEXPIRE', KEYS[i], ARGV[1])
    released = released + 1
  end
  redis.call('ZREM', KEYS[3], rid)
end
for k, amount in pairs(drained) do
  local bar = string.find(k, '|', 1, true)
  local scope, unit = string.sub(k, 1, bar - 1), string.sub(k, bar + 1)
  emit(KEYS[5], 'reservation.released_via_tenant_cascade', now, scope, unit, ARGV[3], ARGV[4],
    {released_amount = S(amount), cascade_reason = 'tenant_closed',
     ledger_id = redis.call('HGET', KEYS[2], k .. '|id') or ''})
end
if ARGV[2] == '1' then
  for _, member in ipairs(redis.call('ZRANGE', KEYS[4], 0, -1)) do
    local bar = string.find(member, '|', 1, true)
    local scope, unit = string.sub(member, 1, bar - 1), string.sub(member, bar + 1)
    local p = member .. '|'
    local prior = redis.call('HGET', KEYS[2], p .. 'st')
    if prior ~= 'CLOSED' then
      redis.call('HSET', KEYS[2], p .. 'st', 'CLOSED', p .. 'u', ms(now))
      emit(KEYS[5], 'budget.closed_via_tenant_cascade', now, scope, unit, ARGV[3], ARGV[4],
        {cascade_reason = 'tenant_closed', prior_status = prior or '', new_status = 'CLOSED',
         ledger_id = redis.call('HGET', KEYS[2], p .. 'id') or ''})
      closed = closed + 1
    end
  end
end
return cjson.encode({released = ms(released), closed = ms(closed)})
