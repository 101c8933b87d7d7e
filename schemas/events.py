"""Events: what the worker tells the billing system.

Every event has a deterministic ``event_id`` (the same cause always gives the
same id; it is also the dramatiq ``message_id``), so consumers deduplicate on it.
"""

from __future__ import annotations

import datetime as dt
import uuid
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

# Fixed namespace: event ids are uuid5(EVENT_NAMESPACE, cause).
EVENT_NAMESPACE = uuid.UUID("6b1d0c9e-2f7a-5e33-9c7e-1f0a4d3b8e21")


class EventType(StrEnum):
    AGREEMENT_CREATED = "agreement.created"
    AGREEMENT_UPDATED = "agreement.updated"
    AGREEMENT_FORCE_ACCEPTED = "agreement.force_accepted"
    AGREEMENT_ACTIVATED = "agreement.activated"
    AGREEMENT_STOPPED = "agreement.stopped"
    AGREEMENT_EXPIRED = "agreement.expired"
    AGREEMENT_SNAPSHOT = "agreement.snapshot"
    AGREEMENT_CHARGES = "agreement.charges"
    CHARGE_CREATED = "charge.created"
    CHARGE_CAPTURED = "charge.captured"
    CHARGE_REFUNDED = "charge.refunded"
    CHARGE_CANCELLED = "charge.cancelled"
    CHARGE_STATUS_CHANGED = "charge.status_changed"
    CHARGE_SNAPSHOT = "charge.snapshot"
    CHARGE_CREATION_FAILED = "charge.creation_failed"
    COMMAND_FAILED = "command.failed"
    COMMAND_REJECTED = "command.rejected"
    COMMAND_DEAD_LETTERED = "command.dead_lettered"


class Problem(BaseModel):
    """Why a command did not succeed. ``type`` is the Vipps problem type fragment when Vipps said no."""

    model_config = ConfigDict(extra="forbid")

    reason: str = Field(description="machine-readable reason, e.g. vipps_problem, invalid_command, retries_exhausted")
    type: str | None = Field(default=None, description="Vipps problem type, e.g. charge-due-too-soon")
    title: str | None = None
    detail: str | None = None
    status: int | None = Field(default=None, description="HTTP status from Vipps")
    context_id: str | None = Field(default=None, description="Vipps contextId, for Vipps support")
    errors: list[dict[str, Any]] = Field(default_factory=list, description="field errors or extra details")


class Transition(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    from_status: str | None = Field(default=None, alias="from")
    to_status: str = Field(alias="to")


class Audit(BaseModel):
    """Who sent a support action, and why."""

    model_config = ConfigDict(extra="forbid")

    operator: str | None = None
    reason: str | None = None


class Event(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    event_id: str
    type: EventType
    command_id: str | None = Field(default=None, description="the command that caused it (none for a watch)")
    command_type: str | None = None
    correlation_id: str | None = None
    occurred_at: dt.datetime
    msn: str | None = None
    agreement_id: str | None = None
    charge_id: str | None = None
    vipps_confirmation_url: str | None = Field(default=None, description="agreement.created: send the user here")
    completion: str | None = Field(default=None, description="done (204) or accepted (202, not yet enacted)")
    transition: Transition | None = None
    agreement: dict[str, Any] | None = Field(default=None, description="Vipps agreement snapshot")
    charge: dict[str, Any] | None = Field(default=None, description="Vipps charge snapshot")
    charges: list[dict[str, Any]] | None = None
    problem: Problem | None = None
    attempts: int | None = None
    audit: Audit | None = Field(default=None, description="a command's outcome: its operator and reason, when given")
    observed_by: str | None = Field(default=None, description="a transition: what saw it first: webhook, poll or "
                                                              "command (a fetch)")
    actor: str | None = Field(default=None, description="agreement.stopped: who stopped it: USER (in the Vipps "
                                                        "app), MERCHANT (a stop command), ADMIN (Vipps, e.g. a "
                                                        "deleted profile); absent when Vipps did not say")

    def wire(self) -> dict[str, Any]:
        """The event as published: JSON types, ``from``/``to`` in transitions; the common fields always
        present (null when unknown), the others only when set."""
        body = self.model_dump(mode="json", by_alias=True, exclude_none=True)
        return {name: body.get(name) for name in COMMON_FIELDS} | body


# Fields every published event carries, null when they do not apply.
COMMON_FIELDS = ("event_id", "type", "command_id", "command_type", "correlation_id", "occurred_at", "msn")


def event_id(*cause: object) -> str:
    """A stable id from the parts of a cause."""
    return str(uuid.uuid5(EVENT_NAMESPACE, "\x1f".join(str(part) for part in cause)))
