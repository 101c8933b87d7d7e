"""Batch charge creation (CHANGES §2, ``POST /recurring/v3/agreements/charges``): each item is checked as the
single create checks a body; the valid ones are queued and created shortly after the answer, each checked
again then, and one that can no longer be created makes ``recurring.charge-creation-failed.v1`` instead.

A queued orderId is in use (``charges.in_use``) from acceptance on, for later batches and the single create.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from worker.simulator import charges, validation
from worker.simulator import webhook_events as events
from worker.simulator.engine import Engine
from worker.simulator.merchants import Caller
from worker.simulator.models import QueuedCharge
from worker.simulator.problems import Problem

# Items per request (CHANGES §2).
MAX_ITEMS = 2000


def check_shape(body: Any) -> list[Any]:
    """The whole request is refused only for its shape: not an array, empty, or too long."""
    if not isinstance(body, list):
        raise validation.validation_error([{"field": "body", "text": "must be a JSON array of charges"}])
    if not 1 <= len(body) <= MAX_ITEMS:
        raise validation.validation_error(
            [{"field": "body", "text": f"must hold 1 to {MAX_ITEMS} charges (got {len(body)})"}]
        )
    return body


def accept(engine: Engine, items: list[Any], today: date, key: str) -> dict[str, Any]:
    """``{"validCharges": [orderId], "invalidCharges": [{"chargeBatchItemDto", "errors"}]}``; the valid queued."""
    caller = engine.caller
    assert caller is not None
    config = engine.config
    valid: list[str] = []
    invalid: list[dict[str, Any]] = []
    seen: set[str] = set()
    for item in items:
        data, errors = batch_item(item, today, config.min_due_lead_days, config.max_due_days)
        if data is not None:
            errors = _state_errors(engine, data, seen)
        order_id = data["order_id"] if data is not None else item.get("orderId") if isinstance(item, dict) else None
        if isinstance(order_id, str):
            seen.add(order_id)
        if data is None or errors:
            invalid.append({"chargeBatchItemDto": item, "errors": errors})
            continue
        _queue(engine, QueuedCharge(data["order_id"], data["agreement_id"], data, key, caller.credentials))
        valid.append(data["order_id"])
    return {"validCharges": valid, "invalidCharges": invalid}


def _state_errors(engine: Engine, data: dict[str, Any], seen: set[str]) -> list[str]:
    """What the agreement and the orderIds in use say against a well-formed item."""
    order_id = data["order_id"]
    if order_id in seen:
        return [f"orderId {order_id} is already in use in this batch"]
    try:
        charges.check_creatable(engine, data["agreement_id"], data["amount"])
        charges.check_order_id(engine, order_id)
    except Problem as problem:
        return texts(problem)
    return []


def _queue(engine: Engine, queued: QueuedCharge) -> None:
    engine.queued[queued.order_id] = queued
    engine.record("charge.batch", queued.key, "queued", queued.agreement_id, queued.order_id, queued.data["amount"])
    engine.schedule(engine.now + engine.config.batch_creation_delay_seconds, create_queued, queued.order_id)


def create_queued(engine: Engine, order_id: str) -> None:
    """Create an accepted charge, or fail it with charge-creation-failed when it can no longer be created."""
    queued = engine.queued.pop(order_id, None)
    if queued is None:
        return
    agreement = engine.agreements[queued.agreement_id]
    # Its effects are the batch request's: that key set, that merchant.
    with engine.serving(Caller(agreement.msn, queued.credentials)):
        reason = _creation_failure(engine, queued)
        if reason is None:
            charges.open_recurring(engine, agreement, queued.data, queued.key)
            return
        engine.record(
            "charge.create", queued.key, f"creation-failed:{reason}", agreement.id, order_id, queued.data["amount"]
        )
        events.charge_creation_failed(engine, agreement, order_id, queued.data, reason)


def _creation_failure(engine: Engine, queued: QueuedCharge) -> str | None:
    """Why the charge cannot be created now (a failureReason), or None."""
    try:
        charges.check_creatable(engine, queued.agreement_id, queued.data["amount"])
    except Problem as problem:
        # The agreement was stopped or its price lowered after the batch was accepted.
        return "charge_amount_too_high" if problem.kind == "charge-amount-too-high" else "non_technical_error"
    scripted = engine.scripts.creation_fails.get(queued.order_id)
    if scripted is not None:
        return scripted
    rate = engine.config.batch_creation_failure_rate
    if rate > 0 and engine.batch_rng.random() < rate:
        return "technical_error"
    return None


def batch_item(item: Any, today: date, min_lead_days: int, max_days: int) -> tuple[dict[str, Any] | None, list[str]]:
    """One item of a batch: the validated charge (with ``agreement_id``), or None and the texts of what is wrong.

    The single create's rules, plus a required ``orderId`` and ``agreementId``; only RECURRING charges.
    """
    if not isinstance(item, dict):
        return None, ["the item must be a JSON object"]
    c = validation.Checker()
    agreement_id = c.str_(item, "agreementId", "agreementId", required=True, min_len=1)
    c.str_(item, "orderId", "orderId", required=True)
    if item.get("type") not in (None, "RECURRING"):
        c.fail("type", "only RECURRING charges can be created in a batch")
    errors = texts(validation.validation_error(c.errors)) if c.errors else []
    try:
        data = validation.create_charge(item, today, min_lead_days, max_days)
    except Problem as problem:
        errors += [text for text in texts(problem) if text not in errors]
    if errors:
        return None, errors
    data["agreement_id"] = agreement_id
    return data, []


def texts(problem: Problem) -> list[str]:
    """A refusal as the error texts of a batch item: each field's, else the detail."""
    if problem.kind == "validation-error" and problem.extra:
        return [f"{error['field']}: {error['text']}" for error in problem.extra]
    return [problem.detail]
