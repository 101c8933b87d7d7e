"""A typed, thread-safe client for every Recurring v3 operation.

One instance per process: it owns the connection pool, shares the access token and the
rate budgets through the stores it is given (`worker.store.vipps_state` has the Redis
ones; by default they live in this process's memory), retries only short
transient failures itself (always with the caller's Idempotency-Key), and turns every
other failure into one exception of `worker.vipps.errors`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from types import TracebackType
from typing import Any

import httpx
from pydantic import BaseModel, TypeAdapter, ValidationError
from pydantic_core import to_json

from worker.vipps import models
from worker.vipps import operations as ops
from worker.vipps.auth import OPERATION, BearerAuth
from worker.vipps.budgets import (
    DEFAULT_RULES,
    BudgetBackend,
    BudgetRule,
    Budgets,
    BudgetSlot,
    MemoryBudgetBackend,
)
from worker.vipps.config import VippsSettings
from worker.vipps.errors import (
    BudgetExhaustedError,
    ForceAcceptNotAllowed,
    RateLimitedError,
    RequestValidationError,
    TransientError,
    UnexpectedResponseError,
    VippsError,
    error_for_response,
)
from worker.vipps.headers import check_idempotency_key, path_segment, system_headers
from worker.vipps.models import Completion
from worker.vipps.observer import NullObserver, VippsObserver
from worker.vipps.responses import completion, parse, parse_list, transport_error
from worker.vipps.store import KeyValue, MemoryKeyValue
from worker.vipps.token import Token

log = logging.getLogger("worker.vipps")


SHORT_WAIT = 1.0  # retry by ourselves only when the wait is at most this long
SERVER_ERROR_PAUSE = 0.2  # pause before retrying a 5xx that named no Retry-After
MAX_PAGES = 1000  # guard against a Continuation-Token loop

_AGREEMENTS = TypeAdapter(list[models.AgreementResponseV3])
_CHARGES = TypeAdapter(list[models.ChargeResponseV3])


class VippsClient:
    def __init__(
        self,
        settings: VippsSettings,
        *,
        token_store: KeyValue | None = None,
        budget_backend: BudgetBackend | None = None,
        transport: httpx.BaseTransport | None = None,
        observer: VippsObserver | None = None,
        key_prefix: str = "vipps-billing",
        budget_rules: Mapping[ops.Operation, BudgetRule] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._settings = settings
        self._observer: VippsObserver = observer or NullObserver()
        self._system_headers = system_headers(settings)
        self._msn = settings.msn or "-"
        self._sleep = sleep  # the short pauses before a retry; tests pass a no-op
        self._http = httpx.Client(
            base_url=settings.url,
            transport=transport,
            timeout=httpx.Timeout(
                connect=settings.connect_timeout,
                read=settings.read_timeout,
                write=settings.write_timeout,
                pool=settings.pool_timeout,
            ),
            limits=httpx.Limits(
                max_connections=settings.max_connections, max_keepalive_connections=settings.max_connections
            ),
            follow_redirects=False,
            headers={"User-Agent": f"{settings.system_name}/{settings.system_version}"},
        )
        self._budgets = Budgets(
            MemoryBudgetBackend() if budget_backend is None else budget_backend,
            key_prefix,
            DEFAULT_RULES if budget_rules is None else budget_rules,
        )
        self._auth = BearerAuth(
            self._http,
            settings,
            MemoryKeyValue() if token_store is None else token_store,
            key_prefix=key_prefix,
            observer=self._observer,
            system_headers=self._system_headers,
        )

    def __repr__(self) -> str:
        return f"VippsClient(base_url={self._settings.url!r}, env={self._settings.env.value!r})"

    # --- lifecycle ----------------------------------------------------------------------------

    @property
    def settings(self) -> VippsSettings:
        return self._settings

    @property
    def credentials_refused(self) -> bool:
        """Vipps refused the credentials at the last token fetch, or with a fresh token on the last call."""
        return self._auth.credentials_refused

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> VippsClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # --- agreements ---------------------------------------------------------------------------

    def draft_agreement(
        self, body: models.DraftAgreementV3, *, idempotency_key: str
    ) -> models.DraftAgreementResponseV3:
        op = ops.DRAFT_AGREEMENT
        with self._logged(op.id):
            self._check_body(op.id, body, models.DraftAgreementV3)
            response = self._send(op, body=body, idempotency_key=idempotency_key)
            return parse(op.id, response, models.DraftAgreementResponseV3)

    def fetch_agreement(self, agreement_id: str) -> models.AgreementResponseV3:
        op = ops.FETCH_AGREEMENT
        with self._logged(op.id):
            response = self._send(op, agreement_id=agreement_id)
            return parse(op.id, response, models.AgreementResponseV3)

    def list_agreements(
        self, *, status: models.AgreementStatus | None = None, created_after: int | None = None
    ) -> list[models.AgreementResponseV3]:
        op = ops.LIST_AGREEMENTS
        with self._logged(op.id):
            params: dict[str, str] = {}
            if status is not None:
                params["status"] = self._enum_value(op.id, "status", status, models.AgreementStatus)
            if created_after is not None:
                if isinstance(created_after, bool) or not isinstance(created_after, int) or created_after < 0:
                    raise RequestValidationError(
                        f"{op.id}: created_after must be epoch milliseconds >= 0", operation=op.id
                    )
                params["createdAfter"] = str(created_after)
            return [
                item
                for response in self._pages(op, params=params)
                for item in parse_list(op.id, response, _AGREEMENTS)
            ]

    def update_agreement(self, agreement_id: str, body: models.PatchAgreementV3, *, idempotency_key: str) -> Completion:
        op = ops.UPDATE_AGREEMENT
        with self._logged(op.id):
            self._check_body(op.id, body, models.PatchAgreementV3)
            response = self._send(op, agreement_id=agreement_id, body=body, idempotency_key=idempotency_key)
            return completion(response)

    def stop_agreement(self, agreement_id: str, *, idempotency_key: str) -> Completion:
        return self.update_agreement(agreement_id, models.PatchAgreementV3.stop(), idempotency_key=idempotency_key)

    def force_accept_agreement(self, agreement_id: str, phone_number: str, *, idempotency_key: str) -> Completion:
        op = ops.FORCE_ACCEPT
        with self._logged(op.id):
            if not self._settings.allows_force_accept:
                raise ForceAcceptNotAllowed(
                    f"{op.id}: force accept is refused in the {self._settings.env.value} environment",
                    operation=op.id,
                )
            try:
                body = models.ForceAcceptAgreementV3(phoneNumber=phone_number)
            except ValidationError:
                raise RequestValidationError(
                    f"{op.id}: phone_number must be 1..15 characters", operation=op.id
                ) from None
            response = self._send(op, agreement_id=agreement_id, body=body, idempotency_key=idempotency_key)
            return completion(response)

    # --- charges ------------------------------------------------------------------------------

    def list_charges(
        self, agreement_id: str, *, status: models.ChargeStatus | None = None
    ) -> list[models.ChargeResponseV3]:
        op = ops.LIST_CHARGES
        with self._logged(op.id):
            params: dict[str, str] = {}
            if status is not None:
                params["status"] = self._enum_value(op.id, "status", status, models.ChargeStatus)
            return [
                item
                for response in self._pages(op, agreement_id=agreement_id, params=params)
                for item in parse_list(op.id, response, _CHARGES)
            ]

    def create_charge(
        self, agreement_id: str, body: models.CreateChargeV3, *, idempotency_key: str
    ) -> models.ChargeReference:
        op = ops.CREATE_CHARGE
        with self._logged(op.id):
            self._check_body(op.id, body, models.CreateChargeV3)
            response = self._send(op, agreement_id=agreement_id, body=body, idempotency_key=idempotency_key)
            return parse(op.id, response, models.ChargeReference)

    def fetch_charge(self, agreement_id: str, charge_id: str) -> models.ChargeResponseV3:
        op = ops.FETCH_CHARGE
        with self._logged(op.id):
            response = self._send(op, agreement_id=agreement_id, charge_id=charge_id)
            return parse(op.id, response, models.ChargeResponseV3)

    def fetch_charge_by_id(self, charge_id: str) -> models.ChargeResponseV3:
        op = ops.FETCH_CHARGE_BY_ID
        with self._logged(op.id):
            response = self._send(op, charge_id=charge_id)
            return parse(op.id, response, models.ChargeResponseV3)

    def cancel_charge(self, agreement_id: str, charge_id: str, *, idempotency_key: str) -> Completion:
        op = ops.CANCEL_CHARGE
        with self._logged(op.id):
            response = self._send(op, agreement_id=agreement_id, charge_id=charge_id, idempotency_key=idempotency_key)
            return completion(response)

    def capture_charge(
        self, agreement_id: str, charge_id: str, body: models.ModifyChargeV3, *, idempotency_key: str
    ) -> Completion:
        op = ops.CAPTURE_CHARGE
        with self._logged(op.id):
            self._check_body(op.id, body, models.ModifyChargeV3)
            response = self._send(
                op, agreement_id=agreement_id, charge_id=charge_id, body=body, idempotency_key=idempotency_key
            )
            return completion(response)

    def refund_charge(
        self, agreement_id: str, charge_id: str, body: models.ModifyChargeV3, *, idempotency_key: str
    ) -> Completion:
        op = ops.REFUND_CHARGE
        with self._logged(op.id):
            self._check_body(op.id, body, models.ModifyChargeV3)
            response = self._send(
                op, agreement_id=agreement_id, charge_id=charge_id, body=body, idempotency_key=idempotency_key
            )
            return completion(response)

    # --- rate budgets -------------------------------------------------------------------------

    def budget_slot(self, operation: ops.Operation | str, *, agreement_id: str | None = None,
                    charge_id: str | None = None, idempotency_key: str | None = None) -> BudgetSlot | None:
        """The budget slot a call of ``operation`` (or its operationId) with these values takes (None: no
        published limit)."""
        op = operation if isinstance(operation, ops.Operation) else ops.by_id(operation)
        return self._budgets.slot(op, self._budget_values(agreement_id, charge_id, idempotency_key))

    def prepaid(self, slot: BudgetSlot | None) -> AbstractContextManager[None]:
        """Calls in this block whose budget slot is ``slot`` send once without taking it (taken already)."""
        return self._budgets.prepaid(slot)

    def _budget_values(self, agreement_id: str | None, charge_id: str | None,
                       idempotency_key: str | None) -> dict[str, str]:
        values = {"msn": self._msn}
        if agreement_id is not None:
            values["agreementId"] = agreement_id
        if charge_id is not None:
            values["chargeId"] = charge_id
        if idempotency_key is not None:
            values["idempotencyKey"] = idempotency_key
        return values

    # --- the request loop ---------------------------------------------------------------------

    def _send(
        self,
        op: ops.Operation,
        *,
        agreement_id: str | None = None,
        charge_id: str | None = None,
        body: models.RequestModel | None = None,
        idempotency_key: str | None = None,
        params: Mapping[str, str] | None = None,
        continuation: str | None = None,
    ) -> httpx.Response:
        path_values: dict[str, str] = {}
        if agreement_id is not None:
            path_values["agreementId"] = path_segment(agreement_id, "agreement_id", op.id)
        if charge_id is not None:
            path_values["chargeId"] = path_segment(charge_id, "charge_id", op.id)
        headers = {**self._system_headers, "Content-Type": "application/json"}
        if op.idempotent:
            headers["Idempotency-Key"] = check_idempotency_key(idempotency_key, op.id)
        budget_values = self._budget_values(agreement_id, charge_id, idempotency_key if op.idempotent else None)
        if continuation is not None:
            headers["Continuation-Token"] = continuation
        path = op.path.format(**path_values)
        content = None
        if body is not None:
            content = to_json(body.to_wire())

        attempts = max(1, self._settings.max_attempts)
        attempt = 0
        maybe_applied = False
        while True:
            attempt += 1
            wait = self._budgets.take(op, budget_values)
            if wait > 0:
                self._observer.budget_exhausted(op.id, wait)
                raise BudgetExhaustedError(
                    f"{op.id}: rate budget exhausted, not sent; retry in {wait:.3f}s",
                    operation=op.id,
                    retry_after=wait,
                    maybe_applied=maybe_applied,
                )
            started = time.perf_counter()
            try:
                response = self._http.request(
                    op.method, path, params=params, content=content, headers=headers,
                    auth=self._auth, extensions={OPERATION: op.id},
                )
            except httpx.TransportError as exc:
                self._observer.request_finished(op.id, None, time.perf_counter() - started, None)
                failure, retry_now = transport_error(op.id, exc, maybe_applied)
                maybe_applied = failure.maybe_applied
                if retry_now and attempt < attempts:
                    self._observer.retried(op.id, type(exc).__name__)
                    continue
                raise failure from None
            elapsed = response.elapsed.total_seconds()  # this attempt's own, without a 401 before it
            status = response.status_code
            if 200 <= status < 300:
                self._observer.request_finished(op.id, status, elapsed, None)
                return response
            error = error_for_response(op.id, status, response.content, response.headers.get("retry-after"))
            self._observer.request_finished(op.id, status, elapsed, error.problem_type)
            if isinstance(error, TransientError):
                error.maybe_applied = error.maybe_applied or maybe_applied
                maybe_applied = error.maybe_applied
                if isinstance(error, RateLimitedError):
                    self._observer.rate_limited(op.id, error.retry_after)
                pause = _short_pause(error)
                if pause is not None and attempt < attempts:
                    self._observer.retried(op.id, "rate_limited" if status == 429 else "server_error")
                    if pause > 0:
                        self._sleep(pause)
                    continue
            raise error

    def _pages(
        self,
        op: ops.Operation,
        *,
        agreement_id: str | None = None,
        params: Mapping[str, str] | None = None,
    ) -> Iterator[httpx.Response]:
        seen: set[str] = set()
        continuation: str | None = None
        for _ in range(MAX_PAGES):
            response = self._send(op, agreement_id=agreement_id, params=params, continuation=continuation)
            yield response
            continuation = response.headers.get("Continuation-Token") or None
            if continuation is None or continuation in seen:
                return
            seen.add(continuation)

    # --- token --------------------------------------------------------------------------------

    def current_token(self) -> Token:
        """The token in use (refreshing it if due); for diagnostics and tests, never log `.value`."""
        return self._auth.token()

    # --- helpers ------------------------------------------------------------------------------

    @contextmanager
    def _logged(self, operation: str) -> Iterator[None]:
        """Log every error once, where it leaves the client, with no secrets."""
        try:
            yield
        except VippsError as exc:
            level = logging.INFO if isinstance(exc, BudgetExhaustedError) else logging.WARNING
            log.log(
                level,
                "Vipps %s failed: %s (%s)",
                operation,
                exc,
                type(exc).__name__,
                extra={
                    "operation": exc.operation,
                    "status": exc.status,
                    "problem_type": exc.problem_type,
                    "context_id": exc.context_id,
                    "error_class": type(exc).__name__,
                    "retry_after": getattr(exc, "retry_after", None),
                },
            )
            raise

    @staticmethod
    def _check_body(operation: str, body: object, expected: type[BaseModel]) -> None:
        if not isinstance(body, expected):
            raise RequestValidationError(
                f"{operation}: body must be a models.{expected.__name__}, got {type(body).__name__}",
                operation=operation,
            )

    @staticmethod
    def _enum_value(operation: str, name: str, value: object, enum: type[Any]) -> str:
        try:
            return str(enum(value).value)
        except ValueError:
            raise RequestValidationError(f"{operation}: unknown {name} {value!r}", operation=operation) from None


def _short_pause(error: TransientError) -> float | None:
    """Seconds to pause before retrying ourselves, or None to hand the error to the caller."""
    if isinstance(error, UnexpectedResponseError):
        return None
    if error.retry_after is None:
        return None if isinstance(error, RateLimitedError) else SERVER_ERROR_PAUSE
    return error.retry_after if error.retry_after <= SHORT_WAIT else None
