"""What a ``charge.create`` asks Vipps for, and how a charge it already made is recognised.

Every charge carries an ``orderId``: the producer's own, or one derived from the command
(``idempotency.charge_order_id``). Vipps makes it the charge id and refuses a second charge with it, so a
command sent again (a lost answer, a crash mid-batch, a resend through the other endpoint) can never make a
second charge: Vipps refuses it, and a fetch of that id shows whether the charge there is the command's own.
"""

from __future__ import annotations

import datetime as dt
import re

from schemas import EventType
from schemas import commands as c
from worker.core.context import Context, Outcome
from worker.core.idempotency import charge_order_id
from worker.vipps import Completion, errors, models

# Words of a refusal that may mean "that orderId is taken": Vipps documents neither the status nor the text
# of that refusal (NOTES §3.9, CHANGES §2), so these only decide whether a first attempt looks.
_IN_USE = re.compile(r"order.?id|already|duplicate|exist|in use|unique|conflict", re.IGNORECASE)


def order_id(ctx: Context, cmd: c.ChargeCreate) -> str:
    return cmd.order_id or charge_order_id(cmd.msn or ctx.msn, cmd.command_id)


def batch_item(ctx: Context, cmd: c.ChargeCreate) -> models.CreateChargeAsyncV3:
    """The command as one charge of a batch request."""
    return models.CreateChargeAsyncV3(
        agreementId=cmd.agreement_id, amount=cmd.amount, transactionType=cmd.transaction_type.value,
        description=cmd.description, due=cmd.due, retryDays=cmd.retry_days, orderId=order_id(ctx, cmd),
        externalId=cmd.external_id, processingMode=cmd.processing_mode)


def created(ctx: Context, cmd: c.ChargeCreate, charge_id: str, completion: Completion,
            status: str | None = "PENDING") -> Outcome:
    """``charge.created``, and the charge followed from now on. ``accepted``: Vipps will create it later (the
    batch endpoint), so the watcher first looks for it to appear."""
    charge: dict[str, object] = {"chargeId": charge_id, "amount": cmd.amount, "due": _iso(cmd.due)}
    if status is not None:
        charge["status"] = status
    return Outcome(events=[ctx.event(cmd, EventType.CHARGE_CREATED, agreement_id=cmd.agreement_id,
                                     charge_id=charge_id, completion=completion.value, charge=charge)],
                   watch=[ctx.watcher.start_charge(cmd.agreement_id, charge_id, cmd, due=cmd.due,
                                                   retry_days=cmd.retry_days or 0,
                                                   accepted=completion is Completion.ACCEPTED)])


def may_exist(refusal: errors.VippsError, attempts: int) -> bool:
    """Whether a refused create may have been refused because the charge is there already: an earlier attempt
    may have made it (a lost answer, a crash), or the refusal reads like a taken orderId."""
    if refusal.status == 429 or (refusal.status is not None and refusal.status >= 500):
        return False
    said = " ".join(str(part) for part in (refusal.problem_type, refusal.problem and refusal.problem.detail, refusal)
                    if part)
    return attempts > 1 or refusal.status == 409 or bool(_IN_USE.search(said))


def already_created(ctx: Context, cmd: c.ChargeCreate, refusal: errors.VippsError, attempts: int) -> Outcome | None:
    """The command's charge, when Vipps refused to create it because it exists already and it is the one this
    command asks for; None when it is not there, or is another charge (then the refusal stands)."""
    if not may_exist(refusal, attempts):
        return None
    if isinstance(refusal, errors.IdempotencyConflictError):
        # The command's key was first sent with another body: by a version of this worker that sent no
        # orderId. Its charge, if that send made one, has Vipps's id: look for it by what it is.
        try:
            found = [ch for ch in ctx.client.list_charges(cmd.agreement_id) if same_charge(ch, cmd)]
        except errors.PermanentError:
            return None
        if len(found) != 1:
            return None
        return created(ctx, cmd, found[0].id, Completion.DONE, status=str(found[0].status))
    charge_id = order_id(ctx, cmd)
    try:
        charge = ctx.client.fetch_charge(cmd.agreement_id, charge_id)
    except errors.PermanentError:
        return None  # not there (404), or not ours to see: the refusal stands
    if not same_charge(charge, cmd):
        return None
    return created(ctx, cmd, charge_id, Completion.DONE, status=str(charge.status))


def same_charge(charge: models.ChargeResponseV3, cmd: c.ChargeCreate) -> bool:
    """Whether the charge at Vipps is the one the command asks for (amount, description, due date, type)."""
    return (charge.amount == cmd.amount and charge.description == cmd.description
            and (charge.due is None or charge.due == cmd.due)
            and (charge.transactionType is None or str(charge.transactionType) == cmd.transaction_type.value))


def _iso(day: dt.date | None) -> str | None:
    return day.isoformat() if day else None
