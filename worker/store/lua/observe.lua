-- Events and watch changes of an observation (a poll, a fetch, a rejected delivery), all or nothing (after
-- watch.lua and publish.lua). ARGV: now, retention (s), then the watch changes, then the events. Returns the
-- published types.
local outbox, outbox_pending, outbox_born, watch_agreements, watch_charges, watch_state, watch_settled,
  events_queue, events_messages = unpack(KEYS)
local now, retention = ARGV[1], ARGV[2]
local at = apply_watch({agreements = watch_agreements, charges = watch_charges, state = watch_state,
                        settled = watch_settled}, 3, now)
return publish({queue = events_queue, messages = events_messages, outbox = outbox, pending = outbox_pending,
                born = outbox_born, timeline_ttl = retention, timeline_max = TIMELINE_MAX}, at, now, {})
