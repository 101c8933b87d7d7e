"""What each command type does at Vipps, and the events and watches it yields.

A handler calls the client once and describes the outcome; it writes nothing.
The pipeline records the outcome, events and watch changes atomically.
"""

from __future__ import annotations

from typing import Any

from schemas import Command, Event, EventType
from schemas import commands as c
from worker.core import charge_creation
from worker.core.context import Context, Outcome
from worker.core.events import Origin
from worker.store.watchlist import WatchChange
from worker.vipps import Completion, models
from worker.vipps import operations as op
from worker.vipps.budgets import BudgetSlot
from worker.vipps.operations import Operation


def snapshot(model: Any) -> dict[str, Any]:
    dumped: dict[str, Any] = model.model_dump(mode="json", by_alias=True)
    return dumped


def agreement_create(ctx: Context, cmd: c.AgreementCreate) -> Outcome:
    pricing = models.PricingRequest(type=cmd.pricing.type.value, currency=cmd.pricing.currency,
                                    amount=cmd.pricing.amount, suggestedMaxAmount=cmd.pricing.suggested_max_amount)
    initial = None
    if cmd.initial_charge:
        ic = cmd.initial_charge
        initial = models.InitialChargeV3(amount=ic.amount, description=ic.description,
                                         transactionType=ic.transaction_type.value, orderId=ic.order_id,
                                         externalId=ic.external_id)
    body = models.DraftAgreementV3(
        pricing=pricing, interval=models.TimePeriod(unit=cmd.interval.unit.value, count=cmd.interval.count),
        merchantAgreementUrl=cmd.merchant_agreement_url, merchantRedirectUrl=cmd.merchant_redirect_url,
        productName=cmd.product_name, productDescription=cmd.product_description, phoneNumber=cmd.phone_number,
        initialCharge=initial, isApp=cmd.is_app or None, scope=cmd.scope, externalId=cmd.external_id,
        campaign=campaign(cmd.campaign) if cmd.campaign else None,
        paymentMethod=models.PaymentMethodV3(blockedSources=cmd.blocked_sources) if cmd.blocked_sources else None)
    draft = ctx.client.draft_agreement(body, idempotency_key=ctx.key(cmd, op.DRAFT_AGREEMENT))
    out = Outcome(events=[ctx.event(cmd, EventType.AGREEMENT_CREATED, agreement_id=draft.agreementId,
                                    charge_id=draft.chargeId, vipps_confirmation_url=draft.vippsConfirmationUrl,
                                    agreement=snapshot(draft))])
    out.watch.append(ctx.watcher.start_agreement(draft.agreementId, cmd, last_status="PENDING"))
    if draft.chargeId:
        out.watch.append(ctx.watcher.start_charge(draft.agreementId, draft.chargeId, cmd, due=None, retry_days=0))
    return out


def campaign(given: c.PriceCampaign | c.PeriodCampaign | c.EventCampaign | c.FullFlexCampaign) -> (
        models.PriceCampaignV3 | models.PeriodCampaignV3 | models.EventCampaignV3 | models.FullFlexCampaignV3):
    """The command's campaign as Vipps's campaignV3."""
    if isinstance(given, c.PriceCampaign):
        return models.PriceCampaignV3(price=given.price, end=given.end)
    if isinstance(given, c.PeriodCampaign):
        return models.PeriodCampaignV3(price=given.price, period=_period(given.period))
    if isinstance(given, c.EventCampaign):
        return models.EventCampaignV3(price=given.price, eventDate=given.event_date, eventText=given.event_text)
    return models.FullFlexCampaignV3(price=given.price, interval=_period(given.interval), end=given.end)


def _period(interval: c.Interval) -> models.TimePeriod:
    return models.TimePeriod(unit=interval.unit.value, count=interval.count)


def agreement_fetch(ctx: Context, cmd: c.AgreementFetch) -> Outcome:
    agreement = snapshot(ctx.client.fetch_agreement(cmd.agreement_id))
    out = Outcome(events=[ctx.event(cmd, EventType.AGREEMENT_SNAPSHOT, agreement_id=cmd.agreement_id,
                                    agreement=agreement)])
    return _observed(out, *ctx.watcher.observe_agreement(agreement, cmd))


def agreement_update(ctx: Context, cmd: c.AgreementUpdate) -> Outcome:
    if cmd.status == "STOPPED":
        done = ctx.client.stop_agreement(cmd.agreement_id, idempotency_key=ctx.key(cmd, op.UPDATE_AGREEMENT))
        out = Outcome(events=[ctx.event(cmd, EventType.AGREEMENT_UPDATED, agreement_id=cmd.agreement_id,
                                        completion=done.value, agreement={"status": "STOPPED"})])
        if done is Completion.DONE:
            # Vipps has stopped it: report the transition now instead of waiting for the next poll.
            out.events.append(ctx.events.agreement_status(cmd.agreement_id, None, "STOPPED",
                                                          Origin.of(cmd, ctx.msn), actor="MERCHANT"))
            out.watch.append(ctx.watcher.settle_agreement(cmd.agreement_id, "STOPPED"))
        else:
            out.watch.append(ctx.watcher.start_agreement(cmd.agreement_id, cmd, last_status=None, soon=True))
        return out
    pricing = None
    if cmd.pricing_amount is not None or cmd.suggested_max_amount is not None:
        pricing = models.PricingUpdateRequest(amount=cmd.pricing_amount, suggestedMaxAmount=cmd.suggested_max_amount)
    interval = None
    if cmd.interval:
        interval = models.IntervalUpdate(period=models.TimePeriod(unit=cmd.interval.unit.value,
                                                                  count=cmd.interval.count))
    body = models.PatchAgreementV3(productName=cmd.product_name, productDescription=cmd.product_description,
                                   merchantAgreementUrl=cmd.merchant_agreement_url, externalId=cmd.external_id,
                                   pricing=pricing, interval=interval)
    done = ctx.client.update_agreement(cmd.agreement_id, body,
                                       idempotency_key=ctx.key(cmd, op.UPDATE_AGREEMENT))
    return Outcome(events=[ctx.event(cmd, EventType.AGREEMENT_UPDATED, agreement_id=cmd.agreement_id,
                                     completion=done.value, agreement=snapshot(body))])


def agreement_force_accept(ctx: Context, cmd: c.AgreementForceAccept) -> Outcome:
    done = ctx.client.force_accept_agreement(cmd.agreement_id, cmd.phone_number,
                                             idempotency_key=ctx.key(cmd, op.FORCE_ACCEPT))
    return Outcome(events=[ctx.event(cmd, EventType.AGREEMENT_FORCE_ACCEPTED, agreement_id=cmd.agreement_id,
                                     completion=done.value)],
                   watch=[ctx.watcher.start_agreement(cmd.agreement_id, cmd, last_status="PENDING", soon=True)])


def agreement_list_charges(ctx: Context, cmd: c.AgreementListCharges) -> Outcome:
    status = models.ChargeStatus(cmd.status.value) if cmd.status else None
    charges = ctx.client.list_charges(cmd.agreement_id, status=status)
    return Outcome(events=[ctx.event(cmd, EventType.AGREEMENT_CHARGES, agreement_id=cmd.agreement_id,
                                     charges=[snapshot(ch) for ch in charges])])


def charge_create(ctx: Context, cmd: c.ChargeCreate) -> Outcome:
    body = models.CreateChargeV3(amount=cmd.amount, transactionType=cmd.transaction_type.value,
                                 description=cmd.description, type=cmd.charge_type, processingMode=cmd.processing_mode,
                                 due=cmd.due, retryDays=cmd.retry_days, orderId=charge_creation.order_id(ctx, cmd),
                                 externalId=cmd.external_id)
    ref = ctx.client.create_charge(cmd.agreement_id, body, idempotency_key=ctx.key(cmd, op.CREATE_CHARGE))
    return charge_creation.created(ctx, cmd, ref.chargeId, Completion.DONE)


def charge_fetch(ctx: Context, cmd: c.ChargeFetch) -> Outcome:
    charge = snapshot(ctx.client.fetch_charge(cmd.agreement_id, cmd.charge_id))
    out = Outcome(events=[ctx.event(cmd, EventType.CHARGE_SNAPSHOT, agreement_id=cmd.agreement_id,
                                    charge_id=cmd.charge_id, charge=charge)])
    return _observed(out, *ctx.watcher.observe_charge(cmd.agreement_id, charge, cmd))


def _observed(out: Outcome, events: list[Event], change: WatchChange | None) -> Outcome:
    """A fetch is an observation too: a state change it reveals yields its transition event."""
    out.events.extend(events)
    if change is not None:
        out.watch.append(change)
    return out


def charge_cancel(ctx: Context, cmd: c.ChargeCancel) -> Outcome:
    done = ctx.client.cancel_charge(cmd.agreement_id, cmd.charge_id,
                                    idempotency_key=ctx.key(cmd, op.CANCEL_CHARGE))
    return _modified(ctx, cmd, EventType.CHARGE_CANCELLED, done, amount=None)


def charge_move_money(ctx: Context, cmd: c.ChargeCapture | c.ChargeRefund) -> Outcome:
    """Capture or refund part or all of a charge."""
    capture = isinstance(cmd, c.ChargeCapture)
    body = models.ModifyChargeV3(amount=cmd.amount, description=cmd.description)
    send = ctx.client.capture_charge if capture else ctx.client.refund_charge
    done = send(cmd.agreement_id, cmd.charge_id, body,
                idempotency_key=ctx.key(cmd, op.CAPTURE_CHARGE if capture else op.REFUND_CHARGE))
    kind = EventType.CHARGE_CAPTURED if capture else EventType.CHARGE_REFUNDED
    return _modified(ctx, cmd, kind, done, amount=cmd.amount)


def _modified(ctx: Context, cmd: c.ChargeCancel | c.ChargeCapture | c.ChargeRefund, kind: EventType,
              done: Completion, *, amount: int | None) -> Outcome:
    charge = {"amount": amount} if amount is not None else None
    return Outcome(events=[ctx.event(cmd, kind, agreement_id=cmd.agreement_id, charge_id=cmd.charge_id,
                                     completion=done.value, charge=charge)],
                   watch=[ctx.watcher.recheck_charge(cmd.agreement_id, cmd.charge_id, cmd,
                                                     await_change=done is Completion.ACCEPTED)])


# The Vipps operation each command type calls first (its rate budget slot is taken with the ledger claim).
FIRST_CALL: dict[str, Operation] = {
    "agreement.create": op.DRAFT_AGREEMENT,
    "agreement.fetch": op.FETCH_AGREEMENT,
    "agreement.update": op.UPDATE_AGREEMENT,
    "agreement.force_accept": op.FORCE_ACCEPT,
    "agreement.list_charges": op.LIST_CHARGES,
    "charge.create": op.CREATE_CHARGE,
    "charge.fetch": op.FETCH_CHARGE,
    "charge.cancel": op.CANCEL_CHARGE,
    "charge.capture": op.CAPTURE_CHARGE,
    "charge.refund": op.REFUND_CHARGE,
}


def budget_slot(ctx: Context, cmd: Command) -> BudgetSlot | None:
    """The rate budget slot the command's first Vipps call takes, so the ledger claim can take it at once."""
    operation = FIRST_CALL[cmd.type]
    return ctx.client.budget_slot(operation.id, agreement_id=getattr(cmd, "agreement_id", None),
                                  charge_id=getattr(cmd, "charge_id", None),
                                  idempotency_key=ctx.key(cmd, operation) if operation.idempotent else None)


def handle(ctx: Context, cmd: Command) -> Outcome:
    """Carry out one command at Vipps."""
    match cmd:
        case c.AgreementCreate():
            return agreement_create(ctx, cmd)
        case c.AgreementFetch():
            return agreement_fetch(ctx, cmd)
        case c.AgreementUpdate():
            return agreement_update(ctx, cmd)
        case c.AgreementForceAccept():
            return agreement_force_accept(ctx, cmd)
        case c.AgreementListCharges():
            return agreement_list_charges(ctx, cmd)
        case c.ChargeCreate():
            return charge_create(ctx, cmd)
        case c.ChargeFetch():
            return charge_fetch(ctx, cmd)
        case c.ChargeCancel():
            return charge_cancel(ctx, cmd)
        case c.ChargeCapture() | c.ChargeRefund():
            return charge_move_money(ctx, cmd)
