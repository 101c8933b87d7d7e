"""Commands: what a billing system asks the worker to do.

One pydantic model per command type, joined in a discriminated union on ``type``.
Amounts are integers in minor units (øre). Field limits mirror the Vipps
Recurring v3 API so a bad command is rejected before anything is sent.
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationInfo,
    field_validator,
    model_validator,
)

CommandId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:@-]+$")]
AgreementId = Annotated[str, Field(min_length=1, max_length=36, pattern=r"^[A-Za-z0-9_-]+$")]
ChargeId = Annotated[str, Field(min_length=1, max_length=50, pattern=r"^[A-Za-z0-9_-]+$")]
# The smallest amount Vipps takes for a charge, a capture or a refund (øre).
MIN_AMOUNT = 100
Amount = Annotated[int, Field(ge=MIN_AMOUNT, le=2_147_483_647, strict=True)]
Msn = Annotated[str, Field(pattern=r"^[0-9]{4,6}$")]
Url = Annotated[str, Field(min_length=1, max_length=1024)]
PhoneNumber = Annotated[str, Field(pattern=r"^[0-9]{8,15}$")]
ExternalId = Annotated[str, Field(min_length=1, max_length=64)]
_SCOPE_TOKEN = "(name|address|email|phoneNumber|birthDate|nin)"
Scope = Annotated[str, Field(pattern=rf"^{_SCOPE_TOKEN}( {_SCOPE_TOKEN})*$")]
HttpsUrl = Annotated[str, Field(min_length=9, max_length=1024, pattern=r"^https://")]


class TransactionType(StrEnum):
    DIRECT_CAPTURE = "DIRECT_CAPTURE"
    RESERVE_CAPTURE = "RESERVE_CAPTURE"


class ChargeCreationType(StrEnum):
    RECURRING = "RECURRING"
    UNSCHEDULED = "UNSCHEDULED"  # ad hoc, right away: no due date, one attempt; the MSN must be allow-listed


class ProcessingMode(StrEnum):
    MULTIPLE_ATTEMPTS = "MULTIPLE_ATTEMPTS"
    SINGLE_ATTEMPT = "SINGLE_ATTEMPT"


class BlockedSource(StrEnum):
    COMMERCIAL_CARDS = "COMMERCIAL_CARDS"


class PricingType(StrEnum):
    LEGACY = "LEGACY"
    VARIABLE = "VARIABLE"


class IntervalUnit(StrEnum):
    YEAR = "YEAR"
    MONTH = "MONTH"
    WEEK = "WEEK"
    DAY = "DAY"


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


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _unique(items: list[BlockedSource]) -> list[BlockedSource]:
    if len(set(items)) != len(items):
        raise ValueError("each value may be given once")
    return items


BlockedSources = Annotated[list[BlockedSource], AfterValidator(_unique), Field(json_schema_extra={"uniqueItems": True})]


# Fields added after commands were first recorded are left out of the dump while at their default, so a
# command's fingerprint in the ledger is the same whichever worker version read it (a redelivery across an
# upgrade is the same command, not a reused command_id).
def _is_none(value: object) -> bool:
    return value is None


class Interval(_Strict):
    unit: IntervalUnit
    count: Annotated[int, Field(ge=1, le=31, strict=True)]


class Pricing(_Strict):
    type: PricingType = PricingType.LEGACY
    currency: Literal["NOK"] = "NOK"
    amount: Amount | None = None
    suggested_max_amount: Annotated[int, Field(ge=100, le=2_000_000, strict=True)] | None = None

    @model_validator(mode="after")
    def _amount_matches_type(self) -> Pricing:
        if self.type is PricingType.LEGACY and (self.amount is None or self.suggested_max_amount is not None):
            raise ValueError("LEGACY pricing needs amount and no suggested_max_amount")
        if self.type is PricingType.VARIABLE and (self.suggested_max_amount is None or self.amount is not None):
            raise ValueError("VARIABLE pricing needs suggested_max_amount and no amount")
        return self


class InitialCharge(_Strict):
    amount: Annotated[int, Field(ge=1, le=2_147_483_647, strict=True)]
    description: Annotated[str, Field(min_length=1, max_length=45)]
    transaction_type: TransactionType
    order_id: ChargeId | None = None
    external_id: ExternalId | None = None


CampaignPrice = Annotated[int, Field(ge=0, le=2_147_483_647, strict=True)]


class PriceCampaign(_Strict):
    """The campaign price each interval until ``end``."""

    type: Literal["PRICE_CAMPAIGN"]
    price: CampaignPrice
    end: AwareDatetime


class PeriodCampaign(_Strict):
    """One price for a first period ("10 weeks for 1 kr")."""

    type: Literal["PERIOD_CAMPAIGN"]
    price: CampaignPrice
    period: Interval


class EventCampaign(_Strict):
    """The campaign price until an event; ``event_text`` is shown in the app ("until ...")."""

    type: Literal["EVENT_CAMPAIGN"]
    price: CampaignPrice
    event_date: AwareDatetime
    event_text: Annotated[str, Field(min_length=1, max_length=100)]


class FullFlexCampaign(_Strict):
    """Another price and interval until ``end`` (Vipps asks to be contacted before using it)."""

    type: Literal["FULL_FLEX_CAMPAIGN"]
    price: CampaignPrice
    interval: Interval
    end: AwareDatetime


Campaign = Annotated[PriceCampaign | PeriodCampaign | EventCampaign | FullFlexCampaign, Field(discriminator="type")]


class CommandBase(_Strict):
    command_id: CommandId
    correlation_id: Annotated[str, Field(min_length=1, max_length=128)] | None = None
    msn: Msn | None = None
    issued_at: dt.datetime
    operator: Annotated[str, Field(min_length=1, max_length=64, description="who sent it (a support action)")] | None \
        = None
    reason: Annotated[str, Field(min_length=1, max_length=500, description="why (a support action)")] | None = None


class AgreementCreate(CommandBase):
    type: Literal["agreement.create"]
    product_name: Annotated[str, Field(min_length=1, max_length=45)]
    product_description: Annotated[str, Field(min_length=1, max_length=100)] | None = None
    pricing: Pricing
    interval: Interval
    merchant_redirect_url: Url
    merchant_agreement_url: HttpsUrl
    phone_number: PhoneNumber | None = None
    initial_charge: InitialCharge | None = None
    external_id: ExternalId | None = None
    scope: Scope | None = None
    is_app: bool = False
    campaign: Campaign | None = None
    blocked_sources: BlockedSources | None = Field(
        default=None, exclude_if=_is_none,
        description="payment sources the user may not pay with; set at creation only, no update changes it")

    @model_validator(mode="after")
    def _no_campaign_with_variable_pricing(self) -> AgreementCreate:
        if self.campaign is not None and self.pricing.type is PricingType.VARIABLE:
            raise ValueError("campaigns cannot be combined with VARIABLE pricing")
        return self


class AgreementFetch(CommandBase):
    type: Literal["agreement.fetch"]
    agreement_id: AgreementId


class AgreementUpdate(CommandBase):
    """Change an agreement, or stop it with ``status: "STOPPED"`` (and nothing else)."""

    type: Literal["agreement.update"]
    agreement_id: AgreementId
    status: Literal["STOPPED"] | None = None
    product_name: Annotated[str, Field(min_length=1, max_length=45)] | None = None
    product_description: Annotated[str, Field(min_length=1, max_length=100)] | None = None
    merchant_agreement_url: HttpsUrl | None = None
    external_id: ExternalId | None = None
    pricing_amount: Amount | None = None
    suggested_max_amount: Annotated[int, Field(ge=100, le=2_000_000, strict=True)] | None = None
    interval: Interval | None = None

    @model_validator(mode="after")
    def _one_kind_of_change(self) -> AgreementUpdate:
        changes = [name for name in _UPDATE_FIELDS if getattr(self, name) is not None]
        if self.status == "STOPPED" and changes:
            raise ValueError(f"a stop changes nothing else (also given: {', '.join(changes)})")
        if self.status is None and not changes:
            raise ValueError("an update must change at least one field")
        if self.pricing_amount is not None and self.suggested_max_amount is not None:
            raise ValueError("pricing_amount (LEGACY) and suggested_max_amount (VARIABLE) exclude each other")
        return self


_UPDATE_FIELDS = ("product_name", "product_description", "merchant_agreement_url", "external_id",
                  "pricing_amount", "suggested_max_amount", "interval")


class AgreementForceAccept(CommandBase):
    """Test environment and simulator only."""

    type: Literal["agreement.force_accept"]
    agreement_id: AgreementId
    phone_number: PhoneNumber


class AgreementListCharges(CommandBase):
    type: Literal["agreement.list_charges"]
    agreement_id: AgreementId
    status: ChargeStatus | None = None


class ChargeCreate(CommandBase):
    """A RECURRING charge is due on ``due`` and retried for ``retry_days``; an UNSCHEDULED one is made at once,
    once. The fields each kind needs or forbids are checked where they are declared, after ``charge_type`` and
    ``processing_mode``, so an error names the field."""

    type: Literal["charge.create"]
    agreement_id: AgreementId
    amount: Amount
    description: Annotated[str, Field(min_length=1, max_length=45)]
    charge_type: ChargeCreationType = Field(
        default=ChargeCreationType.RECURRING, exclude_if=lambda v: v is ChargeCreationType.RECURRING,
        description="RECURRING (needs due and retry_days) or UNSCHEDULED (none of due, retry_days, "
                    "processing_mode)")
    processing_mode: ProcessingMode | None = Field(
        default=None, exclude_if=_is_none,
        description="RECURRING only; Vipps's default is MULTIPLE_ATTEMPTS; SINGLE_ATTEMPT needs retry_days 0")
    due: dt.date | None = Field(default=None, validate_default=True, description="RECURRING: required")
    retry_days: Annotated[int, Field(ge=0, le=14, strict=True)] | None = Field(
        default=None, validate_default=True, description="RECURRING: required")
    transaction_type: TransactionType
    order_id: Annotated[str, Field(min_length=1, max_length=50, pattern=r"^[a-zA-Z0-9-]+$")] | None = None
    external_id: ExternalId | None = None

    @field_validator("processing_mode")
    @classmethod
    def _mode_only_when_recurring(cls, value: ProcessingMode | None, info: ValidationInfo) -> ProcessingMode | None:
        if value is not None and info.data.get("charge_type") is ChargeCreationType.UNSCHEDULED:
            raise ValueError("an UNSCHEDULED charge takes no processing_mode (it is tried once)")
        return value

    @field_validator("due", "retry_days")
    @classmethod
    def _by_charge_type(cls, value: object, info: ValidationInfo) -> object:
        kind = info.data.get("charge_type")
        if kind is ChargeCreationType.UNSCHEDULED and value is not None:
            raise ValueError(f"an UNSCHEDULED charge takes no {info.field_name} (it is made at once, once)")
        if kind is ChargeCreationType.RECURRING and value is None:
            raise ValueError(f"a RECURRING charge needs {info.field_name}")
        if (info.field_name == "retry_days" and value not in (None, 0)
                and info.data.get("processing_mode") is ProcessingMode.SINGLE_ATTEMPT):
            raise ValueError("SINGLE_ATTEMPT needs retry_days 0")
        return value


class ChargeFetch(CommandBase):
    type: Literal["charge.fetch"]
    agreement_id: AgreementId
    charge_id: ChargeId


class ChargeCancel(CommandBase):
    type: Literal["charge.cancel"]
    agreement_id: AgreementId
    charge_id: ChargeId


class ChargeCapture(CommandBase):
    type: Literal["charge.capture"]
    agreement_id: AgreementId
    charge_id: ChargeId
    amount: Amount
    description: Annotated[str, Field(min_length=1, max_length=45)]


class ChargeRefund(CommandBase):
    type: Literal["charge.refund"]
    agreement_id: AgreementId
    charge_id: ChargeId
    amount: Amount
    description: Annotated[str, Field(min_length=1, max_length=45)]


Command = Annotated[
    AgreementCreate | AgreementFetch | AgreementUpdate | AgreementForceAccept | AgreementListCharges
    | ChargeCreate | ChargeFetch | ChargeCancel | ChargeCapture | ChargeRefund,
    Field(discriminator="type"),
]
CommandAdapter: TypeAdapter[Command] = TypeAdapter(Command)

COMMAND_TYPES: tuple[str, ...] = (
    "agreement.create", "agreement.fetch", "agreement.update", "agreement.force_accept",
    "agreement.list_charges", "charge.create", "charge.fetch", "charge.cancel", "charge.capture",
    "charge.refund",
)

# Largest command accepted on the wire; anything bigger is rejected unread.
MAX_COMMAND_BYTES = 16_384


def actor_name(command_type: str) -> str:
    """The dramatiq actor that carries out a command type: ``charge.create`` -> ``charge_create``."""
    return command_type.replace(".", "_")


def queue_kind(command_type: str) -> str:
    """Agreement commands and charge commands travel on separate queues."""
    return command_type.split(".", 1)[0]
