"""Management API responses: what Vipps says about a sales unit (an MSN), read tolerantly.

Only the fields the CLI's merchant check shows are named; the rest are kept as extras. Vipps documents
that fields of ``configuration`` may be absent without meaning that they do not apply.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import BeforeValidator, Field

from worker.vipps.models.common import ResponseModel


class CaptureType(StrEnum):
    RESERVE_CAPTURE = "ReserveCapture"
    DIRECT_CAPTURE = "DirectCapture"
    NOT_APPLICABLE = "NotApplicable"


TolerantCaptureType = Annotated[CaptureType | str, Field(union_mode="left_to_right")]
# Some Management API answers give the MSN as a number.
MsnText = Annotated[str, BeforeValidator(lambda value: str(value) if isinstance(value, int) else value)]


class SalesUnitConfiguration(ResponseModel):
    paymentAllowed: bool | None = None
    recurringAllowed: bool | None = None
    captureType: TolerantCaptureType | None = None
    skipLandingPageAllowed: bool | None = None


class SalesUnit(ResponseModel):
    """``GET /management/v1/sales-units/{msn}``."""

    msn: MsnText
    name: str | None = None
    configuration: SalesUnitConfiguration = Field(default_factory=SalesUnitConfiguration)
