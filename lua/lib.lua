-- lib.lua: helpers prepended to every ledger script (the loader concatenates them, so each
-- script is one self-contained text with one SHA). Defines no keys and writes nothing.
--
-- Money is int64 and Lua numbers are doubles, exact only below 2^53. Amounts travel as
-- decimal strings. Below 2^53 (the usual case) they are computed as plain Lua numbers;
-- anything larger, or any result that reaches 2^53, is computed as a pair {h, l} meaning
-- h * 1e9 + l, with h and l integral doubles of the same sign (|l| < 1e9). Every
-- intermediate stays far below 2^53, so the arithmetic is exact across the whole int64 range.

local B = 1000000000
local SAFE = 9007199254740992 -- 2^53: plain numbers are exact strictly below it
local ZERO = 0
local I64_MAX = {9223372036, 854775807}

local function norm(h, l)
  if l >= B then h = h + 1; l = l - B elseif l <= -B then h = h - 1; l = l + B end
  if h > 0 and l < 0 then h = h - 1; l = l + B elseif h < 0 and l > 0 then h = h + 1; l = l - B end
  return {h, l}
end

-- A plain number as a pair (exact: |a| < 2^53 splits into parts below 1e9 and 2^53/1e9).
local function pair(a)
  if type(a) ~= 'number' then return a end
  local h
  if a >= 0 then h = math.floor(a / B) else h = -math.floor(-a / B) end
  return {h, a - h * B}
end

-- Parses a decimal string (absent or empty means 0). Inputs come from Tollgate itself.
local function I(s)
  if not s or s == '' then return 0 end
  local n = #s
  if n <= 15 then return tonumber(s) end
  local neg = string.byte(s, 1) == 45
  if neg then s = string.sub(s, 2); n = n - 1 end
  local h, l = tonumber(string.sub(s, 1, n - 9)), tonumber(string.sub(s, n - 8))
  if neg then return {-h, -l} end
  return {h, l}
end

local function S(a)
  if type(a) == 'number' then return string.format('%d', a) end
  local h, l = a[1], a[2]
  if h == 0 then return string.format('%d', l) end
  if h < 0 then return string.format('-%d%09d', -h, -l) end
  return string.format('%d%09d', h, l)
end

local function add(a, b)
  if type(a) == 'number' and type(b) == 'number' then
    local r = a + b
    if r < SAFE and r > -SAFE then return r end
  end
  local x, y = pair(a), pair(b)
  return norm(x[1] + y[1], x[2] + y[2])
end

local function sub(a, b)
  if type(a) == 'number' and type(b) == 'number' then
    local r = a - b
    if r < SAFE and r > -SAFE then return r end
  end
  local x, y = pair(a), pair(b)
  return norm(x[1] - y[1], x[2] - y[2])
end

local function cmp(a, b)
  if type(a) == 'number' and type(b) == 'number' then
    if a < b then return -1 elseif a > b then return 1 end
    return 0
  end
  local x, y = pair(a), pair(b)
  if x[1] ~= y[1] then if x[1] < y[1] then return -1 end return 1 end
  if x[2] ~= y[2] then if x[2] < y[2] then return -1 end return 1 end
  return 0
end
local function lt(a, b) return cmp(a, b) < 0 end
local function pos(a) return cmp(a, 0) > 0 end
local function neg(a) return cmp(a, 0) < 0 end
local function max0(a) if neg(a) then return ZERO end return a end
local function min(a, b) if cmp(a, b) <= 0 then return a end return b end
local function fits(a) return not neg(a) and cmp(a, I64_MAX) <= 0 end

-- The ledger clock: Redis TIME, one clock for every instance.
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function ms(n) return string.format('%d', n) end

-- Results are JSON objects whose numbers are all strings (exact), decoded in Rust.
local function err(code, msg, extra)
  local r = extra or {}
  r.e = code
  r.m = msg
  return cjson.encode(r)
end

-- Tenant mirror: status and runtime settings copied from the catalogue. No record means
-- the tenant is unguarded (defaults apply); an unknown status is a corrupt record.
local function tenant_state(key)
  local v = redis.call('HMGET', key, 'status', 'default_reservation_ttl_ms', 'max_reservation_ttl_ms',
    'max_reservation_extensions', 'default_commit_overage_policy', 'reservation_expiry_policy', 'policy_gen',
    'observe_mode')
  local st = v[1]
  if st and st ~= 'ACTIVE' and st ~= 'SUSPENDED' and st ~= 'CLOSED' then return nil end
  return {
    status = st or 'ACTIVE',
    ttl = tonumber(v[2] or '60000'),
    max_ttl = tonumber(v[3] or '3600000'),
    max_ext = tonumber(v[4] or '10'),
    policy = v[5] or 'ALLOW_IF_AVAILABLE',
    -- AUTO_RELEASE | MANUAL_CLEANUP | GRACE_ONLY (release.lua and expire.lua apply it).
    expiry = v[6] or 'AUTO_RELEASE',
    -- The generation of the tenant's published policy set ('0': never had a policy).
    gen = v[7] or '0',
    -- The tenant's default observe mode (v0.1.26): only OBSERVE changes anything; a mirror
    -- written before the field existed is ENFORCE.
    observe = v[8] == 'OBSERVE',
  }
end

-- Writes the given fields of several budgets (and their update time) in one HSET.
local function write_budgets(ledger, budgets, now, with_settlement)
  local args, n = {}, 0
  local t = ms(now)
  for _, b in ipairs(budgets) do
    args[n + 1] = b.prefix .. 'r'; args[n + 2] = S(b.r); args[n + 3] = b.prefix .. 'u'; args[n + 4] = t
    n = n + 4
    if with_settlement then
      args[n + 1] = b.prefix .. 's'; args[n + 2] = S(b.s); args[n + 3] = b.prefix .. 'd'; args[n + 4] = S(b.d)
      args[n + 5] = b.prefix .. 'x'; args[n + 6] = b.x and '1' or '0'
      n = n + 6
    end
  end
  redis.call('HSET', ledger, unpack(args))
end


local function balance(b)
  return {scope = b.scope, a = S(b.a), s = S(b.s), r = S(b.r), d = S(b.d), o = S(b.o), x = b.x and '1' or '0'}
end

-- Work signals. Every script's last two KEYS are the dirty set and the due index covering
-- its tenant (store/redis/keys.rs): background work visits only what they name.
local DIRTY, DUE = KEYS[#KEYS - 1], KEYS[#KEYS]
local dirty_marked = false

-- A reservation index whose earliest deadline is `deadline` (ms) becomes due then, unless it
-- already is sooner (LT keeps the earlier score; a later stale score only costs a visit).
local function mark_due(active, deadline)
  redis.call('ZADD', DUE, 'LT', deadline, active)
end

-- Sets the index's due time to its earliest deadline, or drops it once nothing is active.
local function reset_due(active)
  local first = redis.call('ZRANGE', active, 0, 0, 'WITHSCORES')
  if first[2] then redis.call('ZADD', DUE, first[2], active) else redis.call('ZREM', DUE, active) end
end

-- Appends one event to the tenant's outbox stream (drained into Postgres by a worker) and
-- marks the stream dirty, once per call.
local OUTBOX_LEN = '100000'
-- `corr`, when given and not empty, is the event's correlation id (field 'c').
local function emit(outbox, etype, now, scope, unit, rq, tr, data, corr)
  if not dirty_marked then
    redis.call('SADD', DIRTY, outbox)
    dirty_marked = true
  end
  if corr and corr ~= '' then
    redis.call('XADD', outbox, 'MAXLEN', '~', OUTBOX_LEN, '*', 't', etype, 'ts', ms(now), 's', scope or '',
      'u', unit or '', 'rq', rq or '', 'tr', tr or '', 'd', cjson.encode(data or {}), 'c', corr)
    return
  end
  redis.call('XADD', outbox, 'MAXLEN', '~', OUTBOX_LEN, '*', 't', etype, 'ts', ms(now), 's', scope or '',
    'u', unit or '', 'rq', rq or '', 'tr', tr or '', 'd', cjson.encode(data or {}))
end

local function state_of(b)
  return {allocated = S(b.a), remaining = S(sub(sub(sub(b.a, b.s), b.r), b.d)), debt = S(b.d), spent = S(b.s),
    reserved = S(b.r), status = b.st}
end

-- Budget periods. A budget with a period keeps its current period [psm, pem) in ms (UTC)
-- beside the display strings ps/pe, its length pl (decimal ms, or P1D, P1W, P1M: calendar
-- months in UTC) and pa, one period's allocation. Every budget read compares pem with the
-- ledger clock (one field compare); a budget whose period has ended is rolled into the period
-- containing now before anything looks at it, inside the same script, so the roll is atomic
-- and happens exactly once whichever instance (or cluster node) runs it. No cron, no sweep.
-- A roll applies rollover_policy (rp) once per period crossed: NONE forfeits the unused part,
-- CARRY_FORWARD carries it, CAP_AT_ALLOCATED carries at most pa. Unused = max(0, allocated -
-- spent - reserved). Reserved holds move into the new period as they are (their commit settles
-- against the period it runs in); debt is kept (never forgiven by a roll); spent starts at 0.
local DAY_MS = 86400000
local PERIOD_MS = {P1D = DAY_MS, P1W = 7 * DAY_MS}
-- Periods rolled one by one (one event each) by one script; more periods crossed in the same
-- idle gap are rolled in closed form and reported by one more event (a limit on one call's work).
local ROLL_STEPS_MAX = 100

local function days_from_civil(y, m, d)
  if m <= 2 then y = y - 1 end
  local era = math.floor(y / 400)
  local yoe = y - era * 400
  local doy = math.floor((153 * ((m + 9) % 12) + 2) / 5) + d - 1
  return era * 146097 + yoe * 365 + math.floor(yoe / 4) - math.floor(yoe / 100) + doy - 719468
end

local function civil_from_days(z)
  z = z + 719468
  local era = math.floor(z / 146097)
  local doe = z - era * 146097
  local yoe = math.floor((doe - math.floor(doe / 1460) + math.floor(doe / 36524) - math.floor(doe / 146096)) / 365)
  local doy = doe - (365 * yoe + math.floor(yoe / 4) - math.floor(yoe / 100))
  local mp = math.floor((5 * doy + 2) / 153)
  local d = doy - math.floor((153 * mp + 2) / 5) + 1
  local m = mp + 3
  if mp >= 10 then m = mp - 9 end
  local y = yoe + era * 400
  if m <= 2 then y = y + 1 end
  return y, m, d
end

-- t plus n calendar months (UTC). Period starts of P1M budgets fall on days 1..28, so no
-- month is ever short of the day.
local function add_months(t, n)
  local days = math.floor(t / DAY_MS)
  local y, m, d = civil_from_days(days)
  local mi = y * 12 + m - 1 + n
  local y2 = math.floor(mi / 12)
  return days_from_civil(y2, mi - y2 * 12 + 1, d) * DAY_MS + (t - days * DAY_MS)
end

-- The same text Tollgate's Rust side writes at creation: UTC, milliseconds only when not 0.
local function rfc3339(t)
  local days = math.floor(t / DAY_MS)
  local y, m, d = civil_from_days(days)
  local rest = t - days * DAY_MS
  local out = string.format('%04d-%02d-%02dT%02d:%02d:%02d', y, m, d, math.floor(rest / 3600000),
    math.floor(rest / 60000) % 60, math.floor(rest / 1000) % 60)
  if rest % 1000 > 0 then out = out .. string.format('.%03d', rest % 1000) end
  return out .. 'Z'
end

-- The end of the k-th period after the one ending at pe.
local function period_end_after(pe, pl, k)
  if pl == 'P1M' then return add_months(pe, k) end
  return pe + k * (PERIOD_MS[pl] or tonumber(pl))
end

-- How many periods have ended by now (pe <= now): the n >= 1 with end_after(n) > now.
local function periods_ended(pe, pl, now)
  if pl ~= 'P1M' then return math.floor((now - pe) / (PERIOD_MS[pl] or tonumber(pl))) + 1 end
  local y1, m1 = civil_from_days(math.floor(pe / DAY_MS))
  local y2, m2 = civil_from_days(math.floor(now / DAY_MS))
  local k = math.max(1, (y2 - y1) * 12 + m2 - m1)
  while add_months(pe, k) <= now do k = k + 1 end
  while k > 1 and add_months(pe, k - 1) > now do k = k - 1 end
  return k
end

local function clamp(a) if cmp(a, I64_MAX) > 0 then return I64_MAX end return a end

-- What one period leaves unused and what the next carries of it, under the policy.
local function carry_of(policy, b, pa)
  local unused = max0(sub(sub(b.a, b.s), b.r))
  if policy == 'CARRY_FORWARD' then return unused, unused end
  if policy == 'CAP_AT_ALLOCATED' then return min(unused, pa), unused end
  return ZERO, unused
end

-- x * m for an amount x >= 0 and a count m >= 0, saturating at the int64 maximum.
local function mul_sat(x, m)
  local acc, over = ZERO, false
  while m > 0 do
    if m % 2 == 1 then
      if over then return I64_MAX end
      acc = add(acc, x)
      if cmp(acc, I64_MAX) > 0 then return I64_MAX end
    end
    m = math.floor(m / 2)
    if m > 0 and not over then x = add(x, x); over = cmp(x, I64_MAX) > 0 end
  end
  return acc
end

-- allocated after m >= 1 more idle periods (spent 0, reserved r and debt unchanged), in
-- closed form: each such period maps a to pa + carry(a - r), which moves a by pa - r until a
-- bound (2 pa under CAP_AT_ALLOCATED, pa once nothing is left to carry) or stays.
local function idle_allocated(policy, a, pa, r, m)
  if policy ~= 'CARRY_FORWARD' and policy ~= 'CAP_AT_ALLOCATED' then return pa end
  if not lt(pa, r) then
    local grown = add(a, mul_sat(sub(pa, r), m))
    if policy == 'CAP_AT_ALLOCATED' then grown = min(grown, add(pa, pa)) end
    return clamp(grown)
  end
  local shrink = sub(r, pa)
  if cmp(sub(a, mul_sat(shrink, m - 1)), r) > 0 then return sub(a, mul_sat(shrink, m)) end
  return pa
end

-- One budget.period_rolled: the budget moved from period [ps, pe) to [ns, ne), crossing n ends.
local function emit_roll(outbox, b, unit, now, policy, ps, pe, ns, ne, n, before, carried, unused)
  local data = {rollover_policy = policy, previous_period_start = rfc3339(ps), previous_period_end = rfc3339(pe),
    period_start = rfc3339(ns), period_end = rfc3339(ne),
    periods_crossed = ms(n), carried_amount = S(carried), previous_state = before, new_state = state_of(b)}
  if unused then
    data.unused_amount = S(unused)
    data.forfeited_amount = S(sub(unused, carried))
  end
  emit(outbox, 'budget.period_rolled', now, b.scope, unit, '', '', data)
end

-- Rolls budget b (read with its pem) into the period containing now, if its period ended.
-- With an outbox key the roll is written and each period crossed reported by one
-- budget.period_rolled event; with false (reads) only b changes. The roll is the one write a
-- script may make before its checks: it is owed whatever the request's outcome and complete.
local function roll(ledger, b, unit, now, outbox)
  if b.pem == '' or b.st == 'CLOSED' or now < tonumber(b.pem) then return end
  if outbox == nil then error('a budget read that may roll a period needs the outbox key') end
  local p = b.prefix
  local v = redis.call('HMGET', ledger, p .. 'pa', p .. 'pl', p .. 'psm', p .. 'rp')
  local pl = v[2]
  if not pl or pl == '' then return end
  local pa, ps, pe, policy = I(v[1]), tonumber(v[3]), tonumber(b.pem), v[4] or 'NONE'
  local n = periods_ended(pe, pl, now)
  for _ = 1, math.min(n, ROLL_STEPS_MAX) do
    local before = state_of(b)
    local carried, unused = carry_of(policy, b, pa)
    b.a, b.s = clamp(add(pa, carried)), ZERO
    local ne = period_end_after(pe, pl, 1)
    if outbox then emit_roll(outbox, b, unit, now, policy, ps, pe, pe, ne, 1, before, carried, unused) end
    ps, pe = pe, ne
  end
  if n > ROLL_STEPS_MAX then
    local m = n - ROLL_STEPS_MAX
    local before = state_of(b)
    b.a = idle_allocated(policy, b.a, pa, b.r, m)
    local ns, ne = period_end_after(pe, pl, m - 1), period_end_after(pe, pl, m)
    if outbox then emit_roll(outbox, b, unit, now, policy, ps, pe, ns, ne, m, before, max0(sub(b.a, pa)), nil) end
    ps, pe = ns, ne
  end
  b.rem = sub(sub(sub(b.a, b.s), b.r), b.d)
  b.a0, b.u0 = b.a, add(b.s, b.r)
  b.psm, b.pem, b.ps, b.pe = ms(ps), ms(pe), rfc3339(ps), rfc3339(pe)
  if outbox then
    redis.call('HSET', ledger, p .. 'a', S(b.a), p .. 's', S(b.s), p .. 'psm', ms(ps), p .. 'pem', b.pem,
      p .. 'ps', b.ps, p .. 'pe', b.pe, p .. 'u', ms(now))
  end
end

-- One budget of the tenant's ledger hash: fields are "<scope>|<unit>|<f>". Rolled into the
-- current period first (see roll; `outbox` false for a read that writes nothing).
local BF = {'st', 'a', 's', 'r', 'd', 'o', 'x', 'p', 'pem'}
local function budget_of(scope, unit, v, o)
  local b = {scope = scope, prefix = scope .. '|' .. unit .. '|', st = v[o + 1], a = I(v[o + 2]), s = I(v[o + 3]),
    r = I(v[o + 4]), d = I(v[o + 5]), o = I(v[o + 6]), x = v[o + 7] == '1', p = v[o + 8] or '', pem = v[o + 9] or ''}
  b.rem = sub(sub(sub(b.a, b.s), b.r), b.d)
  b.a0, b.u0 = b.a, add(b.s, b.r)
  return b
end

local function read_budget(ledger, scope, unit, outbox, now)
  local p = scope .. '|' .. unit .. '|'
  local fields = {}
  for i, f in ipairs(BF) do fields[i] = p .. f end
  local v = redis.call('HMGET', ledger, unpack(fields))
  if not v[1] then return nil end
  local b = budget_of(scope, unit, v, 0)
  roll(ledger, b, unit, now, outbox)
  return b
end

-- Several budgets of one unit in one HMGET; returns those that exist, in scope order.
local function read_budgets(ledger, scopes, unit, outbox, now)
  local fields, n = {}, 0
  for _, scope in ipairs(scopes) do
    local p = scope .. '|' .. unit .. '|'
    for _, f in ipairs(BF) do n = n + 1; fields[n] = p .. f end
  end
  local v = redis.call('HMGET', ledger, unpack(fields))
  local out = {}
  for i, scope in ipairs(scopes) do
    local o = (i - 1) * #BF
    if v[o + 1] then
      local b = budget_of(scope, unit, v, o)
      roll(ledger, b, unit, now, outbox)
      out[#out + 1] = b
    end
  end
  return out
end

-- Utilization ((spent + reserved) / allocated) thresholds whose crossings are reported, in
-- either direction, by comparing a budget's state when it was read (a0, u0) with its state
-- now. The script runs atomically, so each crossing is reported once, whichever instance
-- ran it. Ratios are doubles: exact enough to place a threshold, never used for money.
local THRESHOLDS = {0.80, 0.95, 1.0}
local function num(a) if type(a) == 'number' then return a end return tonumber(S(a)) end
local function emit_thresholds(outbox, b, unit, now, rq, tr)
  if not pos(b.a0) or not pos(b.a) then return end
  local before = num(b.u0) / num(b.a0)
  local after = num(add(b.s, b.r)) / num(b.a)
  for _, t in ipairs(THRESHOLDS) do
    local dir
    if before < t and after >= t then dir = 'rising' elseif before >= t and after < t then dir = 'falling' end
    if dir then
      emit(outbox, 'budget.threshold_crossed', now, b.scope, unit, rq, tr,
        {threshold = t, utilization = after, direction = dir, allocated = S(b.a), spent = S(b.s),
         reserved = S(b.r), remaining = S(sub(sub(sub(b.a, b.s), b.r), b.d))})
    end
  end
end

-- Over-limit flips and debt are reported the same way by commit and event scripts.
local function emit_budget_changes(outbox, before_x, b, unit, now, rq, tr, rid, debt_added, policy)
  emit_thresholds(outbox, b, unit, now, rq, tr)
  if b.x and not before_x then
    emit(outbox, 'budget.over_limit_entered', now, b.scope, unit, rq, tr,
      {debt = S(b.d), overdraft_limit = S(b.o), is_over_limit = '1'})
  end
  if pos(debt_added) then
    emit(outbox, 'budget.debt_incurred', now, b.scope, unit, rq, tr,
      {reservation_id = rid or '', debt_incurred = S(debt_added), total_debt = S(b.d),
       overdraft_limit = S(b.o), overage_policy = policy})
  end
  if not pos(sub(sub(sub(b.a, b.s), b.r), b.d)) and pos(b.a) then
    emit(outbox, 'budget.exhausted', now, b.scope, unit, rq, tr,
      {allocated = S(b.a), spent = S(b.s), reserved = S(b.r), remaining = S(sub(sub(sub(b.a, b.s), b.r), b.d))})
  end
end

-- Idempotency: a stored success replays; the same key with another payload is a mismatch.
-- Records are "<request hash>\n<result json>". Returns nil (unused key), or a result to
-- return as it is: the mismatch error, or the stored result marked as a replay.
local function idem_check(key, hash, now)
  local rec = redis.call('GET', key)
  if not rec then return nil end
  local nl = string.find(rec, '\n', 1, true)
  if string.sub(rec, 1, nl - 1) ~= hash then
    return err('IDEMPOTENCY_MISMATCH', 'idempotency key was used with a different request')
  end
  local r = cjson.decode(string.sub(rec, nl + 1))
  r.replay = '1'
  r.now = ms(now)
  return cjson.encode(r)
end

-- Encodes a success, stores it under the idempotency key, and returns it.
local function succeed(key, hash, t, ttl_ms, now)
  t.now = ms(now)
  local r = cjson.encode(t)
  redis.call('SET', key, hash .. '\n' .. r, 'PX', ttl_ms)
  return r
end

-- Settles a reservation's charge across its budgets (commit and events share it).
-- E is what is held (0 for events), A the actual. Returns nil and an error result, or the
-- charged amount and the per-budget plans. No writes happen here.
-- `strict` (commit): under REJECT any overage is refused; otherwise (events) REJECT refuses
-- only a charge some scope cannot cover.
local function plan_charge(budgets, E, A, policy, strict)
  local D = sub(A, E)
  local plans = {}
  if not pos(D) then
    for i, b in ipairs(budgets) do plans[i] = {add_s = A, add_d = ZERO, over = false} end
    return A, plans
  end
  if policy == 'REJECT' then
    if strict then
      return nil, err('BUDGET_EXCEEDED', 'actual exceeds the reserved amount and the overage policy is REJECT',
        {reserved = S(E), actual = S(A)})
    end
    for _, b in ipairs(budgets) do
      if lt(b.rem, D) then
        return nil, err('BUDGET_EXCEEDED', 'insufficient budget at ' .. b.scope .. ' and the overage policy is REJECT',
          {scope = b.scope, remaining = S(b.rem)})
      end
    end
    for i, b in ipairs(budgets) do plans[i] = {add_s = A, add_d = ZERO, over = false} end
    return A, plans
  end
  -- cap: the delta every scope can carry. Zero-limit scopes (and every scope under
  -- ALLOW_IF_AVAILABLE) carry at most what they have left.
  local cap = D
  for _, b in ipairs(budgets) do
    if policy == 'ALLOW_IF_AVAILABLE' or not pos(b.o) then cap = min(cap, max0(b.rem)) end
  end
  for i, b in ipairs(budgets) do
    local funded = min(cap, max0(b.rem))
    local deficit = sub(cap, funded)
    if pos(deficit) and cmp(add(b.d, deficit), b.o) > 0 then
      return nil, err('OVERDRAFT_LIMIT_EXCEEDED', 'the charge would take debt beyond the overdraft limit',
        {scope = b.scope, debt = S(b.d), overdraft_limit = S(b.o), deficit = S(deficit)})
    end
    plans[i] = {add_s = add(E, funded), add_d = deficit, over = lt(cap, D) and lt(b.rem, D)}
  end
  return add(E, cap), plans
end

-- Applies planned charges; refuses (before any write) anything that would leave a field
-- outside int64.
local function check_plans(budgets, E, plans)
  for i, b in ipairs(budgets) do
    local s2, d2 = add(b.s, plans[i].add_s), add(b.d, plans[i].add_d)
    if not fits(add(add(s2, sub(b.r, E)), d2)) then
      return err('INVALID_REQUEST', 'the charge would overflow the budget at ' .. b.scope, {scope = b.scope})
    end
  end
  return nil
end

-- Every stored field of one budget, as the admin plane returns it (and a configuration export
-- needs to recreate it: pa, psm and pem are what a later roll reads).
local DOC = {'st', 'a', 's', 'r', 'd', 'o', 'x', 'p', 'id', 'c', 'u', 'rp', 'ps', 'pe', 'pl', 'pa', 'psm', 'pem'}
local function budget_doc(ledger, scope, unit)
  local p = scope .. '|' .. unit .. '|'
  local f = {}
  for i, k in ipairs(DOC) do f[i] = p .. k end
  local v = redis.call('HMGET', ledger, unpack(f))
  if not v[1] then return nil end
  local doc = {scope = scope, unit = unit}
  for i, k in ipairs(DOC) do doc[k] = v[i] or '' end
  return doc
end

-- Common guards of the admin budget scripts: the tenant must not be closed, the budget must
-- exist and must not be closed. Returns the budget (rolled into its current period, the roll
-- written and reported to `outbox`) or an error result.
local function admin_budget(tenant_key, ledger, scope, unit, outbox, now)
  local tenant = tenant_state(tenant_key)
  if not tenant then return nil, err('INTERNAL_ERROR', 'tenant record is corrupt') end
  if tenant.status == 'CLOSED' then return nil, err('TENANT_CLOSED', 'tenant is closed') end
  local b = read_budget(ledger, scope, unit, outbox, now)
  if not b then return nil, err('BUDGET_NOT_FOUND', 'no budget exists for ' .. scope .. ' in ' .. unit) end
  if b.st == 'CLOSED' then return nil, err('BUDGET_CLOSED', 'budget is closed: ' .. scope) end
  return b
end

local function emit_over_limit_flip(outbox, before_x, b, unit, now, rq, tr)
  if before_x == b.x then return end
  local etype = 'budget.over_limit_exited'
  if b.x then etype = 'budget.over_limit_entered' end
  emit(outbox, etype, now, b.scope, unit, rq, tr,
    {debt = S(b.d), overdraft_limit = S(b.o), is_over_limit = b.x and '1' or '0'})
end

-- The checks commit, release and extend share, in the spec's precedence: the reservation
-- exists, the tenant record is sound and not CLOSED, the reservation is still ACTIVE.
-- `status` is the reservation's stored status (false when absent). Returns the tenant state,
-- or nil and the error to return.
local function settleable(tenant_key, status)
  if not status then return nil, err('NOT_FOUND', 'reservation not found') end
  local tenant = tenant_state(tenant_key)
  if not tenant then return nil, err('INTERNAL_ERROR', 'tenant record is corrupt') end
  if tenant.status == 'CLOSED' then return nil, err('TENANT_CLOSED', 'tenant is closed') end
  if status == 'EXPIRED' then return nil, err('RESERVATION_EXPIRED', 'reservation expired') end
  if status ~= 'ACTIVE' then return nil, err('RESERVATION_FINALIZED', 'reservation is already ' .. status) end
  return tenant
end

-- Gives back one count to each per-run quota counter a reservation took (its field 'qk': the
-- counter keys, newline-separated, built by the keys module with the tenant's hash tag, so
-- they live in the slot of the reservation). A counter that expired meanwhile stays absent.
-- Release and expiry call it once, with the status change, so a count returns exactly once.
local function give_back_quotas(list)
  if not list or list == '' then return end
  for key in string.gmatch(list, '[^\n]+') do
    if tonumber(redis.call('GET', key) or '0') > 0 then redis.call('DECR', key) end
  end
end

-- With no budget in `unit` at any of `scopes`: UNIT_MISMATCH when some scope is budgeted in
-- another unit (naming it and the units it has), else nil.
local function unit_mismatch(ledger, scopes, unit)
  local units = {'USD_MICROCENTS', 'TOKENS', 'CREDITS', 'RISK_POINTS'}
  for _, scope in ipairs(scopes) do
    local expected = {}
    for _, u in ipairs(units) do
      if u ~= unit and redis.call('HEXISTS', ledger, scope .. '|' .. u .. '|st') == 1 then expected[#expected + 1] = u end
    end
    if #expected > 0 then
      return err('UNIT_MISMATCH', 'no budget in ' .. unit .. ' at any derived scope; ' .. scope .. ' is budgeted in another unit',
        {scope = scope, requested_unit = unit, expected_units = expected})
    end
  end
  return nil
end
