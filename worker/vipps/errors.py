"""The client's exception taxonomy and the parsing of Vipps error bodies.

Vipps answers errors in several shapes (RFC 7807 problem JSON, Azure API
Management JSON, v2 error arrays, plain text); all of them become one `Problem`.
Messages carry the operation, status and problem fields only: never headers,
tokens or credentials.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any

_MAX_TEXT = 500  # keep plain-text and HTML error bodies from flooding logs


@dataclass(frozen=True)
class Problem:
    type: str | None = None  # fragment only, e.g. "charge-due-too-soon"
    title: str | None = None
    detail: str | None = None
    context_id: str | None = None
    status: int | None = None
    extra_details: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class VippsError(Exception):
    """Base of every error the client raises."""

    def __init__(
        self, message: str, *, operation: str, status: int | None = None, problem: Problem | None = None
    ) -> None:
        super().__init__(message)
        self.operation = operation
        self.status = status
        self.problem = problem

    @property
    def problem_type(self) -> str | None:
        return self.problem.type if self.problem else None

    @property
    def context_id(self) -> str | None:
        return self.problem.context_id if self.problem else None

    def _kwargs(self) -> dict[str, Any]:
        return {"operation": self.operation, "status": self.status, "problem": self.problem}

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword-only constructors do not survive pickling by default.
        return (_rebuild, (type(self), str(self), self._kwargs()))


def _rebuild(cls: type[VippsError], message: str, kwargs: dict[str, Any]) -> VippsError:
    return cls(message, **kwargs)


class TransientError(VippsError):
    """Worth retrying later with the same Idempotency-Key."""

    def __init__(
        self,
        message: str,
        *,
        operation: str,
        status: int | None = None,
        problem: Problem | None = None,
        retry_after: float | None = None,
        maybe_applied: bool = False,
    ) -> None:
        super().__init__(message, operation=operation, status=status, problem=problem)
        self.retry_after = retry_after
        # True when the request may have reached Vipps (read timeout, dropped response, 5xx).
        self.maybe_applied = maybe_applied

    def _kwargs(self) -> dict[str, Any]:
        return {**super()._kwargs(), "retry_after": self.retry_after, "maybe_applied": self.maybe_applied}


class RateLimitedError(TransientError):
    """Vipps answered 429."""


class BudgetExhaustedError(RateLimitedError):
    """Our own shared rate budget refused the call; nothing was sent."""


class UnexpectedResponseError(TransientError):
    """A success status whose body could not be read (a proxy page, a truncated body)."""


class AuthError(VippsError):
    """Credentials refused, or 401 still after one token refresh."""


class PermanentError(VippsError):
    """A 4xx other than 401/429: the same Idempotency-Key will get the same answer forever."""


class IdempotencyConflictError(PermanentError):
    """409 idempotency-conflict: the key was used before for a different request."""


class ConflictError(PermanentError):
    """409 for any other reason."""


class RequestValidationError(PermanentError):
    """Rejected before sending (bad idempotency key, bad id, invalid body)."""


class ForceAcceptNotAllowed(PermanentError):
    """Force accept exists only in the test environment and the simulator."""


# --- parsing ------------------------------------------------------------------------------------


def problem_fragment(type_uri: Any) -> str | None:
    """`https://.../recurring-api-problems#charge-due-too-soon` -> `charge-due-too-soon`."""
    if not isinstance(type_uri, str):
        return None
    value = type_uri.strip()
    if not value or value == "about:blank":
        return None
    if "#" in value:
        value = value.rsplit("#", 1)[1]
    elif "/" in value:
        value = value.rstrip("/").rsplit("/", 1)[-1]
    return value or None


def _int_or_none(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def _str_or_none(value: Any) -> str | None:
    if value is None:
        return None
    text = value if isinstance(value, str) else json.dumps(value)
    return text[:_MAX_TEXT]


def _extra_details(value: Any) -> list[dict[str, Any]]:
    if value is None:
        return []
    items = value if isinstance(value, list) else [value]
    return [item if isinstance(item, dict) else {"text": str(item)[:_MAX_TEXT]} for item in items]


def parse_problem(status: int | None, body: bytes) -> Problem:
    """Read any error body Vipps (or its gateway) sends, leniently."""
    text = body.decode("utf-8", errors="replace").strip()
    data: Any = None
    if text[:1] in ("{", "["):
        try:
            data = json.loads(text)
        except ValueError:
            data = None

    if isinstance(data, dict):
        info = data.get("responseInfo")
        if isinstance(info, dict):  # Azure API Management shape
            result = data.get("result")
            detail = result.get("message") if isinstance(result, dict) else result
            return Problem(
                title=_str_or_none(info.get("responseMessage")),
                detail=_str_or_none(detail),
                status=_int_or_none(info.get("responseCode")) or status,
            )
        return Problem(  # RFC 7807, and gateway/OAuth-style dicts
            type=problem_fragment(data.get("type")),
            title=_str_or_none(data.get("title") or data.get("error")),
            detail=_str_or_none(data.get("detail") or data.get("message") or data.get("error_description")),
            context_id=_str_or_none(data.get("contextId") or data.get("traceId")),
            status=_int_or_none(data.get("status")) or _int_or_none(data.get("statusCode")) or status,
            extra_details=_extra_details(data.get("extraDetails")),
        )
    if isinstance(data, list) and data and all(isinstance(i, dict) for i in data):  # v2 error array
        first = data[0]
        return Problem(
            type=_str_or_none(first.get("code")),
            detail=_str_or_none(first.get("message")),
            context_id=_str_or_none(first.get("contextId")),
            status=status,
            extra_details=list(data),
        )
    return Problem(detail=text[:_MAX_TEXT] or None, status=status)


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Retry-After is either delay-seconds or an HTTP date; answer seconds from now (>= 0)."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:  # HTTP dates are GMT by definition
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    if math.isnan(seconds) or math.isinf(seconds):
        return None
    return max(0.0, seconds)


def describe(operation: str, status: int | None, problem: Problem | None) -> str:
    parts = [operation]
    if status is not None:
        parts.append(f"HTTP {status}")
    if problem is not None:
        for value in (problem.type, problem.title, problem.detail):
            if value:
                parts.append(value)
        if problem.context_id:
            parts.append(f"contextId={problem.context_id}")
    return ": ".join(parts)


def error_for_response(operation: str, status: int, body: bytes, retry_after_header: str | None) -> VippsError:
    """Map a non-success response to the taxonomy (the one retry after a 401 is `auth.BearerAuth`'s job)."""
    problem = parse_problem(status, body)
    message = describe(operation, status, problem)
    retry_after = parse_retry_after(retry_after_header)
    if status == 429:
        return RateLimitedError(message, operation=operation, status=status, problem=problem, retry_after=retry_after)
    if status >= 500:
        return TransientError(
            message,
            operation=operation,
            status=status,
            problem=problem,
            retry_after=retry_after,
            maybe_applied=True,
        )
    if status == 401:
        return AuthError(message, operation=operation, status=status, problem=problem)
    if status == 409:
        cls: type[PermanentError] = (
            IdempotencyConflictError if problem.type == "idempotency-conflict" else ConflictError
        )
        return cls(message, operation=operation, status=status, problem=problem)
    return PermanentError(message, operation=operation, status=status, problem=problem)
