-- Move due outbox entries onto the events queue, as dramatiq's enqueue stores a message (HSET it, RPUSH its
-- id), and out of the outbox, in one step: a relay that dies half-way publishes nothing twice.
-- Returns the published event types.
local pending, born, outbox, queue, messages = unpack(KEYS)
local now, limit = unpack(ARGV)
local ids = redis.call('ZRANGEBYSCORE', pending, '-inf', now, 'LIMIT', 0, tonumber(limit))
local types = {}
for _, id in ipairs(ids) do
  local message = redis.call('HGET', outbox, id)
  local ok, decoded = pcall(cjson.decode, message or 'null')
  if message and not (ok and type(decoded) == 'table' and decoded.options and decoded.options.redis_message_id) then
    -- Not a message (should never happen): park it for a day rather than block the queue behind it.
    redis.call('ZADD', pending, tonumber(now) + 86400000, id)
  else
    if message then
      redis.call('HSET', messages, decoded.options.redis_message_id, message)
      redis.call('RPUSH', queue, decoded.options.redis_message_id)
      types[#types + 1] = decoded.args[1].type
      redis.call('HDEL', outbox, id)
    end
    redis.call('ZREM', pending, id)
    redis.call('ZREM', born, id)
  end
end
return types
