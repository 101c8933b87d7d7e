-- Take the members of a schedule (a sorted set scored in ms) that are due, at most limit, and push them on to
-- until, so that other takers skip them while they are handled.
local schedule = unpack(KEYS)
local now, limit, until_ms = unpack(ARGV)
local items = redis.call('ZRANGEBYSCORE', schedule, '-inf', now, 'LIMIT', 0, tonumber(limit))
for _, member in ipairs(items) do redis.call('ZADD', schedule, 'XX', until_ms, member) end
return items
