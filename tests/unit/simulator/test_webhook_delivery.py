"""Delivering webhooks: retries on Vipps's schedule (the long waits on the simulated clock), order per registration
with a failing delivery holding back only later ones of its agreement, the 10 s answer limit, drops after 7 days,
delivery faults, and a Recurring call never waiting for a receiver."""

from __future__ import annotations

import time
from typing import Any

from sim_harness import Vipps

from tests.webhook_receiver import Receiver, verify, wait_until
from worker.simulator.webhook_record import HORIZON, retry_wait

ACTIVATED = "recurring.agreement-activated.v1"
STOPPED = "recurring.agreement-stopped.v1"
DAY = 86400


def _results(vipps: Vipps, count: int, **query: str) -> list[tuple[Any, ...]]:
    """(delivery, attempt, status, result) of the first ``count`` attempts, once there are that many."""
    wait_until(lambda: len(vipps.deliveries(**query)) >= count, what=f"{count} attempts")
    return [(d["delivery_id"], d["attempt"], d["status"], d["result"]) for d in vipps.deliveries(**query)[:count]]


def test_the_retry_schedule() -> None:
    waits = [retry_wait(attempt, 2.0) for attempt in range(1, 36)]
    assert waits[:6] == [2.0, 2.0, 2.0, 60.0, 120.0, 3600.0]
    assert waits[5:28] == [3600.0] * 23 and waits[28:] == [86400.0] * 7
    # Attempt 35 goes out within the 7 days; a 36th would not.
    starts = [sum(waits[: n - 1]) for n in range(1, 37)]
    assert starts[34] <= HORIZON < starts[35]
    assert retry_wait(1, 0.05) == 0.05


def test_a_failing_receiver_is_retried_until_it_answers_2xx(hooked: Vipps) -> None:
    receiver = Receiver(500, 503)
    try:
        registration = hooked.webhook(receiver.url(), ACTIVATED)
        hooked.active_agreement()
        assert _results(hooked, 3) == [(1, 1, 500, "retry"), (1, 2, 503, "retry"), (1, 3, 200, "delivered")]
        first, _, last = receiver.wait(3)
        assert first.body == last.body and all(verify(registration["secret"], receiver.url(), r) for r in (first, last))
        attempt = hooked.deliveries()[0]
        assert attempt["registration"] == registration["id"] and attempt["url"] == receiver.url()
        assert attempt["payload"]["eventType"] == ACTIVATED and attempt["headers"]["x-ms-content-sha256"]
        assert attempt["queued_at"].startswith("2030-01-01T10:00") and attempt["duration_ms"] >= 0
        assert hooked.admin("GET", "/webhooks/pending") == []
    finally:
        receiver.close()


def test_long_waits_follow_the_simulated_clock(hooked: Vipps) -> None:
    receiver = Receiver(500, 500, 500, 500, 500)
    try:
        hooked.webhook(receiver.url(), ACTIVATED)
        hooked.active_agreement()
        assert [r[3] for r in _results(hooked, 4)] == ["retry"] * 4
        time.sleep(0.3)
        assert len(receiver.received) == 4  # attempt 5 is 60 s away
        [waiting] = hooked.admin("GET", "/webhooks/pending")
        assert waiting["attempts"] == 4 and waiting["next_attempt_at"].startswith("2030-01-01T10:01")
        hooked.advance(61)
        assert _results(hooked, 5)[4] == (1, 5, 500, "retry")
        hooked.advance(121)
        assert _results(hooked, 6)[5] == (1, 6, 200, "delivered")
    finally:
        receiver.close()


def test_a_failing_delivery_holds_back_only_its_agreement(hooked: Vipps) -> None:
    failing: set[str] = set()
    receiver = Receiver(answer=lambda body: 500 if body["agreementId"] in failing else None)
    try:
        hooked.webhook(receiver.url(), ACTIVATED, STOPPED)
        first = hooked.agreement_id()
        failing.add(first)
        assert hooked.accept(first).status_code == 204
        hooked.update(first, {"status": "STOPPED"})
        other = hooked.active_agreement()
        wait_until(lambda: hooked.deliveries(agreement_id=other, result="delivered"))
        pending = hooked.admin("GET", "/webhooks/pending")
        assert [(p["delivery_id"], p["event_type"], p["blocked_by"]) for p in pending] == [(1, ACTIVATED, None),
                                                                                        (2, STOPPED, 1)]
        assert not hooked.deliveries(event=STOPPED)
        failing.clear()
        wait_until(lambda: len(hooked.deliveries(result="delivered")) == 3)
        delivered = [(d["agreement_id"], d["event_type"]) for d in hooked.deliveries(result="delivered")]
        assert delivered == [(other, ACTIVATED), (first, ACTIVATED), (first, STOPPED)]
    finally:
        receiver.close()


def test_ordered_by_registration_everything_waits() -> None:
    vipps = Vipps(rate_limits_enabled=False, webhook_retry_seconds=0.05, webhook_order="registration")
    receiver = Receiver(500, 500, 500, 500)
    try:
        vipps.webhook(receiver.url(), ACTIVATED)
        first, second = vipps.active_agreement(), vipps.active_agreement()
        _results(vipps, 4)
        time.sleep(0.2)
        assert {p["agreement_id"]: p["blocked_by"] for p in vipps.admin("GET", "/webhooks/pending")} == {
            first: None,
            second: 1,
        }
        assert {r.json()["agreementId"] for r in receiver.received} == {first}
    finally:
        receiver.close()
        vipps.close()


def test_an_answer_later_than_the_timeout_is_a_failure() -> None:
    vipps = Vipps(rate_limits_enabled=False, webhook_retry_seconds=0.05, webhook_timeout_seconds=0.3)
    receiver = Receiver(hold=1.0)
    try:
        vipps.webhook(receiver.url(), ACTIVATED)
        vipps.active_agreement()
        wait_until(lambda: vipps.deliveries())
        [attempt] = vipps.deliveries()[:1]
        assert (attempt["status"], attempt["error"], attempt["result"]) == (None, "no answer within 0.3 s", "retry")
    finally:
        vipps.close()
        receiver.close()
