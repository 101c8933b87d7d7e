"""The way every Vipps API call (Recurring, Management and Webhooks) is served: faults, auth, the MSN rules,
headers, rate limit, idempotency, then the operation; counted and put in the request record."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from worker.simulator import idempotency, validation
from worker.simulator.faults import NO_FAULT, DropConnection, FaultPlan
from worker.simulator.idempotency import Stored, fingerprint
from worker.simulator.merchants import Caller, KeySet, Merchant
from worker.simulator.problems import Problem
from worker.simulator.ratelimit import CREATE_CHARGE_PER_MSN, LIMITS
from worker.simulator.state import Simulator

SYSTEM_HEADERS = (
    "vipps-system-name",
    "vipps-system-version",
    "vipps-system-plugin-name",
    "vipps-system-plugin-version",
)


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(body, separators=(",", ":")), status, headers=headers, media_type="application/json")


@dataclass
class Call:
    """One Vipps request as the operation functions see it."""

    sim: Simulator
    request: Request
    params: dict[str, str]
    body: bytes
    key: str
    # The key set of the token.
    credentials: KeySet
    # The sales unit a Recurring call acts for; None on the Management API, and on the Webhooks API for a
    # partner acting for every MSN it manages.
    merchant: Merchant | None = None

    def json(self) -> Any:
        if not self.body:
            raise Problem(400, "invalid-json", "A JSON request body is required")
        try:
            return json.loads(self.body)
        except ValueError:
            raise Problem(400, "invalid-json", "The request body is not valid JSON") from None

    def sales_unit(self) -> Merchant:
        if self.merchant is None:
            raise RuntimeError("not a Recurring call")
        return self.merchant


Handler = Callable[[Call], Response]
# A refusal as the API answers it: a Problem and the request path.
Render = Callable[[Problem, str], Response]


@dataclass(frozen=True)
class Operation:
    operation_id: str
    method: str
    path: str
    run: Handler
    mutating: bool = False
    # Which path params (and/or the idempotency key) make up the rate-limit key (within the merchant's).
    rate_key: tuple[str, ...] = ()
    # A Recurring call acts for one sales unit (the MSN rules apply); a Management call for none; a Webhooks
    # call for one, or for every MSN of a partner that sends none.
    api: Literal["recurring", "management", "webhooks"] = "recurring"
    render: Render = Problem.response
    # Counted once per request in the per-MSN charge creation bucket (``ratelimit.CREATE_CHARGE_PER_MSN``).
    creates_charges: bool = False

    @property
    def has_body(self) -> bool:
        return self.method in ("POST", "PATCH", "PUT")


def _check_headers(call_headers: Any, has_body: bool) -> None:
    for name in SYSTEM_HEADERS:
        value = call_headers.get(name)
        if value is not None and len(value) > 30:
            raise validation.validation_error([{"field": name, "text": "length must be at most 30"}])
    if has_body:
        content_type = call_headers.get("content-type")
        if content_type is None:
            raise Problem(400, "missing-request-header", "Missing request header Content-Type")
        if not content_type.lower().startswith("application/json"):
            raise Problem(415, "unsupported-media-type", f"Content-Type {content_type} is not supported")


def _admit(sim: Simulator, op: Operation, request: Request, body: bytes, now: float) -> Call:
    """Auth, the MSN rules, headers and the rate limit: the call, or the problem that refuses it."""
    headers = request.headers
    keys = sim.tokens.check(headers, now)
    merchant = None
    if op.api == "recurring":
        merchant = sim.merchants.recurring(sim.merchants.msn_of_call(keys, headers.get("merchant-serial-number")))
    elif op.api == "webhooks":
        merchant = sim.merchants.webhooks_sales_unit(keys, headers.get("merchant-serial-number"))
    _check_headers(headers, op.has_body)
    key = idempotency.idempotency_key(headers.get("idempotency-key")) if op.mutating else ""
    if sim.config.rate_limits_enabled:
        params = request.path_params
        parts = [key if part == "Idempotency-Key" else params[part] for part in op.rate_key]
        owner = merchant.msn if merchant else keys.label
        buckets = [(op.operation_id, "|".join([owner, *parts]), LIMITS.get(op.operation_id))]
        if op.creates_charges:
            buckets.append((CREATE_CHARGE_PER_MSN, owner, sim.config.charges_per_minute))
        sim.limiter.hit_all(buckets, now)
    return Call(sim, request, request.path_params, body, key, keys, merchant)


def _run(op: Operation, call: Call, now: float) -> Response:
    """The operation; a mutating one once per (merchant, key): the first response is replayed."""
    if not op.mutating:
        return op.run(call)
    sim, path, msn = call.sim, call.request.url.path, call.sales_unit().msn
    print_ = fingerprint(op.method, path, call.body)
    stored = sim.idempotency.lookup(msn, call.key, print_, now)
    if stored is not None:
        # Marked for the request record: the answer is the first one's, nothing was done again.
        call.request.state.replay = True
        return Response(stored.body, stored.status, media_type=stored.media_type)
    try:
        response = op.run(call)
    except Problem as problem:
        response = op.render(problem, path)
    if response.status_code < 500 and response.status_code != 429:
        stored = Stored(print_, response.status_code, bytes(response.body), response.media_type, now)
        sim.idempotency.store(msn, call.key, stored)
    return response


def process(sim: Simulator, op: Operation, request: Request, body: bytes) -> Response:
    """Synchronous: one atomic step."""
    now = sim.now()
    try:
        call = _admit(sim, op, request, body, now)
        if call.merchant is None:
            return _run(op, call, now)
        with sim.engine.serving(Caller(call.merchant.msn, call.credentials.label)):
            return _run(op, call, now)
    except Problem as problem:
        return op.render(problem, request.url.path)


def endpoint(op: Operation) -> Callable[[Request], Awaitable[Response]]:
    has_body = op.has_body

    async def handle(request: Request) -> Response:
        sim: Simulator = request.app.state.simulator
        plan = sim.faults.plan(op.operation_id)
        if plan is not NO_FAULT:
            if plan.drop_before and has_body:
                # Take the whole request first: closing with unread bytes makes the kernel send RST.
                await request.body()
            early = await injected(sim, plan, op.operation_id, request.url.path, op.render)
            if early is not None:
                sim.log_request(op.operation_id, request.headers, _status(early))
                return early
        body = await request.body() if has_body else b""
        response = process(sim, op, request, body)
        sim.count(op.operation_id, response.status_code)
        replay = bool(getattr(request.state, "replay", False))
        sim.log_request(op.operation_id, request.headers, response.status_code, replay)
        if plan.drop_after:
            return DropConnection()
        if plan.timeout_after:
            await _sleep(sim.faults.config.timeout_seconds)
        return response

    return handle


def _status(response: Response) -> int:
    # A dropped connection has no status; 0 stands for it in the counts.
    return 0 if isinstance(response, DropConnection) else response.status_code


async def injected(
    sim: Simulator, plan: FaultPlan, operation: str, path: str, render: Render = Problem.response
) -> Response | None:
    """The planned delay, then the fault that answers instead of the operation (counted), if any."""
    if plan.delay:
        await _sleep(plan.delay)
    early: Response | None = None
    if plan.drop_before:
        early = DropConnection()
    elif plan.status_5xx is not None:
        early = render(Problem(plan.status_5xx, "operation-failed", "Injected server error"), path)
    elif plan.status_429:
        retry = str(sim.faults.config.retry_after_seconds)
        early = render(Problem(429, "too-many-requests", "Injected rate limit", headers={"Retry-After": retry}), path)
    if early is not None:
        sim.count(operation, _status(early))
    return early


async def _sleep(seconds: float) -> None:
    await asyncio.sleep(seconds)


def routes(operations: tuple[Operation, ...]) -> list[Route]:
    return [Route(op.path, endpoint(op), methods=[op.method], name=op.operation_id) for op in operations]
