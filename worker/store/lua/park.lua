-- Claim a charge.create and park it in its merchant's charge batch, acking its delivery, in one step (after
-- claim_command.lua): from here the batch sender owns it (status 'batched', no lease), so a crash of this
-- worker loses nothing and a redelivery finds it busy.
-- Returns {'parked', attempts, first_attempt_ms} or what claim_command returns otherwise.
local command, inflight, retry, heartbeats, batch, delivery_acks, delivery_messages = unpack(KEYS)
local fingerprint, payload, now, lease, owner, broker, heartbeat_timeout, command_id, command_type,
  delivery_id = unpack(ARGV)

local claim = claim_command({command = command, inflight = inflight, retry = retry, heartbeats = heartbeats,
  fingerprint = fingerprint, payload = payload, now = tonumber(now), lease = tonumber(lease), owner = owner,
  broker = broker, heartbeat_timeout = tonumber(heartbeat_timeout), command_id = command_id,
  command_type = command_type})
if claim[1] ~= 'claimed' then return claim end
redis.call('HSET', command, 'status', 'batched', 'parked_ms', now)
redis.call('HDEL', command, 'lease_until')
redis.call('ZREM', inflight, command_id)
redis.call('ZADD', batch, 'NX', now, command_id)
if delivery_messages and redis.call('SREM', delivery_acks, delivery_id) == 1 then
  redis.call('HDEL', delivery_messages, delivery_id)
end
claim[1] = 'parked'
return claim
