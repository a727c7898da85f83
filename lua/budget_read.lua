-- budget_read.lua: budgets as the reads show them (admin lookup and list, GET /v1/balances,
-- config export): every stored field, rolled into the current period by the same lib.lua roll
-- every writing script applies, in memory only. Writes nothing and appends no event: the
-- first script that writes the budget makes the same roll for real and reports it.
--
-- KEYS[1] ledger hash   KEYS[2], KEYS[3] work signals (unused)
-- ARGV[2i-1] scope, ARGV[2i] unit of the i-th budget
--
-- Returns JSON: an array with, per budget in order, its document (as budget_doc, {scope, unit,
-- st, a, s, r, d, o, x, p, id, c, u, rp, ps, pe, pl, pa, psm, pem}) or false when it does not exist.

local now = now_ms()
local out = {}
for i = 1, #ARGV / 2 do
  local scope, unit = ARGV[2 * i - 1], ARGV[2 * i]
  local doc = budget_doc(KEYS[1], scope, unit)
  if doc then
    local b = read_budget(KEYS[1], scope, unit, false, now)
    doc.a, doc.s = S(b.a), S(b.s)
    if b.ps then doc.ps, doc.pe, doc.psm, doc.pem = b.ps, b.pe, b.psm, b.pem end
    out[i] = doc
  else
    out[i] = false
  end
end
return cjson.encode(out)
