"""The admin API of the webhooks, under ``/_simulator/webhooks/``: registrations (never their secrets), the
delivery record, what is still pending, and delivery faults."""

from __future__ import annotations

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from worker.simulator.admin_api import PREFIX, _body, _error, _json, _sim, _since, _wrap
from worker.simulator.config import WebhookFaultConfig


async def registrations(request: Request) -> Response:
    webhooks = _sim(request).webhooks
    with webhooks.lock:
        return _json([r.admin_json() for r in webhooks.registry.items.values()])


async def deliveries(request: Request) -> Response:
    """Every attempt, in the order made: ``?registration=&event=&agreement_id=&charge_id=&msn=&delivery_id=
    &result=&since=`` (``since``: the last ``seq`` seen)."""
    webhooks = _sim(request).webhooks
    query = request.query_params
    delivery_id = query.get("delivery_id")
    match = {
        "registration": query.get("registration"),
        "event_type": query.get("event"),
        "agreement_id": query.get("agreement_id"),
        "charge_id": query.get("charge_id"),
        "msn": query.get("msn"),
        "result": query.get("result"),
        "delivery_id": _since(delivery_id) if delivery_id is not None else None,
    }
    since = _since(query.get("since", "0"))
    with webhooks.lock:
        return _json(webhooks.log.query(since, **match))


async def pending(request: Request) -> Response:
    """Deliveries not yet delivered or dropped, with the delivery each waits behind (``blocked_by``)."""
    return _json(_sim(request).webhooks.pending())


def _faults_body(request: Request) -> Response:
    faults = _sim(request).webhooks.faults
    return _json({"config": faults.snapshot(), "injected": dict(faults.counts)})


async def get_faults(request: Request) -> Response:
    return _faults_body(request)


async def put_faults(request: Request) -> Response:
    sim = _sim(request)
    try:
        config = WebhookFaultConfig.model_validate(await _body(request))
    except ValidationError as exc:
        return _error(400, "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()))
    with sim.webhooks.lock:
        sim.webhooks.faults.configure(config, sim.config.seed)
    return _faults_body(request)


def routes() -> list[Route]:
    table = [
        ("/registrations", registrations, "GET"),
        ("/deliveries", deliveries, "GET"),
        ("/pending", pending, "GET"),
        ("/faults", get_faults, "GET"),
        ("/faults", put_faults, "PUT"),
    ]
    return [Route(PREFIX + "/webhooks" + path, _wrap(handler), methods=[method]) for path, handler, method in table]
