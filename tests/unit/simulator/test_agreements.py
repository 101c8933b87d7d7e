"""Agreement state machine (NOTES §3.1): PENDING -> ACTIVE / EXPIRED / STOPPED, updates, scripts."""

from __future__ import annotations

from sim_harness import Vipps


def test_pending_agreement_expires_after_ten_minutes(vipps: Vipps) -> None:
    agreement_id = vipps.agreement_id(
        initialCharge={"amount": 100, "description": "x", "transactionType": "DIRECT_CAPTURE"}
    )
    vipps.advance(599)
    assert vipps.agreement(agreement_id)["status"] == "PENDING"
    vipps.advance(2)
    agreement = vipps.agreement(agreement_id)
    assert agreement["status"] == "EXPIRED"
    charges = vipps.call("GET", f"/recurring/v3/agreements/{agreement_id}/charges").json()
    assert [c["status"] for c in charges] == ["CANCELLED"]
    late = vipps.accept(agreement_id)
    assert late.status_code == 409 and vipps.problem_type(late) == "conflict"


def test_direct_capture_initial_charge_is_charged_at_acceptance(vipps: Vipps) -> None:
    initial = {"amount": 19900, "description": "Device", "transactionType": "DIRECT_CAPTURE"}
    draft = vipps.draft(initialCharge=initial).json()
    vipps.accept(draft["agreementId"])
    charge = vipps.charge(draft["agreementId"], draft["chargeId"])
    assert charge["status"] == "CHARGED" and charge["type"] == "INITIAL"
    assert charge["summary"]["captured"] == 19900 and charge["transactionId"]


def test_failing_initial_charge_leaves_the_agreement_expired(vipps: Vipps) -> None:
    vipps.admin("POST", "/scripts", {"charge_amount_fails": 151})
    initial = {"amount": 151, "description": "Device", "transactionType": "DIRECT_CAPTURE"}
    draft = vipps.draft(initialCharge=initial).json()
    assert vipps.accept(draft["agreementId"]).status_code == 204
    assert vipps.agreement(draft["agreementId"])["status"] == "EXPIRED"
    charge = vipps.charge(draft["agreementId"], draft["chargeId"])
    assert charge["status"] == "FAILED" and charge["failureReason"] == "user_action_required"


def test_stop_cancels_open_charges_and_is_final(vipps: Vipps) -> None:
    initial = {"amount": 5000, "description": "Box", "transactionType": "RESERVE_CAPTURE"}
    draft = vipps.draft(initialCharge=initial).json()
    agreement_id = draft["agreementId"]
    vipps.accept(agreement_id)
    pending = vipps.charge_id(agreement_id, due=vipps.due(60))
    due = vipps.charge_id(agreement_id)
    assert vipps.update(agreement_id, {"status": "STOPPED"}).status_code == 204
    agreement = vipps.agreement(agreement_id)
    assert agreement["status"] == "STOPPED" and agreement["stop"]
    for charge_id in (draft["chargeId"], pending, due):
        charge = vipps.charge(agreement_id, charge_id)
        assert charge["status"] == "CANCELLED" and charge["summary"]["cancelled"] == charge["amount"]
    again = vipps.update(agreement_id, {"status": "STOPPED"})
    assert again.status_code == 400 and vipps.problem_type(again) == "illegal-agreement-update"
    renamed = vipps.update(agreement_id, {"productName": "x"})
    assert renamed.status_code == 400 and vipps.problem_type(renamed) == "illegal-agreement-update"
    charge = vipps.create_charge(agreement_id)
    assert charge.status_code == 400 and vipps.problem_type(charge) == "charge-creation-failed"


def test_idempotent_stop_option_accepts_a_repeated_stop() -> None:
    vipps = Vipps(idempotent_stop=True)
    agreement_id = vipps.active_agreement()
    assert vipps.update(agreement_id, {"status": "STOPPED"}).status_code == 204
    assert vipps.update(agreement_id, {"status": "STOPPED"}).status_code == 204


def test_stop_with_other_changes_is_rejected(vipps: Vipps) -> None:
    agreement_id = vipps.active_agreement()
    response = vipps.update(agreement_id, {"status": "STOPPED", "productName": "x"})
    assert response.status_code == 400 and vipps.problem_type(response) == "validation-error"
    assert vipps.agreement(agreement_id)["status"] == "ACTIVE"


def test_updates_follow_pricing_type(vipps: Vipps) -> None:
    legacy = vipps.active_agreement()
    variable = vipps.active_agreement(pricing={"type": "VARIABLE", "suggestedMaxAmount": 30000, "currency": "NOK"})
    assert (
        vipps.update(
            legacy, {"pricing": {"amount": 20000}, "interval": {"period": {"unit": "WEEK", "count": 2}}}
        ).status_code
        == 204
    )
    agreement = vipps.agreement(legacy)
    assert agreement["pricing"]["amount"] == 20000 and agreement["interval"]["text"] == "every 2 weeks"
    assert vipps.update(legacy, {"pricing": {"suggestedMaxAmount": 500}}).status_code == 400
    assert vipps.update(variable, {"pricing": {"amount": 500}}).status_code == 400
    assert vipps.update(variable, {"pricing": {"suggestedMaxAmount": 40000}}).status_code == 204
    pending = vipps.agreement_id()
    assert vipps.problem_type(vipps.update(pending, {"productName": "x"})) == "illegal-agreement-update"


def test_draft_validation_follows_the_spec(vipps: Vipps) -> None:
    cases = [
        ({"pricing": {"amount": 99, "currency": "NOK"}}, "pricing.amount"),
        ({"pricing": {"amount": 1000, "currency": "EUR"}}, "pricing.currency"),
        ({"interval": {"unit": "MONTH", "count": 32}}, "interval.count"),
        ({"interval": {"unit": "HOUR", "count": 1}}, "interval.unit"),
        ({"merchantAgreementUrl": "http://example.com"}, "merchantAgreementUrl"),
        ({"productName": ""}, "productName"),
        ({"phoneNumber": "1" * 16}, "phoneNumber"),
        ({"scope": "name shoeSize"}, "scope"),
        ({"externalId": "x" * 65}, "externalId"),
        ({"pricing": {"type": "VARIABLE", "currency": "NOK"}}, "pricing.suggestedMaxAmount"),
    ]
    for change, field in cases:
        response = vipps.draft(**change)
        assert response.status_code == 400, change
        assert vipps.problem_type(response) == "validation-error"
        assert field in [d["field"] for d in response.json()["extraDetails"]], change
    too_high = vipps.draft(pricing={"type": "VARIABLE", "suggestedMaxAmount": 2_000_001, "currency": "NOK"})
    assert vipps.problem_type(too_high) == "invalid-suggested-max-amount"
    assert vipps.draft(skipLandingPage=True).status_code == 403
    # Numbers sent as strings, as in the Postman collection, are accepted like the real API does.
    assert vipps.draft(interval={"unit": "MONTH", "count": "3"}).status_code == 201
    assert vipps.draft(isApp=True).json()["vippsConfirmationUrl"].startswith("vippsMT://")


def test_user_scripts_accept_reject_stop(vipps: Vipps) -> None:
    accepted = vipps.agreement_id(pricing={"type": "VARIABLE", "suggestedMaxAmount": 30000, "currency": "NOK"})
    vipps.admin("POST", "/scripts", {"user_accepts": {"agreement_id": accepted, "max_amount": 50000}})
    agreement = vipps.agreement(accepted)
    assert agreement["status"] == "ACTIVE" and agreement["pricing"]["maxAmount"] == 50000
    rejected = vipps.agreement_id()
    vipps.admin("POST", "/scripts", {"user_rejects": rejected})
    assert vipps.agreement(rejected)["status"] == "STOPPED"
    stopped = vipps.active_agreement()
    pending_charge = vipps.charge_id(stopped, transactionType="RESERVE_CAPTURE")
    vipps.admin("POST", "/scripts", {"user_stops": stopped})
    assert vipps.agreement(stopped)["status"] == "STOPPED"
    assert vipps.charge(stopped, pending_charge)["status"] == "CANCELLED"


def test_auto_accept_and_users_who_never_accept() -> None:
    vipps = Vipps(auto_accept_after_seconds=30)
    vipps.admin("POST", "/scripts", {"agreement_never_accepts": "4790000000"})
    keen = vipps.agreement_id()
    reluctant = vipps.agreement_id(phoneNumber="4790000000")
    vipps.advance(31)
    assert vipps.agreement(keen)["status"] == "ACTIVE"
    assert vipps.agreement(reluctant)["status"] == "PENDING"
    assert vipps.accept(reluctant).status_code == 400
    vipps.advance(600)
    assert vipps.agreement(reluctant)["status"] == "EXPIRED"


def test_list_agreements_filters_and_paginates() -> None:
    vipps = Vipps(rate_limits_enabled=False, list_page_size=2)
    active = {vipps.active_agreement() for _ in range(5)}
    pending = vipps.agreement_id()
    seen: list[str] = []
    response = vipps.call("GET", "/recurring/v3/agreements")
    while True:
        seen += [a["id"] for a in response.json()]
        token = response.headers.get("Continuation-Token")
        if token is None:
            break
        response = vipps.call("GET", "/recurring/v3/agreements", headers={"Continuation-Token": token})
    assert len(seen) == 5 and set(seen) == active
    assert [a["id"] for a in vipps.call("GET", "/recurring/v3/agreements?status=PENDING").json()] == [pending]
    assert vipps.call("GET", "/recurring/v3/agreements?createdAfter=99999999999999").json() == []


def test_an_unknown_script_rule_is_refused_and_nothing_is_applied(vipps: Vipps) -> None:
    pending = vipps.agreement_id()
    response = vipps.http.request(
        "POST", "/_simulator/scripts", json={"charge_amount_fail": 151, "user_accepts": pending}
    )
    assert response.status_code == 400
    assert "unknown rule 'charge_amount_fail'" in response.json()["error"]
    assert vipps.admin("GET", "/scripts")["charge_amount_fails"] == {}
    assert vipps.agreement(pending)["status"] == "PENDING"
