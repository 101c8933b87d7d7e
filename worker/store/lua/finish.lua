-- A command's terminal outcome, its watch changes and its events, all or nothing (after watch.lua and
-- publish.lua). With the delivery's dramatiq acks set and message hash, the delivery is acked as dramatiq's
-- own ack does it, once the outcome is recorded: no window in which one is done without the other. A dead
-- letter that goes with the outcome is kept in the same step, for the same reason.
-- ARGV: the fixed values below, then the watch changes (watch.lua), then the events (publish.lua).
-- Returns {1 if recorded else 0, published event types...}.
local command, inflight, retry, outbox, outbox_pending, outbox_born, watch_agreements, watch_charges,
  watch_state, watch_settled, events_queue, events_messages, dead_letters, dead_letter_index, delivery_acks,
  delivery_messages = unpack(KEYS)
local command_id, status, now, retention, events, error, command_type, create, fingerprint, payload,
  delivery_id, dead_letter_id, dead_letter = unpack(ARGV, 1, 13)

local function ack()
  if delivery_messages and redis.pcall('SREM', delivery_acks, delivery_id) == 1 then
    redis.pcall('HDEL', delivery_messages, delivery_id)
  end
end

local before = redis.call('HGET', command, 'status')
if before == 'succeeded' or before == 'failed' or before == 'rejected' or before == 'dead_lettered' then
  ack()
  return {0}
end
-- No record: a command rejected before its claim (create), or one whose claim a failover lost (the new
-- primary never had it). Either way the record keeps the fingerprint, so a resend is not taken for a reuse.
if not before and fingerprint ~= '' then
  redis.call('HSET', command, 'fingerprint', fingerprint, 'type', command_type, 'attempts', 0, 'first_attempt_ms', now)
  if create == '1' then redis.call('HSET', command, 'payload', payload) end
end
redis.call('HSET', command, 'status', status, 'events', events, 'finished_ms', now, 'error', error)
redis.call('HDEL', command, 'lease_until', 'next_attempt_ms', 'waiting')
redis.call('EXPIRE', command, retention)
redis.call('ZREM', inflight, command_id)
redis.call('ZREM', retry, command_id)
if dead_letter_id ~= '' and redis.call('HSETNX', dead_letters, dead_letter_id, dead_letter) == 1 then
  redis.call('ZADD', dead_letter_index, 'NX', now, dead_letter_id)
end
local at = apply_watch({agreements = watch_agreements, charges = watch_charges, state = watch_state,
                        settled = watch_settled}, 14, now)
local published = publish({queue = events_queue, messages = events_messages, outbox = outbox,
                           pending = outbox_pending, born = outbox_born, timeline_ttl = retention,
                           timeline_max = TIMELINE_MAX}, at, now, {1})
ack()
return published
