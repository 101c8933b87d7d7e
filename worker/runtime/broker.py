"""The dramatiq broker, tuned for billing, and the message encoder.

- A SIGKILLed worker's messages come back within seconds: short heartbeat timeout
  and a much higher maintenance chance than dramatiq's defaults (60 s, 0.1 %).
- dramatiq's own dead-letter queue keeps messages as long as our dead-letter store.
- A message that cannot be decoded becomes an ``__undecodable__`` message instead
  of crashing the consumer thread, so it ends in the dead letters (see
  ``PoisonTolerantEncoder``).
- A command's outcome and the ack of its delivery are one Lua step (``Ledger.finish``
  with a ``DeliveryAck``); the consumer then skips dramatiq's own ack round trip.
- Messages fetched but held by nobody in this process (a consumer replaced after a Redis
  restart) are found (``orphans``) and put back on their queue by the runtime.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from dramatiq.brokers.redis import RedisBroker, _RedisConsumer
from dramatiq.encoder import JSONEncoder
from dramatiq.middleware import AgeLimit, CurrentMessage, Retries, ShutdownNotifications, TimeLimit

from worker.runtime.settings import WorkerSettings
from worker.store.connection import Where, connect
from worker.store.keys import DramatiqKeys
from worker.store.ledger import DeliveryAck

UNDECODABLE_ACTOR = "__undecodable__"
_REDIS_ID = re.compile(rb'"redis_message_id"\s*:\s*"([0-9a-f-]{36})"')


class PoisonTolerantEncoder(JSONEncoder):
    def decode(self, data: bytes) -> Any:
        try:
            fields = super().decode(data)
            if _well_formed(fields):
                return fields
        except Exception:  # anything undecodable is handled below
            pass
        found = _REDIS_ID.search(data) if isinstance(data, bytes) else None
        return {
            "queue_name": UNDECODABLE_ACTOR, "actor_name": UNDECODABLE_ACTOR,
            "args": [data.decode("utf-8", "replace")[:16_384] if isinstance(data, bytes) else str(data)[:16_384]],
            "kwargs": {}, "options": {"redis_message_id": found.group(1).decode() if found else ""},
            "message_id": hashlib.sha256(data if isinstance(data, bytes) else str(data).encode()).hexdigest()[:32],
            "message_timestamp": 0,
        }


def poison_digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:32]


def is_decodable(data: bytes) -> bool:
    try:
        fields = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return False
    return _well_formed(fields)


def _well_formed(fields: Any) -> bool:
    """A dramatiq Redis message: every field, and the id it is stored and acknowledged under."""
    return (isinstance(fields, dict)
            and {"queue_name", "actor_name", "args", "kwargs", "options", "message_id",
                 "message_timestamp"} <= fields.keys()
            and isinstance(fields["options"], dict) and isinstance(fields["options"].get("redis_message_id"), str))



class LedgerAckingConsumer(_RedisConsumer):
    """dramatiq's Redis consumer, except that a delivery the ledger already acked is not acked again.

    It also tells the broker which deliveries it handed out, so that ``BillingRedisBroker.orphans`` can
    find fetched messages nobody holds any more.
    """

    broker: BillingRedisBroker

    def __next__(self) -> Any:
        proxy = super().__next__()
        if proxy is not None:
            self.broker.delivered.add(str(proxy.options.get("redis_message_id")))
        return proxy

    def ack(self, message: Any) -> None:
        self.broker.delivered.discard(str(message.options.get("redis_message_id")))
        ack = getattr(message, "ledger_ack", None)
        if isinstance(ack, DeliveryAck) and ack.done:
            self.queued_message_ids.discard(message.message_id)
            return
        super().ack(message)

    def nack(self, message: Any) -> None:
        self.broker.delivered.discard(str(message.options.get("redis_message_id")))
        super().nack(message)

    def cached(self) -> set[str]:
        """Redis ids of messages fetched and not yet handed out."""
        return {m.group(1).decode() for data in list(self.message_cache) if isinstance(data, bytes)
                for m in [_REDIS_ID.search(data)] if m}


class BillingRedisBroker(RedisBroker):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.delivered: set[str] = set()  # redis ids handed to this process's workers and not yet acked
        self.keys = DramatiqKeys(self.namespace)

    @property
    def consumer_class(self) -> type[_RedisConsumer]:
        return LedgerAckingConsumer

    def orphans(self, queue_name: str, consumer: LedgerAckingConsumer | None) -> set[str]:
        """Messages in this process's acks set of the queue that no worker and no consumer holds.

        dramatiq's fetch moves ids into the acks set in Redis; when the reply is lost, or the consumer is
        replaced after a connection error (a Redis restart), the prefetched ones stay there while this
        process's heartbeat keeps them from being recovered by maintenance: nothing would ever run them.
        """
        held = set(self.delivered) | (consumer.cached() if consumer is not None else set())
        acked = self.client.smembers(self.acks_key(queue_name))
        return {m.decode() if isinstance(m, bytes) else str(m) for m in acked} - held

    def acks_key(self, queue_name: str) -> str:
        """Where this process's consumer of ``queue_name`` holds fetched messages until they are acked."""
        return self.keys.acks(self.broker_id, queue_name)

    def delivery_ack(self, queue_name: str, redis_message_id: str) -> DeliveryAck:
        """Where this process's consumer of ``queue_name`` holds the message until it is acked (dispatch.lua)."""
        return DeliveryAck(acks_key=self.acks_key(queue_name),
                           messages_key=self.keys.messages(queue_name), redis_message_id=redis_message_id)


def make_broker(settings: WorkerSettings, url: Where, *,
                extra_middleware: list[Any] | None = None) -> BillingRedisBroker:
    # dramatiq's Retries covers only unexpected exceptions; Vipps's transient failures are retried by the
    # pipeline's own durable schedule (worker.core.retry).
    middleware = [AgeLimit(), TimeLimit(), ShutdownNotifications(),
                  Retries(max_retries=3, min_backoff=1000, max_backoff=30_000), CurrentMessage()]
    broker = BillingRedisBroker(client=connect(url), namespace=settings.dramatiq_namespace,
                         heartbeat_timeout=settings.heartbeat_timeout_ms,
                         maintenance_chance=settings.maintenance_chance,
                         dead_message_ttl=settings.dead_letter_retention_days * 86_400_000,
                         middleware=middleware + (extra_middleware or []))
    return broker

