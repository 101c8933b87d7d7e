"""The outbox relay: publishes events that could not go onto the events queue at once.

The ledger publishes a command's events in the same Lua step as its outcome; an
event whose publish failed there waits in the outbox, already encoded as the
dramatiq message it will become (``message_id`` = ``event_id``). The relay (a
background loop in every worker process) moves due entries onto the events queue
in one atomic step, exactly as dramatiq's own enqueue does (HSET the message,
RPUSH its id), so a relay that dies half-way publishes nothing twice. Consumers
still deduplicate on ``event_id``: a finished command that is delivered again
re-publishes its events.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import redis

from worker.store.eventqueue import EventQueue
from worker.store.keys import Keys
from worker.store.ledger import now_ms

_RELAY = """
local pending, born, outbox, queue, messages = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local ids = redis.call('ZRANGEBYSCORE', pending, '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
local types = {}
for _, id in ipairs(ids) do
  local message = redis.call('HGET', outbox, id)
  local ok, decoded = pcall(cjson.decode, message or 'null')
  if message and not (ok and type(decoded) == 'table' and decoded.options and decoded.options.redis_message_id) then
    -- Not a message (should never happen): park it for a day rather than block the queue behind it.
    redis.call('ZADD', pending, tonumber(ARGV[1]) + 86400000, id)
  else
    if message then
      redis.call('HSET', messages, decoded.options.redis_message_id, message)
      redis.call('RPUSH', queue, decoded.options.redis_message_id)
      types[#types + 1] = decoded.args[1].type
      redis.call('HDEL', outbox, id)
    end
    redis.call('ZREM', pending, id)
    redis.call('ZREM', born, id)
  end
end
return types
"""


class Relay:
    def __init__(self, client: redis.Redis, keys: Keys, events: EventQueue,
                 on_published: Callable[[str], None] | None = None) -> None:
        self.redis = client
        self.keys = keys
        self.on_published = on_published
        self._keys = [keys.outbox_pending, keys.outbox_born, keys.outbox, *events.keys]
        self._relay = client.register_script(_RELAY)

    def relay(self, limit: int = 500) -> int:
        """Publish every due event (up to ``limit``); returns how many were published."""
        return self._published(self._relay(keys=self._keys, args=[now_ms(), limit]))

    def _published(self, types: list[Any]) -> int:
        if self.on_published:
            for kind in types:
                self.on_published(kind.decode() if isinstance(kind, bytes) else str(kind))
        return len(types)

    def backlog(self) -> tuple[int, float]:
        """(pending events, age in seconds of the oldest)."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.zcard(self.keys.outbox_born)
        pipe.zrange(self.keys.outbox_born, 0, 0, withscores=True)
        count, oldest = pipe.execute()
        age = max(0.0, (now_ms() - oldest[0][1]) / 1000) if oldest else 0.0
        return int(count), age
