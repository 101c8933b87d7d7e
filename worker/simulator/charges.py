"""Charge rules (NOTES §3.2-3.8): creation limits, PENDING -> DUE thirty days ahead, processing rounds
with retries, and what capture, refund and cancel may do."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

from worker.simulator import webhook_events as events
from worker.simulator.clock import midnight
from worker.simulator.config import SimulatorConfig
from worker.simulator.engine import DAY, Engine
from worker.simulator.models import Agreement, Charge, ChargeEvent
from worker.simulator.problems import Problem
from worker.simulator.scripts import FAILURE_REASONS

CANCELLABLE = ("PENDING", "DUE", "RESERVED", "PARTIALLY_CAPTURED")


def in_use(engine: Engine, order_id: str) -> bool:
    """A charge has that id, or a batch has accepted one with it and not created it yet."""
    return order_id in engine.charges or order_id in engine.queued


def check_order_id(engine: Engine, order_id: str | None) -> None:
    if order_id and in_use(engine, order_id):
        raise Problem(409, "conflict", f"orderId {order_id} is already in use")


def open_charge(
    engine: Engine, agreement: Agreement, data: dict[str, Any], kind: str, due: date, retry_days: int, key: str
) -> Charge:
    """A new PENDING charge on ``agreement``, CREATE in its history; an orderId becomes its id.

    ``data`` is a validated body (``amount``, ``description``, ``transaction_type``, ``order_id``,
    ``external_id``); the caller has checked the orderId with ``check_order_id``.
    """
    charge = Charge(
        id=data["order_id"] or engine.new_charge_id(),
        agreement_id=agreement.id,
        amount=data["amount"],
        description=data["description"],
        due=due,
        retry_days=retry_days,
        transaction_type=data["transaction_type"],
        type=kind,
        created=engine.now,
        external_id=data["external_id"],
        processing_mode=data.get("processing_mode", "MULTIPLE_ATTEMPTS"),
    )
    charge.history.append(ChargeEvent(engine.now, "CREATE", charge.amount, key, True))
    engine.charges[charge.id] = charge
    agreement.charge_ids.append(charge.id)
    return charge


def check_creatable(engine: Engine, agreement_id: str, amount: int) -> Agreement:
    """The agreement, if it is ACTIVE and ``amount`` is within its limit; the refusal otherwise."""
    agreement = engine.agreement(agreement_id)
    if agreement.status != "ACTIVE":
        raise Problem(
            400,
            "charge-creation-failed",
            f"Cannot create a charge for an agreement which is not active (status {agreement.status})",
        )
    if agreement.pricing_type == "LEGACY":
        assert agreement.amount is not None
        limit = agreement.amount * engine.config.legacy_max_multiplier
    else:
        limit = max(agreement.suggested_max_amount or 0, agreement.max_amount or 0)
    if amount > limit:
        raise Problem(
            400,
            "charge-amount-too-high",
            f"The charge amount {amount} is higher than the limit {limit}",
            extra=[{"field": "amount", "text": f"must be less than or equal to {limit}"}],
        )
    return agreement


def create(engine: Engine, agreement_id: str, data: dict[str, Any], key: str) -> Charge:
    """The single create: a RECURRING charge waiting for its due date, or an UNSCHEDULED one processed at once."""
    agreement = check_creatable(engine, agreement_id, data["amount"])
    check_order_id(engine, data["order_id"])
    if data["type"] == "UNSCHEDULED":
        return _open_unscheduled(engine, agreement, data, key)
    return open_recurring(engine, agreement, data, key)


def open_recurring(engine: Engine, agreement: Agreement, data: dict[str, Any], key: str) -> Charge:
    """A RECURRING charge, checked already: PENDING, DUE thirty days ahead, processed from its due date."""
    charge = open_charge(engine, agreement, data, "RECURRING", data["due"], data["retry_days"], key)
    engine.record("charge.create", key, "created:PENDING", agreement.id, charge.id, charge.amount)
    due_start = midnight(charge.due)
    visible = due_start - engine.config.due_visibility_days * DAY
    if visible <= engine.now:
        make_due(engine, charge.id)
    else:
        engine.schedule(visible, make_due, charge.id)
    engine.schedule(engine.next_round(max(engine.now, due_start)), processing_round, charge.id)
    return charge


def _open_unscheduled(engine: Engine, agreement: Agreement, data: dict[str, Any], key: str) -> Charge:
    """Processed right after the answer, one attempt, no retries (CHANGES §3)."""
    charge = open_charge(engine, agreement, data, "UNSCHEDULED", data["due"], 0, key)
    charge.status = "PROCESSING"
    engine.record("charge.create", key, "created:PROCESSING", agreement.id, charge.id, charge.amount)
    engine.schedule(engine.now, _process_unscheduled, charge.id)
    return charge


def _process_unscheduled(engine: Engine, charge_id: str) -> None:
    charge = engine.charges[charge_id]
    if charge.status != "PROCESSING":
        return
    agreement = engine.agreements[charge.agreement_id]
    # Stopped in the moment between creation and processing: nothing to charge against.
    reason = attempt(engine, charge, agreement) if agreement.status == "ACTIVE" else "non_technical_error"
    if reason is not None:
        fail(engine, charge, reason)


def make_due(engine: Engine, charge_id: str) -> None:
    charge = engine.charges[charge_id]
    if charge.status == "PENDING":
        charge.status = "DUE"
        engine.record(
            "charge.due",
            f"{charge.id}-{charge.agreement_id}-Due",
            "PENDING->DUE",
            charge.agreement_id,
            charge.id,
        )


def processing_round(engine: Engine, charge_id: str) -> None:
    """A round at 07:00 or 15:00 UTC: a DUE charge is attempted, and retried until its retry days run out."""
    charge = engine.charges[charge_id]
    if charge.status == "PENDING":
        make_due(engine, charge_id)
    if charge.status != "DUE":
        return
    reason = attempt(engine, charge, engine.agreements[charge.agreement_id])
    if reason is None:
        return
    if charge.processing_mode == "SINGLE_ATTEMPT":
        fail(engine, charge, reason)
        return
    last_day = midnight(charge.due) + charge.retry_days * DAY
    following = engine.next_round(engine.now + 1)
    if following >= last_day + DAY:
        fail(engine, charge, reason)
    else:
        engine.schedule(following, processing_round, charge.id)


def attempt(engine: Engine, charge: Charge, agreement: Agreement) -> str | None:
    """One processing attempt: on success the charge is CHARGED (or RESERVED); otherwise the failure
    reason is returned and the caller decides whether it is final."""
    charge.attempts += 1
    reason = engine.scripts.attempt_failure(charge, agreement)
    if reason is None:
        _succeed(engine, charge)
    return reason


def _system_key(charge: Charge) -> str:
    return f"{charge.id}-{charge.agreement_id}-ProcessPayment"


def _succeed(engine: Engine, charge: Charge) -> None:
    before = charge.status
    system_key = _system_key(charge)
    if charge.transaction_type == "DIRECT_CAPTURE":
        charge.status = "CHARGED"
        charge.captured = charge.amount
        charge.captured_at = engine.now
        charge.transaction_id = engine.new_transaction_id()
        charge.history.append(ChargeEvent(engine.now, "CAPTURE", charge.amount, system_key, True))
    else:
        charge.status = "RESERVED"
        charge.reserved_at = engine.now
        charge.history.append(ChargeEvent(engine.now, "RESERVE", charge.amount, system_key, True))
    engine.record(
        "charge.process",
        system_key,
        f"{before}->{charge.status}",
        charge.agreement_id,
        charge.id,
        charge.amount,
    )
    kind = events.CHARGE_CAPTURED if charge.status == "CHARGED" else events.CHARGE_RESERVED
    events.charge_event(engine, charge, kind)


def fail(engine: Engine, charge: Charge, reason: str) -> None:
    before = charge.status
    system_key = _system_key(charge)
    charge.status = "FAILED"
    charge.failure_reason = reason
    charge.failure_description = FAILURE_REASONS[reason]
    charge.history.append(ChargeEvent(engine.now, "FAIL", charge.amount, system_key, False))
    engine.record("charge.process", system_key, f"{before}->FAILED", charge.agreement_id, charge.id, charge.amount)
    events.charge_event(engine, charge, events.CHARGE_FAILED)


def release(engine: Engine, charge: Charge, operation: str, key: str) -> None:
    """Cancel what is still reserved: a partly captured charge ends CHARGED, anything else CANCELLED."""
    before = charge.status
    released = charge.reservable
    charge.status = "CHARGED" if before == "PARTIALLY_CAPTURED" else "CANCELLED"
    charge.cancelled += released
    charge.history.append(ChargeEvent(engine.now, "CANCEL", released, key, True))
    engine.record(operation, key, f"{before}->{charge.status}", charge.agreement_id, charge.id, released)
    events.charge_event(engine, charge, events.CHARGE_CANCELED)


def cancel(engine: Engine, agreement_id: str, charge_id: str, key: str) -> None:
    engine.agreement(agreement_id)
    charge = engine.charge(agreement_id, charge_id)
    if charge.status not in CANCELLABLE:
        raise Problem(400, "cancel-charge-failed", f"Cannot cancel a charge with status {charge.status}")
    release(engine, charge, "charge.cancel", key)


# ----------------------------------------------------------------- capture and refund


@dataclass(frozen=True)
class Movement:
    """What capture and refund differ in; their checks and bookkeeping are one (``move``)."""

    verb: str
    operation: str
    event: str
    problem: str
    statuses: tuple[str, ...]
    settled: str
    partial: str
    # Only charges of this transaction type may move (None: any).
    transaction_type: str | None
    window_days: Callable[[SimulatorConfig], int]
    # The moment the window opened, and what it is called in the refusal.
    since: Callable[[Charge], float | None]
    since_text: str
    # What may still move, and the refusal for an amount above it ({amount}, {room}).
    room: Callable[[Charge], int]
    too_much: str
    book: Callable[[Engine, Charge, int], None]
    # The webhook event of each movement.
    webhook: str


def _book_capture(engine: Engine, charge: Charge, amount: int) -> None:
    charge.captured += amount
    charge.captured_at = engine.now
    if charge.transaction_id is None:
        charge.transaction_id = engine.new_transaction_id()


def _book_refund(engine: Engine, charge: Charge, amount: int) -> None:
    charge.refunded += amount


CAPTURE = Movement(
    verb="capture",
    operation="charge.capture",
    event="CAPTURE",
    problem="charge-capture-failed",
    statuses=("RESERVED", "PARTIALLY_CAPTURED"),
    settled="CHARGED",
    partial="PARTIALLY_CAPTURED",
    transaction_type="RESERVE_CAPTURE",
    window_days=lambda config: config.capture_window_days,
    since=lambda charge: charge.reserved_at,
    since_text="reservation",
    room=lambda charge: charge.reservable,
    too_much="Cannot capture {amount}: only {room} remains reserved",
    book=_book_capture,
    webhook=events.CHARGE_CAPTURED,
)
# Refund only from CHARGED / PARTIALLY_REFUNDED: the docs are silent, so a partly captured charge is not refundable.
REFUND = Movement(
    verb="refund",
    operation="charge.refund",
    event="REFUND",
    problem="operation-failed",
    statuses=("CHARGED", "PARTIALLY_REFUNDED"),
    settled="REFUNDED",
    partial="PARTIALLY_REFUNDED",
    transaction_type=None,
    window_days=lambda config: config.refund_window_days,
    since=lambda charge: charge.captured_at,
    since_text="capture",
    room=lambda charge: charge.refundable,
    too_much="Cannot refund more than captured amount: {room} is refundable",
    book=_book_refund,
    webhook=events.CHARGE_REFUNDED,
)


def move(engine: Engine, movement: Movement, agreement_id: str, charge_id: str, amount: int, key: str) -> None:
    """Capture or refund ``amount`` of a charge, within its window and what remains."""
    engine.agreement(agreement_id)
    charge = engine.charge(agreement_id, charge_id)
    kind = movement.problem
    if movement.transaction_type is not None and charge.transaction_type != movement.transaction_type:
        raise Problem(400, kind, f"Only {movement.transaction_type} charges can be {movement.verb}d")
    if charge.status not in movement.statuses:
        raise Problem(400, kind, f"Cannot {movement.verb} a charge with status {charge.status}")
    since = movement.since(charge)
    assert since is not None
    days = movement.window_days(engine.config)
    if engine.now - since > days * DAY:
        text = f"{movement.verb.capitalize()} is only possible up to {days} days after {movement.since_text}"
        raise Problem(400, kind, text)
    room = movement.room(charge)
    if amount > room:
        extra = [{"field": "amount", "text": f"must be less than or equal to {room}"}]
        raise Problem(400, kind, movement.too_much.format(amount=amount, room=room), extra=extra)
    before = charge.status
    movement.book(engine, charge, amount)
    charge.status = movement.settled if movement.room(charge) == 0 else movement.partial
    charge.history.append(ChargeEvent(engine.now, movement.event, amount, key, True))
    engine.record(movement.operation, key, f"{before}->{charge.status}", agreement_id, charge_id, amount)
    events.charge_event(engine, charge, movement.webhook)
