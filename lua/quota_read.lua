-- quota_read.lua: the tenant's action quota counters as they stand (GET
-- /v1/admin/action-quota-counters). Writes nothing and appends no event.
--
-- KEYS[1] tenant mirror (unused: it routes the call to the node holding the tenant's slot,
--         where every counter of the tenant lives)   KEYS[2], KEYS[3] work signals (unused)
-- ARGV[1] SCAN MATCH pattern of the tenant's counter keys (glob-escaped by the caller)
-- ARGV[2] most keys examined (a bound on the work of one call, not on the counters found)
-- ARGV[3] SCAN COUNT hint per step
--
-- Returns JSON: {counters = [[key, value, pttl ms], ...], truncated = '1' when the bound
-- stopped the scan before the keyspace ended}. A counter that expired between SCAN and GET
-- is left out.

local examined_max, step = tonumber(ARGV[2]), ARGV[3]
local cursor, examined, out = '0', 0, {}
repeat
  local r = redis.call('SCAN', cursor, 'MATCH', ARGV[1], 'COUNT', step)
  cursor = r[1]
  for _, key in ipairs(r[2]) do
    local v = redis.call('GET', key)
    if v then out[#out + 1] = {key, v, redis.call('PTTL', key)} end
  end
  examined = examined + tonumber(step)
until cursor == '0' or examined >= examined_max
if #out == 0 then return '{"counters":[],"truncated":"' .. (cursor == '0' and '' or '1') .. '"}' end
return cjson.encode({counters = out, truncated = cursor == '0' and '' or '1'})
