-- quota_reset.lua: set one action quota counter to 0 (POST
-- /v1/admin/action-quota-counters/reset) and append quota.counter_reset to the outbox.
-- Active reservations keep what they hold; only the count starts again.
--
-- KEYS[1] the counter   KEYS[2] outbox stream   KEYS[3], KEYS[4] work signals (lib.lua)
-- ARGV[1] the event's data (JSON without previous_used: scope, action_kind, risk_class,
--         window, window_key, actor_id, reason, limit)
-- ARGV[2] '1' for a per_run counter, whose TTL is refreshed to ARGV[3] ms; a calendar
--         window keeps its TTL (it ends with its window)
-- ARGV[4] request id   ARGV[5] trace id   ARGV[6] event correlation id   ARGV[7] scope
--
-- Returns JSON, one of:
--   {e = NOT_FOUND, m}                         no counter has these key fields
--   {previous_used, pttl, now}                 the counter is now 0

local now = now_ms()
local previous = redis.call('GET', KEYS[1])
if not previous then return err('NOT_FOUND', 'no quota counter matches the key fields') end
if ARGV[2] == '1' then
  redis.call('SET', KEYS[1], '0', 'PX', ARGV[3])
else
  redis.call('SET', KEYS[1], '0', 'KEEPTTL')
end
local data = cjson.decode(ARGV[1])
data.previous_used = tonumber(previous)
emit(KEYS[2], 'quota.counter_reset', now, ARGV[7], '', ARGV[4], ARGV[5], data, ARGV[6])
return cjson.encode({previous_used = previous, pttl = ms(redis.call('PTTL', KEYS[1])), now = ms(now)})
