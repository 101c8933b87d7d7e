"""What agreements and charges share: enums, field types, the two base models, the token response.

Requests are strict: extra fields are refused and the spec's limits are enforced before
anything is sent. Responses are tolerant, because the real API returns more than the spec
promises (NOTES §9): unknown enum values (charge status UNKNOWN, later charge types,
currencies), `due` as a date-time, required fields that are null, numbers as strings in the
token response.

Enums that the message contract also uses (pricing type, transaction type, interval unit,
charge status) are defined once, in `schemas.commands`.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Annotated, Any

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
)

from schemas.commands import IntervalUnit, PricingType, TransactionType

INT32_MAX = 2_147_483_647
MIN_AMOUNT = 100  # øre; the spec's minimum for charge, price, capture and refund amounts
SUGGESTED_MAX_AMOUNT_LIMIT = 2_000_000
ORDER_ID = r"^[a-zA-Z0-9-]{1,50}$"
EXTERNAL_ID = r"^.{1,64}$"


class Completion(StrEnum):
    DONE = "done"  # 204: enacted
    ACCEPTED = "accepted"  # 202: accepted, not yet enacted; poll the resource


class Currency(StrEnum):
    NOK = "NOK"


# --- field types ----------------------------------------------------------------------------------


def _utc_z(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# Requests: an aware date-time, sent as RFC 3339 UTC ("...Z") as the guide asks.
UtcDateTime = Annotated[AwareDatetime, PlainSerializer(_utc_z, return_type=str)]
# Money and counts in requests: ints only (no silent float or bool coercion).
Amount = Annotated[int, Strict(), Field(ge=MIN_AMOUNT, le=INT32_MAX)]
Price = Annotated[int, Strict(), Field(ge=0, le=INT32_MAX)]
SuggestedMaxAmount = Annotated[int, Strict(), Field(ge=MIN_AMOUNT, le=SUGGESTED_MAX_AMOUNT_LIMIT)]


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


def _calendar_date(value: Any) -> Any:
    # A datetime would silently lose its time; the API takes a calendar date.
    if isinstance(value, datetime):
        raise ValueError("due is a date (YYYY-MM-DD), not a date-time")
    if isinstance(value, str) and not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        raise ValueError("due must be formatted YYYY-MM-DD")
    return value


# A charge's due date in a request: YYYY-MM-DD, nothing else.
DueDate = Annotated[date, BeforeValidator(_calendar_date)]


# Known values become the enum; unknown ones stay plain strings instead of failing the parse.
TolerantTransactionType = Annotated[TransactionType | str, Field(union_mode="left_to_right")]
TolerantPricingType = Annotated[PricingType | str, Field(union_mode="left_to_right")]
TolerantCurrency = Annotated[Currency | str, Field(union_mode="left_to_right")]
TolerantIntervalUnit = Annotated[IntervalUnit | str, Field(union_mode="left_to_right")]
TolerantDateTime = Annotated[datetime | str, Field(union_mode="left_to_right")]


# --- base models ----------------------------------------------------------------------------------


class RequestModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    def to_wire(self) -> dict[str, Any]:
        """The JSON body exactly as the spec names it, without unset optionals."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class ResponseModel(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)


class TimePeriod(RequestModel):
    unit: IntervalUnit
    count: Annotated[int, Strict(), Field(ge=1, le=31)]


class TimePeriodResponse(ResponseModel):
    unit: TolerantIntervalUnit | None = None
    count: int | None = None
    text: str | None = None


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
