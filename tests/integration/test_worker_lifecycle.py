"""The whole life of agreements and charges through the queues: commands in, events out.

Real Redis, the simulator over HTTP, and `vipps-billing worker` as a separate process.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from tests.stack import Events, Simulator, Worker, due_in, producer, wait_for
from worker.core.producer import InvalidCommand
from worker.vipps import VippsClient, load_settings, models

AGREEMENT = {"type": "agreement.create", "product_name": "Premier League", "pricing": {"amount": 49900},
             "interval": {"unit": "MONTH", "count": 1}, "merchant_redirect_url": "https://example.com/back",
             "merchant_agreement_url": "https://example.com/agreements/1", "phone_number": "4791234567"}


@pytest.fixture
def stack(redis_url: str, redis_client: redis.Redis) -> Iterator[tuple[Simulator, Worker, Events]]:
    simulator = Simulator()
    worker = Worker(redis_url, simulator.url)
    try:
        yield simulator, worker, Events(redis_client)
    finally:
        worker.stop()
        simulator.stop()
        print(worker.output()[-20000:])  # shown by pytest when the test failed


def send(redis_url: str, command_id: str, **fields: Any) -> str:
    p = producer(redis_url)
    try:
        p.send({"command_id": command_id, **fields})
    finally:
        p.close()
    return command_id


def active_agreement(redis_url: str, events: Events, name: str) -> str:
    send(redis_url, f"{name}-create", **AGREEMENT)
    agreement_id: str = events.wait(command_id=f"{name}-create", type="agreement.created")["agreement_id"]
    send(redis_url, f"{name}-accept", type="agreement.force_accept", agreement_id=agreement_id,
         phone_number="4791234567")
    events.wait(type="agreement.activated", agreement_id=agreement_id)
    return agreement_id


def charge(redis_url: str, events: Events, agreement_id: str, command_id: str, **fields: Any) -> str:
    body = {"type": "charge.create", "agreement_id": agreement_id, "amount": 29900, "description": "December",
            "due": due_in(1), "retry_days": 2, "transaction_type": "DIRECT_CAPTURE"} | fields
    send(redis_url, command_id, **body)
    charge_id: str = events.wait(command_id=command_id, type="charge.created")["charge_id"]
    return charge_id


def test_go_live_checklist_states_through_the_queues(stack: tuple[Simulator, Worker, Events], redis_url: str) -> None:
    simulator, _, events = stack
    active = active_agreement(redis_url, events, "a1")
    to_stop = active_agreement(redis_url, events, "a2")

    direct = charge(redis_url, events, active, "c-direct")
    refunded = charge(redis_url, events, active, "c-refund")
    reserved = charge(redis_url, events, active, "c-reserve", transaction_type="RESERVE_CAPTURE", amount=10000)
    later = (dt.datetime.now(dt.UTC).date() + dt.timedelta(days=10)).isoformat()
    pending = charge(redis_url, events, to_stop, "c-cancelled-by-stop", due=later)

    simulator.advance(2 * 86_400)  # past the due date's processing rounds
    for charge_id, status in ((direct, "CHARGED"), (refunded, "CHARGED"), (reserved, "RESERVED")):
        changed = events.wait(type="charge.status_changed", charge_id=charge_id)
        wait_for(lambda cid=charge_id, st=status: [e for e in events.of(type="charge.status_changed",
                                                                          charge_id=cid)
                                                   if e["transition"]["to"] == st], what=f"{charge_id} {status}")
        assert changed["charge"]["type"] == "RECURRING"

    send(redis_url, "c-refund-all", type="charge.refund", agreement_id=active, charge_id=refunded, amount=29900,
         description="Refund")
    send(redis_url, "c-capture-part", type="charge.capture", agreement_id=active, charge_id=reserved, amount=4000,
         description="Shipped")
    send(redis_url, "a2-stop", type="agreement.update", agreement_id=to_stop, status="STOPPED")

    events.wait(command_id="c-refund-all", type="charge.refunded")
    events.wait(command_id="c-capture-part", type="charge.captured")
    stopped = events.wait(type="agreement.stopped", agreement_id=to_stop)
    assert stopped["transition"]["to"] == "STOPPED"
    assert events.wait(command_id="a2-stop", type="agreement.updated")["completion"] in ("done", "accepted")

    def reached(charge_id: str, status: str) -> bool:
        return any(e["transition"]["to"] == status for e in events.of(type="charge.status_changed",
                                                                        charge_id=charge_id))

    wait_for(lambda: reached(refunded, "REFUNDED"), what="refunded charge REFUNDED")
    wait_for(lambda: reached(reserved, "PARTIALLY_CAPTURED"), what="reserved charge PARTIALLY_CAPTURED")

    # Stopping the agreement cancelled its open charge at Vipps; a fetch command observes it.
    send(redis_url, "c-fetch-cancelled", type="charge.fetch", agreement_id=to_stop, charge_id=pending)
    snap = events.wait(command_id="c-fetch-cancelled", type="charge.snapshot")
    assert snap["charge"]["status"] == "CANCELLED"

    send(redis_url, "a1-list", type="agreement.list_charges", agreement_id=active)
    listed = events.wait(command_id="a1-list", type="agreement.charges")
    statuses = {c["id"]: c["status"] for c in listed["charges"]}
    assert statuses[direct] == "CHARGED" and statuses[refunded] == "REFUNDED"

    send(redis_url, "a1-fetch", type="agreement.fetch", agreement_id=active)
    assert events.wait(command_id="a1-fetch", type="agreement.snapshot")["agreement"]["status"] == "ACTIVE"

    assert len(simulator.effects()) >= 10
    assert simulator.effects(duplicates="true") == []


def test_failed_charge_and_initial_charge(stack: tuple[Simulator, Worker, Events], redis_url: str) -> None:
    """Insufficient funds until retryDays run out: FAILED. An initial charge: processed at acceptance."""
    simulator, _, events = stack
    simulator.scripts(charge_amount_fails={"amount": 15100, "reason": "user_action_required"})
    with_initial = {**AGREEMENT, "initial_charge": {"amount": 4900, "description": "Welcome box",
                                                    "transaction_type": "RESERVE_CAPTURE"}}
    send(redis_url, "init-create", **with_initial)
    created = events.wait(command_id="init-create", type="agreement.created")
    agreement_id, initial_id = created["agreement_id"], created["charge_id"]
    assert initial_id
    send(redis_url, "init-accept", type="agreement.force_accept", agreement_id=agreement_id,
         phone_number="4791234567")
    events.wait(type="agreement.activated", agreement_id=agreement_id)
    reserved = wait_for(lambda: [e for e in events.of(type="charge.status_changed", charge_id=initial_id)
                                 if e["transition"]["to"] == "RESERVED"], what="initial charge RESERVED")[0]
    assert reserved["charge"]["type"] == "INITIAL"

    failing = charge(redis_url, events, agreement_id, "c-no-funds", amount=15100, retry_days=1)
    simulator.advance(3 * 86_400)  # the due date and every retry day pass
    failed = wait_for(lambda: [e for e in events.of(type="charge.status_changed", charge_id=failing)
                               if e["transition"]["to"] == "FAILED"], what="charge FAILED")[0]
    assert failed["charge"]["failureReason"] == "user_action_required"
    assert simulator.effects(duplicates="true") == []


def test_agreement_with_a_campaign(stack: tuple[Simulator, Worker, Events], redis_url: str) -> None:
    """The campaign reaches Vipps as campaignV3 and comes back on the agreement."""
    _, _, events = stack
    end = (dt.datetime.now(dt.UTC) + dt.timedelta(days=60)).replace(microsecond=0)
    send(redis_url, "camp-create", **AGREEMENT | {
        "campaign": {"type": "PRICE_CAMPAIGN", "price": 100, "end": end.isoformat()}})
    agreement_id = events.wait(command_id="camp-create", type="agreement.created")["agreement_id"]
    send(redis_url, "camp-fetch", type="agreement.fetch", agreement_id=agreement_id)
    agreement = events.wait(command_id="camp-fetch", type="agreement.snapshot")["agreement"]
    assert agreement["campaign"]["type"] == "PRICE_CAMPAIGN"
    assert agreement["campaign"]["price"] == 100
    assert dt.datetime.fromisoformat(agreement["campaign"]["end"].replace("Z", "+00:00")) == end

    # Vipps refuses a campaign on VARIABLE pricing; so does the producer, before anything is queued.
    with pytest.raises(InvalidCommand, match="VARIABLE"):
        send(redis_url, "camp-variable", **AGREEMENT | {
            "pricing": {"type": "VARIABLE", "suggested_max_amount": 50000},
            "campaign": {"type": "PERIOD_CAMPAIGN", "price": 0, "period": {"unit": "WEEK", "count": 2}}})


@pytest.mark.parametrize("recheck", ["1", "0"])
def test_a_stop_by_the_user_in_the_app_is_reported(redis_url: str, redis_client: redis.Redis, recheck: str) -> None:
    """Only a fetch shows that the user stopped an ACTIVE agreement: the watcher re-checks ACTIVE agreements
    (AGREEMENT_ACTIVE_POLL_SECONDS; 0 forgets them once ACTIVE, and the stop goes unseen)."""
    simulator = Simulator()
    worker = Worker(redis_url, simulator.url, env={"AGREEMENT_ACTIVE_POLL_SECONDS": recheck})
    events = Events(redis_client)
    try:
        agreement_id = active_agreement(redis_url, events, f"user-stop-{recheck}")
        member = f"agreement:{agreement_id}"
        watched = redis_client.zscore("vipps-billing:watch:agreements", member)
        simulator.scripts(user_stops=agreement_id)
        if recheck == "0":
            assert watched is None
            with pytest.raises(AssertionError):
                events.wait(3, type="agreement.stopped", agreement_id=agreement_id)
            return
        assert watched is not None
        stopped = events.wait(10, type="agreement.stopped", agreement_id=agreement_id)
        assert stopped["transition"] == {"from": "ACTIVE", "to": "STOPPED"}
        assert stopped["command_id"] is None  # no command of ours caused it
        assert stopped["agreement"]["status"] == "STOPPED"
        wait_for(lambda: redis_client.zscore("vipps-billing:watch:agreements", member) is None,
                 what="a STOPPED agreement is no longer watched")
        assert len(events.of(type="agreement.stopped", agreement_id=agreement_id)) == 1
    finally:
        worker.stop()
        simulator.stop()


def test_a_fetch_enrols_an_active_agreement_made_elsewhere(redis_url: str, redis_client: redis.Redis) -> None:
    """Agreements drafted outside the worker (or before it re-checked ACTIVE ones) are followed after a fetch."""
    simulator = Simulator()
    worker = Worker(redis_url, simulator.url, env={"AGREEMENT_ACTIVE_POLL_SECONDS": "1"})
    events = Events(redis_client)
    try:
        with VippsClient(load_settings(base_url=simulator.url)) as client:
            draft = client.draft_agreement(models.DraftAgreementV3(
                pricing=models.PricingRequest(amount=29900), interval=models.TimePeriod(unit="MONTH", count=1),
                merchantAgreementUrl="https://example.com/a", merchantRedirectUrl="https://example.com/r",
                productName="Made elsewhere"), idempotency_key="elsewhere-draft")
            client.force_accept_agreement(draft.agreementId, "4791234567", idempotency_key="elsewhere-accept")
        member = f"agreement:{draft.agreementId}"
        send(redis_url, "elsewhere-fetch", type="agreement.fetch", agreement_id=draft.agreementId)
        snapshot = events.wait(command_id="elsewhere-fetch", type="agreement.snapshot")
        assert snapshot["agreement"]["status"] == "ACTIVE"
        assert events.of(type="agreement.activated", agreement_id=draft.agreementId) == []  # first sight
        assert redis_client.zscore("vipps-billing:watch:agreements", member) is not None
        simulator.scripts(user_stops=draft.agreementId)
        stopped = events.wait(10, type="agreement.stopped", agreement_id=draft.agreementId)
        assert stopped["transition"] == {"from": "ACTIVE", "to": "STOPPED"} and stopped["command_id"] is None
    finally:
        worker.stop()
        simulator.stop()
