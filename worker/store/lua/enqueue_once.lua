-- Enqueue one message unless its dedupe key was seen within the TTL (a webhook delivered twice): SET NX the
-- key, then store the message as dramatiq's enqueue does (HSET under its redis_message_id, RPUSH the id).
-- The last key says when a genuine delivery last arrived (webhooks are healthy while it is recent).
-- KEYS: queue, messages, dedupe, last. ARGV: redis_message_id, message, ttl_seconds, now_ms.
-- Returns 1 if enqueued, 0 if seen.
local queue, messages, dedupe, last = unpack(KEYS)
local redis_id, message, ttl, now = unpack(ARGV)
redis.call('SET', last, now)
if not redis.call('SET', dedupe, redis_id, 'NX', 'EX', ttl) then
  return 0
end
redis.call('HSET', messages, redis_id, message)
redis.call('RPUSH', queue, redis_id)
return 1
