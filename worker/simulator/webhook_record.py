"""Webhook deliveries: what waits to be sent (``Pending``), the retry schedule, and the delivery record: every
attempt, sent or answered as failed by an injected fault, with its answer and timings (``DeliveryLog``).

A *delivery* is one event for one registration (``delivery_id``); it is attempted until an attempt is answered
2xx in time or it is dropped. A test reads the record to see what a receiver was sent, how often and how it
answered: a delivery answered 2xx more than once (a duplicate, or a success whose answer came too late) is one
the receiver must process once.
"""

from __future__ import annotations

from collections import deque
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from worker.simulator.webhook_events import WebhookEvent
from worker.simulator.webhook_registry import Registration

DAY = 86400.0
# Retried for up to 7 days after the event, then dropped (CHANGES §1.4).
HORIZON = 7 * DAY
# A registration whose deliveries have failed for 2 weeks is deleted (CHANGES §1.4).
UNRESPONSIVE = 14 * DAY
# The oldest attempts are forgotten past this many.
LIMIT = 100_000


def retry_wait(attempt: int, short: float) -> float:
    """The wait after failed attempt ``attempt`` (1-based), by Vipps's schedule (CHANGES §1.4): the first four
    attempts ``short`` apart (about 2 s), then 60 s, then 120 s, then hourly through attempt 29, then daily."""
    if attempt <= 3:
        return short
    if attempt == 4:
        return 60.0
    if attempt == 5:
        return 120.0
    if attempt <= 28:
        return 3600.0
    return DAY


def stamp(ts: float) -> str:
    """Simulated time with milliseconds (attempts a few ms apart stay apart)."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@dataclass
class Pending:
    """One delivery not yet delivered or dropped."""

    delivery_id: int
    registration: Registration
    event: WebhookEvent
    body: bytes
    # A delivery waits while an earlier one of its registration with the same key is pending.
    order_key: str
    # Simulated time it was queued; the 7 days count from here.
    queued_at: float
    next_at: float
    attempts: int = 0

    def view(self, blocked_by: int | None, in_flight: bool) -> dict[str, Any]:
        return {
            "delivery_id": self.delivery_id,
            "registration": self.registration.id,
            "url": self.registration.url,
            "event_type": self.event.event_type,
            "msn": self.event.msn,
            "agreement_id": self.event.agreement_id,
            "charge_id": self.event.charge_id,
            "attempts": self.attempts,
            "queued_at": stamp(self.queued_at),
            "next_attempt_at": stamp(self.next_at),
            "blocked_by": blocked_by,
            "in_flight": in_flight,
        }


@dataclass(frozen=True)
class Outcome:
    """How one attempt went: ``sent`` is False when a fault failed it or it was dropped unsent."""

    sent: bool
    status: int | None = None
    error: str | None = None
    sent_at: float | None = None
    duration_ms: float | None = None
    headers: dict[str, str] | None = None
    # Not attempted at all: too old to be sent.
    dropped: bool = False

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300 and self.error is None


@dataclass(frozen=True)
class Attempt:
    seq: int
    delivery_id: int
    registration: str
    url: str
    event_type: str
    msn: str
    agreement_id: str
    charge_id: str | None
    payload: dict[str, Any]
    attempt: int
    # A copy sent right after the attempt by an injected fault; the first answer is the one that counts.
    duplicate: bool
    sent: bool
    status: int | None
    error: str | None
    ok: bool
    # What followed: delivered, retry, dropped, duplicate (a copy), registration-deleted.
    result: str
    queued_at: str
    sent_at: str | None
    duration_ms: float | None
    next_attempt_at: str | None
    headers: dict[str, str] | None


class DeliveryLog:
    def __init__(self) -> None:
        self.items: deque[Attempt] = deque(maxlen=LIMIT)
        self.seq = 0

    def record(
        self, item: Pending, outcome: Outcome, result: str, next_at: float | None, duplicate: bool = False
    ) -> None:
        self.seq += 1
        event, registration = item.event, item.registration
        self.items.append(
            Attempt(
                seq=self.seq,
                delivery_id=item.delivery_id,
                registration=registration.id,
                url=registration.url,
                event_type=event.event_type,
                msn=event.msn,
                agreement_id=event.agreement_id,
                charge_id=event.charge_id,
                payload=event.payload,
                attempt=item.attempts,
                duplicate=duplicate,
                sent=outcome.sent,
                status=outcome.status,
                error=outcome.error,
                ok=outcome.ok,
                result=result,
                queued_at=stamp(item.queued_at),
                sent_at=stamp(outcome.sent_at) if outcome.sent_at is not None else None,
                duration_ms=outcome.duration_ms,
                next_attempt_at=stamp(next_at) if next_at is not None else None,
                headers=outcome.headers,
            )
        )

    def query(self, since: int = 0, **match: Any) -> list[dict[str, Any]]:
        """Attempts after ``since`` whose fields equal every non-None ``match`` (``registration``,
        ``event_type``, ``agreement_id``, ``charge_id``, ``msn``, ``delivery_id``, ``result``)."""
        wanted = {name: value for name, value in match.items() if value is not None}
        return [asdict(a) for a in self.items if a.seq > since and all(getattr(a, k) == v for k, v in wanted.items())]
