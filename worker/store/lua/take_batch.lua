-- Take up to `limit` parked charge.create commands of one merchant's batch, oldest first, for one send: each
-- goes back to 'in_progress' under this sender with a lease (a sender that dies leaves them to the sweeper,
-- which re-drives them). A command that is no longer parked (finished meanwhile) is skipped.
-- Returns {ref, payload, attempts, first_attempt_ms, ...}.
local batch, inflight = unpack(KEYS)
local command_prefix, now, limit, lease, owner, broker = unpack(ARGV)
now, limit, lease = tonumber(now), tonumber(limit), tonumber(lease)

local taken = {}
local refs = redis.call('ZRANGE', batch, 0, limit - 1)
if #refs == 0 then return taken end
redis.call('ZREM', batch, unpack(refs))
for _, ref in ipairs(refs) do
  local command = command_prefix .. ref
  if redis.call('HGET', command, 'status') == 'batched' then
    redis.call('HSET', command, 'status', 'in_progress', 'owner', owner, 'broker', broker,
               'lease_until', now + lease)
    redis.call('ZADD', inflight, now + lease, ref)
    local record = redis.call('HMGET', command, 'payload', 'attempts', 'first_attempt_ms')
    taken[#taken + 1] = ref
    taken[#taken + 1] = record[1]
    taken[#taken + 1] = record[2]
    taken[#taken + 1] = record[3]
  end
end
return taken
