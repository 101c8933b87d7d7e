from __future__ import annotations

import json

import dramatiq
import redis

from worker.runtime.broker import UNDECODABLE_ACTOR, PoisonTolerantEncoder, make_broker
from worker.runtime.settings import WorkerSettings
from worker.store.keys import Layout
from worker.store.ledger import Ledger


def test_undecodable_bytes_become_a_dead_letter_message() -> None:
    encoder = PoisonTolerantEncoder()
    good = {"queue_name": "q", "actor_name": "a", "args": [], "kwargs": {}, "options": {"redis_message_id": "r"},
            "message_id": "m", "message_timestamp": 1}
    assert encoder.decode(json.dumps(good).encode()) == good
    # Without the id it is stored under, dramatiq could never acknowledge it: a dead letter, not a stuck message.
    unackable = {**good, "options": {}}
    assert encoder.decode(json.dumps(unackable).encode())["actor_name"] == UNDECODABLE_ACTOR
    broken = b'{"options": {"redis_message_id": "0b5e6c0e-9c7f-4b43-8d3e-2f1a3c4d5e6f"}, \xff\xfe'
    message = encoder.decode(broken)
    assert message["actor_name"] == UNDECODABLE_ACTOR
    assert message["options"]["redis_message_id"] == "0b5e6c0e-9c7f-4b43-8d3e-2f1a3c4d5e6f"
    assert encoder.decode(b"[1, 2]")["actor_name"] == UNDECODABLE_ACTOR


def test_the_outcome_acks_the_delivery_and_the_consumer_skips_its_own_ack(redis_client: redis.Redis,
                                                                          redis_url: str) -> None:
    broker = make_broker(WorkerSettings(dramatiq_namespace="t-ack"), redis_url)
    try:
        message = dramatiq.Message(queue_name="q", actor_name="a", args=({"x": 1},), kwargs={}, options={})
        broker.declare_queue("q")
        broker.enqueue(message)
        consumer = broker.consume("q", prefetch=1, timeout=100)
        delivered = next(item for item in iter(consumer) if item is not None)
        ack = broker.delivery_ack("q", delivered.options["redis_message_id"])
        assert redis_client.sismember(ack.acks_key, ack.redis_message_id)  # held until acked
        assert redis_client.hexists(ack.messages_key, ack.redis_message_id)

        ledger = Ledger(redis_client, WorkerSettings(key_prefix="t").layout(), heartbeat_timeout_ms=1000,
                        retention_seconds=60)
        command = {"command_id": "acked", "type": "charge.fetch", "issued_at": "now"}
        ledger.claim(command, owner="m1", broker_id=broker.broker_id, lease_ms=10_000)
        assert ledger.finish(command, status="succeeded", events=[], ack=ack)
        assert ack.done
        assert not redis_client.sismember(ack.acks_key, ack.redis_message_id)  # acked with the outcome
        assert not redis_client.hexists(ack.messages_key, ack.redis_message_id)

        def no_round_trip(*args: object) -> None:
            raise AssertionError("dramatiq's ack ran although the ledger had acked")

        broker.do_ack = no_round_trip  # type: ignore[attr-defined]
        delivered.ledger_ack = ack
        consumer.ack(delivered)
        assert consumer.outstanding_message_count == 0
        consumer.close()
    finally:
        broker.close()


def test_the_broker_and_the_store_agree_on_dramatiqs_keys(redis_url: str) -> None:
    broker = make_broker(WorkerSettings(dramatiq_namespace="t-keys"), redis_url)
    try:
        layout = Layout(dramatiq=broker.keys)
        ack = broker.delivery_ack("vipps.charges", "r1")
        assert ack.acks_key == layout.dramatiq.acks(broker.broker_id, "vipps.charges")
        assert layout.dramatiq.acks_queue(ack.acks_key) == (broker.broker_id, "vipps.charges")
        assert ack.messages_key == layout.dramatiq.messages("vipps.charges") == "t-keys:vipps.charges.msgs"
    finally:
        broker.close()
