"""Pydantic models of the Recurring v3 requests and responses, with the spec's field names.

Requests are strict: extra fields are refused and the spec's limits are enforced
before anything is sent. Responses are tolerant, because the real API returns
more than the spec promises (NOTES §9): unknown enum values (charge status
UNKNOWN, later charge types, currencies), `due` as a date-time, required fields
that are null, numbers as strings in the token response.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    SecretStr,
    Strict,
    field_validator,
    model_validator,
)

INT32_MAX = 2_147_483_647
MIN_AMOUNT = 100  # øre; the spec's minimum for charge, price, capture and refund amounts
SUGGESTED_MAX_AMOUNT_LIMIT = 2_000_000


class Completion(StrEnum):
    DONE = "done"  # 204: enacted
    ACCEPTED = "accepted"  # 202: accepted, not yet enacted; poll the resource


# --- enums ----------------------------------------------------------------------------------------


class AgreementStatus(StrEnum):
    PENDING = "PENDING"
    ACTIVE = "ACTIVE"
    STOPPED = "STOPPED"
    EXPIRED = "EXPIRED"


class ChargeStatus(StrEnum):
    PENDING = "PENDING"
    DUE = "DUE"
    RESERVED = "RESERVED"
    CHARGED = "CHARGED"
    PARTIALLY_CAPTURED = "PARTIALLY_CAPTURED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    PARTIALLY_REFUNDED = "PARTIALLY_REFUNDED"
    REFUNDED = "REFUNDED"
    PROCESSING = "PROCESSING"
    UNKNOWN = "UNKNOWN"  # documented in the guide, missing from the spec's enum


FINAL_CHARGE_STATUSES = frozenset(
    {ChargeStatus.CHARGED, ChargeStatus.FAILED, ChargeStatus.CANCELLED, ChargeStatus.REFUNDED}
)
FINAL_AGREEMENT_STATUSES = frozenset({AgreementStatus.ACTIVE, AgreementStatus.STOPPED, AgreementStatus.EXPIRED})


class ChargeType(StrEnum):
    INITIAL = "INITIAL"
    RECURRING = "RECURRING"


class TransactionType(StrEnum):
    DIRECT_CAPTURE = "DIRECT_CAPTURE"
    RESERVE_CAPTURE = "RESERVE_CAPTURE"


class PricingType(StrEnum):
    LEGACY = "LEGACY"
    VARIABLE = "VARIABLE"


class Currency(StrEnum):
    NOK = "NOK"


class PeriodUnit(StrEnum):
    YEAR = "YEAR"
    MONTH = "MONTH"
    WEEK = "WEEK"
    DAY = "DAY"


class ChargeEventType(StrEnum):
    CREATE = "CREATE"
    RESERVE = "RESERVE"
    CAPTURE = "CAPTURE"
    REFUND = "REFUND"
    CANCEL = "CANCEL"
    FAIL = "FAIL"


class FailureReason(StrEnum):
    USER_ACTION_REQUIRED = "user_action_required"
    CHARGE_AMOUNT_TOO_HIGH = "charge_amount_too_high"
    NON_TECHNICAL_ERROR = "non_technical_error"
    TECHNICAL_ERROR = "technical_error"


class CampaignType(StrEnum):
    PRICE_CAMPAIGN = "PRICE_CAMPAIGN"
    PERIOD_CAMPAIGN = "PERIOD_CAMPAIGN"
    EVENT_CAMPAIGN = "EVENT_CAMPAIGN"
    FULL_FLEX_CAMPAIGN = "FULL_FLEX_CAMPAIGN"
    LEGACY_CAMPAIGN = "LEGACY_CAMPAIGN"


SCOPES = frozenset({"name", "address", "email", "phoneNumber", "birthDate", "nin"})
ORDER_ID = r"^[a-zA-Z0-9-]{1,50}$"
EXTERNAL_ID = r"^.{1,64}$"

# --- field types ----------------------------------------------------------------------------------


def _utc_z(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# Requests: an aware date-time, sent as RFC 3339 UTC ("...Z") as the guide asks.
UtcDateTime = Annotated[AwareDatetime, PlainSerializer(_utc_z, return_type=str)]
# Money and counts in requests: ints only (no silent float or bool coercion).
Amount = Annotated[int, Strict(), Field(ge=MIN_AMOUNT, le=INT32_MAX)]
Price = Annotated[int, Strict(), Field(ge=0, le=INT32_MAX)]


def _lenient_date(value: Any) -> Any:
    """`due` is sent as YYYY-MM-DD but returned as a date-time; keep the calendar date."""
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, str) and len(value) > 10 and value[10] in "Tt ":
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00")).date()
        except ValueError:
            return value[:10]
    return value


LenientDate = Annotated[date, BeforeValidator(_lenient_date)]


# Known values become the enum; unknown ones stay plain strings instead of failing the parse.
TolerantChargeStatus = Annotated[ChargeStatus | str, Field(union_mode="left_to_right")]
TolerantAgreementStatus = Annotated[AgreementStatus | str, Field(union_mode="left_to_right")]
TolerantChargeType = Annotated[ChargeType | str, Field(union_mode="left_to_right")]
TolerantTransactionType = Annotated[TransactionType | str, Field(union_mode="left_to_right")]
TolerantPricingType = Annotated[PricingType | str, Field(union_mode="left_to_right")]
TolerantCurrency = Annotated[Currency | str, Field(union_mode="left_to_right")]
TolerantPeriodUnit = Annotated[PeriodUnit | str, Field(union_mode="left_to_right")]
TolerantEventType = Annotated[ChargeEventType | str, Field(union_mode="left_to_right")]
TolerantFailureReason = Annotated[FailureReason | str, Field(union_mode="left_to_right")]
TolerantCampaignType = Annotated[CampaignType | str, Field(union_mode="left_to_right")]
TolerantDateTime = Annotated[datetime | str, Field(union_mode="left_to_right")]


# --- requests -------------------------------------------------------------------------------------


class RequestModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    def to_wire(self) -> dict[str, Any]:
        """The JSON body exactly as the spec names it, without unset optionals."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class TimePeriod(RequestModel):
    unit: PeriodUnit
    count: Annotated[int, Strict(), Field(ge=1, le=31)]


class PricingRequest(RequestModel):
    type: PricingType = PricingType.LEGACY
    currency: Currency = Currency.NOK
    amount: Amount | None = None
    suggestedMaxAmount: Annotated[int, Strict(), Field(ge=MIN_AMOUNT, le=SUGGESTED_MAX_AMOUNT_LIMIT)] | None = None

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
    suggestedMaxAmount: Annotated[int, Strict(), Field(ge=MIN_AMOUNT, le=SUGGESTED_MAX_AMOUNT_LIMIT)] | None = None

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


class CreateChargeV3(RequestModel):
    amount: Amount
    transactionType: TransactionType
    description: str = Field(min_length=1, max_length=45)
    due: date
    retryDays: Annotated[int, Strict(), Field(ge=0, le=14)]
    orderId: str | None = Field(default=None, pattern=ORDER_ID)
    externalId: str | None = Field(default=None, min_length=1, max_length=64, pattern=EXTERNAL_ID)

    @field_validator("due", mode="before")
    @classmethod
    def _date_only(cls, value: Any) -> Any:
        # A datetime would silently lose its time; the API takes a calendar date.
        if isinstance(value, datetime):
            raise ValueError("due is a date (YYYY-MM-DD), not a date-time")
        if isinstance(value, str) and not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
            raise ValueError("due must be formatted YYYY-MM-DD")
        return value


class ModifyChargeV3(RequestModel):
    """Body of capture (CaptureRequestV3) and refund (RefundRequest)."""

    amount: Amount
    description: str = Field(min_length=1)


CaptureRequestV3 = ModifyChargeV3
RefundRequest = ModifyChargeV3


# --- responses ------------------------------------------------------------------------------------


class ResponseModel(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)


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


class TimePeriodResponse(ResponseModel):
    unit: TolerantPeriodUnit | None = None
    count: int | None = None
    text: str | None = None


class CampaignResponseV3(ResponseModel):
    type: TolerantCampaignType
    price: int | None = None
    end: TolerantDateTime | None = None  # spec examples use "2022/02/28T00:00:00Z"
    period: TimePeriodResponse | None = None
    interval: TimePeriodResponse | None = None
    eventDate: TolerantDateTime | None = None
    eventText: str | None = None
    explanation: str | None = None


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


class ChargeSummary(ResponseModel):
    captured: int = 0
    refunded: int = 0
    cancelled: int = 0


class ChargeEvent(ResponseModel):
    occurred: TolerantDateTime
    event: TolerantEventType
    amount: int
    idempotencyKey: str | None = None
    success: bool


class ChargeResponseV3(ResponseModel):
    id: str  # no length check: orderId-derived ids reach 50 characters despite the spec's 15
    agreementId: str | None = None
    amount: int
    currency: TolerantCurrency = Currency.NOK
    description: str | None = None
    due: LenientDate | None = None
    retryDays: int | None = None
    status: TolerantChargeStatus
    type: TolerantChargeType = ChargeType.RECURRING
    transactionType: TolerantTransactionType | None = None
    transactionId: str | None = None  # null until CHARGED
    externalId: str | None = None
    externalAgreementId: str | None = None
    failureReason: TolerantFailureReason | None = None
    failureDescription: str | None = None
    summary: ChargeSummary = Field(default_factory=ChargeSummary)
    history: list[ChargeEvent] = Field(default_factory=list)


class ChargeReference(ResponseModel):
    chargeId: str


class AccessTokenResponse(ResponseModel):
    """`POST /accesstoken/get`; every number arrives as a string."""

    token_type: str = "Bearer"
    access_token: SecretStr
    expires_in: float | None = None
    ext_expires_in: float | None = None
    expires_on: float | None = None
    not_before: float | None = None
    resource: str | None = None

    @field_validator("expires_in", "ext_expires_in", "expires_on", "not_before", mode="before")
    @classmethod
    def _blank_is_none(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

# An agreement in these statuses never changes again.
AGREEMENT_FINAL_STATUSES = frozenset({"STOPPED", "EXPIRED"})
# A charge in these statuses may still change by itself (Vipps's processing rounds): the worker polls it.
CHARGE_UNSETTLED_STATUSES = frozenset({"PENDING", "DUE", "PROCESSING", "UNKNOWN"})
# A charge in these statuses can still be cancelled.
CHARGE_CANCELLABLE_STATUSES = frozenset({"PENDING", "DUE", "RESERVED", "PARTIALLY_CAPTURED", "PROCESSING"})
