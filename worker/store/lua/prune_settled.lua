-- Forget what was seen of resources settled before older_than (ms), at most limit of them. Returns how many.
local settled, state = unpack(KEYS)
local older_than, limit = unpack(ARGV)
local old = redis.call('ZRANGEBYSCORE', settled, '-inf', older_than, 'LIMIT', 0, tonumber(limit))
for _, member in ipairs(old) do
  redis.call('HDEL', state, member)
  redis.call('ZREM', settled, member)
end
return #old
