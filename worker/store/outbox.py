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
from typing import Any, NamedTuple

import redis

from worker.store import scripts
from worker.store.clock import now_ms
from worker.store.eventqueue import EventQueue
from worker.store.keys import Layout
from worker.store.replies import text


class RelayKeys(NamedTuple):
    pending: str
    born: str
    outbox: str
    queue: str
    messages: str



class Relay:
    def __init__(self, client: redis.Redis, layout: Layout,
                 on_published: Callable[[str], None] | None = None) -> None:
        self.redis = client
        self.keys = layout.keys
        self.on_published = on_published
        events = EventQueue(layout)
        self._keys = list(RelayKeys(self.keys.outbox_pending, self.keys.outbox_born, self.keys.outbox, events.queue,
                                    events.messages))
        self._relay = scripts.register(client, "relay")

    def relay(self, limit: int = 500) -> int:
        """Publish every due event (up to ``limit``); returns how many were published."""
        return self._published(self._relay(keys=self._keys, args=[now_ms(), limit]))

    def _published(self, types: list[Any]) -> int:
        if self.on_published:
            for kind in types:
                self.on_published(text(kind))
        return len(types)

    def backlog(self) -> tuple[int, float]:
        """(pending events, age in seconds of the oldest)."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.zcard(self.keys.outbox_born)
        pipe.zrange(self.keys.outbox_born, 0, 0, withscores=True)
        count, oldest = pipe.execute()
        age = max(0.0, (now_ms() - oldest[0][1]) / 1000) if oldest else 0.0
        return int(count), age
