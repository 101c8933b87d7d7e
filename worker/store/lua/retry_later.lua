-- Schedule the next attempt of a command this attempt holds. Returns 1, or 0 if it no longer holds it.
local command, inflight, retry = unpack(KEYS)
local command_id, next_ms, error, not_sent = unpack(ARGV)
if redis.call('HGET', command, 'status') ~= 'in_progress' then return 0 end
-- A wait for our own rate budget sent nothing to Vipps: it is not an attempt.
if not_sent == '1' then redis.call('HINCRBY', command, 'attempts', -1) end
redis.call('HSET', command, 'status', 'retry_wait', 'next_attempt_ms', next_ms, 'error', error)
redis.call('HDEL', command, 'lease_until')
redis.call('ZREM', inflight, command_id)
redis.call('ZADD', retry, next_ms, command_id)
return 1
