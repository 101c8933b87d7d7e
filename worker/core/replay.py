"""Dead-letter replay: decide, from what Vipps says now, whether a dead command is still needed.

A dead-lettered command's ``command_id`` is terminal in the ledger, so sending it again would only
re-publish its failure. A replay sends the same command under a derived id (``<id>.r1``, ``.r2``
...) recorded on the dead letter, and only after a fresh look at Vipps shows the effect is still
missing: a capture while the charge is still RESERVED, a refund while money is left to refund, a
cancel while the charge is open, a charge create when no such charge exists, an update or stop
while the agreement is not STOPPED or EXPIRED. Reads are always safe to replay. Invalid commands
and undecodable messages are never replayed: they would be rejected again.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from schemas import CommandAdapter
from schemas.problems import one_line
from worker.core.handlers import FIRST_CALL
from worker.core.idempotency import charge_order_id, idempotency_key
from worker.store.deadletters import DeadLetter
from worker.store.keys import command_ref
from worker.store.ledger import Ledger
from worker.vipps import VippsClient, errors
from worker.vipps.models import CANCELLABLE_CHARGE_STATUSES, FINAL_AGREEMENT_STATUSES, ChargeType

NEVER = {"invalid_command", "command_id_reused", "undecodable", "unknown_actor"}
READS = {"agreement.fetch", "agreement.list_charges", "charge.fetch"}
OPERATIONS = {"charge.cancel": "CancelChargeV3", "charge.capture": "CaptureChargeV3",
              "charge.refund": "RefundChargeV3"}
OPEN_CHARGE = {"PENDING", "DUE", "RESERVED", "PARTIALLY_CAPTURED", "PROCESSING"}


@dataclass
class Decision:
    letter: DeadLetter
    replay: bool
    why: str
    new_command_id: str | None = None
    command: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"dead_letter": self.letter.id, "command_id": self.letter.command_id,
                "command_type": self.letter.command_type, "replay": self.replay, "why": self.why,
                "new_command_id": self.new_command_id}


def replay_id(command_id: str, n: int) -> str:
    """``<id>.r<n>``, shortened from the left of the original so it stays within 64 characters."""
    suffix = f".r{n}"
    return command_id[:64 - len(suffix)] + suffix


def decide(letter: DeadLetter, ledger: Ledger, client: VippsClient,
           changes: dict[str, Any] | None = None) -> Decision:
    """Whether to replay a dead letter, and the command to send; ``changes`` (e.g. a new ``due``) make the
    replay a changed command, validated like a new one."""
    if letter.reason in NEVER:
        return Decision(letter, False, f"{letter.reason}: would be rejected again; fix it and enqueue anew")
    payload = letter.payload
    if not isinstance(payload, dict) or not letter.command_id:
        return Decision(letter, False, "not a command; nothing to replay")
    try:
        command = CommandAdapter.validate_python(payload | (changes or {})).model_dump(mode="json",
                                                                                      exclude_none=True)
    except ValidationError as exc:
        what = "the changed command" if changes else "the recorded command"
        return Decision(letter, False, f"{what} is not valid ({one_line(exc)}); fix it and enqueue anew")
    if letter.replayed_as:
        last = letter.replayed_as[-1]
        record = ledger.get(command_ref(letter.msn or payload.get("msn"), last)) or {}
        status = record.get("status", "queued")
        # A replay that failed has its own dead letter: replay that one, never this one twice.
        return Decision(letter, False, f"already replayed as {last} ({status})")
    if letter.reason == "vipps_problem" and not changes:
        # Vipps answers the same command the same way: only a changed one can go through.
        problem = letter.problem or {}
        said = problem.get("type") or problem.get("detail") or "a refusal"
        return Decision(letter, False, f"Vipps refused it ({said}) and would refuse the same command again; "
                                       "replay it with changed fields (--set), or fix and enqueue anew")
    try:
        replay, why = _still_needed(command, ledger, client)
    except errors.PermanentError as exc:
        return Decision(letter, False, f"Vipps refused the check: {exc}")
    except (errors.TransientError, errors.AuthError) as exc:
        return Decision(letter, False, f"could not check Vipps now (try again later): {exc}")
    new_id = replay_id(letter.command_id, len(letter.replayed_as) + 1) if replay else None
    if new_id is not None:
        if command["type"] == "charge.create":
            # The original's orderId: should its charge exist after all, Vipps refuses a second one.
            command = command | {"order_id": _order_id(command, client)}
        command = command | {"command_id": new_id, "issued_at": dt.datetime.now(dt.UTC).isoformat()}
    return Decision(letter, replay, why, new_id, command if replay else None)


def _order_id(command: dict[str, Any], client: VippsClient) -> str:
    """The orderId the charge.create was sent with: its own, or the one derived from it."""
    return str(command.get("order_id") or charge_order_id(command.get("msn") or client.settings.msn or "",
                                                          command["command_id"]))


def _still_needed(command: dict[str, Any], ledger: Ledger, client: VippsClient) -> tuple[bool, str]:
    kind = command["type"]
    if kind in READS:
        return True, "a read: always safe"
    if kind == "agreement.create":
        record = ledger.get(command_ref(command.get("msn"), command["command_id"])) or {}
        if any(e.get("type") == "agreement.created" for e in record.get("events") or []):
            return False, "the agreement was created"
        return True, "no agreement was recorded (a draft left by the first attempt expires unaccepted)"
    if kind in ("agreement.update", "agreement.force_accept"):
        status = str(client.fetch_agreement(command["agreement_id"]).status)
        if kind == "agreement.force_accept":
            return (status == "PENDING"), f"agreement is {status}"
        if status in FINAL_AGREEMENT_STATUSES:
            return False, f"agreement is already {status}"
        return True, f"agreement is {status}"
    if kind == "charge.create":
        status = str(client.fetch_agreement(command["agreement_id"]).status)
        if status != "ACTIVE":
            return False, f"agreement is {status}: Vipps charges only ACTIVE agreements"
        order_id = _order_id(command, client)
        for charge in client.list_charges(command["agreement_id"]):
            same_order = charge.id == order_id
            same_external = command.get("external_id") and charge.externalId == command["external_id"]
            if command.get("due"):
                same_when = charge.due is not None and str(charge.due)[:10] == command["due"]
            else:  # UNSCHEDULED: no due date to tell it by
                same_when = str(charge.type) == ChargeType.UNSCHEDULED
            same_shape = (charge.amount == command["amount"] and charge.description == command["description"]
                          and same_when)
            if same_order or same_external or same_shape:
                return False, f"charge {charge.id} already exists ({charge.status})"
        return True, "no such charge on the agreement"
    charge = client.fetch_charge(command["agreement_id"], command["charge_id"])
    status, summary = str(charge.status), charge.summary
    # Vipps writes the merchant's Idempotency-Key into the charge history: if the first attempt took
    # effect (a timeout after Vipps had acted), a second capture or refund would move money twice.
    original = idempotency_key(command.get("msn") or client.settings.msn or "", command["command_id"],
                               FIRST_CALL[kind])
    if any(event.idempotencyKey == original and event.success is not False for event in charge.history or []):
        return False, f"the first attempt took effect at Vipps (charge is {status})"
    if kind == "charge.cancel":
        return (status in CANCELLABLE_CHARGE_STATUSES), f"charge is {status}"
    if kind == "charge.capture":
        left = charge.amount - summary.captured - summary.cancelled
        ok = status in ("RESERVED", "PARTIALLY_CAPTURED") and left >= command["amount"]
        return ok, f"charge is {status}, {left} left to capture"
    if kind == "charge.refund":
        left = summary.captured - summary.refunded
        ok = status in ("CHARGED", "PARTIALLY_REFUNDED") and left >= command["amount"]
        return ok, f"charge is {status}, {left} left to refund"
    return False, f"no replay rule for {kind}"
