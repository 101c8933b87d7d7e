"""The fields of 2025-2026 through the handlers and the watcher: charge type and processing mode, blocked payment
sources, who stopped an agreement, and the charge's transactionId in its events."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from schemas import CommandAdapter, EventType
from schemas import commands as c
from tests.unit.core.watch_states import States
from worker.core import handlers
from worker.core.events import EventBuilder
from worker.core.idempotency import charge_order_id
from worker.core.replay import decide
from worker.core.watch import Hint, PollPolicy, Watcher
from worker.store.deadletters import DeadLetter
from worker.store.watchlist import agreement_member, charge_member
from worker.vipps import Completion, load_settings, models

NOW = dt.datetime(2026, 12, 1, 8, 0, tzinfo=dt.UTC)
AGR = "agr_5kSeqz"


class FakeClient:
    """Records the bodies it is given and answers as Vipps would."""

    def __init__(self, agreement: dict[str, Any] | None = None, charge: dict[str, Any] | None = None) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.agreement = agreement
        self.charge = charge

    def draft_agreement(self, body: models.DraftAgreementV3, *, idempotency_key: str) -> Any:
        self.bodies.append(body.to_wire())
        return models.DraftAgreementResponseV3(agreementId=AGR, vippsConfirmationUrl="https://example.com/c")

    def create_charge(self, agreement_id: str, body: models.CreateChargeV3, *, idempotency_key: str) -> Any:
        self.bodies.append(body.to_wire())
        return models.ChargeReference(chargeId="chr-1")

    def stop_agreement(self, agreement_id: str, *, idempotency_key: str) -> Completion:
        return Completion.DONE

    def fetch_agreement(self, agreement_id: str) -> models.AgreementResponseV3:
        return models.AgreementResponseV3.model_validate(self.agreement)

    def fetch_charge(self, agreement_id: str, charge_id: str) -> models.ChargeResponseV3:
        return models.ChargeResponseV3.model_validate(self.charge)


MSN = "123456"


def watcher(states: dict[str, dict[str, Any]] | None = None) -> Watcher:
    return Watcher(None, States(states), None, EventBuilder(msn="123456", now=lambda: NOW),  # type: ignore[arg-type]
                   policy=PollPolicy(), clock=NOW.timestamp)


def context(client: FakeClient, states: dict[str, dict[str, Any]] | None = None) -> handlers.Context:
    w = watcher(states)
    return handlers.Context(client, "123456", w, w.events)  # type: ignore[arg-type]


def command(**fields: Any) -> Any:
    return CommandAdapter.validate_python({"command_id": "c-1", "issued_at": NOW.isoformat()} | fields)


def charge_command(**fields: Any) -> c.ChargeCreate:
    cmd = command(type="charge.create", agreement_id=AGR, amount=29900, description="March",
                  transaction_type="DIRECT_CAPTURE", **fields)
    assert isinstance(cmd, c.ChargeCreate)
    return cmd


def agreement_command(**fields: Any) -> c.AgreementCreate:
    cmd = command(type="agreement.create", product_name="Gym", pricing={"amount": 29900},
                  interval={"unit": "MONTH", "count": 1}, merchant_redirect_url="https://example.com/back",
                  merchant_agreement_url="https://example.com/a", **fields)
    assert isinstance(cmd, c.AgreementCreate)
    return cmd


# --- charge.create ---------------------------------------------------------------------------------


def test_a_plain_recurring_charge_sends_the_body_it_always_sent() -> None:
    """No type, no processingMode: the body it always sent, with the orderId derived from the command."""
    client = FakeClient()
    cmd = charge_command(due="2026-12-05", retry_days=2)
    handlers.charge_create(context(client), cmd)
    assert client.bodies == [{"amount": 29900, "transactionType": "DIRECT_CAPTURE", "description": "March",
                              "due": "2026-12-05", "retryDays": 2,
                              "orderId": charge_order_id(cmd.msn or MSN, cmd.command_id)}]


def test_single_attempt_is_sent_as_processing_mode() -> None:
    client = FakeClient()
    handlers.charge_create(context(client), charge_command(due="2026-12-05", retry_days=0,
                                                           processing_mode="SINGLE_ATTEMPT"))
    assert client.bodies[0]["processingMode"] == "SINGLE_ATTEMPT" and client.bodies[0]["retryDays"] == 0
    assert "type" not in client.bodies[0]


def test_an_unscheduled_charge_has_no_due_date_and_is_polled_on_the_fixed_interval() -> None:
    client = FakeClient()
    cmd = charge_command(charge_type="UNSCHEDULED")
    out = handlers.charge_create(context(client), cmd)
    assert client.bodies == [{"amount": 29900, "transactionType": "DIRECT_CAPTURE", "description": "March",
                              "type": "UNSCHEDULED", "orderId": charge_order_id(cmd.msn or MSN, cmd.command_id)}]
    assert out.events[0].type is EventType.CHARGE_CREATED and out.events[0].charge is not None
    assert out.events[0].charge["due"] is None
    (watch,) = out.watch
    assert watch.state is not None and watch.state["due"] is None and watch.state["retry_days"] == 0
    assert watch.next_check_ms == int(NOW.timestamp() * 1000) + int(PollPolicy().agreement_start * 1000)


# --- agreement.create ------------------------------------------------------------------------------


def test_blocked_sources_go_into_the_draft_as_payment_method() -> None:
    client = FakeClient()
    handlers.agreement_create(context(client), agreement_command(blocked_sources=["COMMERCIAL_CARDS"]))
    assert client.bodies[0]["paymentMethod"] == {"blockedSources": ["COMMERCIAL_CARDS"]}


@pytest.mark.parametrize("given", [{}, {"blocked_sources": []}])
def test_no_blocked_sources_sends_no_payment_method(given: dict[str, Any]) -> None:
    client = FakeClient()
    handlers.agreement_create(context(client), agreement_command(**given))
    assert "paymentMethod" not in client.bodies[0]


# --- who stopped an agreement ----------------------------------------------------------------------


def active(agreement_id: str = AGR) -> dict[str, Any]:
    return {"kind": "agreement", "agreement_id": agreement_id, "status": "ACTIVE", "msn": "123456",
            "command_id": None, "started_ms": 0, "interval": 2.0}


def stopped(history: list[dict[str, Any]] | None) -> dict[str, Any]:
    found = {"id": AGR, "status": "STOPPED"} | ({"history": history} if history is not None else {})
    return models.AgreementResponseV3.model_validate(found).model_dump(mode="json", by_alias=True)


def test_our_stop_command_reports_the_merchant_as_actor() -> None:
    ctx = context(FakeClient())
    out = handlers.agreement_update(ctx, command(type="agreement.update", agreement_id=AGR, status="STOPPED"))
    (stop,) = [e for e in out.events if e.type is EventType.AGREEMENT_STOPPED]
    assert stop.actor == "MERCHANT" and stop.wire()["actor"] == "MERCHANT"


@pytest.mark.parametrize(("history", "actor"), [
    ([{"occurred": "2026-11-01T10:00:00Z", "event": "CREATE", "actor": "MERCHANT"},
      {"occurred": "2026-11-01T10:02:00Z", "event": "ACTIVATE", "actor": "USER"},
      {"occurred": "2026-11-30T21:00:00Z", "event": "STOP", "actor": "USER"}], "USER"),
    ([{"occurred": "2026-11-30T21:00:00Z", "event": "stopped", "actor": "ADMIN"}], "ADMIN"),  # any case
    ([{"event": "STOP", "actor": "USER"}, {"event": "STOP", "actor": "ADMIN"},                 # the last stop
      {"event": "SOMETHING_NEW", "actor": "MERCHANT"}], "ADMIN"),
    ([{"event": "CREATE", "actor": "MERCHANT"}, {"event": "ACTIVATE", "actor": "USER"}], None),  # no stop entry
    ([{"event": "STOP"}], None),                                                               # a stop, no actor
    ([], None),
    (None, None),                                                                              # no history at all
])
def test_a_polled_stop_takes_its_actor_from_the_history(history: list[dict[str, Any]] | None,
                                                        actor: str | None) -> None:
    w = watcher({agreement_member(AGR): active()})
    events, _ = w.observe_agreement(stopped(history))
    (stop,) = events
    assert stop.type is EventType.AGREEMENT_STOPPED and stop.actor == actor
    assert ("actor" in stop.wire()) is (actor is not None)


def test_a_webhook_actor_is_kept_and_a_fetch_command_reads_the_history() -> None:
    w = watcher({agreement_member(AGR): active()})
    events, _ = w.observe_agreement(stopped([{"event": "STOP", "actor": "USER"}]), hint=Hint("123456", "ADMIN"))
    assert events[0].actor == "ADMIN"
    client = FakeClient(agreement={"id": AGR, "status": "STOPPED", "history": [{"event": "STOP", "actor": "USER"}]})
    out = handlers.agreement_fetch(context(client, {agreement_member(AGR): active()}),
                                   command(type="agreement.fetch", agreement_id=AGR))
    (stop,) = [e for e in out.events if e.type is EventType.AGREEMENT_STOPPED]
    assert stop.actor == "USER" and stop.observed_by == "command"


def test_only_a_stop_carries_an_actor() -> None:
    pending = active() | {"status": "PENDING"}
    w = watcher({agreement_member(AGR): pending})
    events, _ = w.observe_agreement({"id": AGR, "status": "ACTIVE",
                                     "history": [{"event": "ACTIVATE", "actor": "USER"}]})
    assert events[0].type is EventType.AGREEMENT_ACTIVATED and events[0].actor is None


# --- transactionId ---------------------------------------------------------------------------------


CHARGED = {"id": "chr-1", "agreementId": AGR, "amount": 29900, "status": "CHARGED", "type": "UNSCHEDULED",
           "transactionType": "DIRECT_CAPTURE", "transactionId": "5001419121",
           "summary": {"captured": 29900, "refunded": 0, "cancelled": 0}}


def test_charge_events_carry_the_transaction_id() -> None:
    pending = {"kind": "charge", "agreement_id": AGR, "charge_id": "chr-1", "status": "PENDING",
               "sig": "PENDING:0:0:0", "started_ms": 0, "due": None, "retry_days": 0}
    snapshot = handlers.snapshot(models.ChargeResponseV3.model_validate(CHARGED))
    events, _ = watcher({charge_member(AGR, "chr-1"): pending}).observe_charge(AGR, snapshot)
    (changed,) = events
    assert changed.charge is not None and changed.charge["transactionId"] == "5001419121"
    assert changed.charge["type"] == "UNSCHEDULED"
    out = handlers.charge_fetch(context(FakeClient(charge=CHARGED)),
                                command(type="charge.fetch", agreement_id=AGR, charge_id="chr-1"))
    assert out.events[0].type is EventType.CHARGE_SNAPSHOT
    assert out.events[0].wire()["charge"]["transactionId"] == "5001419121"


# --- replay of a dead-lettered UNSCHEDULED charge --------------------------------------------------


class ReplayClient:
    def __init__(self, charges: list[dict[str, Any]]) -> None:
        self.charges = charges
        self.settings = load_settings(msn=MSN)

    def fetch_agreement(self, agreement_id: str) -> models.AgreementResponseV3:
        return models.AgreementResponseV3(id=agreement_id, status="ACTIVE")

    def list_charges(self, agreement_id: str) -> list[models.ChargeResponseV3]:
        return [models.ChargeResponseV3.model_validate(ch) for ch in self.charges]


@pytest.mark.parametrize(("charges", "replay"), [
    ([], True),
    ([CHARGED | {"amount": 29900, "description": "March"}], False),                       # it was made
    ([CHARGED | {"amount": 29900, "description": "March", "type": "RECURRING",
                 "due": "2026-12-05"}], True),                                            # a recurring one
    ([CHARGED | {"amount": 100, "description": "March"}], True),                           # another amount
])
def test_an_unscheduled_charge_is_replayed_only_when_no_such_charge_exists(charges: list[dict[str, Any]],
                                                                          replay: bool) -> None:
    payload = charge_command(charge_type="UNSCHEDULED").model_dump(mode="json")
    letter = DeadLetter(id="d-1", reason="retries_exhausted", detail="timeouts", at_ms=0, command_id="c-1",
                        command_type="charge.create", payload=payload, msn="123456")
    decision = decide(letter, None, ReplayClient(charges))  # type: ignore[arg-type]
    assert decision.replay is replay, decision.why
