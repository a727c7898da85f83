-- batch.lua: group commit. Runs several runtime operations of one tenant, in order, each
-- exactly as its own script would run alone, and returns their results in order. The loader
-- places each operation's text above this one as a function `OPS[<name>](KEYS, ARGV)`; the
-- operation sees only its own KEYS and ARGV (whose last two keys, the work signals, are the
-- same for every operation of the tenant).
--
-- KEYS    every operation's keys, one after another
-- ARGV[1] n, the number of operations; then per operation i: ARGV[2+3(i-1)] its name,
--         ARGV[3+3(i-1)] its key count, ARGV[4+3(i-1)] its argument count; then every
--         operation's arguments, one after another
--
-- Returns an array of n results. An operation that raises a Lua error yields an
-- INTERNAL_ERROR result for that operation only (what it wrote before the error stays, as it
-- would alone); the others run on.

local n = tonumber(ARGV[1])
local out = {}
local kpos, apos = 1, 2 + 3 * n
for i = 1, n do
  local h = 2 + 3 * (i - 1)
  local name, nk, na = ARGV[h], tonumber(ARGV[h + 1]), tonumber(ARGV[h + 2])
  local k, a = {}, {}
  for j = 1, nk do k[j] = KEYS[kpos + j - 1] end
  for j = 1, na do a[j] = ARGV[apos + j - 1] end
  kpos, apos = kpos + nk, apos + na
  local op = OPS[name]
  if not op then
    out[i] = err('INTERNAL_ERROR', 'unknown batched operation ' .. tostring(name))
  else
    local ok, res = pcall(op, k, a)
    if ok then
      out[i] = res
    else
      local why = res
      if type(res) == 'table' then why = res.err or 'script error' end
      out[i] = err('INTERNAL_ERROR', name .. ': ' .. tostring(why))
    end
  end
end
return out
