-- Claim a command for one attempt (after take_slot.lua and claim_command.lua). With a budget key, the rate
-- budget slot of the call the attempt is about to make is taken too, only when the claim succeeds: one round
-- trip for both.
-- Returns {'claimed', attempts, first_attempt_ms, budget_wait_ms} or what claim_command returns otherwise.
local command, inflight, retry, heartbeats, budget = unpack(KEYS)
local fingerprint, payload, now, lease, owner, broker, heartbeat_timeout, command_id, command_type,
  budget_limit, budget_window, budget_unique = unpack(ARGV)

local claim = claim_command({command = command, inflight = inflight, retry = retry, heartbeats = heartbeats,
  fingerprint = fingerprint, payload = payload, now = tonumber(now), lease = tonumber(lease), owner = owner,
  broker = broker, heartbeat_timeout = tonumber(heartbeat_timeout), command_id = command_id,
  command_type = command_type})
if claim[1] == 'claimed' then
  local wait = 0
  if budget then wait = take_slot(budget, tonumber(budget_limit), tonumber(budget_window), budget_unique) end
  claim[4] = wait
end
return claim
