"""The ten Recurring webhook events (CHANGES §1.1) and their payloads (§1.2), made where the state changes.

``agreements`` and ``charges`` call ``agreement_event`` / ``charge_event`` at each change; the engine hands the
event to whoever listens (``engine.publish``; the webhooks deliver it to each matching registration).

Payloads: agreement events carry ``agreementId``, ``agreementUUID``, ``agreementExternalId`` (when set),
``eventType``, ``occurred`` (the simulated clock), ``actor`` (agreement-stopped only) and ``msn``. Charge events
carry ``agreementId``, ``chargeId``, ``chargeExternalId`` (when set), ``amount`` (the charge's), ``amountCaptured``,
``amountCanceled`` and ``amountRefunded`` (running totals after the operation), ``chargeType``, ``currency``,
``eventType``, ``occurred``, ``failureReason`` (failure events), ``transactionId`` (a new one per reserve,
capture, refund and cancel) and ``msn``. A field without a value is left out, never sent as null:
``failureCode`` and ``failureText`` (deprecated) have none here, so they never appear.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from worker.simulator.clock import iso

if TYPE_CHECKING:
    from worker.simulator.engine import Engine
    from worker.simulator.models import Agreement, Charge

AGREEMENT_ACTIVATED = "recurring.agreement-activated.v1"
AGREEMENT_REJECTED = "recurring.agreement-rejected.v1"
AGREEMENT_STOPPED = "recurring.agreement-stopped.v1"
AGREEMENT_EXPIRED = "recurring.agreement-expired.v1"
CHARGE_RESERVED = "recurring.charge-reserved.v1"
CHARGE_CAPTURED = "recurring.charge-captured.v1"
# One "l", as Vipps spells it.
CHARGE_CANCELED = "recurring.charge-canceled.v1"
CHARGE_FAILED = "recurring.charge-failed.v1"
CHARGE_REFUNDED = "recurring.charge-refunded.v1"
CHARGE_CREATION_FAILED = "recurring.charge-creation-failed.v1"
EVENT_TYPES = (
    AGREEMENT_ACTIVATED,
    AGREEMENT_REJECTED,
    AGREEMENT_STOPPED,
    AGREEMENT_EXPIRED,
    CHARGE_RESERVED,
    CHARGE_CAPTURED,
    CHARGE_CANCELED,
    CHARGE_FAILED,
    CHARGE_REFUNDED,
    CHARGE_CREATION_FAILED,
)
# Who stopped an agreement (CHANGES §4.3): the merchant's PATCH, the user in the app, Vipps (profile deleted).
ACTORS = ("MERCHANT", "USER", "ADMIN")
# Charge events about one payment operation, each with its own transactionId.
OPERATION_EVENTS = (CHARGE_RESERVED, CHARGE_CAPTURED, CHARGE_CANCELED, CHARGE_REFUNDED)


@dataclass(frozen=True)
class WebhookEvent:
    event_type: str
    msn: str
    agreement_id: str
    charge_id: str | None
    payload: dict[str, Any]


def _present(payload: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in payload.items() if value is not None}


def agreement_event(engine: Engine, agreement: Agreement, event_type: str, actor: str | None = None) -> None:
    payload = {
        "agreementId": agreement.id,
        "agreementUUID": agreement.uuid,
        "agreementExternalId": agreement.external_id,
        "eventType": event_type,
        "occurred": iso(engine.now),
        "actor": actor,
        "msn": agreement.msn,
    }
    engine.publish(WebhookEvent(event_type, agreement.msn, agreement.id, None, _present(payload)))


def charge_event(engine: Engine, charge: Charge, event_type: str) -> None:
    msn = engine.agreements[charge.agreement_id].msn
    failed = event_type == CHARGE_FAILED
    payload = {
        "agreementId": charge.agreement_id,
        "chargeId": charge.id,
        "chargeExternalId": charge.external_id,
        "amount": charge.amount,
        "amountCaptured": charge.captured,
        "amountCanceled": charge.cancelled,
        "amountRefunded": charge.refunded,
        "chargeType": charge.type,
        "currency": "NOK",
        "eventType": event_type,
        "occurred": iso(engine.now),
        "failureReason": charge.failure_reason if failed else None,
        "transactionId": engine.new_event_transaction_id() if event_type in OPERATION_EVENTS else None,
        "msn": msn,
    }
    engine.publish(WebhookEvent(event_type, msn, charge.agreement_id, charge.id, _present(payload)))


def charge_creation_failed(
    engine: Engine, agreement: Agreement, charge_id: str, data: dict[str, Any], reason: str
) -> None:
    """``recurring.charge-creation-failed.v1``: a charge accepted for later creation could not be created.

    ``batch`` calls it for each charge of a batch it accepted and then could not create; ``data`` is that
    charge's validated item.
    """
    payload = {
        "agreementId": agreement.id,
        "chargeId": charge_id,
        "chargeExternalId": data.get("external_id"),
        "amount": data["amount"],
        "chargeType": "RECURRING",
        "currency": "NOK",
        "eventType": CHARGE_CREATION_FAILED,
        "occurred": iso(engine.now),
        "failureReason": reason,
        "msn": agreement.msn,
    }
    engine.publish(WebhookEvent(CHARGE_CREATION_FAILED, agreement.msn, agreement.id, charge_id, _present(payload)))
