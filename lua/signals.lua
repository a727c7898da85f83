-- signals.lua: keeps a tenant's work signals (lib.lua) true outside the ledger operations.
--
-- KEYS[1] outbox stream   KEYS[2] active-by-deadline zset   KEYS[3], KEYS[4] work signals
-- ARGV[1] 'drained': the drain emptied what it read; the tenant leaves the dirty set only if
--                    its stream is empty (an entry appended since keeps it there, and one
--                    held by another consumer stays in the stream until acknowledged).
--         'refresh': sets both signals from the keys themselves (start-up after an upgrade).
--
-- Returns 1 when the tenant is (now) clean or refreshed, 0 when it stays dirty.

if ARGV[1] == 'drained' then
  if redis.call('XLEN', KEYS[1]) > 0 then return 0 end
  redis.call('SREM', DIRTY, KEYS[1])
  return 1
end
if redis.call('XLEN', KEYS[1]) > 0 then redis.call('SADD', DIRTY, KEYS[1]) end
reset_due(KEYS[2])
return 1
