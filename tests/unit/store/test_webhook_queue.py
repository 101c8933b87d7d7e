"""Verified deliveries go on the webhooks queue once, as dramatiq messages, whatever Vipps repeats."""

from __future__ import annotations

import json

import redis

from worker.store import scripts
from worker.store.keys import Layout
from worker.store.webhooks import OnceKeys, WebhookQueue

BODY = b'{"agreementId":"agr_5kSeqz","eventType":"recurring.agreement-stopped.v1","msn":"123456"}'


def test_the_keys_are_the_ones_the_script_names() -> None:
    assert list(OnceKeys._fields) == scripts.declared("enqueue_once", "KEYS")


def test_a_delivery_is_queued_once_as_a_dramatiq_message(redis_client: redis.Redis) -> None:
    layout = Layout()
    queue = WebhookQueue(redis_client, layout, seen_seconds=60)
    delivery = {"payload": json.loads(BODY), "registration": "reg-1", "received_ms": 1}
    assert queue.add(BODY, delivery) is True
    assert queue.add(BODY, delivery | {"received_ms": 2}) is False  # Vipps's retry of the same body
    assert queue.add(BODY + b" ", delivery) is True  # another body is another delivery
    ids = redis_client.lrange(layout.dramatiq.queue("vipps.webhooks"), 0, -1)
    assert len(ids) == 2
    message = json.loads(redis_client.hget(layout.dramatiq.messages("vipps.webhooks"), ids[0]) or b"")
    assert message["actor_name"] == "webhook_received" and message["options"]["redis_message_id"] == ids[0].decode()
    assert message["args"][0]["payload"]["agreementId"] == "agr_5kSeqz" and message["args"][0]["received_ms"] == 1
    assert 0 < redis_client.ttl(f"vipps-billing:webhooks:seen:{message['args'][0]['digest']}") <= 60
    assert queue.last_delivery_ms() is not None  # the watcher polls PENDING agreements slower while recent
