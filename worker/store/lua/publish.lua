-- publish(P, at, now, published): the events in ARGV from index at to the end, (event_id, redis_message_id,
-- message, type, timeline key, event JSON) each, onto the events queue as dramatiq's enqueue puts them (HSET
-- message, RPUSH id). One whose publish fails (a foreign value under the queue's key, say) goes into the
-- outbox, pending from now, for the relay. Either way the event joins its resource's timeline (the support
-- history), which keeps the last P.timeline_max events for P.timeline_ttl seconds. Call it last in a script,
-- so a failure before it publishes nothing. Appends the published types to the table published.
-- P holds the keys: queue, messages, outbox, pending, born; and timeline_ttl, timeline_max.
local TIMELINE_MAX = 500  -- events kept per resource

local function publish(P, at, now, published)
  for i = at, #ARGV, 6 do
    local ok = redis.pcall('HSET', P.messages, ARGV[i + 1], ARGV[i + 2])
    if type(ok) == 'number' then
      ok = redis.pcall('RPUSH', P.queue, ARGV[i + 1])
      if type(ok) ~= 'number' then redis.pcall('HDEL', P.messages, ARGV[i + 1]) end
    end
    if type(ok) == 'number' then
      published[#published + 1] = ARGV[i + 3]
    else
      redis.call('HSET', P.outbox, ARGV[i], ARGV[i + 2])
      redis.call('ZADD', P.pending, now, ARGV[i])
      redis.call('ZADD', P.born, 'NX', now, ARGV[i])
    end
    local timeline = ARGV[i + 4]
    if timeline ~= '' then
      redis.call('ZADD', timeline, 'NX', now, ARGV[i + 5])  -- a re-published event is the same JSON: once
      redis.call('ZREMRANGEBYRANK', timeline, 0, -P.timeline_max - 1)
      redis.call('EXPIRE', timeline, P.timeline_ttl)
    end
  end
  return published
end
