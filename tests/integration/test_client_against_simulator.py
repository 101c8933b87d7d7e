"""The Vipps client against the simulator over real HTTP (uvicorn on a free loopback port), with the
token and rate budgets shared through a real Redis."""

from __future__ import annotations

import datetime as dt
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import redis
import uvicorn

from worker.simulator.app import create_app
from worker.simulator.config import SimulatorConfig
from worker.store.vipps_state import redis_backends
from worker.vipps import Completion, VippsClient, errors, load_settings, models

PHONE = "4791234567"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def simulator_url() -> Iterator[str]:
    port = _free_port()
    config = SimulatorConfig(list_page_size=2)
    server = uvicorn.Server(uvicorn.Config(create_app(config), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("simulator did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=5)


@pytest.fixture
def admin(simulator_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"{simulator_url}/_simulator") as c:
        c.post("/reset", json={"tokens": True}).raise_for_status()
        yield c
        c.put("/faults", json={}).raise_for_status()


@pytest.fixture
def vipps(simulator_url: str, redis_client: redis.Redis, admin: httpx.Client) -> Iterator[VippsClient]:
    settings = load_settings(env="simulator", base_url=simulator_url, read_timeout=3.0)
    with VippsClient(settings, **redis_backends(redis_client), key_prefix=f"it-{uuid.uuid4().hex[:8]}") as c:
        yield c


def _key() -> str:
    return uuid.uuid4().hex


def _sim_today(admin: httpx.Client) -> dt.date:
    return dt.datetime.fromisoformat(admin.get("/clock").json()["now"].replace("Z", "+00:00")).date()


def _draft(product: str = "Daily news") -> models.DraftAgreementV3:
    return models.DraftAgreementV3(
        pricing=models.PricingRequest(amount=10_000),
        interval=models.TimePeriod(unit="MONTH", count=1),
        merchantAgreementUrl="https://example.com/subscriptions/1",
        merchantRedirectUrl="https://example.com/back",
        productName=product,
    )


def _active_agreement(vipps: VippsClient) -> str:
    agreement_id = vipps.draft_agreement(_draft(), idempotency_key=_key()).agreementId
    assert vipps.force_accept_agreement(agreement_id, PHONE, idempotency_key=_key()) is Completion.DONE
    return agreement_id


def _charge(due: dt.date, amount: int = 1000) -> models.CreateChargeV3:
    return models.CreateChargeV3(
        amount=amount, transactionType="RESERVE_CAPTURE", description="Monthly", due=due, retryDays=1
    )


def test_agreement_and_charge_lifecycle(vipps: VippsClient, admin: httpx.Client) -> None:
    drafted = vipps.draft_agreement(_draft(), idempotency_key=_key())
    assert drafted.vippsConfirmationUrl
    assert vipps.fetch_agreement(drafted.agreementId).status is models.AgreementStatus.PENDING
    vipps.force_accept_agreement(drafted.agreementId, PHONE, idempotency_key=_key())
    agreement = vipps.fetch_agreement(drafted.agreementId)
    assert agreement.status is models.AgreementStatus.ACTIVE
    assert drafted.agreementId in [a.id for a in vipps.list_agreements(status=models.AgreementStatus.ACTIVE)]

    due = _sim_today(admin) + dt.timedelta(days=1)
    charge_id = vipps.create_charge(drafted.agreementId, _charge(due), idempotency_key=_key()).chargeId
    charge = vipps.fetch_charge(drafted.agreementId, charge_id)
    assert charge.due == due and charge.amount == 1000
    assert vipps.fetch_charge_by_id(charge_id).id == charge_id
    assert [c.id for c in vipps.list_charges(drafted.agreementId)] == [charge_id]

    admin.post("/clock/advance", json={"seconds": 3 * 86400}).raise_for_status()
    assert vipps.fetch_charge(drafted.agreementId, charge_id).status is models.ChargeStatus.RESERVED
    assert [c.id for c in vipps.list_charges(drafted.agreementId, status=models.ChargeStatus.RESERVED)] == [charge_id]

    capture = models.ModifyChargeV3(amount=600, description="Shipped")
    assert vipps.capture_charge(drafted.agreementId, charge_id, capture, idempotency_key=_key()) in set(Completion)
    assert vipps.fetch_charge(drafted.agreementId, charge_id).status is models.ChargeStatus.PARTIALLY_CAPTURED
    vipps.cancel_charge(drafted.agreementId, charge_id, idempotency_key=_key())
    vipps.refund_charge(
        drafted.agreementId,
        charge_id,
        models.ModifyChargeV3(amount=100, description="Goodwill"),
        idempotency_key=_key(),
    )
    final = vipps.fetch_charge(drafted.agreementId, charge_id)
    assert final.status is models.ChargeStatus.PARTIALLY_REFUNDED
    assert (final.summary.captured, final.summary.refunded, final.summary.cancelled) == (600, 100, 400)

    update = models.PatchAgreementV3(productName="Daily news plus")
    assert vipps.update_agreement(drafted.agreementId, update, idempotency_key=_key()) in set(Completion)
    vipps.stop_agreement(drafted.agreementId, idempotency_key=_key())
    assert vipps.fetch_agreement(drafted.agreementId).status is models.AgreementStatus.STOPPED


def test_listing_follows_continuation_tokens(vipps: VippsClient, admin: httpx.Client) -> None:
    ids = {_active_agreement(vipps) for _ in range(3)}  # the simulator pages by 2
    listed = vipps.list_agreements(status=models.AgreementStatus.ACTIVE)
    assert ids <= {a.id for a in listed}
    assert len(listed) == len({a.id for a in listed})


def test_replay_with_the_same_key_has_one_effect(vipps: VippsClient, admin: httpx.Client) -> None:
    agreement_id = _active_agreement(vipps)
    due = _sim_today(admin) + dt.timedelta(days=2)
    key = _key()
    first = vipps.create_charge(agreement_id, _charge(due), idempotency_key=key)
    again = vipps.create_charge(agreement_id, _charge(due), idempotency_key=key)
    assert first.chargeId == again.chargeId
    assert len(vipps.list_charges(agreement_id)) == 1
    other = _key()  # CreateCharge allows 2 calls a minute per key, so the conflict gets its own key
    vipps.create_charge(agreement_id, _charge(due), idempotency_key=other)
    with pytest.raises(errors.IdempotencyConflictError) as info:
        vipps.create_charge(agreement_id, _charge(due, amount=2000), idempotency_key=other)
    assert info.value.status == 409
    assert len(vipps.list_charges(agreement_id)) == 2


def test_problem_details_come_through(vipps: VippsClient, admin: httpx.Client) -> None:
    agreement_id = _active_agreement(vipps)
    with pytest.raises(errors.PermanentError) as info:
        vipps.create_charge(agreement_id, _charge(_sim_today(admin)), idempotency_key=_key())
    assert info.value.problem_type == "charge-due-too-soon"
    assert info.value.context_id
    with pytest.raises(errors.PermanentError) as missing:
        vipps.fetch_agreement("agr_doesnotexist")
    assert missing.value.status == 404


def test_dropped_response_after_commit_is_retried_without_a_second_effect(
    vipps: VippsClient, admin: httpx.Client
) -> None:
    agreement_id = _active_agreement(vipps)
    due = _sim_today(admin) + dt.timedelta(days=2)
    admin.put("/faults", json={"drop_after_commit_rate": 1.0, "operations": ["CreateChargeV3"]}).raise_for_status()
    key = _key()
    with pytest.raises(errors.TransientError) as info:
        vipps.create_charge(agreement_id, _charge(due), idempotency_key=key)
    assert info.value.maybe_applied is True
    admin.put("/faults", json={}).raise_for_status()
    stats: dict[str, Any] = admin.get("/stats").json()
    assert sum(stats["requests"]["CreateChargeV3"].values()) == 2  # the client retried once, same key
    assert stats["idempotent_replays"] >= 1  # ... and the retry was a replay, not a second charge
    assert len(vipps.list_charges(agreement_id)) == 1


def test_server_errors_become_transient(vipps: VippsClient, admin: httpx.Client) -> None:
    agreement_id = _active_agreement(vipps)
    admin.put("/faults", json={"error_5xx_rate": 1.0, "operations": ["FetchAgreementV3"]}).raise_for_status()
    with pytest.raises(errors.TransientError) as info:
        vipps.fetch_agreement(agreement_id)
    assert info.value.status in (500, 502, 503)
    stats: dict[str, Any] = admin.get("/stats").json()
    assert sum(stats["requests"]["FetchAgreementV3"].values()) == 2  # one retry by the client


def test_our_budget_stops_calls_before_the_simulator_would_429(vipps: VippsClient, admin: httpx.Client) -> None:
    agreement_id = _active_agreement(vipps)
    due = _sim_today(admin) + dt.timedelta(days=2)
    key = _key()
    vipps.create_charge(agreement_id, _charge(due), idempotency_key=key)
    vipps.create_charge(agreement_id, _charge(due), idempotency_key=key)
    with pytest.raises(errors.BudgetExhaustedError):
        vipps.create_charge(agreement_id, _charge(due), idempotency_key=key)
    stats: dict[str, Any] = admin.get("/stats").json()
    assert sum(stats["requests"]["CreateChargeV3"].values()) == 2
    assert stats["rate_limited"] == 0


def test_wrong_credentials_are_an_auth_error(simulator_url: str, admin: httpx.Client) -> None:
    settings = load_settings(env="simulator", base_url=simulator_url, client_secret="wrong-secret")
    with VippsClient(settings) as c, pytest.raises(errors.AuthError) as info:
        c.fetch_agreement("agr_x")
    assert "wrong-secret" not in str(info.value)


def test_expired_token_is_refreshed_on_401(simulator_url: str, redis_client: redis.Redis, admin: httpx.Client) -> None:
    settings = load_settings(env="simulator", base_url=simulator_url)
    with VippsClient(settings, **redis_backends(redis_client), key_prefix=f"it-{uuid.uuid4().hex[:8]}") as c:
        agreement_id = _active_agreement(c)
        admin.post("/reset", json={"tokens": True}).raise_for_status()  # the simulator forgets issued tokens
        with pytest.raises(errors.PermanentError):  # state was reset too: 404, reached with a fresh token
            c.fetch_agreement(agreement_id)
        stats: dict[str, Any] = admin.get("/stats").json()
        assert stats["requests"]["FetchAgreementV3"].get("401") == 1
