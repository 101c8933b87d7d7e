"""Every event the worker publishes is built here, as the published contract ``schemas.events.Event``.

Ids are deterministic: a command's outcome event from the command id and the event type; a
resource's transition from the resource and its new state; a rejection from the rejected bytes.
The same cause always gives the same id, whoever sees it first (a command, a poll, a redelivery).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from schemas import Event, EventType, event_id
from schemas import commands as c


@dataclass(frozen=True)
class Origin:
    """What caused an observation: a command, or nothing (a poll of a resource no command changed)."""

    command_id: str | None = None
    correlation_id: str | None = None
    msn: str | None = None
    command_type: str | None = None

    @classmethod
    def of(cls, command: c.CommandBase, default_msn: str | None) -> Origin:
        return cls(command.command_id, command.correlation_id, command.msn or default_msn,
                   getattr(command, "type", None))

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Origin:
        """The origin recorded with a watched resource."""
        return cls(state.get("command_id"), state.get("correlation_id"), state.get("msn"))

    def recorded(self) -> dict[str, Any]:
        """The origin as a watched resource keeps it (see ``from_state``)."""
        return {"command_id": self.command_id, "correlation_id": self.correlation_id, "msn": self.msn}


def command_event_id(msn: str | None, command_id: str, kind: EventType) -> str:
    """The id of a command's outcome event: per merchant, as the same command_id from two merchants are two
    commands."""
    return event_id(msn or "", command_id, kind.value)


@dataclass(frozen=True)
class EventBuilder:
    msn: str | None                       # the merchant when a command names none (the only one, if one)
    now: Callable[[], dt.datetime]

    def outcome(self, command: c.CommandBase, kind: EventType, **fields: Any) -> Event:
        """A command's outcome (or one of its effects); its id depends only on the command and ``kind``."""
        if command.operator is not None or command.reason is not None:
            fields.setdefault("audit", {"operator": command.operator, "reason": command.reason})
        origin = Origin.of(command, self.msn)
        return self.caused(origin, kind, command_event_id(origin.msn, command.command_id, kind), **fields)

    def caused(self, origin: Origin, kind: EventType, eid: str, **fields: Any) -> Event:
        """An event with a given id, caused by ``origin``; fields that are None are left out."""
        return Event(event_id=eid, type=kind, command_id=origin.command_id, command_type=origin.command_type,
                     correlation_id=origin.correlation_id, msn=origin.msn or self.msn, occurred_at=self.now(),
                     **{k: v for k, v in fields.items() if v is not None})

    def agreement_status(self, agreement_id: str, old: str | None, new: str, origin: Origin,
                         agreement: dict[str, Any] | None = None, *, via: str | None = None,
                         actor: str | None = None) -> Event:
        """An agreement reached ``new``; one id per agreement and status, whoever saw it (``via``)."""
        return self.caused(origin, AGREEMENT_EVENTS[new], event_id(agreement_id, "agreement-status", new),
                           agreement_id=agreement_id, transition={"from": old, "to": new},
                           agreement=agreement or {"id": agreement_id, "status": new}, observed_by=via,
                           actor=actor if new == "STOPPED" else None)

    def charge_state(self, agreement_id: str, charge: dict[str, Any], old: str | None, signature: str,
                     origin: Origin, *, via: str | None = None) -> Event:
        """A charge changed (status or amounts); one id per charge and state signature, whoever saw it."""
        return self.caused(origin, EventType.CHARGE_STATUS_CHANGED,
                           event_id(charge["id"], agreement_id, "charge-state", signature),
                           agreement_id=agreement_id, charge_id=charge["id"],
                           transition={"from": old, "to": str(charge.get("status"))}, charge=charge,
                           observed_by=via)

    def charge_creation_failed(self, agreement_id: str, charge_id: str, origin: Origin,
                               reason: str | None, *, via: str = "webhook") -> Event:
        """A charge Vipps had accepted was not created after all: Vipps said so (and a fetch agrees), or it never
        appeared. One id per charge, whoever saw it."""
        return self.caused(origin, EventType.CHARGE_CREATION_FAILED,
                           event_id(charge_id, agreement_id, "charge-creation-failed"), agreement_id=agreement_id,
                           charge_id=charge_id, observed_by=via,
                           problem={"reason": "charge_creation_failed", "detail": reason} if reason else
                           {"reason": "charge_creation_failed"})

    def rejected(self, origin: Origin, digest: str, problem: dict[str, Any]) -> Event:
        """Invalid input; the id comes from what was sent, so the same bytes are one rejection."""
        return self.caused(origin, EventType.COMMAND_REJECTED,
                           event_id(origin.command_id or "", EventType.COMMAND_REJECTED.value, digest),
                           problem=problem)


AGREEMENT_EVENTS = {"ACTIVE": EventType.AGREEMENT_ACTIVATED, "STOPPED": EventType.AGREEMENT_STOPPED,
                    "EXPIRED": EventType.AGREEMENT_EXPIRED}
