-- budget_import.lua: write the budgets a configuration import creates or changes, each field
-- compare-and-set against the value the import planned from, so a change that raced the
-- planning fails the import instead of being overwritten. The import records its own events
-- in its Postgres transaction, which commits only if every write held.
--
-- The import planned from the budgets as the reads show them (rolled into their current
-- period, lib.lua roll), so an existing budget is first rolled for real: the one write before
-- the checks, owed whatever the outcome, reported by its budget.period_rolled events. An absent
-- field and an empty one compare equal (the ledger reads both as unset).
--
-- KEYS[1] ledger hash   KEYS[2] budget index zset   KEYS[3] outbox
-- ARGV[1] JSON array of {m = '<scope>|<unit>', before = {<field> = value | null},
--         after = {<field> = value}}: `before` holds the planned value (null: absent) of
--         every field `after` sets.
--
-- Returns JSON {n}: the budgets written; or {e, m} with ALREADY (a field no longer holds its
-- planned value). Every check precedes the first write but the rolls.
-- Appends: budget.period_rolled per period an existing budget crosses (lib.lua roll).

local items = cjson.decode(ARGV[1])
local now = now_ms()
-- The update time each budget had before its roll: the roll sets it, any other writer since the
-- planning must still fail the import.
local updated = {}
for i, it in ipairs(items) do
  local scope, unit = string.match(it.m, '^(.*)|([^|]*)$')
  updated[i] = redis.call('HGET', KEYS[1], it.m .. '|u') or ''
  if scope then read_budget(KEYS[1], scope, unit, KEYS[3], now) end
end
for i, it in ipairs(items) do
  local p = it.m .. '|'
  for f, _ in pairs(it.after) do
    local want = it.before[f]
    if want == nil or want == cjson.null then want = '' end
    local have = redis.call('HGET', KEYS[1], p .. f) or ''
    if f == 'u' then have = updated[i] end
    if have ~= want then
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
