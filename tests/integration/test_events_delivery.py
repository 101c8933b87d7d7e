"""Events reach a plain dramatiq consumer, and none is lost when the relay breaks."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator
from typing import Any

import dramatiq
import pytest
import redis
from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware import CurrentMessage

from tests.integration.test_worker_lifecycle import AGREEMENT, send
from tests.stack import Events, Simulator, Worker, wait_for
from worker.core.pipeline import Delivery
from worker.runtime.broker import make_broker
from worker.runtime.process import Runtime
from worker.runtime.settings import WorkerSettings
from worker.vipps import load_settings


@pytest.fixture
def sim() -> Iterator[Simulator]:
    simulator = Simulator()
    try:
        yield simulator
    finally:
        simulator.stop()


def test_a_plain_dramatiq_actor_consumes_the_events(sim: Simulator, redis_url: str,
                                                     redis_client: redis.Redis) -> None:
    """What a billing system writes: one actor named vipps_event on the vipps.events queue."""
    received: list[tuple[str, dict[str, Any]]] = []
    broker = RedisBroker(url=redis_url, middleware=[CurrentMessage()])

    @dramatiq.actor(broker=broker, queue_name="vipps.events", actor_name="vipps_event")
    def vipps_event(event: dict[str, Any]) -> None:
        message = CurrentMessage.get_current_message()
        assert message is not None
        received.append((message.message_id, event))

    consumer = dramatiq.Worker(broker, worker_threads=1, worker_timeout=100)
    consumer.start()
    worker = Worker(redis_url, sim.url)
    try:
        send(redis_url, "consumer-create", **AGREEMENT)
        wait_for(lambda: [e for _, e in received if e["command_id"] == "consumer-create"], timeout=30,
                 what="agreement.created at the consumer")
        message_id, event = next((m, e) for m, e in received if e["command_id"] == "consumer-create")
        assert event["type"] == "agreement.created"
        assert message_id == event["event_id"]
        assert event["vipps_confirmation_url"].startswith("http")
        assert event["agreement_id"].startswith("agr_")
    finally:
        worker.stop()
        consumer.stop()
        broker.close()


def test_events_survive_a_broken_relay(sim: Simulator, redis_url: str, redis_client: redis.Redis) -> None:
    settings = WorkerSettings(charge_batch="off")  # each command carried out on its delivery
    broker = make_broker(settings, redis_url)
    runtime = Runtime(settings, broker, redis_url, load_settings(base_url=sim.url))
    # Break the relay: the events queue's message hash is taken by a value of the wrong type, so every
    # publish fails (WRONGTYPE) while commands keep finishing.
    queue_messages = f"{settings.dramatiq_namespace}:{settings.events_queue}.msgs"
    redis_client.set(queue_messages, "blocked")
    events = Events(redis_client)
    try:
        due = (dt.datetime.now(dt.UTC).date() + dt.timedelta(days=5)).isoformat()
        commands: list[dict[str, Any]] = [
            {"command_id": "relay-create", **AGREEMENT},
            {"command_id": "relay-bad", "type": "charge.create", "agreement_id": "agr_x", "amount": 1.5},
            {"command_id": "relay-missing", "type": "charge.create", "agreement_id": "agr_nope", "amount": 10000,
             "description": "x", "due": due, "retry_days": 0, "transaction_type": "DIRECT_CAPTURE"},
        ]
        for command in commands:
            command.setdefault("issued_at", dt.datetime.now(dt.UTC).isoformat())
            actor = str(command["type"]).replace(".", "_")
            outcome = runtime.pipeline.handle(Delivery(args=(command,), kwargs={}, actor=actor, queue="q",
                                                       message_id=f"m-{command['command_id']}"))
            assert outcome in ("succeeded", "rejected", "failed")
        pending, _ = runtime.relay.backlog()
        assert pending == 3
        with pytest.raises(redis.ResponseError):  # the background relay cannot publish either, yet
            runtime.relay.relay()
        assert runtime.relay.backlog()[0] == 3
        redis_client.delete(queue_messages)  # the relay is mended
        assert events.all() == []

        # The background relay (every worker process runs one) publishes everything, even several at once.
        threads = [threading.Thread(target=runtime.relay.relay) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert runtime.relay.backlog()[0] == 0
        published = events.all()
        by_command = {e["command_id"]: e["type"] for e in published}
        assert by_command == {"relay-create": "agreement.created", "relay-bad": "command.rejected",
                              "relay-missing": "command.failed"}
        assert len({e["event_id"] for e in published}) == 3
        assert runtime.relay.backlog()[0] == 0
    finally:
        runtime.stop()
        broker.close()
