"""Charges: create, capture, refund, and what Vipps returns for them (NOTES §2.6-2.12, §3.2-3.5)."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import Field, Strict, model_validator

from schemas.commands import ChargeCreationType, ChargeStatus, ProcessingMode, TransactionType
from worker.vipps.models.common import (
    EXTERNAL_ID,
    ORDER_ID,
    Amount,
    Currency,
    DueDate,
    LenientDate,
    RequestModel,
    ResponseModel,
    TolerantCurrency,
    TolerantDateTime,
    TolerantTransactionType,
)

# In the guide's state table but not in the spec's enum (NOTES §3.2): parsed as this plain string.
CHARGE_STATUS_UNKNOWN = "UNKNOWN"

# Vipps may still move the charge by itself, so it is worth polling: not yet processed, being
# processed, or the transient UNKNOWN (NOTES §3.2).
CHANGING_CHARGE_STATUSES: frozenset[str] = frozenset(
    {ChargeStatus.PENDING, ChargeStatus.DUE, ChargeStatus.PROCESSING, CHARGE_STATUS_UNKNOWN}
)
# A cancel is accepted: PENDING, DUE and RESERVED become CANCELLED, PARTIALLY_CAPTURED becomes CHARGED (NOTES §3.2).
CANCELLABLE_CHARGE_STATUSES: frozenset[str] = frozenset(
    {ChargeStatus.PENDING, ChargeStatus.DUE, ChargeStatus.RESERVED, ChargeStatus.PARTIALLY_CAPTURED}
)


class ChargeType(StrEnum):
    INITIAL = "INITIAL"
    RECURRING = "RECURRING"
    UNSCHEDULED = "UNSCHEDULED"


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


TolerantChargeStatus = Annotated[ChargeStatus | str, Field(union_mode="left_to_right")]
TolerantChargeType = Annotated[ChargeType | str, Field(union_mode="left_to_right")]
TolerantEventType = Annotated[ChargeEventType | str, Field(union_mode="left_to_right")]
TolerantFailureReason = Annotated[FailureReason | str, Field(union_mode="left_to_right")]


# --- requests -------------------------------------------------------------------------------------


class CreateChargeV3(RequestModel):
    amount: Amount
    transactionType: TransactionType
    description: str = Field(min_length=1, max_length=45)
    # RECURRING is Vipps's default and left out: a plain charge's body stays what it was before this field, so a
    # retry across an upgrade sends the same body under the same Idempotency-Key (not a 409 conflict).
    type: ChargeCreationType = Field(default=ChargeCreationType.RECURRING,
                                     exclude_if=lambda v: v is ChargeCreationType.RECURRING)
    processingMode: ProcessingMode | None = None
    due: DueDate | None = None
    retryDays: Annotated[int, Strict(), Field(ge=0, le=14)] | None = None
    orderId: str | None = Field(default=None, pattern=ORDER_ID)
    externalId: str | None = Field(default=None, min_length=1, max_length=64, pattern=EXTERNAL_ID)

    @model_validator(mode="after")
    def _by_type(self) -> CreateChargeV3:
        if self.type is ChargeCreationType.UNSCHEDULED:
            given = [name for name in ("due", "retryDays", "processingMode") if getattr(self, name) is not None]
            if given:
                raise ValueError(f"an UNSCHEDULED charge takes no {', '.join(given)}")
        elif self.due is None or self.retryDays is None:
            raise ValueError("a RECURRING charge needs due and retryDays")
        if self.processingMode is ProcessingMode.SINGLE_ATTEMPT and self.retryDays != 0:
            raise ValueError("processingMode SINGLE_ATTEMPT needs retryDays 0")
        return self


class ModifyChargeV3(RequestModel):
    """Body of capture (CaptureRequestV3) and refund (RefundRequest)."""

    amount: Amount
    description: str = Field(min_length=1)


CaptureRequestV3 = ModifyChargeV3
RefundRequest = ModifyChargeV3


# --- responses ------------------------------------------------------------------------------------


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
