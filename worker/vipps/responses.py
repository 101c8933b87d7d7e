"""Reading what Vipps answered: bodies into models, and failures below HTTP into the error taxonomy."""

from __future__ import annotations

from typing import TypeVar

import httpx
from pydantic import BaseModel, TypeAdapter, ValidationError

from worker.vipps.errors import TransientError, UnexpectedResponseError, VippsError
from worker.vipps.models import Completion

M = TypeVar("M", bound=BaseModel)


def parse(operation: str, response: httpx.Response, model: type[M]) -> M:
    try:
        return model.model_validate_json(response.content)
    except ValidationError as exc:
        raise unreadable(operation, response, model.__name__, exc) from None


def parse_list(operation: str, response: httpx.Response, adapter: TypeAdapter[list[M]]) -> list[M]:
    try:
        return adapter.validate_json(response.content)
    except ValidationError as exc:
        raise unreadable(operation, response, "a list", exc) from None


def unreadable(operation: str, response: httpx.Response, what: str, exc: ValidationError) -> VippsError:
    # Field locations only: pydantic's own message would echo the body.
    where = ", ".join(".".join(str(p) for p in e["loc"]) or "body" for e in exc.errors()[:3])
    return UnexpectedResponseError(
        f"{operation}: HTTP {response.status_code} body is not {what} ({exc.error_count()} errors at {where})",
        operation=operation,
        status=response.status_code,
        maybe_applied=True,
    )


def completion(response: httpx.Response) -> Completion:
    return Completion.ACCEPTED if response.status_code == 202 else Completion.DONE


def transport_error(operation: str, exc: httpx.TransportError, maybe_applied: bool) -> tuple[TransientError, bool]:
    """(error, retry at once?) for a failure below HTTP."""
    name = type(exc).__name__
    if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
        applied, retry = False, True  # nothing reached Vipps
    elif isinstance(exc, httpx.PoolTimeout):
        applied, retry = False, False  # our own pool is saturated; retrying now only adds load
    elif isinstance(exc, httpx.RemoteProtocolError | httpx.ReadError):
        applied, retry = True, True  # a dropped connection; the same key makes the retry safe
    elif isinstance(exc, httpx.TimeoutException | httpx.WriteError):
        applied, retry = True, False  # read/write timeout: already waited long; let the caller decide
    else:
        applied, retry = False, False
    error = TransientError(
        f"{operation}: {name}: {str(exc)[:200]}", operation=operation, maybe_applied=applied or maybe_applied
    )
    return error, retry
