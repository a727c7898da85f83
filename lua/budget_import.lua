-- budget_import.lua: write the budgets a configuration import creates or changes, each field
-- compare-and-set against the value the import planned from, so a change that raced the
-- planning fails the import instead of being overwritten. Emits no outbox event: the import
-- records its events in its Postgres transaction, which commits only if every write held.
--
-- KEYS[1] ledger hash   KEYS[2] budget index zset
-- ARGV[1] JSON array of {m = '<scope>|<unit>', before = {<field> = value | null},
--         after = {<field> = value}}: `before` holds the planned value (null: absent) of
--         every field `after` sets.
--
-- Returns JSON {n}: the budgets written; or {e, m} with ALREADY (a field no longer holds its
-- planned value). Every check precedes the first write.

local items = cjson.decode(ARGV[1])
for _, it in ipairs(items) do
  local p = it.m .. '|'
  for f, _ in pairs(it.after) do
    local want = it.before[f]
    if want == nil or want == cjson.null then want = false end
    if redis.call('HGET', KEYS[1], p .. f) ~= want then
      return err('ALREADY', 'budget ' .. it.m .. ' changed while the import was being planned; retry the import')
    end
  end
end
for _, it in ipairs(items) do
  local p = it.m .. '|'
  local args = {}
  for f, v in pairs(it.after) do
    args[#args + 1] = p .. f
    args[#args + 1] = v
  end
  if #args > 0 then redis.call('HSET', KEYS[1], unpack(args)) end
  redis.call('ZADD', KEYS[2], 0, it.m)
end
return cjson.encode({n = tostring(#items)})
