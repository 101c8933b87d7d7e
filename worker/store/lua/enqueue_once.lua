-- Enqueue one message unless its dedupe key was seen within the TTL (a webhook delivered twice): SET NX the
-- key, then store the message as dramatiq's enqueue does (HSET under its redis_message_id, RPUSH the id).
-- KEYS: queue, messages, dedupe. ARGV: redis_message_id, message, ttl_seconds. Returns 1 if enqueued, 0 if seen.
local queue, messages, dedupe = unpack(KEYS)
local redis_id, message, ttl = unpack(ARGV)
if not redis.call('SET', dedupe, redis_id, 'NX', 'EX', ttl) then
  return 0
end
redis.call('HSET', messages, redis_id, message)
redis.call('RPUSH', queue, redis_id)
return 1
