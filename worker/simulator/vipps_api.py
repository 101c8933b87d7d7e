"""The Recurring API: the access token and every v3 Recurring operation, under the real paths (served by
``pipeline``)."""

from __future__ import annotations

import json
import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from worker.simulator import agreements, batch, charges, pipeline, validation
from worker.simulator.clock import utc_date
from worker.simulator.models import Charge
from worker.simulator.pipeline import Call, Handler, Operation, json_response
from worker.simulator.problems import Problem
from worker.simulator.state import Simulator

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
# ListAgreements paging (CHANGES §4.4).
DEFAULT_PAGE_SIZE = 500
MAX_PAGE_SIZE = 2000
NO_CONTENT = 204


# --------------------------------------------------------------------------- operations


def list_agreements(call: Call) -> Response:
    """Paged by ``pageNumber``/``pageSize`` (CHANGES §4.4) when either is given; otherwise the first
    ``list_page_size`` (500) and a ``Continuation-Token`` for the rest, which clients of the older paging follow."""
    sim, query, msn = call.sim, call.request.query_params, call.sales_unit().msn
    token = call.request.headers.get("continuation-token") or None
    numbered = token is None and ("pageNumber" in query or "pageSize" in query)
    if token is not None:
        page = sim.continuations.get(token)
        # Another merchant's token is as unknown as one never issued.
        if page is None or page[0] != msn or page[4] < sim.engine.now:
            raise validation.validation_error([{"field": "Continuation-Token", "text": "unknown or expired token"}])
        status, created_after, offset = page[1], page[2], page[3]
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
        c = validation.Checker()
        paging = dict(query)
        page_number = c.int_(paging, "pageNumber", "pageNumber", minimum=1) or 1
        page_size = c.int_(paging, "pageSize", "pageSize", minimum=1, maximum=MAX_PAGE_SIZE) or DEFAULT_PAGE_SIZE
        c.raise_if_failed()
        offset = 0
    items = [
        a
        for a in sim.engine.agreements.values()
        if a.msn == msn and a.status == status and a.created * 1000 > created_after
    ]
    if numbered:
        start = (page_number - 1) * page_size
        return json_response([sim.engine.agreement_json(a) for a in items[start : start + page_size]])
    return _page(
        sim,
        [sim.engine.agreement_json(a) for a in items[offset : offset + sim.config.list_page_size]],
        len(items),
        offset,
        (msn, status, created_after),
    )


def _page(sim: Simulator, page: list[Any], total: int, offset: int, query: tuple[str, str, int]) -> Response:
    headers: dict[str, str] = {}
    next_offset = offset + len(page)
    if next_offset < total:
        token = str(uuid.uuid4())
        sim.continuations[token] = (*query, next_offset, sim.engine.now + CONTINUATION_TTL)
        headers["Continuation-Token"] = token
    return json_response(page, headers=headers)


def draft_agreement(call: Call) -> Response:
    sim = call.sim
    data = validation.draft_agreement(call.json(), call.sales_unit().skip_landing_page_allowed)
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
    if data["type"] == "UNSCHEDULED" and not call.sales_unit().unscheduled_allowed:
        # The text Vipps gives a merchant not allow-listed for them (CHANGES §3).
        raise validation.validation_error(
            [{"field": "type", "text": "this sales unit may not create UNSCHEDULED charges"}],
            "Cannot create a charge with type 'UNSCHEDULED'",
        )
    charge = charges.create(sim.engine, agreement_id, data, call.key)
    return json_response({"chargeId": charge.id}, 201)


def create_charges(call: Call) -> Response:
    """The batch: 202 with the items split into valid (queued) and invalid; only its shape refuses it whole."""
    items = batch.check_shape(call.json())
    engine = call.sim.engine
    return json_response(batch.accept(engine, items, utc_date(engine.now), call.key), 202)


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
        creates_charges=True,
    ),
    # A later addition to the API (CHANGES §2); counted once per request in the per-MSN creation limit.
    Operation(
        "CreateChargesAsyncV3",
        "POST",
        AGREEMENTS + "/charges",
        create_charges,
        mutating=True,
        creates_charges=True,
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


async def access_token(request: Request) -> Response:
    sim: Simulator = request.app.state.simulator
    if sim.faults.config.include_token_endpoint:
        early = await pipeline.injected(sim, sim.faults.plan("AccessToken"), "AccessToken", request.url.path)
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
    return [
        Route("/accesstoken/get", access_token, methods=["POST"]),
        # The Postman collection and quick start spell it this way.
        Route("/accessToken/get", access_token, methods=["POST"]),
        *pipeline.routes(OPERATIONS),
    ]
