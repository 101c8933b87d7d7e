"""Today's create-charge fields (CHANGES §3): processingMode, UNSCHEDULED charges and their allow-list, the lead
time's problem type."""

from __future__ import annotations

from sim_harness import Vipps, many_merchants

from tests.merchants import PARTNER, PARTNER_MSNS
from tests.webhook_receiver import Receiver, wait_until

REFUSED = "Cannot create a charge with type 'UNSCHEDULED'"


def test_single_attempt_needs_retry_days_zero(vipps: Vipps) -> None:
    agreement_id = vipps.active_agreement()
    refused = vipps.create_charge(agreement_id, retryDays=2, processingMode="SINGLE_ATTEMPT")
    assert refused.status_code == 400 and vipps.problem_type(refused) == "validation-error"
    assert refused.json()["extraDetails"] == [
        {"field": "retryDays", "text": "must be 0 when processingMode is SINGLE_ATTEMPT"}
    ]
    unknown = vipps.create_charge(agreement_id, processingMode="TWICE")
    assert vipps.problem_type(unknown) == "validation-error"
    assert vipps.create_charge(agreement_id, retryDays=0, processingMode="SINGLE_ATTEMPT").status_code == 201
    assert vipps.create_charge(agreement_id, retryDays=2, processingMode="MULTIPLE_ATTEMPTS").status_code == 201


def test_single_attempt_fails_after_one_attempt_multiple_attempts_tries_the_day(vipps: Vipps) -> None:
    agreement_id = vipps.active_agreement()
    vipps.admin("POST", "/scripts", {"agreement_fails": agreement_id})
    single = vipps.charge_id(agreement_id, processingMode="SINGLE_ATTEMPT")
    multiple = vipps.charge_id(agreement_id)
    # Due 2030-01-02: rounds at 07:00 and 15:00 UTC.
    vipps.set_clock("2030-01-02T07:00:01Z")
    vipps.token = vipps.fetch_token().json()["access_token"]
    assert vipps.charge(agreement_id, single)["status"] == "FAILED"
    assert vipps.charge(agreement_id, multiple)["status"] == "DUE"
    vipps.set_clock("2030-01-02T15:00:01Z")
    vipps.token = vipps.fetch_token().json()["access_token"]
    assert vipps.charge(agreement_id, multiple)["status"] == "FAILED"
    assert [e["event"] for e in vipps.charge(agreement_id, single)["history"]] == ["CREATE", "FAIL"]


def test_the_lead_time_refusal_is_charge_due_too_soon(vipps: Vipps) -> None:
    agreement_id = vipps.active_agreement()
    response = vipps.create_charge(agreement_id, due=vipps.due(0))
    assert response.status_code == 400 and vipps.problem_type(response) == "charge-due-too-soon"


def test_unscheduled_is_refused_unless_the_msn_is_allow_listed(vipps: Vipps) -> None:
    agreement_id = vipps.active_agreement()
    body = {"amount": 1000, "description": "Extra", "transactionType": "DIRECT_CAPTURE", "type": "UNSCHEDULED"}
    response = vipps.call("POST", f"/recurring/v3/agreements/{agreement_id}/charges", body)
    assert response.status_code == 400 and response.json()["detail"] == REFUSED
    assert vipps.effects(operation="charge.create") == []


def _unscheduled(vipps: Vipps, agreement_id: str, amount: int = 1000, **changes: object) -> str:
    body = {"amount": amount, "description": "Extra", "transactionType": "DIRECT_CAPTURE", "type": "UNSCHEDULED"}
    response = vipps.call("POST", f"/recurring/v3/agreements/{agreement_id}/charges", {**body, **changes})
    assert response.status_code == 201, response.text
    return str(response.json()["chargeId"])


def test_an_unscheduled_charge_is_processed_at_once_with_one_attempt() -> None:
    vipps = Vipps(rate_limits_enabled=False, unscheduled_charges_allowed=True)
    vipps.set_clock("2030-01-01T10:00:00Z")
    vipps.token = vipps.fetch_token().json()["access_token"]
    agreement_id = vipps.active_agreement()
    vipps.admin("POST", "/scripts", {"charge_amount_fails": 151})
    charged = _unscheduled(vipps, agreement_id, orderId="extra-1")
    reserved = _unscheduled(vipps, agreement_id, transactionType="RESERVE_CAPTURE")
    failed = _unscheduled(vipps, agreement_id, 151)
    first = vipps.charge(agreement_id, charged)
    assert (first["status"], first["type"], first["summary"]["captured"]) == ("CHARGED", "UNSCHEDULED", 1000)
    assert vipps.charge(agreement_id, reserved)["status"] == "RESERVED"
    failure = vipps.charge(agreement_id, failed)
    assert failure["status"] == "FAILED" and failure["failureReason"] == "user_action_required"
    assert [e["effect"] for e in vipps.effects(charge_id=charged)] == ["created:PROCESSING", "PROCESSING->CHARGED"]
    for extra in ({"due": vipps.due(1)}, {"retryDays": 0}):
        given = vipps.call(
            "POST",
            f"/recurring/v3/agreements/{agreement_id}/charges",
            {"amount": 1000, "description": "x", "transactionType": "DIRECT_CAPTURE", "type": "UNSCHEDULED", **extra},
        )
        assert given.status_code == 400 and vipps.problem_type(given) == "validation-error"
    assert vipps.admin("GET", "/effects/charges")["charges"][charged]["creations"] == 1
    vipps.close()


def test_unscheduled_webhooks(receiver: Receiver) -> None:
    vipps = Vipps(
        rate_limits_enabled=False,
        unscheduled_charges_allowed=True,
        webhook_retry_seconds=0.05,
        webhook_timeout_seconds=2.0,
    )
    vipps.set_clock("2030-01-01T10:00:00Z")
    vipps.token = vipps.fetch_token().json()["access_token"]
    vipps.webhook(receiver.url(), "recurring.charge-captured.v1", "recurring.charge-failed.v1")
    agreement_id = vipps.active_agreement()
    vipps.admin("POST", "/scripts", {"charge_amount_fails": 151})
    _unscheduled(vipps, agreement_id, orderId="u-ok")
    _unscheduled(vipps, agreement_id, 151, orderId="u-bad")
    vipps.admin("GET", "/effects")
    receiver.wait(2)
    wait_until(lambda: len(vipps.deliveries(result="delivered")) >= 2)
    events = [(e["eventType"], e["chargeId"], e["chargeType"]) for e in receiver.payloads()]
    assert events == [
        ("recurring.charge-captured.v1", "u-ok", "UNSCHEDULED"),
        ("recurring.charge-failed.v1", "u-bad", "UNSCHEDULED"),
    ]
    vipps.close()


def test_the_merchants_file_allow_lists_unscheduled_per_msn() -> None:
    allowed, other = PARTNER_MSNS
    vipps = many_merchants(**{allowed: {"unscheduled_allowed": True}})
    own_agreement = vipps.active_agreement()
    body = {"amount": 1000, "description": "Extra", "transactionType": "DIRECT_CAPTURE", "type": "UNSCHEDULED"}
    refused = vipps.call("POST", f"/recurring/v3/agreements/{own_agreement}/charges", body)
    assert refused.status_code == 400 and refused.json()["detail"] == REFUSED
    vipps.login(PARTNER.token_headers(), allowed)
    _unscheduled(vipps, vipps.active_agreement())
    vipps.login(PARTNER.token_headers(), other)
    theirs = vipps.active_agreement()
    assert vipps.call("POST", f"/recurring/v3/agreements/{theirs}/charges", body).json()["detail"] == REFUSED
    vipps.close()
