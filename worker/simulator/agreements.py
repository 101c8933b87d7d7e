"""Agreement rules (NOTES §3.1): draft, PENDING -> ACTIVE / EXPIRED / STOPPED, updates, and what a
user does on the landing page or in the app (accept, reject, stop, pick a max amount)."""

from __future__ import annotations

from typing import Any

from worker.simulator import charges
from worker.simulator import webhook_events as events
from worker.simulator.clock import utc_date
from worker.simulator.engine import Engine
from worker.simulator.models import Agreement, AgreementEvent
from worker.simulator.problems import Problem

# PATCH body field -> Agreement attribute, for the plain replacements.
UPDATABLE = {
    "productName": "product_name",
    "productDescription": "product_description",
    "merchantAgreementUrl": "merchant_agreement_url",
    "externalId": "external_id",
    "amount": "amount",
    "suggestedMaxAmount": "suggested_max_amount",
}


def draft(engine: Engine, data: dict[str, Any], key: str, confirmation_base: str) -> tuple[Agreement, str | None]:
    """A PENDING agreement (and its initial charge), expiring after the pending TTL."""
    agreement_id = engine.new_agreement_id()
    token = engine.new_token(24)
    if data["is_app"]:
        url = f"vippsMT://recurring?token={token}"
    else:
        url = f"{confirmation_base}/dwo-api-application/v1/deeplink/vippsgateway?v=2/token={token}"
    interval = data["interval"]
    agreement = Agreement(
        id=agreement_id,
        uuid=engine.new_uuid(),
        created=engine.now,
        product_name=data["product_name"],
        pricing_type=data["pricing_type"],
        interval_unit=interval["unit"],
        interval_count=interval["count"],
        merchant_agreement_url=data["merchant_agreement_url"],
        merchant_redirect_url=data["merchant_redirect_url"],
        confirmation_url=url,
        msn=engine.caller_msn(),
        amount=data.get("amount"),
        suggested_max_amount=data.get("suggested_max_amount"),
        product_description=data.get("product_description"),
        phone_number=data.get("phone_number"),
        scope=data.get("scope"),
        external_id=data.get("external_id"),
        campaign=data.get("campaign"),
        blocked_sources=data.get("blocked_sources"),
    )
    _history(engine, agreement, "CREATE", "MERCHANT")
    initial = data.get("initial_charge")
    if initial is not None:
        charges.check_order_id(engine, initial["order_id"])
    engine.agreements[agreement_id] = agreement
    engine.record("agreement.draft", key, "created:PENDING", agreement_id)
    charge_id: str | None = None
    if initial is not None:
        charge = charges.open_charge(engine, agreement, initial, "INITIAL", utc_date(engine.now), 0, key)
        agreement.initial_charge_id = charge_id = charge.id
        engine.record("agreement.draft", key, "created:PENDING", agreement_id, charge.id, charge.amount)
    engine.schedule(engine.now + engine.config.pending_agreement_ttl_seconds, _expire, agreement_id)
    if engine.config.auto_accept_after_seconds is not None:
        engine.schedule(engine.now + engine.config.auto_accept_after_seconds, _auto_accept, agreement_id)
    return agreement, charge_id


def _pending(engine: Engine, agreement_id: str) -> Agreement:
    agreement = engine.agreement(agreement_id)
    if agreement.status != "PENDING":
        raise Problem(409, "conflict", f"Agreement is {agreement.status}, not PENDING")
    return agreement


def force_accept(engine: Engine, agreement_id: str, phone: str, key: str) -> None:
    agreement = engine.agreement(agreement_id)
    if agreement.status != "PENDING":
        raise Problem(409, "conflict", f"Agreement is {agreement.status}, only a PENDING agreement can be accepted")
    if engine.scripts.refuses(agreement) or phone in engine.scripts.never_accepts:
        raise Problem(400, "operation-failed", "The user did not accept the agreement")
    agreement.phone_number = phone
    accept(engine, agreement, "agreement.accept", key)


def accept(engine: Engine, agreement: Agreement, operation: str, key: str, max_amount: int | None = None) -> None:
    """The user approves: ACTIVE, and the initial charge is processed at once (its failure leaves EXPIRED)."""
    if agreement.pricing_type == "VARIABLE":
        agreement.max_amount = max_amount if max_amount is not None else agreement.suggested_max_amount
    if agreement.scope:
        agreement.sub = engine.new_uuid()
    if agreement.initial_charge_id is not None:
        charge = engine.charges[agreement.initial_charge_id]
        reason = charges.attempt(engine, charge, agreement)
        if reason is not None:
            charges.fail(engine, charge, reason)
            agreement.status = "EXPIRED"
            _history(engine, agreement, "EXPIRE", None)
            engine.record(operation, key, "PENDING->EXPIRED", agreement.id)
            events.agreement_event(engine, agreement, events.AGREEMENT_EXPIRED)
            return
    agreement.status = "ACTIVE"
    agreement.start = engine.now
    _history(engine, agreement, "ACTIVATE", "USER")
    engine.record(operation, key, "PENDING->ACTIVE", agreement.id)
    events.agreement_event(engine, agreement, events.AGREEMENT_ACTIVATED)


def user_accepts(engine: Engine, agreement_id: str, phone: str | None = None, max_amount: int | None = None) -> None:
    agreement = _pending(engine, agreement_id)
    if phone:
        agreement.phone_number = phone
    accept(engine, agreement, "user.accept", f"{agreement.id}-UserAccept", max_amount)


def user_rejects(engine: Engine, agreement_id: str) -> None:
    agreement = _pending(engine, agreement_id)
    _end_pending(engine, agreement, "STOPPED", "user.reject", f"{agreement.id}-UserReject")


def user_stops(engine: Engine, agreement_id: str) -> None:
    """The user stops the agreement in the app (actor USER)."""
    agreement = engine.agreement(agreement_id)
    if agreement.status != "ACTIVE":
        raise Problem(409, "conflict", f"Agreement is {agreement.status}, not ACTIVE")
    stop(engine, agreement, "user.stop", f"{agreement.id}-UserStop", actor="USER")


def profile_deleted(engine: Engine, phone_number: str | None, agreement_id: str | None = None) -> list[str]:
    """A user's profile is deleted: Vipps stops every ACTIVE agreement of theirs (actor ADMIN, CHANGES §4.3), at
    every merchant. The user is the one with ``phone_number``; ``agreement_id`` is one of theirs (the user of an
    agreement accepted without a known phone number owns that one). Like a user's stop it leaves RESERVED
    charges to the merchant. The ids stopped."""
    stopped = []
    for agreement in list(engine.agreements.values()):
        theirs = agreement.id == agreement_id or (phone_number is not None and agreement.phone_number == phone_number)
        if agreement.status == "ACTIVE" and theirs:
            stop(engine, agreement, "admin.stop", f"{agreement.id}-AdminStop", actor="ADMIN")
            stopped.append(agreement.id)
    return stopped


def _expire(engine: Engine, agreement_id: str) -> None:
    agreement = engine.agreements.get(agreement_id)
    if agreement is not None and agreement.status == "PENDING":
        _end_pending(engine, agreement, "EXPIRED", "agreement.expire", f"{agreement.id}-Expire")


def _auto_accept(engine: Engine, agreement_id: str) -> None:
    agreement = engine.agreements.get(agreement_id)
    if agreement is None or agreement.status != "PENDING" or engine.scripts.refuses(agreement):
        return
    if engine.scripts.auto_rejects(agreement):
        _end_pending(engine, agreement, "STOPPED", "user.reject", f"{agreement.id}-UserReject")
    else:
        accept(engine, agreement, "user.accept", f"{agreement.id}-UserAccept")


def _end_pending(engine: Engine, agreement: Agreement, status: str, operation: str, key: str) -> None:
    """Expired or rejected: the initial charge, if any, is cancelled."""
    agreement.status = status
    agreement.stop = engine.now
    if status == "EXPIRED":
        _history(engine, agreement, "EXPIRE", None)
    else:
        # A rejection is the user's stop.
        _history(engine, agreement, "STOP", "USER")
    engine.record(operation, key, f"PENDING->{status}", agreement.id)
    # A rejected agreement ends STOPPED, yet its event is agreement-rejected.
    kind = events.AGREEMENT_EXPIRED if status == "EXPIRED" else events.AGREEMENT_REJECTED
    events.agreement_event(engine, agreement, kind)
    if agreement.initial_charge_id is not None:
        charges.release(engine, engine.charges[agreement.initial_charge_id], operation, key)


def update(engine: Engine, agreement_id: str, changes: dict[str, Any], key: str) -> None:
    agreement = engine.agreement(agreement_id)
    if changes.get("status") == "STOPPED":
        if agreement.status == "STOPPED" and engine.config.idempotent_stop:
            return
        if agreement.status != "ACTIVE":
            raise _illegal_update(agreement)
        stop(engine, agreement, "agreement.stop", key, actor="MERCHANT")
        return
    if agreement.status != "ACTIVE":
        raise _illegal_update(agreement)
    _check_pricing_change(agreement, changes)
    changed = []
    for name, attr in UPDATABLE.items():
        if name in changes:
            setattr(agreement, attr, changes[name])
            changed.append(name)
    if changes.get("interval") is not None:
        agreement.interval_unit = changes["interval"]["unit"]
        agreement.interval_count = changes["interval"]["count"]
        changed.append("interval")
    engine.record(
        "agreement.update",
        key,
        "updated:" + ",".join(changed),
        agreement.id,
        amount=changes.get("amount", changes.get("suggestedMaxAmount")),
    )


def _check_pricing_change(agreement: Agreement, changes: dict[str, Any]) -> None:
    """A price goes with LEGACY pricing, a suggested max amount with VARIABLE."""
    for name, pricing_type, other in (("amount", "LEGACY", "VARIABLE"), ("suggestedMaxAmount", "VARIABLE", "LEGACY")):
        if name in changes and agreement.pricing_type != pricing_type:
            raise Problem(
                400,
                "illegal-agreement-update",
                f"pricing.{name} can only be updated on a {pricing_type} agreement",
                extra=[{"field": f"pricing.{name}", "text": f"agreement pricing type is {other}"}],
            )


def stop(engine: Engine, agreement: Agreement, operation: str, key: str, actor: str) -> None:
    """STOPPED by ``actor`` (``webhook_events.ACTORS``); open charges are cancelled (a stop the merchant did
    not make leaves RESERVED charges to the merchant)."""
    agreement.status = "STOPPED"
    agreement.stop = engine.now
    _history(engine, agreement, "STOP", actor)
    engine.record(operation, key, "ACTIVE->STOPPED", agreement.id)
    events.agreement_event(engine, agreement, events.AGREEMENT_STOPPED, actor=actor)
    closable = ("PENDING", "DUE", "RESERVED") if actor == "MERCHANT" else ("PENDING", "DUE")
    for charge_id in agreement.charge_ids:
        charge = engine.charges[charge_id]
        if charge.status in closable:
            charges.release(engine, charge, operation, key)


def _history(engine: Engine, agreement: Agreement, event: str, actor: str | None) -> None:
    agreement.history.append(AgreementEvent(engine.now, event, actor))


def set_max_amount(engine: Engine, agreement_id: str, max_amount: int) -> None:
    agreement = engine.agreement(agreement_id)
    if agreement.pricing_type != "VARIABLE":
        raise Problem(409, "conflict", "maxAmount applies to VARIABLE agreements only")
    agreement.max_amount = max_amount
    engine.record(
        "user.max_amount",
        f"{agreement.id}-MaxAmount-{max_amount}",
        "maxAmount",
        agreement.id,
        amount=max_amount,
    )


def _illegal_update(agreement: Agreement) -> Problem:
    return Problem(
        400,
        "illegal-agreement-update",
        "Illegal update",
        extra=[{"field": "status", "text": f"Cannot modify an agreement which is not active ({agreement.status})"}],
    )
