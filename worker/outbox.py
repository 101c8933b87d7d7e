"""The outbox relay: moves recorded events onto the events queue.

Events are written to the outbox in the same Lua step as the command's outcome
(see ``ledger``). The relay takes a batch under a short lease, enqueues each as a
dramatiq message whose ``message_id`` is the ``event_id``, then deletes it. A
crash between enqueue and delete publishes again later: delivery is at least
once and consumers deduplicate on ``event_id``.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any

import redis
from dramatiq import Broker, Message

from worker.keys import Keys
from worker.ledger import now_ms, take_due

log = logging.getLogger("worker.outbox")

LEASE_MS = 30_000       # a relay that dies mid-batch leaves its events to others after this
RETRY_MS = 500          # a relay whose publish failed hands its events back this soon


class Relay:
    def __init__(self, client: redis.Redis, keys: Keys, broker: Broker, *, queue: str, actor: str,
                 on_published: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.redis = client
        self.keys = keys
        self.broker = broker
        self.queue = queue
        self.actor = actor
        self.on_published = on_published

    def relay(self, limit: int = 200) -> int:
        """Publish what is due; returns how many were published."""
        ids = take_due(self.redis, self.keys.outbox_pending, now=now_ms(), limit=limit, push_ms=LEASE_MS)
        if not ids:
            return 0
        payloads = self.redis.hmget(self.keys.outbox, ids)
        done: list[str] = []
        try:
            for event_id, raw in zip(ids, payloads, strict=True):
                if raw is not None:
                    event = json.loads(raw)
                    self.broker.enqueue(self.message(event))
                    if self.on_published:
                        self.on_published(event)
                done.append(event_id)
        finally:
            published = set(done)
            undone = [i for i in ids if i not in published]
            if undone:
                self.redis.zadd(self.keys.outbox_pending, dict.fromkeys(undone, now_ms() + RETRY_MS), xx=True)
            if done:
                pipe = self.redis.pipeline(transaction=True)
                pipe.zrem(self.keys.outbox_pending, *done)
                pipe.zrem(self.keys.outbox_born, *done)
                pipe.hdel(self.keys.outbox, *done)
                pipe.execute()
        return len(done)

    def message(self, event: dict[str, Any]) -> Message[Any]:
        return Message(queue_name=self.queue, actor_name=self.actor, args=(event,), kwargs={}, options={},
                       message_id=event["event_id"], message_timestamp=int(time.time() * 1000))

    def backlog(self) -> tuple[int, float]:
        """(pending events, age in seconds of the oldest)."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.zcard(self.keys.outbox_born)
        pipe.zrange(self.keys.outbox_born, 0, 0, withscores=True)
        count, oldest = pipe.execute()
        age = max(0.0, (now_ms() - oldest[0][1]) / 1000) if oldest else 0.0
        return int(count), age
