-- claim_command(C): claim a command for one attempt. C holds the keys (command, inflight, retry, heartbeats)
-- and the values (fingerprint, payload, now, lease, owner, broker, heartbeat_timeout, command_id,
-- command_type); now, lease and heartbeat_timeout are numbers.
-- Returns {'claimed', attempts, first_attempt_ms} | {'done', status, events_json} | {'busy', ms_left, 0}
--       | {'wait', ms_left, 0} | {'mismatch', 0, 0}.
local function claim_command(C)
  local status = redis.call('HGET', C.command, 'status')
  if not status then
    redis.call('HSET', C.command, 'fingerprint', C.fingerprint, 'payload', C.payload, 'type', C.command_type,
               'status', 'in_progress', 'owner', C.owner, 'broker', C.broker, 'lease_until', C.now + C.lease,
               'attempts', 1, 'first_attempt_ms', C.now)
    redis.call('ZADD', C.inflight, C.now + C.lease, C.command_id)
    return {'claimed', 1, C.now}
  end
  if redis.call('HGET', C.command, 'fingerprint') ~= C.fingerprint then
    return {'mismatch', 0, 0}
  end
  if status == 'succeeded' or status == 'failed' or status == 'rejected' or status == 'dead_lettered' then
    return {'done', status, redis.call('HGET', C.command, 'events') or '[]'}
  end
  if status == 'batched' then
    -- Waiting in its merchant's charge batch: the batch sender carries it out.
    return {'busy', 0, 0}
  end
  if status == 'in_progress' then
    local lease_until = tonumber(redis.call('HGET', C.command, 'lease_until'))
    local holder = redis.call('HGET', C.command, 'broker')
    local alive = lease_until > C.now
    if alive and holder ~= C.broker then
      -- A holder whose process stopped beating is dead, whatever its lease says.
      local beat = redis.call('ZSCORE', C.heartbeats, holder)
      if beat and tonumber(beat) < C.now - C.heartbeat_timeout then alive = false end
    end
    if alive and redis.call('HGET', C.command, 'owner') ~= C.owner then
      return {'busy', lease_until - C.now, 0}
    end
  elseif status == 'retry_wait' then
    local next_ms = tonumber(redis.call('HGET', C.command, 'next_attempt_ms'))
    if next_ms > C.now then return {'wait', next_ms - C.now, 0} end
  end
  local attempts = redis.call('HINCRBY', C.command, 'attempts', 1)
  redis.call('HSET', C.command, 'status', 'in_progress', 'owner', C.owner, 'broker', C.broker,
             'lease_until', C.now + C.lease)
  redis.call('ZADD', C.inflight, C.now + C.lease, C.command_id)
  redis.call('ZREM', C.retry, C.command_id)
  return {'claimed', attempts, tonumber(redis.call('HGET', C.command, 'first_attempt_ms'))}
end
