-- budget_restore.lua: undo budget_import.lua. Every field the import set that still holds the
-- value it set gets its prior value back (null: the field is deleted); a field changed since
-- (a reservation against an imported budget) keeps its newer value and is counted. A budget
-- left without a status (it did not exist before the import) leaves the index. Idempotent.
-- A roll budget_import.lua made stays (it was owed); an absent field and an empty one are equal.
--
-- KEYS[1] ledger hash   KEYS[2] budget index zset
-- ARGV[1] the JSON array budget_import.lua was given.
--
-- Returns JSON {kept}: fields left with a newer value.

local items = cjson.decode(ARGV[1])
local kept = 0
for _, it in ipairs(items) do
  local p = it.m .. '|'
  for f, v in pairs(it.after) do
    if redis.call('HGET', KEYS[1], p .. f) == v then
      local old = it.before[f]
      if old == nil or old == cjson.null then
        redis.call('HDEL', KEYS[1], p .. f)
      else
        redis.call('HSET', KEYS[1], p .. f, old)
      end
    else
      local old = it.before[f]
      if old == nil or old == cjson.null then old = '' end
      if (redis.call('HGET', KEYS[1], p .. f) or '') ~= old then kept = kept + 1 end
    end
  end
  if redis.call('HEXISTS', KEYS[1], p .. 'st') == 0 then redis.call('ZREM', KEYS[2], it.m) end
end
return cjson.encode({kept = tostring(kept)})
