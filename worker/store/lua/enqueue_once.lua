-- Enqueue one webhook delivery unless its dedupe key was seen within the TTL (Vipps delivered it twice): SET NX
-- the key, then store the message as dramatiq's enqueue does (HSET under its redis_message_id, RPUSH the id).
-- The stats hash says when a genuine delivery last arrived (webhooks are healthy while that is recent), per
-- registration too, and counts them.
-- KEYS: queue, messages, dedupe, stats. ARGV: redis_message_id, message, ttl_seconds, now_ms, registration.
-- Returns 1 if enqueued, 0 if seen.
local queue, messages, dedupe, stats = unpack(KEYS)
local redis_id, message, ttl, now, registration = unpack(ARGV)
redis.call('HSET', stats, 'last_ms', now, 'last:' .. registration, now)
if not redis.call('SET', dedupe, redis_id, 'NX', 'EX', ttl) then
  redis.call('HINCRBY', stats, 'duplicate', 1)
  return 0
end
redis.call('HINCRBY', stats, 'received', 1)
redis.call('HSET', messages, redis_id, message)
redis.call('RPUSH', queue, redis_id)
return 1
