-- extend.lua: push a reservation's expiry out by extend_by_ms from its current expiry.
-- Serves POST /v1/reservations/{id}/extend.
--
-- KEYS[1] tenant mirror   KEYS[2] idempotency record (per reservation)   KEYS[3] reservation
-- KEYS[4] active-by-deadline zset
-- ARGV[1] request hash    ARGV[2] extend_by_ms   ARGV[3] reservation id
--
-- Returns JSON: a stored result plus {replay, now, active}; or {e, m} in precedence order
-- IDEMPOTENCY_MISMATCH, NOT_FOUND, INTERNAL_ERROR, TENANT_CLOSED, RESERVATION_EXPIRED
-- (status), RESERVATION_FINALIZED, RESERVATION_EXPIRED (past expires_at; grace does not
-- apply), MAX_EXTENSIONS_EXCEEDED; or {status=ACTIVE, expires_at_ms, now}.
-- Each grant is capped at the tenant's max_reservation_ttl_ms; the number of grants at the
-- reservation's policy max_extensions ('mx'), else the tenant's. Checks precede the writes.

local hash, rid = ARGV[1], ARGV[3]
local now = now_ms()

local replay = idem_check(KEYS[2], hash, now)
if replay then
  local r = cjson.decode(replay)
  if r.e then return replay end
  r.active = redis.call('HGET', KEYS[3], 'st') == 'ACTIVE' and '1' or '0'
  return cjson.encode(r)
end

local r = redis.call('HMGET', KEYS[3], 'st', 'x', 'g', 'n', 'mx')
local tenant, failure = settleable(KEYS[1], r[1])
if not tenant then return failure end
local expires, grace, used = tonumber(r[2]), tonumber(r[3]), tonumber(r[4] or '0')
if now > expires then return err('RESERVATION_EXPIRED', 'reservation expired') end
-- A policy's max_extensions, stored with the reservation when it was made, replaces the tenant's.
local max_ext = tenant.max_ext
if r[5] and r[5] ~= '' then max_ext = tonumber(r[5]) end
if used >= max_ext then
  return err('MAX_EXTENSIONS_EXCEEDED', 'reservation was extended ' .. ms(used) .. ' times, the maximum',
    {max_extensions = ms(max_ext)})
end
local by = tonumber(ARGV[2])
if by > tenant.max_ttl then by = tenant.max_ttl end
expires = expires + by
redis.call('HSET', KEYS[3], 'x', ms(expires), 'n', ms(used + 1))
redis.call('ZADD', KEYS[4], expires + grace, rid)
local t = {status = 'ACTIVE', expires_at_ms = ms(expires), active = '1'}
return succeed(KEYS[2], hash, t, 86400000 + by, now)
