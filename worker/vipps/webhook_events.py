"""The Recurring API's webhook event types (CHANGES §1.1): what a registration subscribes to by default."""

from __future__ import annotations

AGREEMENT_EVENTS = (
    "recurring.agreement-activated.v1",
    "recurring.agreement-rejected.v1",
    "recurring.agreement-stopped.v1",
    "recurring.agreement-expired.v1",
)
CHARGE_EVENTS = (
    "recurring.charge-reserved.v1",
    "recurring.charge-captured.v1",
    "recurring.charge-canceled.v1",  # one "l", as Vipps spells it
    "recurring.charge-refunded.v1",
    "recurring.charge-failed.v1",
    "recurring.charge-creation-failed.v1",
)
RECURRING_EVENTS = AGREEMENT_EVENTS + CHARGE_EVENTS
CHARGE_CREATION_FAILED = "recurring.charge-creation-failed.v1"


def known(event_type: object) -> str:
    """The event type if it is one of the ten, else "other": a label that input cannot grow."""
    return event_type if isinstance(event_type, str) and event_type in RECURRING_EVENTS else "other"
