"""What each Recurring event says (CHANGES §1.2): the field set per event type, fields without a value left out,
the actor of a stop, a transactionId per payment operation, ``occurred`` from the simulated clock; and the stops
the merchant does not make (the user's in the app, Vipps's for a deleted profile)."""

from __future__ import annotations

from typing import Any

from sim_harness import Vipps

from tests.webhook_receiver import Receiver, wait_until

AGREEMENT_FIELDS = {"agreementId", "agreementUUID", "eventType", "occurred", "msn"}
CHARGE_FIELDS = {
    "agreementId",
    "chargeId",
    "amount",
    "amountCaptured",
    "amountCanceled",
    "amountRefunded",
    "chargeType",
    "currency",
    "eventType",
    "occurred",
    "msn",
}
DAY = 86400


def _events(vipps: Vipps, receiver: Receiver, count: int) -> list[dict[str, Any]]:
    """The first ``count`` events delivered, in delivery order."""
    receiver.wait(count)
    wait_until(lambda: len(vipps.deliveries(result="delivered")) >= count)
    return receiver.payloads()[:count]


def _short(event: dict[str, Any]) -> str:
    return str(event["eventType"]).removeprefix("recurring.").removesuffix(".v1")


def test_agreement_events_and_their_fields(hooked: Vipps, receiver: Receiver) -> None:
    hooked.webhook(receiver.url())
    plain = hooked.active_agreement()
    external = hooked.active_agreement(externalId="member-42")
    hooked.update(plain, {"status": "STOPPED"})
    rejected = hooked.agreement_id()
    hooked.admin("POST", "/scripts", {"user_rejects": rejected})
    expired = hooked.agreement_id()
    hooked.advance(601)
    events = _events(hooked, receiver, 5)
    assert [(_short(e), e["agreementId"]) for e in events] == [
        ("agreement-activated", plain),
        ("agreement-activated", external),
        ("agreement-stopped", plain),
        ("agreement-rejected", rejected),
        ("agreement-expired", expired),
    ]
    assert set(events[0]) == AGREEMENT_FIELDS
    assert set(events[1]) == AGREEMENT_FIELDS | {"agreementExternalId"}
    assert events[1]["agreementExternalId"] == "member-42"
    assert set(events[2]) == AGREEMENT_FIELDS | {"actor"} and events[2]["actor"] == "MERCHANT"
    assert set(events[3]) == set(events[4]) == AGREEMENT_FIELDS
    assert events[0]["agreementUUID"] == hooked.agreement(plain)["uuid"]
    assert events[0]["msn"] == "123456" and events[0]["occurred"] == "2030-01-01T10:00:00Z"
    assert events[4]["occurred"] == "2030-01-01T10:10:00Z"


def test_charge_events_and_their_fields(hooked: Vipps, receiver: Receiver) -> None:
    hooked.webhook(receiver.url())
    agreement_id = hooked.active_agreement()
    direct = hooked.charge_id(agreement_id, 1000, externalId="INV-1")
    reserve = hooked.charge_id(agreement_id, 2000, transactionType="RESERVE_CAPTURE", orderId="reserve-1")
    hooked.admin("POST", "/scripts", {"charge_amount_fails": 151})
    failing = hooked.charge_id(agreement_id, 151)
    hooked.advance(DAY + 6 * 3600)  # the 07:00 round on the due date, then the 15:00 one (the last for 151)
    assert hooked.capture(agreement_id, reserve, 500).status_code == 204
    assert hooked.cancel(agreement_id, reserve).status_code == 204
    assert hooked.refund(agreement_id, direct, 300).status_code == 204
    events = _events(hooked, receiver, 7)[1:]
    assert [(_short(e), e["chargeId"]) for e in events] == [
        ("charge-captured", direct),
        ("charge-reserved", reserve),
        ("charge-failed", failing),
        ("charge-captured", reserve),
        ("charge-canceled", reserve),
        ("charge-refunded", direct),
    ]
    captured, reserved, failed, partly, canceled, refunded = events
    for event in (captured, refunded):
        assert set(event) == CHARGE_FIELDS | {"chargeExternalId", "transactionId"}
        assert event["chargeExternalId"] == "INV-1"
    for event in (reserved, partly, canceled):
        assert set(event) == CHARGE_FIELDS | {"transactionId"}, event
    assert set(failed) == CHARGE_FIELDS | {"failureReason"} and failed["failureReason"] == "user_action_required"
    assert len({e["transactionId"] for e in (captured, reserved, partly, canceled, refunded)}) == 5
    amounts = [(e["amount"], e["amountCaptured"], e["amountCanceled"], e["amountRefunded"]) for e in events]
    assert amounts == [(1000, 1000, 0, 0), (2000, 0, 0, 0), (151, 0, 0, 0), (2000, 500, 0, 0), (2000, 500, 1500, 0),
                       (1000, 1000, 0, 300)]
    assert {e["chargeType"] for e in events} == {"RECURRING"} and {e["currency"] for e in events} == {"NOK"}
    assert captured["occurred"] == "2030-01-02T07:00:00Z" and refunded["occurred"] == "2030-01-02T16:00:00Z"
    assert failed["occurred"] == "2030-01-02T15:00:00Z"


def test_an_initial_charge_and_a_stop_that_cancels_open_charges(hooked: Vipps, receiver: Receiver) -> None:
    hooked.webhook(receiver.url())
    initial = {"amount": 4900, "description": "First", "transactionType": "DIRECT_CAPTURE", "orderId": "first-1"}
    agreement_id = hooked.agreement_id(initialCharge=initial)
    assert hooked.accept(agreement_id).status_code == 204
    due = hooked.charge_id(agreement_id, due=hooked.due(2))
    hooked.update(agreement_id, {"status": "STOPPED"})
    events = _events(hooked, receiver, 4)
    assert [(_short(e), e.get("chargeId")) for e in events] == [
        ("charge-captured", "first-1"),
        ("agreement-activated", None),
        ("agreement-stopped", None),
        ("charge-canceled", due),
    ]
    assert events[0]["chargeType"] == "INITIAL" and events[3]["amountCanceled"] == 10000


def test_the_user_stops_in_the_app(hooked: Vipps, receiver: Receiver) -> None:
    hooked.webhook(receiver.url(), "recurring.agreement-stopped.v1", "recurring.charge-canceled.v1")
    agreement_id = hooked.active_agreement()
    reserved = hooked.charge_id(agreement_id, transactionType="RESERVE_CAPTURE")
    hooked.advance(DAY)
    later = hooked.charge_id(agreement_id, due=hooked.due(3))
    assert hooked.admin("POST", f"/agreements/{agreement_id}/user-stop") == {"stopped": [agreement_id]}
    stopped, canceled = _events(hooked, receiver, 2)
    assert stopped["actor"] == "USER" and canceled["chargeId"] == later
    # The reservation stays for the merchant to capture or cancel.
    assert hooked.charge(agreement_id, reserved)["status"] == "RESERVED"
    assert hooked.effects(operation="user.stop")[0]["effect"] == "ACTIVE->STOPPED"
    refused = hooked.http.post(f"/_simulator/agreements/{agreement_id}/user-stop")
    assert refused.status_code == 409
    assert hooked.http.post("/_simulator/agreements/agr_nothing/user-stop").status_code == 404


def test_a_deleted_profile_stops_every_active_agreement_of_the_user(hooked: Vipps, receiver: Receiver) -> None:
    hooked.webhook(receiver.url(), "recurring.agreement-stopped.v1")
    first, second = hooked.active_agreement(), hooked.active_agreement()
    other = hooked.agreement_id(phoneNumber="4798765432")
    hooked.call("PATCH", f"/recurring/v3/agreements/{other}/accept", {"phoneNumber": "4798765432"})
    pending = hooked.agreement_id()
    answer = hooked.admin("POST", "/profiles/delete", {"agreement_id": first})
    assert answer == {"phone_number": "4791234567", "stopped": [first, second]}
    events = _events(hooked, receiver, 2)
    assert [(e["agreementId"], e["actor"]) for e in events] == [(first, "ADMIN"), (second, "ADMIN")]
    assert hooked.agreement(other)["status"] == "ACTIVE" and hooked.agreement(pending)["status"] == "PENDING"
    assert [e["operation"] for e in hooked.effects(operation="admin.stop")] == ["admin.stop", "admin.stop"]
    assert hooked.admin("POST", "/profiles/delete", {"phone_number": "4798765432"})["stopped"] == [other]
    assert hooked.http.post("/_simulator/profiles/delete", json={}).status_code == 400
