"""Support actions, checked before anything is sent: stop an agreement, change it, capture, refund or cancel a
charge. The CLI and the console share them, so a rule lives here once.

Each reads the resource at Vipps now (as the merchant, with the people's share of the read budgets), refuses
with ``Refused`` what Vipps would refuse or silently ignore, and otherwise returns the command to send (who
and why included) and a one-line summary for the confirmation. Nothing here sends anything: the caller asks
for confirmation, then puts ``Action.command`` on the queue, where the worker carries it out exactly once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from schemas.commands import MIN_AMOUNT
from worker.core.control import OperationError, new_command_id
from worker.core.lookups import Move, left
from worker.core.money import money
from worker.core.producer import prepare
from worker.vipps import VippsClient, models


class Refused(OperationError):
    """A support action that was checked and refused; nothing was sent."""


@dataclass(frozen=True)
class Action:
    name: str                  # agreement.stop, agreement.update, charge.capture, charge.refund, charge.cancel
    command: dict[str, Any]    # validated wire form, without the merchant (the sender fills it in)
    summary: str               # what the person confirms, e.g. "Refund 10.00 NOK of charge chr_x"
    done_event: str            # the event that says it was carried out
    amount: int | None = None  # øre moved, for capture and refund


def audit(operator: str, reason: str) -> dict[str, str]:
    """Who and why, as the command carries them; both are required for a support action."""
    if not operator.strip():
        raise Refused("an operator is required (who is doing this)")
    if not reason.strip():
        raise Refused("a reason is required (why this is done)")
    return {"operator": operator.strip(), "reason": reason.strip()}


def refuse_if_final(vipps: VippsClient, agreement_id: str, verb: str) -> models.AgreementResponseV3:
    """The agreement, unless it is already final (Vipps would refuse or ignore a change)."""
    agreement = vipps.fetch_agreement(agreement_id)
    if str(agreement.status) in models.FINAL_AGREEMENT_STATUSES:
        raise Refused(f"agreement {agreement_id} is already {agreement.status}; nothing to {verb}, nothing was sent")
    return agreement


def stop_agreement(vipps: VippsClient, agreement_id: str, operator: str, reason: str,
                   command_id: str | None = None) -> Action:
    # The command is validated first: an invalid id is refused before Vipps is asked about it.
    command = prepare({"command_id": command_id or new_command_id(), "type": "agreement.update",
                       "agreement_id": agreement_id, "status": "STOPPED", **audit(operator, reason)})
    refuse_if_final(vipps, agreement_id, "stop")
    return Action("agreement.stop", command, f"Stop agreement {agreement_id} (this cannot be undone)",
                  "agreement.stopped")


def update_agreement(vipps: VippsClient, agreement_id: str, changes: dict[str, Any], operator: str, reason: str,
                     command_id: str | None = None) -> Action:
    if not changes:
        raise Refused("name at least one change")
    command = prepare({"command_id": command_id or new_command_id(), "type": "agreement.update",
                       "agreement_id": agreement_id, **changes, **audit(operator, reason)})
    refuse_if_final(vipps, agreement_id, "change")
    described = ", ".join(f"{name} = {money(value) if isinstance(value, int) else value}"
                          for name, value in changes.items())
    return Action("agreement.update", command, f"Change agreement {agreement_id}: {described}", "agreement.updated")


def possible_moves(charge: models.ChargeResponseV3) -> set[str]:
    """What may be done to the charge now: capture, refund and/or cancel."""
    possible = set()
    if str(charge.status) in ("RESERVED", "PARTIALLY_CAPTURED") and left(charge, "capture") >= MIN_AMOUNT:
        possible.add("capture")
    if left(charge, "refund") >= MIN_AMOUNT:
        possible.add("refund")
    if str(charge.status) in models.CANCELLABLE_CHARGE_STATUSES:
        possible.add("cancel")
    return possible


def move_money(vipps: VippsClient, kind: Move, agreement_id: str, charge_id: str, amount: int | None,
               operator: str, reason: str, description: str | None = None,
               command_id: str | None = None) -> Action:
    """Capture or refund ``amount`` øre of a charge (all that is left when None)."""
    who = audit(operator, reason)
    if amount is not None and amount < MIN_AMOUNT:
        raise Refused(f"the amount must be at least {money(MIN_AMOUNT)}; nothing was sent")
    charge = vipps.fetch_charge(agreement_id, charge_id)
    currency = str(charge.currency)
    remaining = left(charge, kind)
    if amount is None:
        amount = remaining
        if amount < MIN_AMOUNT:
            raise Refused(f"charge {charge_id} is {charge.status} with {money(amount, currency)} left to {kind}; "
                          "nothing was sent")
    elif amount > remaining:
        raise Refused(f"charge {charge_id} is {charge.status} with {money(remaining, currency)} left to {kind}, "
                      f"less than {money(amount, currency)}; nothing was sent")
    command = prepare({"command_id": command_id or new_command_id(), "type": f"charge.{kind}",
                       "agreement_id": agreement_id, "charge_id": charge_id, "amount": amount,
                       "description": description or ("Captured" if kind == "capture" else "Refund"), **who})
    done = "charge.captured" if kind == "capture" else "charge.refunded"
    return Action(f"charge.{kind}", command, f"{kind.capitalize()} {money(amount, currency)} of charge {charge_id}",
                  done, amount)


def cancel_charge(vipps: VippsClient, agreement_id: str, charge_id: str, operator: str, reason: str,
                  command_id: str | None = None) -> Action:
    who = audit(operator, reason)
    status = str(vipps.fetch_charge(agreement_id, charge_id).status)
    if status not in models.CANCELLABLE_CHARGE_STATUSES:
        raise Refused(f"charge {charge_id} is {status}, not open; nothing to cancel, nothing was sent")
    command = prepare({"command_id": command_id or new_command_id(), "type": "charge.cancel",
                       "agreement_id": agreement_id, "charge_id": charge_id, **who})
    return Action("charge.cancel", command, f"Cancel charge {charge_id}", "charge.cancelled")
