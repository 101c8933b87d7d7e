"""Verified webhook deliveries on their way to the worker: one dramatiq message each, deduplicated.

The receiver puts each genuine delivery on the webhooks queue (``vipps.webhooks``, actor
``webhook_received``) in one step with its dedupe key, so a delivery Vipps sends twice (a retry, two
overlapping registrations) is carried out once, and a receiver crash after the write loses nothing:
Vipps's retry finds the key and is answered 200. The worker treats each one as a hint (it fetches what
the delivery names), so an order or duplicate that slips through changes no outcome.
"""

from __future__ import annotations

import hashlib
from typing import Any, NamedTuple

import redis

from worker.store import scripts
from worker.store.clock import now_ms
from worker.store.keys import Layout
from worker.store.messages import encode_message
from worker.store.replication import Replicas
from worker.store.replies import text

# Vipps retries a delivery for up to 7 days; a day more covers clock skew and the last retry's round.
SEEN_SECONDS = 8 * 86_400


class OnceKeys(NamedTuple):
    queue: str
    messages: str
    dedupe: str
    stats: str


def body_digest(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


class WebhookQueue:
    def __init__(self, client: redis.Redis, layout: Layout, *, seen_seconds: int = SEEN_SECONDS,
                 replicas: Replicas | None = None) -> None:
        self.redis = client
        self.layout = layout
        self.seen_seconds = seen_seconds
        # Vipps does not send a delivery again once it was answered 200: with replicas to wait for
        # (REDIS_WAIT_REPLICAS), ``add`` returns only when they hold it, and raises NotReplicated otherwise.
        self.replicas = replicas or Replicas()
        self._enqueue_once = scripts.register(client, "enqueue_once")

    def add(self, body: bytes, delivery: dict[str, Any]) -> bool:
        """Queue a verified delivery (``delivery``: what the worker needs, e.g. the parsed payload, its
        registration and when it arrived) unless the same body was queued before; True if new."""
        digest = body_digest(body)
        layout, dq = self.layout, self.layout.dramatiq
        redis_id, message = encode_message(layout.webhooks_queue, layout.webhooks_actor,
                                           delivery | {"digest": digest}, message_id=digest)
        keys = OnceKeys(dq.queue(layout.webhooks_queue), dq.messages(layout.webhooks_queue),
                        layout.keys.webhook_seen(digest), layout.keys.webhook_stats)
        args: list[str | bytes | int] = [redis_id, message, self.seen_seconds, now_ms(),
                                         str(delivery.get("registration") or "-")]
        # The script always writes (the stats), so the WAIT after it also covers a first copy of a duplicate
        # that an earlier answer left unreplicated.
        new, acknowledged = self.replicas.run(self.redis, self._enqueue_once, list(keys), args)
        self.replicas.check(acknowledged, [digest])
        return bool(new)

    def rejected(self, reason: str) -> None:
        """Count a delivery the receiver refused (``reason``: a fixed label, never input)."""
        self.redis.hincrby(self.layout.keys.webhook_stats, f"rejected:{reason}", 1)

    def last_delivery_ms(self) -> int | None:
        """When a genuine delivery last arrived, if ever."""
        value = self.redis.hget(self.layout.keys.webhook_stats, "last_ms")
        return int(value) if value else None

    def stats(self) -> dict[str, int]:
        """The counts and times of the stats hash (see ``Keys.webhook_stats``)."""
        return {text(k): int(v) for k, v in self.redis.hgetall(self.layout.keys.webhook_stats).items()}
