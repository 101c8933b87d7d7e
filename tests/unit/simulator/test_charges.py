"""Charge state machine (NOTES §3.2-3.8): due window, amount caps, processing rounds, retries,
capture / refund / cancel rules."""

from __future__ import annotations

from sim_harness import Vipps


def test_due_date_window(vipps: Vipps) -> None:
    agreement_id = vipps.active_agreement()
    today = vipps.create_charge(agreement_id, due=vipps.due(0))
    assert today.status_code == 400 and vipps.problem_type(today) == "charge-due-too-soon"
    far = vipps.create_charge(agreement_id, due=vipps.due(731))
    assert far.status_code == 400 and vipps.problem_type(far) == "charge-due-in-too-long"
    assert vipps.create_charge(agreement_id, due=vipps.due(730)).status_code == 201
    bad = vipps.create_charge(agreement_id, due="01.02.2030")
    assert vipps.problem_type(bad) == "validation-error"


def test_production_lead_time_is_configurable() -> None:
    vipps = Vipps(min_due_lead_days=2)
    agreement_id = vipps.active_agreement()
    assert vipps.problem_type(vipps.create_charge(agreement_id, due=vipps.due(1))) == "charge-due-too-soon"
    assert vipps.create_charge(agreement_id, due=vipps.due(2)).status_code == 201


def test_legacy_cap_is_five_times_the_price_and_variable_cap_is_the_max(vipps: Vipps) -> None:
    legacy = vipps.active_agreement()
    assert vipps.create_charge(legacy, 50000).status_code == 201
    too_high = vipps.create_charge(legacy, 50001)
    assert too_high.status_code == 400 and vipps.problem_type(too_high) == "charge-amount-too-high"
    variable = vipps.agreement_id(pricing={"type": "VARIABLE", "suggestedMaxAmount": 30000, "currency": "NOK"})
    vipps.admin("POST", "/scripts", {"user_accepts": {"agreement_id": variable, "max_amount": 20000}})
    assert vipps.problem_type(vipps.create_charge(variable, 30001)) == "charge-amount-too-high"
    # Above the user's max but within the suggestion: created, then fails for charge_amount_too_high.
    charge_id = vipps.charge_id(variable, 25000, retryDays=1)
    vipps.advance(3 * 86400)
    charge = vipps.charge(variable, charge_id)
    assert charge["status"] == "FAILED" and charge["failureReason"] == "charge_amount_too_high"


def test_pending_until_thirty_days_before_due(vipps: Vipps) -> None:
    agreement_id = vipps.active_agreement()
    charge_id = vipps.charge_id(agreement_id, due=vipps.due(40))
    assert vipps.charge(agreement_id, charge_id)["status"] == "PENDING"
    vipps.advance(9 * 86400)
    assert vipps.charge(agreement_id, charge_id)["status"] == "PENDING"
    vipps.advance(86400)
    assert vipps.charge(agreement_id, charge_id)["status"] == "DUE"


def test_processing_happens_at_the_07_utc_round_of_the_due_date(vipps: Vipps) -> None:
    # Now is 2030-01-01T10:00Z; due 2030-01-02 is processed at 2030-01-02T07:00Z.
    agreement_id = vipps.active_agreement()
    direct = vipps.charge_id(agreement_id)
    reserve = vipps.charge_id(agreement_id, transactionType="RESERVE_CAPTURE")
    vipps.set_clock("2030-01-02T06:59:00Z")
    vipps.token = vipps.fetch_token().json()["access_token"]
    assert vipps.charge(agreement_id, direct)["status"] == "DUE"
    vipps.set_clock("2030-01-02T07:00:00Z")
    vipps.token = vipps.fetch_token().json()["access_token"]
    charged = vipps.charge(agreement_id, direct)
    assert charged["status"] == "CHARGED" and charged["summary"]["captured"] == 10000
    assert [e["event"] for e in charged["history"]] == ["CREATE", "CAPTURE"]
    assert charged["history"][1]["occurred"] == "2030-01-02T07:00:00Z"
    reserved = vipps.charge(agreement_id, reserve)
    assert reserved["status"] == "RESERVED" and reserved["transactionId"] is None


def test_retries_until_retry_days_then_fails(vipps: Vipps) -> None:
    agreement_id = vipps.active_agreement()
    vipps.admin("POST", "/scripts", {"agreement_fails": {"agreement_id": agreement_id, "reason": "technical_error"}})
    charge_id = vipps.charge_id(agreement_id, retryDays=2)
    # Due 01-02, retries through 01-04: the last attempt is 2030-01-04T15:00Z.
    vipps.set_clock("2030-01-04T14:59:00Z")
    vipps.token = vipps.fetch_token().json()["access_token"]
    assert vipps.charge(agreement_id, charge_id)["status"] == "DUE"
    vipps.advance(120)
    charge = vipps.charge(agreement_id, charge_id)
    assert charge["status"] == "FAILED" and charge["failureReason"] == "technical_error"
    assert charge["history"][-1]["event"] == "FAIL" and charge["history"][-1]["success"] is False
    assert vipps.sim.engine.charges[charge_id].attempts == 6


def test_a_charge_that_fails_some_attempts_then_succeeds(vipps: Vipps) -> None:
    agreement_id = vipps.active_agreement()
    charge_id = vipps.charge_id(agreement_id, retryDays=3, orderId="retry-then-ok")
    vipps.admin("POST", "/scripts", {"charge_fails": {"charge_id": charge_id, "attempts": 3}})
    # Rounds: 01-02 07:00 and 15:00, 01-03 07:00 fail; 01-03 15:00 succeeds.
    vipps.set_clock("2030-01-03T14:00:00Z")
    vipps.token = vipps.fetch_token().json()["access_token"]
    assert vipps.charge(agreement_id, charge_id)["status"] == "DUE"
    vipps.advance(3600)
    assert vipps.charge(agreement_id, charge_id)["status"] == "CHARGED"
    assert vipps.sim.engine.charges[charge_id].attempts == 4


def test_capture_rules(vipps: Vipps) -> None:
    agreement_id = vipps.active_agreement()
    direct = vipps.charge_id(agreement_id)
    reserve = vipps.charge_id(agreement_id, transactionType="RESERVE_CAPTURE")
    early = vipps.capture(agreement_id, reserve, 100)
    assert early.status_code == 400 and vipps.problem_type(early) == "charge-capture-failed"
    vipps.advance(86400)
    assert vipps.problem_type(vipps.capture(agreement_id, direct, 100)) == "charge-capture-failed"
    assert vipps.problem_type(vipps.capture(agreement_id, reserve, 10001)) == "charge-capture-failed"
    assert vipps.capture(agreement_id, reserve, 4000).status_code == 204
    assert vipps.charge(agreement_id, reserve)["status"] == "PARTIALLY_CAPTURED"
    assert vipps.problem_type(vipps.capture(agreement_id, reserve, 6001)) == "charge-capture-failed"
    assert vipps.capture(agreement_id, reserve, 6000).status_code == 204
    charge = vipps.charge(agreement_id, reserve)
    assert charge["status"] == "CHARGED" and charge["summary"]["captured"] == 10000 and charge["transactionId"]


def test_capture_window_is_180_days(vipps: Vipps) -> None:
    agreement_id = vipps.active_agreement()
    reserve = vipps.charge_id(agreement_id, transactionType="RESERVE_CAPTURE")
    vipps.advance(86400)
    vipps.advance(181 * 86400)
    assert vipps.problem_type(vipps.capture(agreement_id, reserve, 100)) == "charge-capture-failed"


def test_refund_only_what_was_captured(vipps: Vipps) -> None:
    agreement_id = vipps.active_agreement()
    charge_id = vipps.charge_id(agreement_id)
    assert vipps.refund(agreement_id, charge_id, 100).status_code == 400
    vipps.advance(86400)
    assert vipps.refund(agreement_id, charge_id, 10001).status_code == 400
    assert vipps.refund(agreement_id, charge_id, 4000).status_code == 204
    assert vipps.charge(agreement_id, charge_id)["status"] == "PARTIALLY_REFUNDED"
    assert vipps.refund(agreement_id, charge_id, 6000).status_code == 204
    charge = vipps.charge(agreement_id, charge_id)
    assert charge["status"] == "REFUNDED" and charge["summary"]["refunded"] == 10000
    assert vipps.refund(agreement_id, charge_id, 100).status_code == 400
    assert vipps.problem_type(vipps.refund(agreement_id, charge_id, 50)) == "validation-error"


def test_cancel_rules(vipps: Vipps) -> None:
    agreement_id = vipps.active_agreement()
    pending = vipps.charge_id(agreement_id, due=vipps.due(45))
    assert vipps.cancel(agreement_id, pending).status_code == 204
    assert vipps.charge(agreement_id, pending)["status"] == "CANCELLED"
    assert vipps.problem_type(vipps.cancel(agreement_id, pending)) == "cancel-charge-failed"
    reserve = vipps.charge_id(agreement_id, transactionType="RESERVE_CAPTURE")
    direct = vipps.charge_id(agreement_id)
    vipps.advance(86400)
    assert vipps.capture(agreement_id, reserve, 2500).status_code == 204
    assert vipps.cancel(agreement_id, reserve).status_code == 204
    charge = vipps.charge(agreement_id, reserve)
    assert charge["status"] == "CHARGED" and charge["summary"] == {"captured": 2500, "refunded": 0, "cancelled": 7500}
    assert vipps.problem_type(vipps.cancel(agreement_id, direct)) == "cancel-charge-failed"


def test_order_id_becomes_the_charge_id_and_is_unique(vipps: Vipps) -> None:
    agreement_id = vipps.active_agreement()
    assert vipps.charge_id(agreement_id, orderId="acme-123") == "acme-123"
    duplicate = vipps.create_charge(agreement_id, orderId="acme-123")
    assert duplicate.status_code == 409 and vipps.problem_type(duplicate) == "conflict"
    other = vipps.active_agreement()
    assert vipps.call("GET", f"/recurring/v3/agreements/{other}/charges/acme-123").status_code == 404


def test_list_charges_filters_by_status(vipps: Vipps) -> None:
    agreement_id = vipps.active_agreement()
    due = vipps.charge_id(agreement_id)
    pending = vipps.charge_id(agreement_id, due=vipps.due(60))
    listed = vipps.call("GET", f"/recurring/v3/agreements/{agreement_id}/charges?status=PENDING").json()
    assert [c["id"] for c in listed] == [pending]
    assert {c["id"] for c in vipps.call("GET", f"/recurring/v3/agreements/{agreement_id}/charges").json()} == {
        due,
        pending,
    }
