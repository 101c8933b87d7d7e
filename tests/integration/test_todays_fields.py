"""Today's fields through the worker and the simulator over HTTP: UNSCHEDULED charges (refused and allowed),
SINGLE_ATTEMPT, blocked payment sources, who stopped an agreement, and ListAgreements paging."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from tests.integration.test_worker_lifecycle import AGREEMENT, active_agreement, send
from tests.stack import Events, Simulator, Worker, due_in
from worker.vipps import VippsClient, load_settings, models

FAST = {"CHARGE_POLL_SECONDS": "1", "CHARGE_BATCH_LINGER_SECONDS": "0.2"}


@pytest.fixture
def stack(request: pytest.FixtureRequest, redis_url: str,
          redis_client: redis.Redis) -> Iterator[tuple[Simulator, Events]]:
    simulator = Simulator(*getattr(request, "param", ()))
    worker = Worker(redis_url, simulator.url, env=FAST)
    try:
        yield simulator, Events(redis_client)
    finally:
        worker.stop()
        simulator.stop()
        print(worker.output()[-10000:])


def unscheduled(command_id: str, agreement_id: str) -> dict[str, object]:
    return {"type": "charge.create", "agreement_id": agreement_id, "amount": 5000, "description": "Extra",
            "transaction_type": "DIRECT_CAPTURE", "charge_type": "UNSCHEDULED"}


def test_an_unscheduled_charge_is_refused_where_the_merchant_is_not_allowed(
        stack: tuple[Simulator, Events], redis_url: str) -> None:
    _, events = stack
    agreement = active_agreement(redis_url, events, "u-refused")
    send(redis_url, "u-1", **unscheduled("u-1", agreement))
    failed = events.wait(command_id="u-1", type="command.failed")
    assert failed["problem"]["detail"] == "Cannot create a charge with type 'UNSCHEDULED'"


@pytest.mark.parametrize("stack", [("--unscheduled-charges",)], indirect=True)
def test_an_unscheduled_charge_goes_alone_and_is_charged_at_once(stack: tuple[Simulator, Events],
                                                                 redis_url: str) -> None:
    simulator, events = stack
    agreement = active_agreement(redis_url, events, "u-allowed")
    for i in range(3):  # several at once: still never batched
        send(redis_url, f"u-ok-{i}", **unscheduled(f"u-ok-{i}", agreement))
    for i in range(3):
        created = events.wait(command_id=f"u-ok-{i}", type="charge.created")
        assert created["completion"] == "done"
        charged = events.wait(type="charge.status_changed", charge_id=created["charge_id"], timeout=30)
        assert charged["charge"]["type"] == "UNSCHEDULED"
    assert not simulator.requests(operation="CreateChargesAsyncV3")
    # SINGLE_ATTEMPT with retry_days 0, RECURRING: through the batch endpoint with its processingMode.
    send(redis_url, "single-1", type="charge.create", agreement_id=agreement, amount=7000, description="Once",
         due=due_in(2), retry_days=0, transaction_type="DIRECT_CAPTURE", processing_mode="SINGLE_ATTEMPT")
    assert events.wait(command_id="single-1", type="charge.created")["charge_id"]


def test_blocked_sources_a_merchants_stop_and_paged_listing(stack: tuple[Simulator, Events], redis_url: str) -> None:
    simulator, events = stack
    send(redis_url, "blocked-create", **AGREEMENT, blocked_sources=["COMMERCIAL_CARDS"])
    created = events.wait(command_id="blocked-create", type="agreement.created")
    with VippsClient(load_settings(base_url=simulator.url)) as vipps:
        agreement = vipps.fetch_agreement(created["agreement_id"]).model_dump(mode="json", by_alias=True)
        assert agreement["paymentMethod"] == {"blockedSources": ["COMMERCIAL_CARDS"]}
        to_stop = active_agreement(redis_url, events, "actor")
        send(redis_url, "actor-stop", type="agreement.update", agreement_id=to_stop, status="STOPPED")
        assert events.wait(type="agreement.stopped", agreement_id=to_stop)["actor"] == "MERCHANT"
        for i in range(4):
            active_agreement(redis_url, events, f"page-{i}")
        listed = vipps.list_agreements(status=models.AgreementStatus.ACTIVE, page_size=2)
        assert len(listed) == 4 and len({a.id for a in listed}) == 4  # two full pages and an empty one
        assert len(simulator.requests(operation="ListAgreementsV3")) == 3
