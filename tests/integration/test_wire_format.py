"""The README's wire format, done by hand with plain Redis commands, as a non-Python system would."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any

import redis

from tests.stack import Simulator, Worker, wait_for


def test_raw_redis_enqueue_and_consume(redis_url: str, redis_client: redis.Redis) -> None:
    sim = Simulator()
    worker = Worker(redis_url, sim.url)
    try:
        redis_id = str(uuid.uuid4())
        command = {"command_id": "raw-1", "type": "agreement.create", "product_name": "Raw plan",
                   "pricing": {"amount": 9900}, "interval": {"unit": "MONTH", "count": 1},
                   "merchant_redirect_url": "https://example.com/back",
                   "merchant_agreement_url": "https://example.com/agreements/raw",
                   "correlation_id": "crm-77", "issued_at": dt.datetime.now(dt.UTC).isoformat()}
        message = {"queue_name": "vipps.agreements", "actor_name": "agreement_create", "args": [command],
                   "kwargs": {}, "options": {"redis_message_id": redis_id}, "message_id": str(uuid.uuid4()),
                   "message_timestamp": int(dt.datetime.now(dt.UTC).timestamp() * 1000)}
        pipe = redis_client.pipeline(transaction=True)
        pipe.hset("dramatiq:vipps.agreements.msgs", redis_id, json.dumps(message))
        pipe.rpush("dramatiq:vipps.agreements", redis_id)
        pipe.execute()

        def consume() -> list[dict[str, Any]]:
            events = []
            while (event_ref := redis_client.lpop("dramatiq:vipps.events")) is not None:
                raw = redis_client.hget("dramatiq:vipps.events.msgs", event_ref)
                redis_client.hdel("dramatiq:vipps.events.msgs", event_ref)
                assert isinstance(raw, bytes)
                body = json.loads(raw)
                assert body["message_id"] == body["args"][0]["event_id"]
                events.append(body["args"][0])
            return events

        seen: list[dict[str, Any]] = []
        wait_for(lambda: seen.extend(consume()) or any(e["command_id"] == "raw-1" for e in seen), timeout=30,
                 what="the event, consumed by hand")
        created = next(e for e in seen if e["command_id"] == "raw-1")
        assert created["type"] == "agreement.created"
        assert created["correlation_id"] == "crm-77"
        assert redis_client.hlen("dramatiq:vipps.agreements.msgs") == 0  # acknowledged and gone
    finally:
        worker.stop()
        sim.stop()
