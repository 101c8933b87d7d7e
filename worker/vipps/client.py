"""A typed, thread-safe client for every Recurring v3 operation.

One instance per process: it owns the connection pool, shares the access token and the
rate budgets through the stores it is given (`worker.store.vipps_state` has the Redis
ones; by default they live in this process's memory), retries only short transient
failures itself (always with the caller's Idempotency-Key, see `sender`), and turns every
other failure into one exception of `worker.vipps.errors`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from types import TracebackType
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, TypeAdapter, ValidationError

from worker.vipps import models
from worker.vipps import operations as ops
from worker.vipps.auth import BearerAuth
from worker.vipps.budgets import (
    DEFAULT_RULES,
    BudgetBackend,
    BudgetRule,
    Budgets,
    BudgetSlot,
    MemoryBudgetBackend,
    batch_rules,
    extra_rules,
)
from worker.vipps.config import VippsEnvironment, VippsSettings
from worker.vipps.errors import BudgetExhaustedError, ForceAcceptNotAllowed, RequestValidationError, VippsError
from worker.vipps.headers import system_headers
from worker.vipps.models import Completion
from worker.vipps.observer import NullObserver, VippsObserver
from worker.vipps.responses import completion, parse, parse_list
from worker.vipps.sender import Sender
from worker.vipps.store import KeyValue, MemoryKeyValue
from worker.vipps.token import Token

log = logging.getLogger("worker.vipps")

M = TypeVar("M", bound=BaseModel)

_AGREEMENTS = TypeAdapter(list[models.AgreementResponseV3])

# ListAgreements pages: Vipps's default size (also what a call without paging gets since 2025-02) and its limit.
LIST_AGREEMENTS_PAGE_SIZE = 500
LIST_AGREEMENTS_MAX_PAGE_SIZE = 2000
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
        for_people: bool = False,
    ) -> None:
        self._settings = settings
        observer = observer or NullObserver()
        headers = system_headers(settings)
        self._http = _http_client(settings, transport)
        self._auth = BearerAuth(
            self._http,
            settings,
            MemoryKeyValue() if token_store is None else token_store,
            key_prefix=key_prefix,
            observer=observer,
            system_headers=headers,
        )
        self._budgets = Budgets(
            MemoryBudgetBackend() if budget_backend is None else budget_backend,
            key_prefix,
            {**(DEFAULT_RULES if budget_rules is None else budget_rules), **batch_rules(settings.charges_per_minute)},
            for_people=for_people,  # a support tool's client: it may use the share of reads workers leave
            extra=extra_rules(settings.charges_per_minute),
        )
        self._sender = Sender(
            self._http,
            self._auth,
            self._budgets,
            observer,
            system_headers=headers,
            msn=settings.msn or "-",
            max_attempts=settings.max_attempts,
            sleep=sleep,  # the short pauses before a retry; tests pass a no-op
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
            response = self._sender.send(op, body=body, idempotency_key=idempotency_key)
            return parse(op.id, response, models.DraftAgreementResponseV3)

    def fetch_agreement(self, agreement_id: str) -> models.AgreementResponseV3:
        return self._fetch(ops.FETCH_AGREEMENT, models.AgreementResponseV3, agreement_id=agreement_id)

    def list_agreements(
        self, *, status: models.AgreementStatus | None = None, created_after: int | None = None,
        page_size: int = LIST_AGREEMENTS_PAGE_SIZE,
    ) -> list[models.AgreementResponseV3]:
        """Every agreement in ``status`` (Vipps's default: ACTIVE), ``page_size`` (1..2000) a request."""
        op = ops.LIST_AGREEMENTS
        with self._logged(op.id):
            if isinstance(page_size, bool) or not isinstance(page_size, int) or \
                    not 1 <= page_size <= LIST_AGREEMENTS_MAX_PAGE_SIZE:
                raise RequestValidationError(
                    f"{op.id}: page_size must be an integer 1..{LIST_AGREEMENTS_MAX_PAGE_SIZE}", operation=op.id
                )
            params: dict[str, str] = {}
            if status is not None:
                params["status"] = self._enum_value(op.id, "status", status, models.AgreementStatus)
            if created_after is not None:
                if isinstance(created_after, bool) or not isinstance(created_after, int) or created_after < 0:
                    raise RequestValidationError(
                        f"{op.id}: created_after must be epoch milliseconds >= 0", operation=op.id
                    )
                params["createdAfter"] = str(created_after)
            return self._all_pages(op, _AGREEMENTS, params, page_size=page_size)

    def update_agreement(self, agreement_id: str, body: models.PatchAgreementV3, *, idempotency_key: str) -> Completion:
        op = ops.UPDATE_AGREEMENT
        with self._logged(op.id):
            self._check_body(op.id, body, models.PatchAgreementV3)
            response = self._sender.send(op, agreement_id=agreement_id, body=body, idempotency_key=idempotency_key)
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
            response = self._sender.send(op, agreement_id=agreement_id, body=body, idempotency_key=idempotency_key)
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
            return self._all_pages(op, _CHARGES, params, agreement_id=agreement_id)

    def create_charge(
        self, agreement_id: str, body: models.CreateChargeV3, *, idempotency_key: str
    ) -> models.ChargeReference:
        op = ops.CREATE_CHARGE
        with self._logged(op.id):
            self._check_body(op.id, body, models.CreateChargeV3)
            response = self._sender.send(op, agreement_id=agreement_id, body=body, idempotency_key=idempotency_key)
            return parse(op.id, response, models.ChargeReference)

    def create_charges(
        self, body: models.ChargeBatchV3, *, idempotency_key: str
    ) -> models.AsyncChargeResponseV3:
        """Up to 2,000 RECURRING charges in one request; Vipps creates the ones it accepts later."""
        op = ops.CREATE_CHARGES_ASYNC
        with self._logged(op.id):
            self._check_body(op.id, body, models.ChargeBatchV3)
            if not 1 <= len(body.root) <= models.MAX_BATCH:
                raise RequestValidationError(
                    f"{op.id}: a batch holds 1..{models.MAX_BATCH} charges, not {len(body.root)}", operation=op.id
                )
            response = self._sender.send(op, body=body, idempotency_key=idempotency_key)
            return parse(op.id, response, models.AsyncChargeResponseV3)

    def fetch_charge(self, agreement_id: str, charge_id: str) -> models.ChargeResponseV3:
        return self._fetch(ops.FETCH_CHARGE, models.ChargeResponseV3, agreement_id=agreement_id, charge_id=charge_id)

    def fetch_charge_by_id(self, charge_id: str) -> models.ChargeResponseV3:
        return self._fetch(ops.FETCH_CHARGE_BY_ID, models.ChargeResponseV3, charge_id=charge_id)

    def cancel_charge(self, agreement_id: str, charge_id: str, *, idempotency_key: str) -> Completion:
        op = ops.CANCEL_CHARGE
        with self._logged(op.id):
            response = self._sender.send(
                op, agreement_id=agreement_id, charge_id=charge_id, idempotency_key=idempotency_key
            )
            return completion(response)

    def capture_charge(
        self, agreement_id: str, charge_id: str, body: models.ModifyChargeV3, *, idempotency_key: str
    ) -> Completion:
        return self._modify_charge(ops.CAPTURE_CHARGE, agreement_id, charge_id, body, idempotency_key)

    def refund_charge(
        self, agreement_id: str, charge_id: str, body: models.ModifyChargeV3, *, idempotency_key: str
    ) -> Completion:
        return self._modify_charge(ops.REFUND_CHARGE, agreement_id, charge_id, body, idempotency_key)

    def _modify_charge(
        self, op: ops.Operation, agreement_id: str, charge_id: str, body: models.ModifyChargeV3, idempotency_key: str
    ) -> Completion:
        """Capture and refund: the same body (amount, description) and the same 202/204 answer."""
        with self._logged(op.id):
            self._check_body(op.id, body, models.ModifyChargeV3)
            response = self._sender.send(
                op, agreement_id=agreement_id, charge_id=charge_id, body=body, idempotency_key=idempotency_key
            )
            return completion(response)

    # --- management ---------------------------------------------------------------------------

    def sales_unit(self, msn: str) -> models.SalesUnit:
        """The sales unit ``msn`` as the Management API describes it: its name, whether it may make recurring
        payments, its capture type. Vipps serves this API in production only."""
        op = ops.FETCH_SALES_UNIT
        with self._logged(op.id):
            return parse(op.id, self._sender.send(op, path={"msn": msn}), models.SalesUnit)

    # --- rate budgets -------------------------------------------------------------------------

    def budget_slot(self, operation: ops.Operation | str, *, agreement_id: str | None = None,
                    charge_id: str | None = None, idempotency_key: str | None = None) -> BudgetSlot | None:
        """The budget slot a call of ``operation`` (or its operationId) with these values takes (None: no
        published limit)."""
        op = operation if isinstance(operation, ops.Operation) else ops.by_id(operation)
        return self._budgets.slot(op, self._sender.budget_values(agreement_id, charge_id, idempotency_key))

    def prepaid(self, slot: BudgetSlot | None) -> AbstractContextManager[None]:
        """Calls in this block whose budget slot is ``slot`` send once without taking it (taken already)."""
        return self._budgets.prepaid(slot)

    # --- token --------------------------------------------------------------------------------

    def current_token(self) -> Token:
        """The token in use (refreshing it if due); for diagnostics and tests, never log `.value`."""
        return self._auth.token()

    # --- helpers ------------------------------------------------------------------------------

    # --- webhooks (registration; the receiver verifies what Vipps then sends) --------------------

    def register_webhook(self, url: str, events: list[str]) -> models.RegisteredWebhook:
        """Register ``url`` for ``events``; the answer holds the registration's secret, which Vipps shows once."""
        op = ops.REGISTER_WEBHOOK
        with self._logged(op.id):
            if not url.startswith("https://") and self._settings.env is not VippsEnvironment.SIMULATOR:
                raise RequestValidationError(f"{op.id}: Vipps delivers to HTTPS URLs only", operation=op.id)
            try:
                body = models.RegisterWebhook(url=url, events=events)
            except ValidationError as exc:
                from schemas.problems import one_line

                raise RequestValidationError(f"{op.id}: {one_line(exc)}", operation=op.id) from None
            return parse(op.id, self._sender.send(op, body=body), models.RegisteredWebhook)

    def list_webhooks(self) -> list[models.Webhook]:
        return self._fetch(ops.LIST_WEBHOOKS, models.Webhooks).webhooks

    def delete_webhook(self, webhook_id: str) -> None:
        op = ops.DELETE_WEBHOOK
        with self._logged(op.id):
            self._sender.send(op, path={"webhookId": webhook_id})

    def _fetch(
        self, op: ops.Operation, model: type[M], *, agreement_id: str | None = None, charge_id: str | None = None
    ) -> M:
        """A GET of one resource."""
        with self._logged(op.id):
            return parse(op.id, self._sender.send(op, agreement_id=agreement_id, charge_id=charge_id), model)

    def _all_pages(
        self, op: ops.Operation, adapter: TypeAdapter[list[M]], params: Mapping[str, str], *,
        agreement_id: str | None = None, page_size: int | None = None,
    ) -> list[M]:
        """The items of every page of a list."""
        return [
            item
            for response in self._sender.pages(op, agreement_id=agreement_id, params=params, page_size=page_size)
            for item in parse_list(op.id, response, adapter)
        ]

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



def _http_client(settings: VippsSettings, transport: httpx.BaseTransport | None) -> httpx.Client:
    return httpx.Client(
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
