"""Agreements and charges as the simulator stores them, and their v3 JSON shapes."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

from worker.simulator.clock import iso

AGREEMENT_FINAL = frozenset({"STOPPED", "EXPIRED"})

UNIT_WORDS = {"YEAR": "year", "MONTH": "month", "WEEK": "week", "DAY": "day"}


def interval_text(unit: str, count: int) -> str:
    word = UNIT_WORDS[unit]
    return f"every {word}" if count == 1 else f"every {count} {word}s"


@dataclass
class ChargeEvent:
    occurred: float
    event: str
    amount: int
    idempotency_key: str
    success: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "occurred": iso(self.occurred),
            "event": self.event,
            "amount": self.amount,
            "idempotencyKey": self.idempotency_key,
            "success": self.success,
        }


@dataclass
class AgreementEvent:
    """One entry of an agreement's ``history`` (CHANGES §4.5): CREATE, ACTIVATE, STOP or EXPIRE."""

    occurred: float
    event: str
    # MERCHANT, USER or ADMIN; None where no one acted (an expiry).
    actor: str | None

    def to_json(self) -> dict[str, Any]:
        return {"occurred": iso(self.occurred), "event": self.event, "actor": self.actor}


@dataclass(frozen=True)
class QueuedCharge:
    """A charge a batch accepted and has not created yet (``batch``)."""

    order_id: str
    agreement_id: str
    # The validated item (``validation.create_charge``'s shape).
    data: dict[str, Any]
    # The batch request's Idempotency-Key and the key set that sent it.
    key: str
    credentials: str


@dataclass
class Charge:
    id: str
    agreement_id: str
    amount: int
    description: str
    due: date
    retry_days: int
    transaction_type: str
    type: str
    created: float
    external_id: str | None = None
    status: str = "PENDING"
    captured: int = 0
    refunded: int = 0
    cancelled: int = 0
    transaction_id: str | None = None
    failure_reason: str | None = None
    failure_description: str | None = None
    reserved_at: float | None = None
    captured_at: float | None = None
    attempts: int = 0
    # SINGLE_ATTEMPT: the first failed attempt is final (CHANGES §3).
    processing_mode: str = "MULTIPLE_ATTEMPTS"
    history: list[ChargeEvent] = field(default_factory=list)

    @property
    def reservable(self) -> int:
        """What is still reserved and may be captured."""
        return self.amount - self.captured - self.cancelled

    @property
    def refundable(self) -> int:
        return self.captured - self.refunded

    def to_json(self, external_agreement_id: str | None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": self.id,
            "agreementId": self.agreement_id,
            "amount": self.amount,
            "currency": "NOK",
            "description": self.description,
            "due": f"{self.due.isoformat()}T00:00:00Z",
            "retryDays": self.retry_days,
            "status": self.status,
            "type": self.type,
            "transactionType": self.transaction_type,
            "transactionId": self.transaction_id,
            "externalId": self.external_id,
            "failureReason": self.failure_reason,
            "summary": {"captured": self.captured, "refunded": self.refunded, "cancelled": self.cancelled},
            "history": [event.to_json() for event in self.history],
        }
        if external_agreement_id is not None:
            body["externalAgreementId"] = external_agreement_id
        if self.failure_description is not None:
            body["failureDescription"] = self.failure_description
        return body


@dataclass
class Agreement:
    id: str
    uuid: str
    created: float
    product_name: str
    pricing_type: str
    interval_unit: str
    interval_count: int
    merchant_agreement_url: str
    merchant_redirect_url: str
    confirmation_url: str
    # The merchant it belongs to.
    msn: str
    status: str = "PENDING"
    amount: int | None = None
    suggested_max_amount: int | None = None
    max_amount: int | None = None
    product_description: str | None = None
    phone_number: str | None = None
    scope: str | None = None
    sub: str | None = None
    external_id: str | None = None
    campaign: dict[str, Any] | None = None
    start: float | None = None
    stop: float | None = None
    initial_charge_id: str | None = None
    charge_ids: list[str] = field(default_factory=list)
    # paymentMethod.blockedSources, set on draft only (CHANGES §4.1).
    blocked_sources: list[str] | None = None
    history: list[AgreementEvent] = field(default_factory=list)

    def pricing_json(self) -> dict[str, Any]:
        if self.pricing_type == "LEGACY":
            return {"type": "LEGACY", "currency": "NOK", "amount": self.amount}
        return {
            "type": "VARIABLE",
            "currency": "NOK",
            "suggestedMaxAmount": self.suggested_max_amount,
            # Until the user picks one, the suggestion stands (the schema makes maxAmount required).
            "maxAmount": self.max_amount if self.max_amount is not None else self.suggested_max_amount,
        }

    def campaign_json(self) -> dict[str, Any] | None:
        if self.campaign is None:
            return None
        body = {k: v for k, v in self.campaign.items() if v is not None}
        for key in ("period", "interval"):
            if isinstance(body.get(key), dict):
                body[key] = {"unit": body[key]["unit"], "count": body[key]["count"]}
        body["explanation"] = f"Campaign price {body['price'] / 100:.2f} kr"
        return body

    def to_json(self, userinfo_base: str) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": self.id,
            "uuid": self.uuid,
            "status": self.status,
            "created": iso(self.created),
            "start": iso(self.start) if self.start is not None else None,
            "stop": iso(self.stop) if self.stop is not None else None,
            "productName": self.product_name,
            "pricing": self.pricing_json(),
            "interval": {
                "unit": self.interval_unit,
                "count": self.interval_count,
                "text": interval_text(self.interval_unit, self.interval_count),
            },
            "campaign": self.campaign_json(),
            "merchantAgreementUrl": self.merchant_agreement_url,
            "merchantRedirectUrl": self.merchant_redirect_url,
            "countryCode": "NO",
            "vippsConfirmationUrl": self.confirmation_url,
            "sub": self.sub,
            "userinfoUrl": f"{userinfo_base}/vipps-userinfo-api/userinfo/{self.sub}" if self.sub else None,
        }
        if self.product_description is not None:
            body["productDescription"] = self.product_description
        if self.external_id is not None:
            body["externalId"] = self.external_id
        if self.blocked_sources is not None:
            body["paymentMethod"] = {"blockedSources": list(self.blocked_sources)}
        body["history"] = [event.to_json() for event in self.history]
        return body
