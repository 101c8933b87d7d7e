"""A genuine delivery is queued once per body, or kept as a dead letter when it cannot be read."""

from __future__ import annotations

import json

import pytest
import redis

from tests.replicated import Node, nodes, replica_of
from worker.store.connection import connect_within
from worker.store.deadletters import DeadLetterStore
from worker.store.keys import Layout
from worker.store.replication import Replicas
from worker.store.webhooks import WebhookQueue
from worker.webhooks.intake import MAX_KEPT_CHARS, Intake, event_label, parse

STOPPED = b'{"agreementId":"agr_5kSeqz","eventType":"recurring.agreement-stopped.v1","msn":"123456"}'


@pytest.fixture
def intake(redis_client: redis.Redis) -> Intake:
    layout = Layout()
    return Intake(WebhookQueue(redis_client, layout), DeadLetterStore(redis_client, layout.keys, retention_days=30))


def queued(client: redis.Redis) -> list[dict]:
    messages = client.hvals(Layout().dramatiq.messages("vipps.webhooks"))
    return [json.loads(m)["args"][0] for m in messages]


def test_a_delivery_is_queued_once_with_what_the_worker_needs(intake: Intake, redis_client: redis.Redis) -> None:
    assert (intake.take(STOPPED, "reg-1").outcome, intake.take(STOPPED, "reg-2").outcome) == ("queued", "duplicate")
    [delivery] = queued(redis_client)
    assert delivery["payload"]["agreementId"] == "agr_5kSeqz" and delivery["registration"] == "reg-1"
    assert delivery["event_type"] == "recurring.agreement-stopped.v1" and delivery["received_ms"] > 0
    assert intake.take(STOPPED, "reg-1").event == "recurring.agreement-stopped.v1"


def test_an_unknown_event_type_is_queued_and_counted_as_other(intake: Intake, redis_client: redis.Redis) -> None:
    taken = intake.take(b'{"eventType":"recurring.something-new.v2"}', "reg-1")
    assert (taken.outcome, taken.event) == ("queued", "other")
    assert event_label(None) == "-"


@pytest.mark.parametrize("body", [b"not json", b"[1, 2]", b'"text"', b'{"agreementId": "agr_1"}',
                                  b'{"eventType": 3}', b'{"eventType": "x", "amount": NaN}', b"[" * 50_000,
                                  b"\xff\xfe{}", b""])
def test_an_unreadable_delivery_is_a_dead_letter(intake: Intake, redis_client: redis.Redis, body: bytes) -> None:
    taken = intake.take(body, "reg-1")
    assert (taken.outcome, taken.event) == ("unreadable", "-")
    assert intake.take(body, "reg-1").outcome == "unreadable"  # the same body again: still one letter
    [letter] = DeadLetterStore(redis_client, Layout().keys, retention_days=30).find()
    assert letter.reason == "webhook_unreadable" and "reg-1" in letter.detail and letter.command_id is None
    assert len(letter.payload) <= MAX_KEPT_CHARS + 40
    assert queued(redis_client) == []


def test_redis_down_is_unavailable_and_keeps_nothing() -> None:
    down = connect_within("redis://127.0.0.1:1/0", 0.2)
    layout = Layout()
    intake = Intake(WebhookQueue(down, layout), DeadLetterStore(down, layout.keys, retention_days=30))
    assert (intake.take(STOPPED, "reg-1").outcome, intake.take(STOPPED, "reg-1").event) == (
        "unavailable", "recurring.agreement-stopped.v1")
    assert intake.take(b"not json", "reg-1").outcome == "unavailable"


def test_with_a_replica_wanted_but_missing_the_delivery_is_unavailable(redis_client: redis.Redis) -> None:
    """Answered 503, so Vipps delivers it again: a 200 for a write no replica holds could be lost in a failover."""
    layout = Layout()
    intake = Intake(WebhookQueue(redis_client, layout, replicas=Replicas(1, 50)),
                    DeadLetterStore(redis_client, layout.keys, retention_days=30))
    assert [intake.take(STOPPED, "reg-1").outcome for _ in range(2)] == ["unavailable", "unavailable"]


def test_with_a_replica_a_queued_delivery_is_on_it_before_the_answer() -> None:
    primary = Node()
    replica = replica_of(primary)
    with nodes(primary, replica):
        layout = Layout()
        intake = Intake(WebhookQueue(primary.client, layout, replicas=Replicas(1, 5000)),
                        DeadLetterStore(primary.client, layout.keys, retention_days=30))
        assert [intake.take(STOPPED, "reg-1").outcome for _ in range(2)] == ["queued", "duplicate"]
        assert len(queued(replica.client)) == 1


def test_parse_says_why_not() -> None:
    assert parse(b"nope")[1].startswith("not JSON")
    assert parse(b"[]")[1] == "not a JSON object but a list"
    assert parse(b"{}")[1] == "no eventType"
