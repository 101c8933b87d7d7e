"""Delivery faults (failures answered before sending, duplicates, delays; seeded), deliveries dropped after 7 days,
registrations deleted by the caller, by reset or for being unresponsive for 2 weeks, and a Recurring call that
never waits for a receiver."""

from __future__ import annotations

import time

from sim_harness import Vipps

from tests.webhook_receiver import Receiver, wait_until
from worker.simulator.config import WebhookFaultConfig
from worker.simulator.faults import DeliveryFaults

ACTIVATED = "recurring.agreement-activated.v1"
DAY = 86400


def _plans(seed: int) -> list[tuple[object, ...]]:
    faults = DeliveryFaults(WebhookFaultConfig(seed=seed, duplicate_rate=0.3, fail_rate=0.3, delay_seconds=1,
                                               delay_rate=0.5), fallback_seed=0)
    return [tuple(vars(faults.plan(ACTIVATED)).values()) for _ in range(100)]


def test_the_same_seed_gives_the_same_delivery_faults() -> None:
    assert _plans(4) == _plans(4) and _plans(4) != _plans(5)
    only_stops = DeliveryFaults(WebhookFaultConfig(fail_rate=1.0, events=["recurring.agreement-stopped.v1"]), 0)
    assert not only_stops.plan(ACTIVATED).fail and only_stops.plan("recurring.agreement-stopped.v1").fail


def test_an_injected_failure_is_not_sent_and_is_retried(hooked: Vipps, receiver: Receiver) -> None:
    hooked.admin("PUT", "/webhooks/faults", {"fail_rate": 1.0})
    hooked.webhook(receiver.url(), ACTIVATED)
    hooked.active_agreement()
    wait_until(lambda: len(hooked.deliveries()) == 4)
    assert [(d["sent"], d["error"], d["result"]) for d in hooked.deliveries()] == [
        (False, "injected failure (not sent)", "retry")
    ] * 4
    assert receiver.received == []
    assert hooked.admin("PUT", "/webhooks/faults", {})["injected"] == {"failed": 4}
    hooked.advance(61)
    wait_until(lambda: hooked.deliveries(result="delivered"))
    assert len(receiver.received) == 1 and hooked.deliveries()[-1]["attempt"] == 5


def test_a_duplicate_is_the_same_delivery_sent_twice(hooked: Vipps, receiver: Receiver) -> None:
    hooked.admin("PUT", "/webhooks/faults", {"duplicate_rate": 1.0, "seed": 1})
    hooked.webhook(receiver.url(), ACTIVATED)
    hooked.active_agreement()
    first, second = receiver.wait(2)
    assert first.body == second.body
    wait_until(lambda: len(hooked.deliveries()) == 2)
    assert [(d["delivery_id"], d["attempt"], d["duplicate"], d["result"]) for d in hooked.deliveries()] == [
        (1, 1, False, "delivered"),
        (1, 1, True, "duplicate"),
    ]
    assert hooked.admin("GET", "/stats")["webhooks"]["faults_injected"] == {"duplicated": 1}


def test_a_delay_holds_the_delivery_back(hooked: Vipps, receiver: Receiver) -> None:
    hooked.admin("PUT", "/webhooks/faults", {"delay_seconds": 0.6})
    hooked.webhook(receiver.url(), ACTIVATED)
    start = time.time()
    hooked.active_agreement()
    [received] = receiver.wait(1)
    assert received.at - start >= 0.6


def test_a_delivery_is_dropped_7_days_after_it_was_queued(hooked: Vipps) -> None:
    receiver = Receiver(default=500)
    try:
        hooked.webhook(receiver.url(), ACTIVATED)
        hooked.active_agreement()
        wait_until(lambda: len(hooked.deliveries()) == 4)
        hooked.advance(7 * DAY + 60)
        wait_until(lambda: hooked.deliveries(result="dropped"))
        dropped = hooked.deliveries()[-1]
        assert (dropped["attempt"], dropped["sent"], dropped["result"]) == (5, False, "dropped")
        assert len(receiver.received) == 4 and hooked.admin("GET", "/webhooks/pending") == []
    finally:
        receiver.close()


def test_a_registration_unresponsive_for_two_weeks_is_deleted(hooked: Vipps) -> None:
    receiver = Receiver(default=500)
    try:
        hooked.webhook(receiver.url(), ACTIVATED)
        hooked.active_agreement()
        wait_until(lambda: len(hooked.deliveries()) == 4)
        hooked.advance(13 * DAY)
        hooked.active_agreement()
        wait_until(lambda: len(hooked.deliveries()) == 9)  # the first dropped, four attempts of the second
        hooked.advance(DAY)
        wait_until(lambda: hooked.deliveries(result="registration-deleted"))
        assert hooked.call("GET", "/webhooks/v1/webhooks").json() == {"webhooks": []}
        assert hooked.admin("GET", "/webhooks/pending") == []
    finally:
        receiver.close()


def test_deleting_a_registration_forgets_what_it_had_to_deliver(hooked: Vipps) -> None:
    receiver = Receiver(default=500)
    try:
        registration = hooked.webhook(receiver.url(), ACTIVATED)
        hooked.active_agreement()
        wait_until(lambda: len(hooked.deliveries()) == 4)
        assert len(hooked.admin("GET", "/webhooks/pending")) == 1
        hooked.call("DELETE", f"/webhooks/v1/webhooks/{registration['id']}")
        assert hooked.admin("GET", "/webhooks/pending") == []
        hooked.webhook(receiver.url(), ACTIVATED)
        hooked.admin("POST", "/reset", {})
        assert hooked.admin("GET", "/webhooks/registrations") == [] and hooked.deliveries() == []
    finally:
        receiver.close()


def test_a_recurring_call_never_waits_for_a_receiver() -> None:
    vipps = Vipps(rate_limits_enabled=False, webhook_timeout_seconds=5.0)
    receiver = Receiver(hold=2.0)
    try:
        vipps.webhook(receiver.url())
        agreement_id = vipps.active_agreement()
        receiver.wait(1)  # the activation is being answered, slowly
        start = time.monotonic()
        for _ in range(5):
            vipps.update(agreement_id, {"productName": "Renamed"})
            vipps.charge_id(agreement_id, due=vipps.due(2))
        vipps.update(agreement_id, {"status": "STOPPED"})
        assert time.monotonic() - start < 1.5
        assert [p["in_flight"] for p in vipps.admin("GET", "/webhooks/pending")][:1] == [True]
    finally:
        vipps.close()
        receiver.close()
