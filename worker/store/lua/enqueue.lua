-- Enqueue messages as dramatiq's own enqueue stores them (HSET the message under its redis_message_id, RPUSH
-- the id), without beating a heartbeat: a producer is not a worker. ARGV: (redis_message_id, message) pairs.
local queue, messages = unpack(KEYS)
for i = 1, #ARGV, 2 do
  redis.call('HSET', messages, ARGV[i], ARGV[i + 1])
  redis.call('RPUSH', queue, ARGV[i])
end
return #ARGV / 2
