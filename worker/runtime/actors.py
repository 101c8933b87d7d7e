"""The dramatiq actors: one per command type, all through the one pipeline.

Agreement commands have their own queue and a higher priority, so a stop never waits
behind a month's charge run.
"""

from __future__ import annotations

import itertools
import logging
import time
from typing import Any

import dramatiq
import redis
from dramatiq.middleware import CurrentMessage

from schemas import COMMAND_TYPES, actor_name
from worker.core.pipeline import Delivery
from worker.runtime.broker import BillingRedisBroker
from worker.runtime.process import RuntimeHolder
from worker.runtime.settings import WorkerSettings
from worker.store.keys import Layout

# Lower runs first: agreement operations before queued charges.
PRIORITY = {"agreement": 0, "charge": 10}

# While Redis is unreachable nothing can be recorded, and a failed message's retry could not be enqueued
# either (dramatiq would log that, then ack the message: lost). So the message is held, unacked, and
# carried out again from the start once Redis answers; every step is idempotent.
REDIS_OUTAGE_LIMIT_SECONDS = 25 * 60
# A failover looks like an outage: a demoted primary answers READONLY (our connections turn that into a
# ConnectionError; this is for any other), and a new primary may not hold a script yet (NOSCRIPT from a pipeline).
HELD_THROUGH = (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError, redis.ReadOnlyError,
                redis.exceptions.NoScriptError)
log = logging.getLogger("worker.runtime.actors")


def handle_holding_through_redis_outages(runtime: RuntimeHolder, broker: BillingRedisBroker,
                                         delivery: Delivery) -> None:
    started = time.monotonic()
    for attempt in itertools.count():
        try:
            runtime.get(broker).pipeline.handle(delivery)
            return
        except HELD_THROUGH:
            if time.monotonic() - started > REDIS_OUTAGE_LIMIT_SECONDS:
                raise
            if attempt == 0:
                log.warning("Redis unavailable: holding the command until it answers",
                            extra={"message_id": delivery.message_id})
            time.sleep(min(5.0, 0.1 * 2 ** attempt))


def declare(broker: BillingRedisBroker, layout: Layout, settings: WorkerSettings,
            runtime: RuntimeHolder) -> dict[str, Any]:
    """Declare one actor per command type on ``broker`` and every command queue of ``layout`` (each merchant's
    own ones too: dramatiq runs a message of any declared queue by its actor name); returns them by type."""
    for queue in layout.command_queues:
        broker.declare_queue(queue)

    def make(command_type: str) -> dramatiq.Actor[Any, Any]:
        name = actor_name(command_type)
        queue = layout.queue_for(command_type)

        def run(*args: Any, **kwargs: Any) -> None:
            message = CurrentMessage.get_current_message()
            assert message is not None
            # The consumer that fetched it (its queue: the actor's, or a merchant's own) holds it under its redis
            # id until it is acked.
            ack = broker.delivery_ack(message.queue_name, message.options["redis_message_id"])
            setattr(message, "ledger_ack", ack)  # noqa: B010 (the proxy the consumer acks; see LedgerAckingConsumer)
            delivery = Delivery(args=args, kwargs=kwargs, actor=name, queue=message.queue_name,
                                message_id=message.message_id, enqueued_ms=message.message_timestamp or None, ack=ack)
            handle_holding_through_redis_outages(runtime, broker, delivery)

        run.__name__ = name
        decorate = dramatiq.actor(actor_name=name, queue_name=queue, broker=broker,
                                  priority=PRIORITY[command_type.split(".")[0]],
                                  time_limit=int((REDIS_OUTAGE_LIMIT_SECONDS + settings.lease_seconds * 4) * 1000))
        return decorate(run)

    declared = {command_type: make(command_type) for command_type in COMMAND_TYPES}
    declared["webhook"] = declare_webhooks(broker, layout, runtime)
    return declared


def declare_webhooks(broker: BillingRedisBroker, layout: Layout, runtime: RuntimeHolder) -> dramatiq.Actor[Any, Any]:
    """The actor of verified webhook deliveries (put on their queue by the receiver): each one a hint to fetch.

    dramatiq acks it once the fetch's findings are recorded; a worker that dies first leaves it to be
    delivered again, which publishes nothing twice (the watcher compares with what was last seen)."""

    def run(delivery: dict[str, Any]) -> None:
        runtime.get(broker).hints.handle(delivery)

    run.__name__ = layout.webhooks_actor
    return dramatiq.actor(actor_name=layout.webhooks_actor, queue_name=layout.webhooks_queue, broker=broker,
                          priority=PRIORITY["agreement"], max_retries=5, min_backoff=1000, max_backoff=60_000)(run)
