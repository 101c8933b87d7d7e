-- Claim a command for one attempt (after take_slot.lua). With a budget key, the rate budget slot of the
-- call the attempt is about to make is taken too, only when the claim succeeds: one round trip for both.
-- Returns {'claimed', attempts, first_attempt_ms, budget_wait_ms} | {'done', status, events_json}
--       | {'busy', ms_left, 0} | {'wait', ms_left, 0} | {'mismatch', 0, 0}.
local command, inflight, retry, heartbeats, budget = unpack(KEYS)
local fingerprint, payload, now, lease, owner, broker, heartbeat_timeout, command_id, command_type,
  budget_limit, budget_window, budget_unique = unpack(ARGV)
now, lease, heartbeat_timeout = tonumber(now), tonumber(lease), tonumber(heartbeat_timeout)

local function claimed(attempts, first)
  local wait = 0
  if budget then wait = take_slot(budget, tonumber(budget_limit), tonumber(budget_window), budget_unique) end
  return {'claimed', attempts, first, wait}
end

local status = redis.call('HGET', command, 'status')
if not status then
  redis.call('HSET', command, 'fingerprint', fingerprint, 'payload', payload, 'type', command_type,
             'status', 'in_progress', 'owner', owner, 'broker', broker, 'lease_until', now + lease, 'attempts', 1,
             'first_attempt_ms', now)
  redis.call('ZADD', inflight, now + lease, command_id)
  return claimed(1, now)
end
if redis.call('HGET', command, 'fingerprint') ~= fingerprint then
  return {'mismatch', 0, 0}
end
if status == 'succeeded' or status == 'failed' or status == 'rejected' or status == 'dead_lettered' then
  return {'done', status, redis.call('HGET', command, 'events') or '[]'}
end
if status == 'in_progress' then
  local lease_until = tonumber(redis.call('HGET', command, 'lease_until'))
  local holder = redis.call('HGET', command, 'broker')
  local alive = lease_until > now
  if alive and holder ~= broker then
    -- A holder whose process stopped beating is dead, whatever its lease says.
    local beat = redis.call('ZSCORE', heartbeats, holder)
    if beat and tonumber(beat) < now - heartbeat_timeout then alive = false end
  end
  if alive and redis.call('HGET', command, 'owner') ~= owner then
    return {'busy', lease_until - now, 0}
  end
elseif status == 'retry_wait' then
  local next_ms = tonumber(redis.call('HGET', command, 'next_attempt_ms'))
  if next_ms > now then return {'wait', next_ms - now, 0} end
end
local attempts = redis.call('HINCRBY', command, 'attempts', 1)
redis.call('HSET', command, 'status', 'in_progress', 'owner', owner, 'broker', broker, 'lease_until', now + lease)
redis.call('ZADD', inflight, now + lease, command_id)
redis.call('ZREM', retry, command_id)
return claimed(attempts, tonumber(redis.call('HGET', command, 'first_attempt_ms')))
