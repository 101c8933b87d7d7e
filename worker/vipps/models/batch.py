"""The batch endpoint's request and answer, ``POST /recurring/v3/agreements/charges`` (CHANGES §2).

Up to 2,000 RECURRING charges in one request; Vipps validates each, answers 202 with the ones it
accepted (by ``orderId``, which becomes the charge id) and the ones it refused with its reasons, and
creates the accepted ones later: one may still fail then (``recurring.charge-creation-failed.v1``).
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import ConfigDict, Field, RootModel, Strict

from schemas.commands import ProcessingMode, TransactionType
from worker.vipps.models.common import EXTERNAL_ID, ORDER_ID, Amount, DueDate, RequestModel, ResponseModel

MAX_BATCH = 2000  # charges per request (CHANGES §2, since May 2024)


class CreateChargeAsyncV3(RequestModel):
    agreementId: str = Field(min_length=1)
    amount: Amount
    transactionType: TransactionType
    description: str = Field(min_length=1, max_length=45)
    due: DueDate
    retryDays: Annotated[int, Strict(), Field(ge=0, le=14)]
    orderId: str = Field(pattern=ORDER_ID)  # required here, unlike on the single endpoint
    externalId: str | None = Field(default=None, min_length=1, max_length=64, pattern=EXTERNAL_ID)
    processingMode: ProcessingMode | None = None


class ChargeBatchV3(RootModel[list[CreateChargeAsyncV3]]):
    """The request body: a JSON array of charges."""

    model_config = ConfigDict(frozen=True)

    def to_wire(self) -> list[dict[str, Any]]:
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class InvalidChargeV3(ResponseModel):
    chargeBatchItemDto: dict[str, Any] = Field(default_factory=dict)
    errors: list[Any] = Field(default_factory=list)  # free text, not enumerated by Vipps

    @property
    def order_id(self) -> str | None:
        value = self.chargeBatchItemDto.get("orderId")
        return value if isinstance(value, str) else None

    def reasons(self) -> str:
        return "; ".join(str(e) for e in self.errors)[:500] or "refused by Vipps (no reason given)"


class AsyncChargeResponseV3(ResponseModel):
    """202: the orderIds that passed validation, and the items that did not with Vipps's reasons."""

    validCharges: list[str] = Field(default_factory=list)
    invalidCharges: list[InvalidChargeV3] = Field(default_factory=list)
