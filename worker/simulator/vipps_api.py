"""The Vipps-facing endpoints: the access token and every v3 Recurring operation, under the real paths."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from worker.simulator import agreements, charges, validation
from worker.simulator.clock import utc_date
from worker.simulator.faults import NO_FAULT, DropConnection, FaultPlan
from worker.simulator.idempotency import Stored, fingerprint
from worker.simulator.models import Charge
from worker.simulator.problems import Problem
from worker.simulator.state import Simulator

SYSTEM_HEADERS = (
    "vipps-system-name",
    "vipps-system-version",
    "vipps-system-plugin-name",
    "vipps-system-plugin-version",
)
AGREEMENT_STATUSES = ("PENDING", "ACTIVE", "STOPPED", "EXPIRED")
CHARGE_STATUSES = (
    "PENDING",
    "DUE",
    "RESERVED",
    "CHARGED",
    "PARTIALLY_CAPTURED",
    "FAILED",
    "CANCELLED",
    "PARTIALLY_REFUNDED",
    "REFUNDED",
    "PROCESSING",
)
CONTINUATION_TTL = 300.0


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(body, separators=(",", ":")), status, headers=headers, media_type="application/json")


NO_CONTENT = 204


@dataclass
class Call:
    """One Vipps request as the operation functions see it."""

    sim: Simulator
    request: Request
    params: dict[str, str]
    body: bytes
    key: str

    def json(self) -> Any:
        if not self.body:
            raise Problem(400, "invalid-json", "A JSON request body is required")
        try:
            return json.loads(self.body)
        except ValueError:
            raise Problem(400, "invalid-json", "The request body is not valid JSON") from None


Handler = Callable[[Call], Response]


@dataclass(frozen=True)
class Operation:
    operation_id: str
    method: str
    path: str
    run: Handler
    mutating: bool = False
    # Which path params (and/or the idempotency key) make up the rate-limit key.
    rate_key: tuple[str, ...] = ()


# --------------------------------------------------------------------------- operations


def list_agreements(call: Call) -> Response:
    sim, query = call.sim, call.request.query_params
    token = call.request.headers.get("continuation-token") or None
    if token is not None:
        page = sim.continuations.get(token)
        if page is None or page[3] < sim.engine.now:
            raise validation.validation_error([{"field": "Continuation-Token", "text": "unknown or expired token"}])
        status, created_after, offset = page[0], page[1], page[2]
    else:
        status = query.get("status") or "ACTIVE"
        if status not in AGREEMENT_STATUSES:
            raise validation.validation_error([{"field": "status", "text": "must be an AgreementStatus"}])
        created_after_raw = query.get("createdAfter")
        try:
            created_after = int(created_after_raw) if created_after_raw else 0
        except ValueError:
            raise validation.validation_error(
                [{"field": "createdAfter", "text": "must be an integer (epoch ms)"}]
            ) from None
        offset = 0
    items = [a for a in sim.engine.agreements.values() if a.status == status and a.created * 1000 > created_after]
    return _page(
        sim,
        [sim.engine.agreement_json(a) for a in items[offset : offset + sim.config.list_page_size]],
        len(items),
        offset,
        (status, created_after),
    )


def _page(sim: Simulator, page: list[Any], total: int, offset: int, query: tuple[str, int]) -> Response:
    headers: dict[str, str] = {}
    next_offset = offset + len(page)
    if next_offset < total:
        token = str(uuid.uuid4())
        sim.continuations[token] = (query[0], query[1], next_offset, sim.engine.now + CONTINUATION_TTL)
        headers["Continuation-Token"] = token
    return json_response(page, headers=headers)


def draft_agreement(call: Call) -> Response:
    sim = call.sim
    data = validation.draft_agreement(call.json(), sim.config.skip_landing_page_allowed)
    base = sim.config.public_url or f"{call.request.url.scheme}://{call.request.url.netloc}"
    agreement, charge_id = agreements.draft(sim.engine, data, call.key, base.rstrip("/"))
    return json_response(
        {
            "agreementId": agreement.id,
            "uuid": agreement.uuid,
            "vippsConfirmationUrl": agreement.confirmation_url,
            "chargeId": charge_id,
        },
        201,
    )


def fetch_agreement(call: Call) -> Response:
    engine = call.sim.engine
    return json_response(engine.agreement_json(engine.agreement(call.params["agreementId"])))


def update_agreement(call: Call) -> Response:
    changes = validation.patch_agreement(call.json())
    agreements.update(call.sim.engine, call.params["agreementId"], changes, call.key)
    return Response(status_code=NO_CONTENT)


def force_accept(call: Call) -> Response:
    phone = validation.force_accept(call.json())
    agreements.force_accept(call.sim.engine, call.params["agreementId"], phone, call.key)
    return Response(status_code=NO_CONTENT)


def list_charges(call: Call) -> Response:
    engine = call.sim.engine
    agreement = engine.agreement(call.params["agreementId"])
    status = call.request.query_params.get("status")
    if status is not None and status not in CHARGE_STATUSES:
        raise validation.validation_error([{"field": "status", "text": "must be a ChargeStatus"}])
    listed: list[Charge] = [engine.charges[c] for c in agreement.charge_ids]
    return json_response([engine.charge_json(c) for c in listed if status is None or c.status == status])


def create_charge(call: Call) -> Response:
    sim = call.sim
    agreement_id = call.params["agreementId"]
    sim.engine.agreement(agreement_id)
    data = validation.create_charge(
        call.json(), utc_date(sim.engine.now), sim.config.min_due_lead_days, sim.config.max_due_days
    )
    charge = charges.create(sim.engine, agreement_id, data, call.key)
    return json_response({"chargeId": charge.id}, 201)


def fetch_charge(call: Call) -> Response:
    engine = call.sim.engine
    engine.agreement(call.params["agreementId"])
    return json_response(engine.charge_json(engine.charge(call.params["agreementId"], call.params["chargeId"])))


def fetch_charge_by_id(call: Call) -> Response:
    engine = call.sim.engine
    return json_response(engine.charge_json(engine.charge(None, call.params["chargeId"])))


def cancel_charge(call: Call) -> Response:
    charges.cancel(call.sim.engine, call.params["agreementId"], call.params["chargeId"], call.key)
    return Response(status_code=NO_CONTENT)


def move_money(movement: charges.Movement) -> Handler:
    """Capture or refund: the same body, the same checks, another movement."""

    def run(call: Call) -> Response:
        amount, _ = validation.amount_request(call.json())
        charges.move(call.sim.engine, movement, call.params["agreementId"], call.params["chargeId"], amount, call.key)
        return Response(status_code=NO_CONTENT)

    return run


AGREEMENTS = "/recurring/v3/agreements"
CHARGE = AGREEMENTS + "/{agreementId}/charges/{chargeId}"
OPERATIONS = (
    Operation("ListAgreementsV3", "GET", AGREEMENTS, list_agreements, rate_key=()),
    Operation("DraftAgreementV3", "POST", AGREEMENTS, draft_agreement, mutating=True, rate_key=()),
    Operation("FetchAgreementV3", "GET", AGREEMENTS + "/{agreementId}", fetch_agreement, rate_key=("agreementId",)),
    Operation(
        "UpdateAgreementPatchV3",
        "PATCH",
        AGREEMENTS + "/{agreementId}",
        update_agreement,
        mutating=True,
        rate_key=("agreementId",),
    ),
    Operation("acceptUsingPATCHV3", "PATCH", AGREEMENTS + "/{agreementId}/accept", force_accept, mutating=True),
    Operation("ListChargesV3", "GET", AGREEMENTS + "/{agreementId}/charges", list_charges, rate_key=("agreementId",)),
    Operation(
        "CreateChargeV3",
        "POST",
        AGREEMENTS + "/{agreementId}/charges",
        create_charge,
        mutating=True,
        rate_key=("agreementId", "Idempotency-Key"),
    ),
    Operation("FetchChargeV3", "GET", CHARGE, fetch_charge, rate_key=("agreementId", "chargeId")),
    Operation("CancelChargeV3", "DELETE", CHARGE, cancel_charge, mutating=True, rate_key=("agreementId", "chargeId")),
    Operation(
        "FetchChargeByIdV3", "GET", "/recurring/v3/charges/{chargeId}", fetch_charge_by_id, rate_key=("chargeId",)
    ),
    Operation(
        "CaptureChargeV3",
        "POST",
        CHARGE + "/capture",
        move_money(charges.CAPTURE),
        mutating=True,
        rate_key=("agreementId", "chargeId"),
    ),
    Operation(
        "RefundChargeV3",
        "POST",
        CHARGE + "/refund",
        move_money(charges.REFUND),
        mutating=True,
        rate_key=("agreementId", "chargeId"),
    ),
)


# --------------------------------------------------------------------------- request pipeline


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


def process(sim: Simulator, op: Operation, request: Request, body: bytes) -> Response:
    """Auth, headers, rate limit, idempotency, then the operation. Synchronous: one atomic step."""
    now = sim.now()
    path = request.url.path
    headers = request.headers
    try:
        sim.tokens.check(headers, now)
        _check_headers(headers, op.mutating and op.method != "DELETE")
        key = validation.idempotency_key(headers.get("idempotency-key")) if op.mutating else ""
        if sim.config.rate_limits_enabled:
            params = request.path_params
            rate_key = "|".join(key if part == "Idempotency-Key" else params[part] for part in op.rate_key)
            sim.limiter.hit(op.operation_id, rate_key, now)
        call = Call(sim, request, request.path_params, body, key)
        if not op.mutating:
            return op.run(call)
        print_ = fingerprint(op.method, path, body)
        stored = sim.idempotency.lookup(key, print_, now)
        if stored is not None:
            return Response(stored.body, stored.status, media_type=stored.media_type)
        try:
            response = op.run(call)
        except Problem as problem:
            response = problem.response(path)
        if response.status_code < 500 and response.status_code != 429:
            sim.idempotency.store(
                key, Stored(print_, response.status_code, bytes(response.body), response.media_type, now)
            )
        return response
    except Problem as problem:
        return problem.response(path)


def endpoint(op: Operation) -> Callable[[Request], Awaitable[Response]]:
    has_body = op.mutating and op.method != "DELETE"

    async def handle(request: Request) -> Response:
        sim: Simulator = request.app.state.simulator
        plan = sim.faults.plan(op.operation_id)
        if plan is not NO_FAULT:
            if plan.drop_before and has_body:
                # Take the whole request first: closing with unread bytes makes the kernel send RST.
                await request.body()
            early = await _injected(sim, plan, op.operation_id, request.url.path)
            if early is not None:
                return early
        body = await request.body() if has_body else b""
        response = process(sim, op, request, body)
        sim.count(op.operation_id, response.status_code)
        if plan.drop_after:
            return DropConnection()
        if plan.timeout_after:
            await _sleep(sim.faults.config.timeout_seconds)
        return response

    return handle


async def _injected(sim: Simulator, plan: FaultPlan, operation: str, path: str) -> Response | None:
    """The planned delay, then the fault that answers instead of the operation (counted), if any."""
    if plan.delay:
        await _sleep(plan.delay)
    early: Response | None = None
    if plan.drop_before:
        early = DropConnection()
    elif plan.status_5xx is not None:
        early = Problem(plan.status_5xx, "operation-failed", "Injected server error").response(path)
    elif plan.status_429:
        retry = str(sim.faults.config.retry_after_seconds)
        early = Problem(429, "too-many-requests", "Injected rate limit", headers={"Retry-After": retry}).response(path)
    if early is not None:
        # A dropped connection has no status; 0 stands for it in the counts.
        sim.count(operation, 0 if isinstance(early, DropConnection) else early.status_code)
    return early


async def _sleep(seconds: float) -> None:
    await asyncio.sleep(seconds)


async def access_token(request: Request) -> Response:
    sim: Simulator = request.app.state.simulator
    if sim.faults.config.include_token_endpoint:
        early = await _injected(sim, sim.faults.plan("AccessToken"), "AccessToken", request.url.path)
        if early is not None:
            return early
    now = sim.now()
    try:
        body = sim.tokens.issue(request.headers, now)
    except Problem as problem:
        sim.count("AccessToken", problem.status)
        return problem.response(request.url.path)
    sim.count("AccessToken", 200)
    return Response(json.dumps(body), 200, media_type="application/json;charset=UTF-8")


def routes() -> list[Route]:
    by_path: dict[str, dict[str, Operation]] = {}
    for op in OPERATIONS:
        by_path.setdefault(op.path, {})[op.method] = op
    out = [
        Route("/accesstoken/get", access_token, methods=["POST"]),
        # The Postman collection and quick start spell it this way.
        Route("/accessToken/get", access_token, methods=["POST"]),
    ]
    for path, ops in by_path.items():
        for method, op in ops.items():
            out.append(Route(path, endpoint(op), methods=[method], name=op.operation_id))
    return out
