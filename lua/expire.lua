-- expire.lua: expire due reservations (status ACTIVE and now > expires_at + grace) under the
-- tenant's reservation_expiry_policy. AUTO_RELEASE and GRACE_ONLY mark each EXPIRED and return
-- its hold; MANUAL_CLEANUP marks it EXPIRED and keeps the hold (field h = '1', kept in the
-- active index at score +inf so a tenant close still releases it) until a release returns it.
-- Run by the sweeper on every instance with reservations it found due; each item is
-- re-checked here, so concurrent sweepers and racing commits settle each reservation exactly once.
--
-- KEYS[1] ledger hash   KEYS[2] active-by-deadline zset   KEYS[3] outbox stream
-- KEYS[4] tenant mirror   KEYS[5..n-2] reservations   KEYS[n-1], KEYS[n] work signals
-- ARGV[1] retention ms of a finalized reservation   ARGV[2..] reservation ids (same order)
--
-- With no reservations given it only brings the tenant's due time up to date.
-- Returns the number of reservations expired by this call. Writes only for items that
-- pass their checks; an item whose budget vanished is skipped, never half-applied.
-- Appends: reservation.expired per reservation (hold_kept '1' under MANUAL_CLEANUP) and
-- budget.threshold_crossed (falling).
-- Gives back the per-run quota counts each expired reservation took, when its hold goes
-- (lib.lua give_back_quotas; a kept hold gives them back at its release).
-- Every budget read is first rolled into its current period (lib.lua roll: budget.period_rolled).

local now = now_ms()
local expired = 0
local tenant = tenant_state(KEYS[4]) or {expiry = 'AUTO_RELEASE'}
local keep = tenant.expiry == 'MANUAL_CLEANUP'
for i = 5, #KEYS - 2 do
  local rid = ARGV[i - 3]
  local r = redis.call('HMGET', KEYS[i], 'st', 'u', 'e', 'sc', 'x', 'g', 'sp', 'c', 'n', 'ttl', 'qk')
  if not r[1] or r[1] ~= 'ACTIVE' then
    redis.call('ZREM', KEYS[2], rid)
  elseif now > tonumber(r[5]) + tonumber(r[6]) then
    local unit, E = r[2], I(r[3])
    local held = {}
    for scope in string.gmatch(r[4], '[^\n]+') do held[#held + 1] = scope end
    local budgets = read_budgets(KEYS[1], held, unit, KEYS[3], now)
    if #budgets == #held then
      if keep then
        redis.call('HSET', KEYS[i], 'st', 'EXPIRED', 'h', '1')
        redis.call('ZADD', KEYS[2], '+inf', rid)
      else
        for _, b in ipairs(budgets) do b.r = sub(b.r, E) end
        write_budgets(KEYS[1], budgets, now, false)
        for _, b in ipairs(budgets) do emit_thresholds(KEYS[3], b, unit, now, '', '') end
        redis.call('HSET', KEYS[i], 'st', 'EXPIRED')
        give_back_quotas(r[11])
        redis.call('PEXPIRE', KEYS[i], ARGV[1])
        redis.call('ZREM', KEYS[2], rid)
      end
      emit(KEYS[3], 'reservation.expired', now, r[7], unit, '', '',
        {reservation_id = rid, estimated_amount = r[3], created_at_ms = r[8], expired_at_ms = ms(now),
         ttl_ms = r[10] or '', extensions_used = r[9] or '0', hold_kept = keep and '1' or '0'})
      expired = expired + 1
    end
  end
end
-- The tenant stays in the due index exactly as long as it has active reservations.
reset_due(KEYS[2])
return expired
