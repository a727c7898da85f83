-- policy_publish.lua: store a tenant's compiled policy set and its generation, moving the
-- generation only forward, so a late or repeated publication never undoes a newer one.
-- Run by the catalogue after each policy change commits and by the recovery pass.
--
-- KEYS[1] tenant mirror   KEYS[2] policy set   KEYS[3], KEYS[4] work signals (unused)
-- ARGV[1] generation (decimal, >= 1)   ARGV[2] the set as JSON
--
-- Returns JSON {published = '1'} when stored, {published = '0'} when Redis already holds
-- this generation or a newer one. Writes the set, then the mirror's `policy_gen`.

local gen = tonumber(ARGV[1])
local current = tonumber(redis.call('HGET', KEYS[1], 'policy_gen') or '0')
if gen <= current then return '{"published":"0"}' end
redis.call('SET', KEYS[2], ARGV[1] .. '\n' .. ARGV[2])
redis.call('HSET', KEYS[1], 'policy_gen', ARGV[1])
return '{"published":"1"}'
