"""The dramatiq actors: one per command type, all through the one pipeline.

Imported by the dramatiq CLI as the worker's broker module (``vipps-billing worker``
runs ``dramatiq worker.runtime.actors``). Agreement commands have their own queue and a
higher priority, so a stop never waits behind a month's charge run.
"""

from __future__ import annotations

import itertools
import logging
import os
import time
from collections.abc import Callable
from typing import Any

import dramatiq
import redis
from dramatiq.middleware import CurrentMessage
from dramatiq.middleware.prometheus import Prometheus

from schemas import COMMAND_TYPES, actor_name
from worker.core.pipeline import Delivery
from worker.runtime.broker import make_broker, queue_for
from worker.runtime.logs import configure
from worker.runtime.process import RuntimeMiddleware, get_runtime
from worker.runtime.settings import get_settings


class PrometheusMetrics(Prometheus):
    """dramatiq's metrics, served by our own endpoint (worker.runtime.http) instead of its fork."""

    @property
    def forks(self) -> list[Callable[[], int]]:
        return []


settings = get_settings()
configure(settings.log_level)
redis_url = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"
broker = make_broker(settings, redis_url,
                     extra_middleware=[PrometheusMetrics(), RuntimeMiddleware(settings, redis_url)])
dramatiq.set_broker(broker)

# Lower runs first: agreement operations before queued charges.
PRIORITY = {"agreement": 0, "charge": 10}

# While Redis is unreachable nothing can be recorded, and a failed message's retry could not be enqueued
# either (dramatiq would log that, then ack the message: lost). So the message is held, unacked, and
# carried out again from the start once Redis answers; every step is idempotent.
REDIS_OUTAGE_LIMIT_SECONDS = 25 * 60
log = logging.getLogger("worker.runtime.actors")


def handle_holding_through_redis_outages(delivery: Delivery) -> None:
    started = time.monotonic()
    for attempt in itertools.count():
        try:
            get_runtime().pipeline.handle(delivery)
            return
        except (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError):
            if time.monotonic() - started > REDIS_OUTAGE_LIMIT_SECONDS:
                raise
            if attempt == 0:
                log.warning("Redis unavailable: holding the command until it answers",
                            extra={"message_id": delivery.message_id})
            time.sleep(min(5.0, 0.1 * 2 ** attempt))


def _make_actor(command_type: str) -> dramatiq.Actor[Any, Any]:
    name = actor_name(command_type)
    queue = queue_for(command_type, settings)

    def run(*args: Any, **kwargs: Any) -> None:
        message = CurrentMessage.get_current_message()
        assert message is not None
        # The consumer that fetched it (this actor's queue) holds it under its redis id until it is acked.
        ack = broker.delivery_ack(queue, message.options["redis_message_id"])
        setattr(message, "ledger_ack", ack)  # noqa: B010 (the proxy the consumer acks; see LedgerAckingConsumer)
        delivery = Delivery(args=args, kwargs=kwargs, actor=name, queue=queue, message_id=message.message_id,
                            enqueued_ms=message.message_timestamp or None, ack=ack)
        handle_holding_through_redis_outages(delivery)

    run.__name__ = name
    decorate = dramatiq.actor(actor_name=name, queue_name=queue, priority=PRIORITY[command_type.split(".")[0]],
                              time_limit=int((REDIS_OUTAGE_LIMIT_SECONDS + settings.lease_seconds * 4) * 1000))
    return decorate(run)


ACTORS = {command_type: _make_actor(command_type) for command_type in COMMAND_TYPES}
