"""Agreements: draft, update, force accept, and what Vipps returns for them (NOTES §2.1-2.5, §3.1)."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from schemas.commands import BlockedSource, PricingType, TransactionType
from worker.vipps.models.common import (
    EXTERNAL_ID,
    ORDER_ID,
    Amount,
    Currency,
    Price,
    RequestModel,
    ResponseModel,
    SuggestedMaxAmount,
    TimePeriod,
    TimePeriodResponse,
    TolerantCurrency,
    TolerantDateTime,
    TolerantPricingType,
    UtcDateTime,
)


class AgreementStatus(StrEnum):
    PENDING = "PENDING"
    ACTIVE = "ACTIVE"
    STOPPED = "STOPPED"
    EXPIRED = "EXPIRED"


# Terminal: a STOPPED agreement cannot be re-activated, an EXPIRED one was never accepted (NOTES §3.1).
FINAL_AGREEMENT_STATUSES: frozenset[str] = frozenset({AgreementStatus.STOPPED, AgreementStatus.EXPIRED})


class CampaignType(StrEnum):
    PRICE_CAMPAIGN = "PRICE_CAMPAIGN"
    PERIOD_CAMPAIGN = "PERIOD_CAMPAIGN"
    EVENT_CAMPAIGN = "EVENT_CAMPAIGN"
    FULL_FLEX_CAMPAIGN = "FULL_FLEX_CAMPAIGN"
    LEGACY_CAMPAIGN = "LEGACY_CAMPAIGN"


SCOPES = frozenset({"name", "address", "email", "phoneNumber", "birthDate", "nin"})

TolerantAgreementStatus = Annotated[AgreementStatus | str, Field(union_mode="left_to_right")]
TolerantCampaignType = Annotated[CampaignType | str, Field(union_mode="left_to_right")]


# --- requests -------------------------------------------------------------------------------------


class PricingRequest(RequestModel):
    type: PricingType = PricingType.LEGACY
    currency: Currency = Currency.NOK
    amount: Amount | None = None
    suggestedMaxAmount: SuggestedMaxAmount | None = None

    @model_validator(mode="after")
    def _by_type(self) -> PricingRequest:
        if self.type is PricingType.LEGACY:
            if self.amount is None or self.suggestedMaxAmount is not None:
                raise ValueError("LEGACY pricing needs amount and no suggestedMaxAmount")
        elif self.suggestedMaxAmount is None or self.amount is not None:
            raise ValueError("VARIABLE pricing needs suggestedMaxAmount and no amount")
        return self


class PriceCampaignV3(RequestModel):
    type: Literal["PRICE_CAMPAIGN"] = "PRICE_CAMPAIGN"
    price: Price
    end: UtcDateTime


class PeriodCampaignV3(RequestModel):
    type: Literal["PERIOD_CAMPAIGN"] = "PERIOD_CAMPAIGN"
    price: Price
    period: TimePeriod


class EventCampaignV3(RequestModel):
    type: Literal["EVENT_CAMPAIGN"] = "EVENT_CAMPAIGN"
    price: Price
    eventDate: UtcDateTime
    eventText: str = Field(min_length=1)


class FullFlexCampaignV3(RequestModel):
    type: Literal["FULL_FLEX_CAMPAIGN"] = "FULL_FLEX_CAMPAIGN"
    price: Price
    interval: TimePeriod
    end: UtcDateTime


CampaignV3 = Annotated[
    PriceCampaignV3 | PeriodCampaignV3 | EventCampaignV3 | FullFlexCampaignV3, Field(discriminator="type")
]


class InitialChargeV3(RequestModel):
    amount: Price  # no minimum for initial charges (guide: "no price limit")
    description: str = Field(min_length=1)
    transactionType: TransactionType
    orderId: str | None = Field(default=None, pattern=ORDER_ID)
    externalId: str | None = Field(default=None, min_length=1, max_length=64, pattern=EXTERNAL_ID)


class PaymentMethodV3(RequestModel):
    """Set on the draft only: Vipps refuses to change it later."""

    blockedSources: list[BlockedSource] = Field(min_length=1)

    @field_validator("blockedSources")
    @classmethod
    def _unique(cls, value: list[BlockedSource]) -> list[BlockedSource]:
        if len(set(value)) != len(value):
            raise ValueError("blockedSources must not repeat a value")
        return value


class DraftAgreementV3(RequestModel):
    pricing: PricingRequest
    interval: TimePeriod
    merchantAgreementUrl: str = Field(min_length=1, max_length=1024)
    merchantRedirectUrl: str = Field(min_length=1, max_length=1024)
    productName: str = Field(min_length=1, max_length=45)
    productDescription: str | None = Field(default=None, max_length=100)
    phoneNumber: str | None = Field(default=None, min_length=1, max_length=15)
    initialCharge: InitialChargeV3 | None = None
    campaign: CampaignV3 | None = None
    isApp: bool | None = None
    skipLandingPage: bool | None = None
    scope: str | None = None
    externalId: str | None = Field(default=None, min_length=1, max_length=64, pattern=EXTERNAL_ID)
    countryCode: Literal["NO"] | None = None
    paymentMethod: PaymentMethodV3 | None = None

    @field_validator("scope")
    @classmethod
    def _known_scopes(cls, value: str | None) -> str | None:
        if value is None:
            return None
        tokens = value.split()
        unknown = sorted(set(tokens) - SCOPES)
        if not tokens or unknown:
            raise ValueError(f"scope must be space-separated values of {sorted(SCOPES)}")
        return " ".join(tokens)

    @model_validator(mode="after")
    def _rules(self) -> DraftAgreementV3:
        if not self.isApp and not self.merchantAgreementUrl.lower().startswith("https://"):
            raise ValueError("merchantAgreementUrl must use https (unless isApp)")
        if self.campaign is not None and self.pricing.type is PricingType.VARIABLE:
            raise ValueError("campaigns cannot be combined with VARIABLE pricing")
        return self


class PricingUpdateRequest(RequestModel):
    amount: Amount | None = None
    suggestedMaxAmount: SuggestedMaxAmount | None = None

    @model_validator(mode="after")
    def _one(self) -> PricingUpdateRequest:
        if (self.amount is None) == (self.suggestedMaxAmount is None):
            raise ValueError("pricing update needs exactly one of amount (LEGACY) or suggestedMaxAmount (VARIABLE)")
        return self


class IntervalUpdate(RequestModel):
    type: Literal["RECURRING"] = "RECURRING"
    period: TimePeriod


class PatchAgreementV3(RequestModel):
    productName: str | None = Field(default=None, min_length=1, max_length=45)
    productDescription: str | None = Field(default=None, max_length=100)
    merchantAgreementUrl: str | None = Field(default=None, min_length=1, max_length=1024)
    externalId: str | None = Field(default=None, min_length=1, max_length=64, pattern=EXTERNAL_ID)
    status: Literal["STOPPED"] | None = None
    pricing: PricingUpdateRequest | None = None
    interval: IntervalUpdate | None = None

    @model_validator(mode="after")
    def _rules(self) -> PatchAgreementV3:
        fields = {k for k, v in self if v is not None}
        if not fields:
            raise ValueError("an agreement update needs at least one field")
        if self.status is not None and fields != {"status"}:
            raise ValueError("stopping an agreement allows no other changes")
        return self

    @classmethod
    def stop(cls) -> PatchAgreementV3:
        return cls(status="STOPPED")


class ForceAcceptAgreementV3(RequestModel):
    phoneNumber: str = Field(min_length=1, max_length=15)


# --- responses ------------------------------------------------------------------------------------


class DraftAgreementResponseV3(ResponseModel):
    agreementId: str
    uuid: str | None = None
    vippsConfirmationUrl: str | None = None
    chargeId: str | None = None


class PricingResponse(ResponseModel):
    """LegacyPricingResponse or VariableAmountPricingResponse, told apart by `type`."""

    type: TolerantPricingType = PricingType.LEGACY
    currency: TolerantCurrency = Currency.NOK
    amount: int | None = None
    suggestedMaxAmount: int | None = None
    maxAmount: int | None = None


class CampaignResponseV3(ResponseModel):
    type: TolerantCampaignType
    price: int | None = None
    end: TolerantDateTime | None = None  # spec examples use "2022/02/28T00:00:00Z"
    period: TimePeriodResponse | None = None
    interval: TimePeriodResponse | None = None
    eventDate: TolerantDateTime | None = None
    eventText: str | None = None
    explanation: str | None = None


class AgreementEvent(ResponseModel):
    """One entry of an agreement's ``history`` (oldest first). Known events are CREATE (actor MERCHANT) and
    ACTIVATE (actor USER); the full list is not published, so any string is kept."""

    occurred: TolerantDateTime | None = None
    event: str | None = None
    actor: str | None = None


class PaymentMethodResponse(ResponseModel):
    blockedSources: list[str] = Field(default_factory=list)


def stop_actor(agreement: Mapping[str, Any]) -> str | None:
    """Who stopped the agreement (USER, MERCHANT, ADMIN), by the last stop in the ``history`` of its snapshot, when
    Vipps recorded one. Vipps has not published the event names: any containing STOP, in any case, counts."""
    for entry in reversed(agreement.get("history") or []):
        if isinstance(entry, Mapping) and "STOP" in str(entry.get("event", "")).upper():
            actor = entry.get("actor")
            return str(actor) if actor else None
    return None


class AgreementResponseV3(ResponseModel):
    id: str
    uuid: str | None = None
    status: TolerantAgreementStatus = AgreementStatus.ACTIVE  # the spec's default
    created: TolerantDateTime | None = None
    start: TolerantDateTime | None = None
    stop: TolerantDateTime | None = None
    productName: str | None = None
    productDescription: str | None = None
    pricing: PricingResponse | None = None
    interval: TimePeriodResponse | None = None
    campaign: CampaignResponseV3 | None = None
    merchantAgreementUrl: str | None = None
    merchantRedirectUrl: str | None = None
    sub: str | None = None
    userinfoUrl: str | None = None
    externalId: str | None = None
    countryCode: str | None = None
    vippsConfirmationUrl: str | None = None
    paymentMethod: PaymentMethodResponse | None = None
    history: list[AgreementEvent] = Field(default_factory=list)

    @field_validator("history", mode="before")
    @classmethod
    def _null_is_empty(cls, value: Any) -> Any:
        return [] if value is None else value
