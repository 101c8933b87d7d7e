"""The outbox relay: moves recorded events onto the events queue.

Events are written to the outbox in the same Lua step as the command's outcome
(see ``ledger``), already encoded as the dramatiq messages they will become
(``message_id`` = ``event_id``). Relaying is a second atomic step that moves due
entries from the outbox onto the events queue exactly as dramatiq's own enqueue
does (HSET the message, RPUSH its id). If relaying fails, the events stay in the
outbox and the next pass (inline after a command, or the background loop)
moves them. Consumers still deduplicate on ``event_id``: a finished command that
is delivered again re-publishes its events.
"""

from __future__ import annotations

import functools
import json
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

import redis

from worker.keys import Keys
from worker.ledger import FollowUp, now_ms

log = logging.getLogger("worker.outbox")

_RELAY = """
local pending, born, outbox, queue, messages = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local ids
if ARGV[1] == 'due' then
  ids = redis.call('ZRANGEBYSCORE', pending, '-inf', ARGV[2], 'LIMIT', 0, tonumber(ARGV[3]))
else
  ids = {}
  for i = 3, #ARGV do ids[#ids + 1] = ARGV[i] end
end
local types = {}
for _, id in ipairs(ids) do
  local message = redis.call('HGET', outbox, id)
  local ok, decoded = pcall(cjson.decode, message or 'null')
  if message and not (ok and type(decoded) == 'table' and decoded.options and decoded.options.redis_message_id) then
    -- Not a message (should never happen): park it for a day rather than block the queue behind it.
    redis.call('ZADD', pending, tonumber(ARGV[2] or 0) + 86400000, id)
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


def encoder(queue: str, actor: str) -> Callable[[dict[str, Any]], str]:
    return functools.partial(event_message, queue=queue, actor=actor)


def event_message(event: dict[str, Any], *, queue: str, actor: str) -> str:
    """The dramatiq message (JSON, as dramatiq's JSONEncoder writes it) that carries an event."""
    return json.dumps({
        "queue_name": queue, "actor_name": actor, "args": [event], "kwargs": {},
        "options": {"redis_message_id": str(uuid.uuid4())}, "message_id": event["event_id"],
        "message_timestamp": int(time.time() * 1000),
    }, separators=(",", ":"))


class Relay:
    def __init__(self, client: redis.Redis, keys: Keys, *, namespace: str, queue: str, actor: str,
                 on_published: Callable[[str], None] | None = None) -> None:
        self.redis = client
        self.keys = keys
        self.queue = queue
        self.actor = actor
        self.on_published = on_published
        self._queue_keys = [keys.outbox_pending, keys.outbox_born, keys.outbox, f"{namespace}:{queue}",
                            f"{namespace}:{queue}.msgs"]
        self._relay = client.register_script(_RELAY)
        self.encode = encoder(queue, actor)

    def relay(self, limit: int = 500) -> int:
        """Publish every due event (up to ``limit``); returns how many were published."""
        return self._published(self._relay(keys=self._queue_keys, args=["due", now_ms(), limit]))

    def relay_events(self, event_ids: list[str]) -> int:
        """Publish these events now (right after their command finished)."""
        if not event_ids:
            return 0
        return self._published(self._relay(keys=self._queue_keys, args=["ids", now_ms(), *event_ids]))

    def follow_up(self, event_ids: list[str]) -> FollowUp:
        """Relaying these events as the step after their command's outcome (one round trip for both)."""
        args: list[str | int] = ["ids", now_ms(), *event_ids]
        return FollowUp(sha=self._relay.sha, keys=self._queue_keys, args=args,
                        run=lambda: self._relay(keys=self._queue_keys, args=args), done=self._followed)

    def _followed(self, result: Any) -> None:
        if isinstance(result, Exception):
            log.error("inline relay failed; the background relay will publish", extra={"error": repr(result)})
        else:
            self._published(result)

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
