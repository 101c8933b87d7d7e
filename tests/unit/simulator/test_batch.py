"""The batch endpoint (CHANGES §2): items checked as the single create checks a body, the valid ones queued and
created shortly after the answer, a charge that can no longer be created reported by charge-creation-failed;
idempotency, faults and the per-charge effects report."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sim_harness import Vipps, many_merchants

from tests.merchants import OWN, OWN_MSN, PARTNER, PARTNER_MSNS
from tests.webhook_receiver import Receiver, wait_until
from worker.simulator.config import SimulatorConfig

BATCH = "/recurring/v3/agreements/charges"


@pytest.fixture
def slow() -> Iterator[Vipps]:
    """Batch charges are created 5 s (simulated) after the answer, so a test sees them queued first."""
    client = Vipps(rate_limits_enabled=False, batch_creation_delay_seconds=5)
    client.set_clock("2030-01-01T10:00:00Z")
    client.token = client.fetch_token().json()["access_token"]
    yield client
    client.close()


def _fetch(vipps: Vipps, agreement_id: str, charge_id: str) -> httpx.Response:
    return vipps.call("GET", f"/recurring/v3/agreements/{agreement_id}/charges/{charge_id}")


def test_valid_items_are_queued_then_created(slow: Vipps) -> None:
    first, second = slow.active_agreement(), slow.active_agreement()
    items = [slow.batch_item(first, "b-1"), slow.batch_item(second, "b-2", 5000, retryDays=3, externalId="inv-2")]
    response = slow.create_charges(items, key="batch-1")
    assert response.status_code == 202
    assert response.json() == {"validCharges": ["b-1", "b-2"], "invalidCharges": []}
    assert _fetch(slow, first, "b-1").status_code == 404
    assert slow.admin("GET", "/effects/charges")["queued"] == ["b-1", "b-2"]
    slow.advance(5)
    charge = slow.charge(second, "b-2")
    assert (charge["status"], charge["type"], charge["amount"], charge["retryDays"]) == ("DUE", "RECURRING", 5000, 3)
    assert charge["externalId"] == "inv-2" and charge["history"][0]["idempotencyKey"] == "batch-1"
    assert slow.charge(first, "b-1")["status"] == "DUE"
    queued = slow.effects(operation="charge.batch")
    assert [(e["charge_id"], e["effect"], e["idempotency_key"]) for e in queued] == [
        ("b-1", "queued", "batch-1"),
        ("b-2", "queued", "batch-1"),
    ]
    created = slow.effects(operation="charge.create")
    assert [(e["charge_id"], e["effect"], e["credentials"]) for e in created] == [
        ("b-1", "created:PENDING", "merchant:123456"),
        ("b-2", "created:PENDING", "merchant:123456"),
    ]


def test_by_default_the_charges_exist_by_the_next_call(vipps: Vipps) -> None:
    agreement_id = vipps.active_agreement()
    assert vipps.create_charges([vipps.batch_item(agreement_id, "soon-1")]).status_code == 202
    assert vipps.charge(agreement_id, "soon-1")["status"] == "DUE"


def _invalid_items(vipps: Vipps, active: str, pending: str) -> list[tuple[dict[str, Any], str]]:
    """An item breaking each rule of the single create, with a word its error text must contain."""
    item = vipps.batch_item
    return [
        (item(active, "x-amount", 99), "amount"),
        (item(active, "x-descr", description="d" * 46), "description"),
        (item(active, "x-today", due=vipps.due(0)), "minimum of 1 day"),
        (item(active, "x-far", due=vipps.due(731)), "2 years"),
        (item(active, "x-bad-due", due="02.01.2030"), "due"),
        (item(active, "x-retry", retryDays=15), "retryDays"),
        (item(active, "x-type", transactionType="LATER"), "transactionType"),
        (item(active, "x-single", retryDays=2, processingMode="SINGLE_ATTEMPT"), "SINGLE_ATTEMPT"),
        (item(active, "x-mode", processingMode="SOMETIMES"), "processingMode"),
        (item(active, "x-unsched", type="UNSCHEDULED"), "RECURRING"),
        (item(active, "x-limit", 50001), "limit"),
        (item(pending, "x-pending"), "not active"),
        (item("agr_nothere", "x-unknown"), "not found"),
        ({k: v for k, v in item(active, "x").items() if k != "orderId"}, "orderId"),
        ({k: v for k, v in item(active, "x-no-agr").items() if k != "agreementId"}, "agreementId"),
        (item(active, "bad order id!"), "orderId"),
    ]


def test_every_invalid_item_is_listed_with_its_errors_and_the_rest_is_accepted(vipps: Vipps) -> None:
    active, pending = vipps.active_agreement(), vipps.agreement_id()
    cases = _invalid_items(vipps, active, pending)
    items: list[Any] = [vipps.batch_item(active, "ok-1"), *[c[0] for c in cases], "not an object"]
    response = vipps.create_charges(items)
    assert response.status_code == 202
    body = response.json()
    assert body["validCharges"] == ["ok-1"]
    invalid = body["invalidCharges"]
    assert [i["chargeBatchItemDto"] for i in invalid] == items[1:]
    for (_, word), entry in zip(cases, invalid, strict=False):
        assert entry["errors"] and any(word in text for text in entry["errors"]), (word, entry["errors"])
    assert invalid[-1]["errors"] == ["the item must be a JSON object"]
    assert [e["charge_id"] for e in vipps.effects(operation="charge.create")] == ["ok-1"]


def test_another_merchants_agreement_is_an_invalid_item() -> None:
    vipps = many_merchants()
    theirs = vipps.active_agreement()
    vipps.login(PARTNER.token_headers(), PARTNER_MSNS[0])
    body = vipps.create_charges([vipps.batch_item(theirs, "foreign-1")]).json()
    assert body["validCharges"] == [] and "not found" in body["invalidCharges"][0]["errors"][0]
    vipps.login(OWN.token_headers(), OWN_MSN)
    assert vipps.create_charges([vipps.batch_item(theirs, "foreign-1")]).json()["validCharges"] == ["foreign-1"]
    vipps.close()


@pytest.mark.parametrize(
    "body",
    [[], "many", {"agreementId": "agr_x"}],
    ids=["empty", "not-an-array", "an-object"],
)
def test_a_batch_of_the_wrong_shape_is_refused_whole(vipps: Vipps, body: Any) -> None:
    response = vipps.create_charges(body)
    assert response.status_code == 400 and vipps.problem_type(response) == "validation-error"
    assert vipps.effects() == []


def test_more_than_2000_items_are_refused_whole(vipps: Vipps) -> None:
    agreement_id = vipps.active_agreement()
    items = [vipps.batch_item(agreement_id, f"many-{n}") for n in range(2001)]
    response = vipps.create_charges(items)
    assert response.status_code == 400 and vipps.problem_type(response) == "validation-error"
    assert vipps.create_charges(items[:2000]).status_code == 202
    assert len(vipps.admin("GET", "/effects/charges")["charges"]) == 2000


def test_a_batch_needs_an_idempotency_key(vipps: Vipps) -> None:
    agreement_id = vipps.active_agreement()
    response = vipps.http.request("POST", BATCH, json=[vipps.batch_item(agreement_id, "k-1")], headers=vipps.headers())
    vipps.check(response)
    assert response.status_code == 400 and vipps.problem_type(response) == "idempotency-key-header"


def test_an_order_id_in_use_is_an_invalid_item(slow: Vipps) -> None:
    agreement_id = slow.active_agreement()
    existing = slow.charge_id(agreement_id, orderId="used-1")
    first = slow.create_charges(
        [
            slow.batch_item(agreement_id, "twice"),
            slow.batch_item(agreement_id, "twice", 200),
            slow.batch_item(agreement_id, existing),
        ]
    ).json()
    assert first["validCharges"] == ["twice"]
    errors = [i["errors"][0] for i in first["invalidCharges"]]
    assert all("orderId" in text and "already" in text for text in errors)
    assert first["invalidCharges"][0]["chargeBatchItemDto"]["amount"] == 200
    # Queued, not yet created: in use for another batch and for the single create.
    again = slow.create_charges([slow.batch_item(agreement_id, "twice")]).json()
    assert again["validCharges"] == [] and "already" in again["invalidCharges"][0]["errors"][0]
    single = slow.create_charge(agreement_id, orderId="twice")
    assert single.status_code == 409 and "already in use" in single.json()["detail"]
    slow.advance(5)
    report = slow.admin("GET", "/effects/charges")
    assert report["created_more_than_once"] == [] and report["queued"] == []
    assert {k: v["creations"] for k, v in report["charges"].items()} == {"used-1": 1, "twice": 1}


def test_the_same_key_replays_and_another_body_is_a_conflict(slow: Vipps) -> None:
    agreement_id = slow.active_agreement()
    items = [slow.batch_item(agreement_id, "r-1"), slow.batch_item(agreement_id, "r-2", 99)]
    first = slow.create_charges(items, key="replay-me")
    again = slow.create_charges(items, key="replay-me")
    assert again.status_code == 202 and again.content == first.content
    records = slow.admin("GET", "/requests", params={"operation": "CreateChargesAsyncV3"})
    assert [r["replay"] for r in records] == [False, True]
    conflict = slow.create_charges(items[:1], key="replay-me")
    assert conflict.status_code == 409 and slow.problem_type(conflict) == "idempotency-conflict"
    slow.advance(5)
    assert slow.effects(duplicates="true") == []
    assert slow.admin("GET", "/effects/charges")["charges"]["r-1"]["creations"] == 1


def test_an_agreement_stopped_before_processing_fails_its_charges(hooked_slow: Vipps, receiver: Receiver) -> None:
    vipps = hooked_slow
    vipps.webhook(receiver.url(), "recurring.charge-creation-failed.v1")
    stopped, kept = vipps.active_agreement(), vipps.active_agreement()
    body = vipps.create_charges(
        [vipps.batch_item(stopped, "gone-1", externalId="inv-9"), vipps.batch_item(kept, "kept-1")], key="b-stop"
    ).json()
    assert body["validCharges"] == ["gone-1", "kept-1"]
    assert vipps.update(stopped, {"status": "STOPPED"}).status_code == 204
    vipps.advance(5)
    assert _fetch(vipps, stopped, "gone-1").status_code == 404
    assert vipps.charge(kept, "kept-1")["status"] == "DUE"
    failed = vipps.effects(charge_id="gone-1", operation="charge.create")
    assert [(e["effect"], e["idempotency_key"]) for e in failed] == [("creation-failed:non_technical_error", "b-stop")]
    receiver.wait(1)
    wait_until(lambda: len(vipps.deliveries(result="delivered")) >= 1)
    (event,) = receiver.payloads()
    assert {k: event[k] for k in ("eventType", "agreementId", "chargeId", "failureReason", "chargeExternalId")} == {
        "eventType": "recurring.charge-creation-failed.v1",
        "agreementId": stopped,
        "chargeId": "gone-1",
        "failureReason": "non_technical_error",
        "chargeExternalId": "inv-9",
    }
    report = vipps.admin("GET", "/effects/charges")
    assert list(report["charges"]) == ["kept-1"]


@pytest.fixture
def hooked_slow() -> Iterator[Vipps]:
    client = Vipps(
        rate_limits_enabled=False,
        batch_creation_delay_seconds=5,
        webhook_retry_seconds=0.05,
        webhook_timeout_seconds=2.0,
    )
    client.set_clock("2030-01-01T10:00:00Z")
    client.token = client.fetch_token().json()["access_token"]
    yield client
    client.close()


def test_scripted_and_random_creation_failures(vipps: Vipps) -> None:
    agreement_id = vipps.active_agreement()
    vipps.admin(
        "POST", "/scripts", {"charge_creation_fails": ["s-1", {"charge_id": "s-2", "reason": "user_action_required"}]}
    )
    vipps.create_charges([vipps.batch_item(agreement_id, f"s-{n}") for n in (1, 2, 3)], key="scripted")
    vipps.admin("GET", "/stats")
    effects = {e["charge_id"]: e["effect"] for e in vipps.effects(operation="charge.create")}
    assert effects == {
        "s-1": "creation-failed:technical_error",
        "s-2": "creation-failed:user_action_required",
        "s-3": "created:PENDING",
    }
    always = Vipps(rate_limits_enabled=False, batch_creation_failure_rate=1.0)
    always_id = always.active_agreement()
    assert always.create_charges([always.batch_item(always_id, "r-1")]).json()["validCharges"] == ["r-1"]
    assert [e["effect"] for e in always.effects(operation="charge.create")] == ["creation-failed:technical_error"]
    always.close()


def test_a_batch_answer_lost_after_commit_was_accepted(vipps: Vipps) -> None:
    agreement_id = vipps.active_agreement()
    items = [vipps.batch_item(agreement_id, "lost-1")]
    vipps.admin("PUT", "/faults", {"drop_after_commit_rate": 1.0, "operations": ["CreateChargesAsyncV3"]})
    with pytest.raises(httpx.RemoteProtocolError):
        vipps.create_charges(items, key="lost")
    vipps.admin("PUT", "/faults", {})
    replay = vipps.create_charges(items, key="lost")
    assert replay.status_code == 202 and replay.json()["validCharges"] == ["lost-1"]
    other_key = vipps.create_charges(items, key="lost-again").json()
    assert other_key["validCharges"] == [] and "already" in other_key["invalidCharges"][0]["errors"][0]
    assert vipps.admin("GET", "/effects/charges")["charges"]["lost-1"]["creations"] == 1
    vipps.admin("PUT", "/faults", {"error_5xx_rate": 1.0, "operations": ["CreateChargesAsyncV3"]})
    assert vipps.create_charges([vipps.batch_item(agreement_id, "never")]).status_code >= 500
    assert "never" not in vipps.admin("GET", "/effects/charges")["charges"]


def test_the_effects_report_counts_creations_per_charge(vipps: Vipps) -> None:
    initial = {"amount": 4900, "description": "First", "transactionType": "DIRECT_CAPTURE", "orderId": "init-1"}
    agreement_id = vipps.agreement_id(initialCharge=initial)
    vipps.accept(agreement_id)
    vipps.charge_id(agreement_id, orderId="single-1")
    vipps.create_charges([vipps.batch_item(agreement_id, "batch-1")], key="bk")
    report = vipps.admin("GET", "/effects/charges")
    assert report["charges"] == {
        "init-1": {
            "msn": "123456",
            "agreement_id": agreement_id,
            "creations": 1,
            "operations": ["agreement.draft"],
            "idempotency_keys": [report["charges"]["init-1"]["idempotency_keys"][0]],
        },
        "single-1": {
            "msn": "123456",
            "agreement_id": agreement_id,
            "creations": 1,
            "operations": ["charge.create"],
            "idempotency_keys": [report["charges"]["single-1"]["idempotency_keys"][0]],
        },
        "batch-1": {
            "msn": "123456",
            "agreement_id": agreement_id,
            "creations": 1,
            "operations": ["charge.create"],
            "idempotency_keys": ["bk"],
        },
    }
    assert report["created_more_than_once"] == [] and report["queued"] == []
    one = vipps.admin("GET", "/effects/charges", params={"charge_id": "batch-1"})
    assert list(one["charges"]) == ["batch-1"]
    assert vipps.admin("GET", "/effects/charges", params={"msn": "999"})["charges"] == {}


def test_charges_per_minute_per_msn_counts_a_batch_once() -> None:
    vipps = Vipps(rate_limits_enabled=True, charges_per_minute=3)
    vipps.set_clock("2030-01-01T10:00:00Z")
    vipps.token = vipps.fetch_token().json()["access_token"]
    first, second = vipps.active_agreement(), vipps.active_agreement()
    assert vipps.create_charge(first).status_code == 201
    assert vipps.create_charge(second).status_code == 201
    items = [vipps.batch_item(first, f"cap-{n}") for n in range(50)]
    assert vipps.create_charges(items).json()["validCharges"] == [f"cap-{n}" for n in range(50)]
    limited = vipps.create_charge(first)
    assert limited.status_code == 429 and int(limited.headers["Retry-After"]) >= 1
    batch_limited = vipps.create_charges([vipps.batch_item(first, "cap-late")])
    assert batch_limited.status_code == 429 and "Retry-After" in batch_limited.headers
    vipps.advance(61)
    assert vipps.create_charges([vipps.batch_item(second, "cap-late")]).status_code == 202
    vipps.close()


def test_the_per_msn_cap_defaults_to_500_and_no_rate_limits_turns_it_off() -> None:
    assert SimulatorConfig().charges_per_minute == 500
    vipps = Vipps(rate_limits_enabled=False, charges_per_minute=1)
    agreement_id = vipps.active_agreement()
    assert all(vipps.create_charge(agreement_id).status_code == 201 for _ in range(3))
    vipps.close()
