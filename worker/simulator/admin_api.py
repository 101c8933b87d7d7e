"""The admin API under ``/_simulator/``: clock, faults, scripted outcomes, effects, requests, stats, reset, and
stops the merchant does not make (the user's in the app, Vipps's for a deleted profile). The webhooks' own
admin calls are in ``webhook_admin``.

It never collides with Vipps paths, needs no credentials and is never subject to faults.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from worker.simulator import agreements
from worker.simulator.clock import iso, parse_iso
from worker.simulator.config import FaultConfig
from worker.simulator.problems import Problem
from worker.simulator.scripts import ScriptError, Scripts, as_list, check_rule_names
from worker.simulator.state import Simulator
from worker.simulator.validation import require_object

PREFIX = "/_simulator"


def _json(body: Any, status: int = 200) -> Response:
    return Response(json.dumps(body, separators=(",", ":")), status, media_type="application/json")


def _error(status: int, detail: str) -> Response:
    return _json({"error": detail}, status)


async def _body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except ValueError:
        raise Problem(400, "invalid-json", "The request body is not valid JSON") from None
    return require_object(value)


def _sim(request: Request) -> Simulator:
    sim: Simulator = request.app.state.simulator
    return sim


def _clock_body(sim: Simulator, transitions: int = 0) -> dict[str, Any]:
    ts = sim.now()
    return {
        "now": iso(ts),
        "offset_seconds": sim.clock.offset,
        "transitions": transitions,
        "next_round": iso(sim.engine.next_round(ts)),
    }


async def get_clock(request: Request) -> Response:
    return _json(_clock_body(_sim(request)))


def _move_clock(sim: Simulator, move: Callable[[], None]) -> Response:
    """Move the clock, running every transition on the way; the answer counts them."""
    before = len(sim.engine.effects.items)
    sim.now()
    move()
    sim.now()
    # Retries that have fallen due go out now.
    sim.webhooks.wake()
    return _json(_clock_body(sim, len(sim.engine.effects.items) - before))


async def put_clock(request: Request) -> Response:
    sim = _sim(request)
    body = await _body(request)
    try:
        target = parse_iso(str(body["now"]))
    except (KeyError, ValueError):
        return _error(400, 'body must be {"now": "<ISO-8601 date-time>"}')
    if target.timestamp() < sim.clock.timestamp() - 1:
        return _error(400, "the clock only moves forward (POST /_simulator/reset to start over)")
    return _move_clock(sim, lambda: sim.clock.set(target))


async def advance_clock(request: Request) -> Response:
    sim = _sim(request)
    body = await _body(request)
    seconds = body.get("seconds")
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds < 0:
        return _error(400, 'body must be {"seconds": <non-negative number>}')
    return _move_clock(sim, lambda: sim.clock.advance(float(seconds)))


async def get_faults(request: Request) -> Response:
    sim = _sim(request)
    return _json({"config": sim.faults.snapshot(), "injected": dict(sim.faults.counts)})


async def put_faults(request: Request) -> Response:
    sim = _sim(request)
    try:
        config = FaultConfig.model_validate(await _body(request))
    except ValidationError as exc:
        return _error(400, "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()))
    sim.faults.configure(config, sim.config.seed)
    return _json({"config": sim.faults.snapshot(), "injected": dict(sim.faults.counts)})


async def put_limits(request: Request) -> Response:
    """Switch the published rate limits on or off while running (a bench sets up without them)."""
    sim = _sim(request)
    body = await _body(request)
    enabled = body.get("enabled")
    if not isinstance(enabled, bool):
        return _error(400, 'body must be {"enabled": true|false}')
    sim.config.rate_limits_enabled = enabled
    sim.limiter.clear()
    return _json({"enabled": enabled})


def _since(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise Problem(400, "invalid-query", "since must be an integer") from None


async def get_effects(request: Request) -> Response:
    sim = _sim(request)
    # What has fallen due by now (a batch's charges, a processing round) is part of the record.
    sim.now()
    query = request.query_params
    since = _since(query.get("since", "0"))
    items = sim.engine.effects.query(
        since=since,
        operation=query.get("operation"),
        agreement_id=query.get("agreement_id"),
        charge_id=query.get("charge_id"),
        duplicates=query.get("duplicates", "").lower() in ("1", "true", "yes"),
        msn=query.get("msn"),
        credentials=query.get("credentials"),
    )
    return _json(items)


async def get_charge_effects(request: Request) -> Response:
    """How often each charge id was created (``EffectLog.charges``), and the batch charges still queued."""
    sim = _sim(request)
    sim.now()
    query = request.query_params
    msn = query.get("msn")
    report = sim.engine.effects.charges(
        msn=msn, agreement_id=query.get("agreement_id"), charge_id=query.get("charge_id")
    )
    report["queued"] = [
        order_id
        for order_id, queued in sim.engine.queued.items()
        if msn is None or sim.engine.agreements[queued.agreement_id].msn == msn
    ]
    return _json(report)


async def get_requests(request: Request) -> Response:
    """The request record: every Recurring and Management call with its MSN header, MSN and key set."""
    sim = _sim(request)
    query = request.query_params
    since = _since(query.get("since", "0"))
    items = sim.request_log.query(
        since=since, msn=query.get("msn"), credentials=query.get("credentials"), operation=query.get("operation")
    )
    return _json(items)


async def post_scripts(request: Request) -> Response:
    sim = _sim(request)
    body = await _body(request)
    engine = sim.engine
    sim.now()
    try:
        # Before anything is applied: a misspelt rule would otherwise be silently ignored.
        check_rule_names(body)
        engine.scripts.add_rules(body)
        for item in as_list(body.get("user_accepts")):
            target = item if isinstance(item, dict) else {"agreement_id": item}
            phone = str(target["phone_number"]) if target.get("phone_number") else None
            agreements.user_accepts(engine, str(target["agreement_id"]), phone, target.get("max_amount"))
        for item in as_list(body.get("user_rejects")):
            agreements.user_rejects(engine, str(item))
        for item in as_list(body.get("user_stops")):
            agreements.user_stops(engine, str(item))
        for item in as_list(body.get("user_max_amount")):
            agreements.set_max_amount(engine, str(item["agreement_id"]), int(item["max_amount"]))
    except (ScriptError, KeyError, TypeError, ValueError) as exc:
        return _error(400, f"invalid script: {exc}")
    return _json(engine.scripts.snapshot())


async def get_scripts(request: Request) -> Response:
    return _json(_sim(request).engine.scripts.snapshot())


async def delete_scripts(request: Request) -> Response:
    engine = _sim(request).engine
    engine.scripts = Scripts()
    return _json(engine.scripts.snapshot())


async def user_stop(request: Request) -> Response:
    """The user stops the agreement in the app: actor USER; RESERVED charges stay (CHANGES §4.3)."""
    sim = _sim(request)
    sim.now()
    agreement_id = request.path_params["agreementId"]
    if agreement_id not in sim.engine.agreements:
        return _error(404, "no such agreement")
    agreements.user_stops(sim.engine, agreement_id)
    return _json({"stopped": [agreement_id]})


async def profile_deleted(request: Request) -> Response:
    """``{"phone_number": "4791234567"}`` or ``{"agreement_id": "agr_..."}`` (its user): the profile is deleted
    and Vipps stops every ACTIVE agreement of that user, at every merchant (actor ADMIN)."""
    sim = _sim(request)
    body = await _body(request)
    sim.now()
    phone, agreement_id = body.get("phone_number"), body.get("agreement_id")
    if agreement_id is not None:
        agreement = sim.engine.agreements.get(str(agreement_id))
        if agreement is None:
            return _error(404, "no such agreement")
        phone = phone or agreement.phone_number
    if not phone and agreement_id is None:
        return _error(400, 'body must be {"phone_number": "..."} or {"agreement_id": "..."}')
    phone = str(phone) if phone else None
    stopped = agreements.profile_deleted(sim.engine, phone, str(agreement_id) if agreement_id is not None else None)
    return _json({"phone_number": phone, "stopped": stopped})


async def reset(request: Request) -> Response:
    sim = _sim(request)
    body = await _body(request)
    sim.reset(tokens=bool(body.get("tokens", False)))
    return _json({"reset": True, "now": iso(sim.now())})


async def stats(request: Request) -> Response:
    sim = _sim(request)
    by_operation: dict[str, dict[str, int]] = {}
    for (operation, status), count in sorted(sim.requests.items()):
        by_operation.setdefault(operation, {})[str(status)] = count
    return _json(
        {
            "requests": by_operation,
            "total": sum(sim.requests.values()),
            "idempotent_replays": sim.idempotency.replays,
            "idempotency_conflicts": sim.idempotency.conflicts,
            "rate_limited": sim.limiter.limited,
            "faults_injected": dict(sim.faults.counts),
            "agreements": len(sim.engine.agreements),
            "charges": len(sim.engine.charges),
            "queued_charges": len(sim.engine.queued),
            "effects": len(sim.engine.effects.items),
            "pending_timers": sim.engine.pending_timers(),
            "webhooks": sim.webhooks.stats(),
        }
    )


async def inspect_agreement(request: Request) -> Response:
    """The agreement and its charges, without credentials or rate limits (for tests and debugging)."""
    sim = _sim(request)
    sim.now()
    engine = sim.engine
    agreement = engine.agreements.get(request.path_params["agreementId"])
    if agreement is None:
        return _error(404, "no such agreement")
    return _json(
        {
            "msn": agreement.msn,
            "agreement": engine.agreement_json(agreement),
            "charges": [engine.charge_json(engine.charges[c]) for c in agreement.charge_ids],
        }
    )


async def health(request: Request) -> Response:
    return _json({"status": "ok"})


def _wrap(handler: Any) -> Any:
    async def run(request: Request) -> Response:
        try:
            response: Response = await handler(request)
        except Problem as problem:
            return _error(problem.status, problem.detail)
        return response

    return run


def routes() -> list[Route]:
    table = [
        ("/clock", get_clock, "GET"),
        ("/clock", put_clock, "PUT"),
        ("/clock/advance", advance_clock, "POST"),
        ("/faults", get_faults, "GET"),
        ("/faults", put_faults, "PUT"),
        ("/limits", put_limits, "PUT"),
        ("/effects", get_effects, "GET"),
        ("/effects/charges", get_charge_effects, "GET"),
        ("/requests", get_requests, "GET"),
        ("/scripts", get_scripts, "GET"),
        ("/scripts", post_scripts, "POST"),
        ("/scripts", delete_scripts, "DELETE"),
        ("/reset", reset, "POST"),
        ("/stats", stats, "GET"),
        ("/agreements/{agreementId}", inspect_agreement, "GET"),
        ("/agreements/{agreementId}/user-stop", user_stop, "POST"),
        ("/profiles/delete", profile_deleted, "POST"),
        ("/health", health, "GET"),
    ]
    return [Route(PREFIX + path, _wrap(handler), methods=[method]) for path, handler, method in table]
