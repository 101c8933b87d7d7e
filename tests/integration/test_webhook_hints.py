"""Webhooks as hints, through a real worker and the simulator: a verified delivery (put on the webhooks queue
as the receiver does) makes the worker fetch, and what it publishes follows the fetch, never the payload."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from tests.stack import Events, Simulator, Worker, due_in, producer, wait_for
from worker.store.keys import Layout
from worker.store.webhooks import WebhookQueue
from worker.vipps import VippsClient, load_settings, models

AGREEMENT = {"type": "agreement.create", "product_name": "Gym", "pricing": {"amount": 29900},
             "interval": {"unit": "MONTH", "count": 1}, "merchant_redirect_url": "https://example.com/back",
             "merchant_agreement_url": "https://example.com/agreements/1", "phone_number": "4791234567"}
SLOW_POLLS = {"AGREEMENT_ACTIVE_POLL_SECONDS": "86400", "CHARGE_POLL_SECONDS": "3600"}  # only hints are fast


@pytest.fixture
def stack(redis_url: str, redis_client: redis.Redis) -> Iterator[tuple[Simulator, Events, WebhookQueue]]:
    simulator = Simulator()
    worker = Worker(redis_url, simulator.url, env=SLOW_POLLS)
    try:
        yield simulator, Events(redis_client), WebhookQueue(redis_client, Layout())
    finally:
        worker.stop()
        simulator.stop()
        print(worker.output()[-20000:])


def deliver(queue: WebhookQueue, payload: dict[str, Any]) -> None:
    body = json.dumps(payload).encode()
    assert queue.add(body, {"payload": payload, "registration": "reg-test", "received_ms": 0})


def send(redis_url: str, command: dict[str, Any]) -> None:
    p = producer(redis_url)
    try:
        p.send(command)
    finally:
        p.close()


def active_agreement(redis_url: str, events: Events, name: str) -> str:
    send(redis_url, {"command_id": f"{name}-create"} | AGREEMENT)
    agreement_id: str = events.wait(command_id=f"{name}-create", type="agreement.created")["agreement_id"]
    send(redis_url, {"command_id": f"{name}-accept", "type": "agreement.force_accept",
                     "agreement_id": agreement_id, "phone_number": "4791234567"})
    events.wait(type="agreement.activated", agreement_id=agreement_id)
    return agreement_id


def test_a_stop_in_the_app_is_published_at_the_webhook_not_the_next_daily_check(
        stack: tuple[Simulator, Events, WebhookQueue], redis_url: str) -> None:
    simulator, events, queue = stack
    agreement_id = active_agreement(redis_url, events, "h1")
    # Stopped behind the worker's back (as the user in the app would); only the daily re-check would see it.
    with VippsClient(load_settings(base_url=simulator.url)) as client:
        client.stop_agreement(agreement_id, idempotency_key="in-the-app")
    payload = {"agreementId": agreement_id, "eventType": "recurring.agreement-stopped.v1", "actor": "USER",
               "occurred": "2026-12-02T08:00:00Z", "msn": "123456"}
    deliver(queue, payload)
    stopped = events.wait(10, type="agreement.stopped", agreement_id=agreement_id)
    assert stopped["observed_by"] == "webhook" and stopped["actor"] == "USER"
    assert stopped["transition"] == {"from": "ACTIVE", "to": "STOPPED"}
    # The same delivery again (another registration, a retry with a new body): nothing new is published.
    deliver(queue, payload | {"occurred": "2026-12-02T08:00:01Z"})
    wait_for(lambda: not redis.Redis.from_url(redis_url).llen("dramatiq:vipps.webhooks"), 10, what="hint taken")
    assert len(events.of(type="agreement.stopped", agreement_id=agreement_id)) == 1


def test_a_stale_webhook_never_changes_money_state(stack: tuple[Simulator, Events, WebhookQueue],
                                                   redis_url: str) -> None:
    simulator, events, queue = stack
    agreement_id = active_agreement(redis_url, events, "h2")
    send(redis_url, {"command_id": "h2-charge", "type": "charge.create", "agreement_id": agreement_id,
                     "amount": 29900, "description": "December", "due": due_in(1), "retry_days": 0,
                     "transaction_type": "DIRECT_CAPTURE"})
    charge_id = events.wait(command_id="h2-charge", type="charge.created")["charge_id"]
    simulator.advance(2 * 86_400)
    charged = {"agreementId": agreement_id, "chargeId": charge_id, "amount": 29900, "chargeType": "RECURRING",
               "currency": "NOK", "occurred": "2026-12-03T07:01:00Z", "msn": "123456"}
    deliver(queue, charged | {"eventType": "recurring.charge-captured.v1"})
    events.wait(10, type="charge.status_changed", charge_id=charge_id, observed_by="webhook",
                transition={"from": "PENDING", "to": "CHARGED"})
    send(redis_url, {"command_id": "h2-refund", "type": "charge.refund", "agreement_id": agreement_id,
                     "charge_id": charge_id, "amount": 29900, "description": "Sorry"})
    events.wait(command_id="h2-refund", type="charge.refunded")
    refunded = events.wait(10, type="charge.status_changed", charge_id=charge_id, transition={
        "from": "CHARGED", "to": "REFUNDED"})
    # Late deliveries: a "captured" after the refund, a "reserved" for a charge long CHARGED.
    deliver(queue, charged | {"eventType": "recurring.charge-captured.v1", "occurred": "2026-12-03T07:02:00Z"})
    deliver(queue, charged | {"eventType": "recurring.charge-reserved.v1", "occurred": "2026-12-03T07:03:00Z"})
    wait_for(lambda: not redis.Redis.from_url(redis_url).llen("dramatiq:vipps.webhooks"), 10, what="hints taken")
    later = sorted((e for e in events.of(charge_id=charge_id) if e["type"] == "charge.status_changed"),
                   key=lambda e: str(e["occurred_at"]))
    assert [e["transition"]["to"] for e in later] == ["CHARGED", "REFUNDED"]
    assert later[-1]["event_id"] == refunded["event_id"] and later[-1]["charge"]["status"] == "REFUNDED"


def test_a_webhook_for_a_charge_we_do_not_follow_starts_following_it(
        stack: tuple[Simulator, Events, WebhookQueue], redis_url: str, redis_client: redis.Redis) -> None:
    simulator, events, queue = stack
    agreement_id = active_agreement(redis_url, events, "h3")
    with VippsClient(load_settings(base_url=simulator.url)) as client:  # made elsewhere, by another system
        made = client.create_charge(agreement_id, models.CreateChargeV3(
            amount=5000, description="Elsewhere", due=dt.date.fromisoformat(due_in(1)), retryDays=0,
            transactionType="DIRECT_CAPTURE"),
            idempotency_key="elsewhere-1")
    deliver(queue, {"agreementId": agreement_id, "chargeId": made.chargeId, "eventType":
                    "recurring.charge-reserved.v1", "msn": "123456"})
    first = events.wait(10, type="charge.status_changed", charge_id=made.chargeId)
    assert first["observed_by"] == "webhook" and first["transition"].get("from") is None  # first sight
    assert redis_client.hexists("vipps-billing:watch:state", f"charge:{agreement_id}:{made.chargeId}")


def test_creation_failed_and_unknown_merchants(stack: tuple[Simulator, Events, WebhookQueue], redis_url: str,
                                               redis_client: redis.Redis) -> None:
    _, events, queue = stack
    agreement_id = active_agreement(redis_url, events, "h4")
    deliver(queue, {"agreementId": agreement_id, "chargeId": "chr-neverMade", "eventType":
                    "recurring.charge-creation-failed.v1", "msn": "123456"})
    failed = events.wait(10, type="charge.creation_failed", charge_id="chr-neverMade")
    assert failed["problem"]["reason"] == "charge_creation_failed"
    deliver(queue, {"agreementId": agreement_id, "eventType": "recurring.agreement-stopped.v1", "msn": "999999"})
    wait_for(lambda: [json.loads(v) for v in redis_client.hvals("vipps-billing:dlq")
                      if json.loads(v)["reason"] == "webhook_unknown_merchant"], 10, what="dead letter")
    assert not events.of(type="agreement.stopped", agreement_id=agreement_id)
