"""Sending one operation: its request, its rate budget slot, and the client's own short retries.

A short transient failure is retried here, always with the same body and Idempotency-Key;
anything else leaves as one exception of `worker.vipps.errors`. The retry after a 401 is
not ours: `auth.BearerAuth` does it within the same send, without a second budget slot.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping

import httpx
from pydantic_core import to_json

from worker.vipps import operations as ops
from worker.vipps.auth import OPERATION, BearerAuth
from worker.vipps.budgets import Budgets
from worker.vipps.errors import (
    BudgetExhaustedError,
    RateLimitedError,
    TransientError,
    UnexpectedResponseError,
    VippsError,
    error_for_response,
)
from worker.vipps.headers import check_idempotency_key, path_segment
from worker.vipps.models import ChargeBatchV3, RequestModel
from worker.vipps.observer import VippsObserver
from worker.vipps.responses import transport_error

SHORT_WAIT = 1.0  # retry by ourselves only when the wait is at most this long
SERVER_ERROR_PAUSE = 0.2  # pause before retrying a 5xx that named no Retry-After
MAX_PAGES = 1000  # guard against a Continuation-Token loop

Retry = tuple[str, float]  # why we retry (for the observer) and how long to pause first


class Sender:
    def __init__(
        self,
        http: httpx.Client,
        auth: BearerAuth,
        budgets: Budgets,
        observer: VippsObserver,
        *,
        system_headers: Mapping[str, str],
        msn: str,
        max_attempts: int,
        sleep: Callable[[float], None],
    ) -> None:
        self._http = http
        self._auth = auth
        self._budgets = budgets
        self._observer = observer
        self._system_headers = dict(system_headers)
        self._msn = msn
        self._attempts = max(1, max_attempts)
        self._sleep = sleep

    def budget_values(
        self, agreement_id: str | None, charge_id: str | None, idempotency_key: str | None
    ) -> dict[str, str]:
        """The values a budget rule's scope names, e.g. {"msn": ..., "agreementId": ...}."""
        values = {"msn": self._msn}
        if agreement_id is not None:
            values["agreementId"] = agreement_id
        if charge_id is not None:
            values["chargeId"] = charge_id
        if idempotency_key is not None:
            values["idempotencyKey"] = idempotency_key
        return values

    def send(
        self,
        op: ops.Operation,
        *,
        agreement_id: str | None = None,
        charge_id: str | None = None,
        body: RequestModel | ChargeBatchV3 | None = None,
        idempotency_key: str | None = None,
        params: Mapping[str, str] | None = None,
        continuation: str | None = None,
        path: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        request = self._request(op, agreement_id, charge_id, body, idempotency_key, params, continuation, path)
        values = self.budget_values(agreement_id, charge_id, idempotency_key if op.idempotent else None)
        attempt, maybe_applied = 0, False
        while True:
            attempt += 1
            self._take_budget(op, values, maybe_applied)
            outcome = self._attempt(op, request)
            if isinstance(outcome, httpx.Response):
                return outcome
            error, retry = outcome
            if isinstance(error, TransientError):  # once maybe applied, any later failure may be too
                error.maybe_applied = error.maybe_applied or maybe_applied
                maybe_applied = error.maybe_applied
            if retry is None or attempt >= self._attempts:
                raise error
            reason, pause = retry
            self._observer.retried(op.id, reason)
            if pause > 0:
                self._sleep(pause)

    def pages(
        self, op: ops.Operation, *, agreement_id: str | None = None, params: Mapping[str, str] | None = None,
        page_size: int | None = None,
    ) -> Iterator[httpx.Response]:
        """Every page of a list, following Continuation-Token until there is none (or it repeats). With
        ``page_size``, pages are also asked for by ``pageNumber``/``pageSize``: a full page without a token is
        followed by the next number, until a page comes back shorter (or empty, or the same page again, from
        a server that ignores pageNumber)."""
        seen: set[str] = set()
        continuation: str | None = None
        number, previous = 1, b""
        for _ in range(MAX_PAGES):
            query = dict(params or {})
            if page_size is not None:
                query |= {"pageNumber": str(number), "pageSize": str(page_size)}
            response = self.send(op, agreement_id=agreement_id, params=query, continuation=continuation)
            if number > 1 and continuation is None and response.content == previous:
                return
            yield response
            continuation = response.headers.get("Continuation-Token") or None
            if continuation is not None:
                if continuation in seen:
                    return
                seen.add(continuation)
                continue
            if page_size is None or _item_count(response) < page_size:
                return
            number, previous = number + 1, response.content

    def _request(
        self,
        op: ops.Operation,
        agreement_id: str | None,
        charge_id: str | None,
        body: RequestModel | ChargeBatchV3 | None,
        idempotency_key: str | None,
        params: Mapping[str, str] | None,
        continuation: str | None,
        path: Mapping[str, str] | None = None,
    ) -> httpx.Request:
        path_values = {name: path_segment(value, name, op.id) for name, value in (path or {}).items()}
        if agreement_id is not None:
            path_values["agreementId"] = path_segment(agreement_id, "agreement_id", op.id)
        if charge_id is not None:
            path_values["chargeId"] = path_segment(charge_id, "charge_id", op.id)
        headers = {**self._system_headers, "Content-Type": "application/json"}
        if op.idempotent:
            headers["Idempotency-Key"] = check_idempotency_key(idempotency_key, op.id)
        if continuation is not None:
            headers["Continuation-Token"] = continuation
        content = None if body is None else to_json(body.to_wire())
        return self._http.build_request(
            op.method, op.path.format(**path_values), params=params, content=content, headers=headers,
            extensions={OPERATION: op.id},
        )

    def _take_budget(self, op: ops.Operation, values: Mapping[str, str], maybe_applied: bool) -> None:
        wait = self._budgets.take(op, values)
        if wait > 0:
            self._observer.budget_exhausted(op.id, wait)
            raise BudgetExhaustedError(
                f"{op.id}: rate budget exhausted, not sent; retry in {wait:.3f}s ({self._budgets.describe(op)})",
                operation=op.id,
                retry_after=wait,
                maybe_applied=maybe_applied,
            )

    def _attempt(self, op: ops.Operation, request: httpx.Request) -> httpx.Response | tuple[VippsError, Retry | None]:
        """One send: the 2xx response, or the error and whether (and after what pause) to retry it."""
        started = time.perf_counter()
        try:
            response = self._http.send(request, auth=self._auth)
        except httpx.TransportError as exc:
            self._observer.request_finished(op.id, None, time.perf_counter() - started, None)
            error, retry_now = transport_error(op.id, exc, False)
            return error, (type(exc).__name__, 0.0) if retry_now else None
        elapsed = response.elapsed.total_seconds()  # this attempt's own, without a 401 before it
        status = response.status_code
        if 200 <= status < 300:
            self._observer.request_finished(op.id, status, elapsed, None)
            return response
        failure = error_for_response(op.id, status, response.content, response.headers.get("retry-after"))
        self._observer.request_finished(op.id, status, elapsed, failure.problem_type)
        if not isinstance(failure, TransientError):
            return failure, None
        if isinstance(failure, RateLimitedError):
            self._observer.rate_limited(op.id, failure.retry_after)
        pause = short_pause(failure)
        return failure, None if pause is None else ("rate_limited" if status == 429 else "server_error", pause)


def short_pause(error: TransientError) -> float | None:
    """Seconds to pause before retrying ourselves, or None to hand the error to the caller."""
    if isinstance(error, UnexpectedResponseError):
        return None
    if error.retry_after is None:
        return None if isinstance(error, RateLimitedError) else SERVER_ERROR_PAUSE
    return error.retry_after if error.retry_after <= SHORT_WAIT else None


def _item_count(response: httpx.Response) -> int:
    """How many items a list page holds (0 when it is no JSON array: parsing it reports that)."""
    try:
        items = response.json()
    except ValueError:
        return 0
    return len(items) if isinstance(items, list) else 0
