"""What each command type does at Vipps, and the events and watches it yields.

A handler calls the client once and describes the outcome; it writes nothing.
The pipeline records the outcome, events and watch changes atomically.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from schemas import EventType, event_id
from schemas import commands as c
from worker.core import watch
from worker.core.idempotency import idempotency_key
from worker.store.ledger import WatchChange
from worker.vipps import Completion, VippsClient, models
from worker.vipps.budgets import BudgetSlot


@dataclass
class Outcome:
    events: list[dict[str, Any]] = field(default_factory=list)
    watch: list[WatchChange] = field(default_factory=list)


@dataclass(frozen=True)
class Context:
    client: VippsClient
    msn: str
    watcher: watch.Watcher
    now: Callable[[], dt.datetime]

    def key(self, command: c.CommandBase, operation: str) -> str:
        return idempotency_key(command.msn or self.msn, command.command_id, operation)

    def event(self, command: c.CommandBase, kind: EventType, **fields: Any) -> dict[str, Any]:
        """The command's outcome event; its id depends only on the command and the event type."""
        body: dict[str, Any] = {
            "event_id": event_id(command.command_id, kind.value),
            "type": kind.value,
            "command_id": command.command_id,
            "command_type": getattr(command, "type", None),
            "correlation_id": command.correlation_id,
            "occurred_at": self.now().isoformat(),
            "msn": command.msn or self.msn,
        }
        body.update({k: v for k, v in fields.items() if v is not None})
        return body


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
        campaign=campaign(cmd.campaign) if cmd.campaign else None)
    draft = ctx.client.draft_agreement(body, idempotency_key=ctx.key(cmd, "DraftAgreementV3"))
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
        done = ctx.client.stop_agreement(cmd.agreement_id, idempotency_key=ctx.key(cmd, "UpdateAgreementPatchV3"))
        out = Outcome(events=[ctx.event(cmd, EventType.AGREEMENT_UPDATED, agreement_id=cmd.agreement_id,
                                        completion=done.value, agreement={"status": "STOPPED"})])
        if done is Completion.DONE:
            # Vipps has stopped it: report the transition now instead of waiting for the next poll.
            out.events.append(ctx.watcher.agreement_transition_event(cmd.agreement_id, None, "STOPPED", cmd))
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
                                       idempotency_key=ctx.key(cmd, "UpdateAgreementPatchV3"))
    return Outcome(events=[ctx.event(cmd, EventType.AGREEMENT_UPDATED, agreement_id=cmd.agreement_id,
                                     completion=done.value, agreement=snapshot(body))])


def agreement_force_accept(ctx: Context, cmd: c.AgreementForceAccept) -> Outcome:
    done = ctx.client.force_accept_agreement(cmd.agreement_id, cmd.phone_number,
                                             idempotency_key=ctx.key(cmd, "acceptUsingPATCHV3"))
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
                                 description=cmd.description, due=cmd.due, retryDays=cmd.retry_days,
                                 orderId=cmd.order_id, externalId=cmd.external_id)
    ref = ctx.client.create_charge(cmd.agreement_id, body, idempotency_key=ctx.key(cmd, "CreateChargeV3"))
    return Outcome(events=[ctx.event(cmd, EventType.CHARGE_CREATED, agreement_id=cmd.agreement_id,
                                     charge_id=ref.chargeId,
                                     charge={"chargeId": ref.chargeId, "amount": cmd.amount,
                                             "due": cmd.due.isoformat(), "status": "PENDING"})],
                   watch=[ctx.watcher.start_charge(cmd.agreement_id, ref.chargeId, cmd, due=cmd.due,
                                                   retry_days=cmd.retry_days)])


def charge_fetch(ctx: Context, cmd: c.ChargeFetch) -> Outcome:
    charge = snapshot(ctx.client.fetch_charge(cmd.agreement_id, cmd.charge_id))
    out = Outcome(events=[ctx.event(cmd, EventType.CHARGE_SNAPSHOT, agreement_id=cmd.agreement_id,
                                    charge_id=cmd.charge_id, charge=charge)])
    return _observed(out, *ctx.watcher.observe_charge(cmd.agreement_id, charge, cmd))


def _observed(out: Outcome, events: list[dict[str, Any]], change: WatchChange | None) -> Outcome:
    """A fetch is an observation too: a state change it reveals yields its transition event."""
    out.events.extend(events)
    if change is not None:
        out.watch.append(change)
    return out


def charge_cancel(ctx: Context, cmd: c.ChargeCancel) -> Outcome:
    done = ctx.client.cancel_charge(cmd.agreement_id, cmd.charge_id,
                                    idempotency_key=ctx.key(cmd, "CancelChargeV3"))
    return _modified(ctx, cmd, EventType.CHARGE_CANCELLED, done, amount=None)


def charge_capture(ctx: Context, cmd: c.ChargeCapture) -> Outcome:
    body = models.ModifyChargeV3(amount=cmd.amount, description=cmd.description)
    done = ctx.client.capture_charge(cmd.agreement_id, cmd.charge_id, body,
                                     idempotency_key=ctx.key(cmd, "CaptureChargeV3"))
    return _modified(ctx, cmd, EventType.CHARGE_CAPTURED, done, amount=cmd.amount)


def charge_refund(ctx: Context, cmd: c.ChargeRefund) -> Outcome:
    body = models.ModifyChargeV3(amount=cmd.amount, description=cmd.description)
    done = ctx.client.refund_charge(cmd.agreement_id, cmd.charge_id, body,
                                    idempotency_key=ctx.key(cmd, "RefundChargeV3"))
    return _modified(ctx, cmd, EventType.CHARGE_REFUNDED, done, amount=cmd.amount)


def _modified(ctx: Context, cmd: c.ChargeCancel | c.ChargeCapture | c.ChargeRefund, kind: EventType,
              done: Completion, *, amount: int | None) -> Outcome:
    charge = {"amount": amount} if amount is not None else None
    return Outcome(events=[ctx.event(cmd, kind, agreement_id=cmd.agreement_id, charge_id=cmd.charge_id,
                                     completion=done.value, charge=charge)],
                   watch=[ctx.watcher.recheck_charge(cmd.agreement_id, cmd.charge_id, cmd,
                                                     await_change=done is Completion.ACCEPTED)])


# The Vipps operation each command type calls first, and whether that call carries an Idempotency-Key.
FIRST_CALL: dict[str, tuple[str, bool]] = {
    "agreement.create": ("DraftAgreementV3", True),
    "agreement.fetch": ("FetchAgreementV3", False),
    "agreement.update": ("UpdateAgreementPatchV3", True),
    "agreement.force_accept": ("acceptUsingPATCHV3", True),
    "agreement.list_charges": ("ListChargesV3", False),
    "charge.create": ("CreateChargeV3", True),
    "charge.fetch": ("FetchChargeV3", False),
    "charge.cancel": ("CancelChargeV3", True),
    "charge.capture": ("CaptureChargeV3", True),
    "charge.refund": ("RefundChargeV3", True),
}


def budget_slot(ctx: Context, cmd: Any) -> BudgetSlot | None:
    """The rate budget slot the command's first Vipps call takes, so the ledger claim can take it at once."""
    operation, keyed = FIRST_CALL[cmd.type]
    return ctx.client.budget_slot(operation, agreement_id=getattr(cmd, "agreement_id", None),
                                  charge_id=getattr(cmd, "charge_id", None),
                                  idempotency_key=ctx.key(cmd, operation) if keyed else None)


HANDLERS: dict[str, Callable[[Context, Any], Outcome]] = {
    "agreement.create": agreement_create,
    "agreement.fetch": agreement_fetch,
    "agreement.update": agreement_update,
    "agreement.force_accept": agreement_force_accept,
    "agreement.list_charges": agreement_list_charges,
    "charge.create": charge_create,
    "charge.fetch": charge_fetch,
    "charge.cancel": charge_cancel,
    "charge.capture": charge_capture,
    "charge.refund": charge_refund,
}
