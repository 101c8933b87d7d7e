"""The Webhooks API (``webhooks-v1-openapi.yaml``, CHANGES §1.3): register, list and delete webhooks, served by
``pipeline`` with the same token and subscription key as Recurring calls.

``Merchant-Serial-Number`` follows the Recurring rules, except that partner keys may leave it out: the
registration then covers every MSN the partner manages (``webhook_registry``). Errors are the API's
ProblemDetails (``type``, ``title``, ``status``, ``detail``, ``instance``, ``traceId``, ``extraDetails`` of
``{name, reason}``), not the Recurring problem shape. No rate limit is documented, so none is applied.
"""

from __future__ import annotations

import json
import secrets
import uuid
from typing import Any
from urllib.parse import urlsplit

from starlette.responses import Response

from worker.simulator.pipeline import Call, Operation, json_response
from worker.simulator.problems import TITLES, Problem
from worker.simulator.webhook_events import EVENT_TYPES

WEBHOOKS = "/webhooks/v1/webhooks"
REQUIRED = "The property is required and cannot be null or empty."
RFC9110 = "https://tools.ietf.org/html/rfc9110#section-"
# The problem types an ASP.NET API (which this one is) gives each status.
TYPES = {
    400: RFC9110 + "15.5.1",
    401: RFC9110 + "15.5.2",
    403: RFC9110 + "15.5.4",
    404: RFC9110 + "15.5.5",
    415: RFC9110 + "15.5.16",
    429: "https://tools.ietf.org/html/rfc6585#section-4",
    500: RFC9110 + "15.6.1",
    502: RFC9110 + "15.6.3",
    503: RFC9110 + "15.6.4",
}
NO_CONTENT = 204


def render(problem: Problem, instance: str) -> Response:
    """A refusal as ProblemDetails: the Recurring problem's ``{field, text}`` details become ``{name, reason}``."""
    extra = [{"name": item["field"], "reason": item["text"]} for item in problem.extra or []]
    body: dict[str, Any] = {
        "type": TYPES.get(problem.status, RFC9110 + "15.5.1"),
        "title": TITLES.get(problem.status, "Error"),
        "status": problem.status,
        "detail": problem.detail,
        "instance": instance,
        # A W3C trace context id, as the API's traceId is.
        "traceId": f"00-{uuid.uuid4().hex}-{secrets.token_hex(8)}-00",
        "extraDetails": extra or None,
    }
    return Response(json.dumps(body), problem.status, headers=problem.headers, media_type="application/problem+json")


def _invalid(errors: list[dict[str, str]]) -> Problem:
    return Problem(400, "validation", "One or more validation errors occurred.", extra=errors)


def _url(value: Any, https_only: bool) -> str | None:
    """Why the URL is refused, or None."""
    if value is None or value == "":
        return REQUIRED
    if not isinstance(value, str):
        return "The URL must be a string."
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises for a port that is not a number
    except ValueError:
        return "The URL is not a valid absolute URI."
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return "The URL is not a valid absolute URI."
    if https_only and parts.scheme.lower() != "https":
        return "The URL must use HTTPS."
    return None


def _events(value: Any) -> tuple[list[str], str | None]:
    """The event types asked for (each once, in order), or why they are refused."""
    if value is None or value == []:
        return [], REQUIRED
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        return [], "The events must be an array of strings."
    unknown = [item for item in value if item not in EVENT_TYPES]
    if unknown:
        return [], f"Unknown event type: {', '.join(unknown)}. The simulator serves the Recurring events."
    return list(dict.fromkeys(value)), None


def register_body(data: Any, https_only: bool) -> tuple[str, list[str]]:
    if not isinstance(data, dict):
        raise _invalid([{"field": "$", "text": "The request body must be a JSON object."}])
    errors = [{"field": name, "text": "Unknown property."} for name in sorted(set(data) - {"url", "events"})]
    url_error = _url(data.get("url"), https_only)
    if url_error is not None:
        errors.append({"field": "url", "text": url_error})
    events, events_error = _events(data.get("events"))
    if events_error is not None:
        errors.append({"field": "events", "text": events_error})
    if errors:
        raise _invalid(errors)
    return str(data["url"]), events


def _scope(call: Call) -> tuple[str, str | None]:
    """The key set and the MSN the call acts for (None: every MSN the partner manages)."""
    return call.credentials.label, call.merchant.msn if call.merchant is not None else None


def register(call: Call) -> Response:
    sim = call.sim
    url, events = register_body(call.json(), sim.config.webhook_https_only)
    owner, msn = _scope(call)
    msns = (msn,) if msn is not None else call.credentials.msns
    registration = sim.webhooks.register(owner, msn, msns, url, events)
    return json_response({"id": registration.id, "secret": registration.secret}, 201)


def list_webhooks(call: Call) -> Response:
    return json_response({"webhooks": [r.summary() for r in call.sim.webhooks.visible(*_scope(call))]})


def delete(call: Call) -> Response:
    registration_id = call.params["id"]
    try:
        uuid.UUID(registration_id)
    except ValueError:
        raise _invalid([{"field": "id", "text": f"The value '{registration_id}' is not valid."}]) from None
    if not any(r.id == registration_id for r in call.sim.webhooks.visible(*_scope(call))):
        raise Problem(404, "not-found", f"Webhook {registration_id} not found")
    call.sim.webhooks.unregister(registration_id)
    return Response(status_code=NO_CONTENT)


OPERATIONS = (
    Operation("RegisterWebhook", "POST", WEBHOOKS, register, api="webhooks", render=render),
    Operation("GetWebhooks", "GET", WEBHOOKS, list_webhooks, api="webhooks", render=render),
    Operation("DeleteWebhook", "DELETE", WEBHOOKS + "/{id}", delete, api="webhooks", render=render),
)
