-- Schedule the next attempt of a command this attempt holds. Returns 1, or 0 if it no longer holds it.
-- What Vipps said last ('error') and what the command waits for ('waiting', our own rate budget) are kept
-- apart: a wait must not hide the 500 and its contextId that caused the retries.
local command, inflight, retry = unpack(KEYS)
local command_id, next_ms, error, not_sent = unpack(ARGV)
if redis.call('HGET', command, 'status') ~= 'in_progress' then return 0 end
if not_sent == '1' then
  -- A wait for our own rate budget sent nothing to Vipps: it is not an attempt.
  redis.call('HINCRBY', command, 'attempts', -1)
  redis.call('HSET', command, 'waiting', error)
else
  redis.call('HSET', command, 'error', error)
  redis.call('HDEL', command, 'waiting')
end
redis.call('HSET', command, 'status', 'retry_wait', 'next_attempt_ms', next_ms)
redis.call('HDEL', command, 'lease_until')
redis.call('ZREM', inflight, command_id)
redis.call('ZADD', retry, next_ms, command_id)
return 1
