"""What becomes of a genuine delivery: queued for the worker (once per body), or kept as a dead letter.

A genuine delivery whose body is not a JSON object with an ``eventType`` is kept as a dead letter
(``webhook_unreadable``, the raw text bounded) and still answered 200: Vipps would retry a failing
answer for 7 days and, delivering in order per registration, hold back every later event behind it.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from typing import Any

import redis

from worker.store.clock import now_ms
from worker.store.deadletters import DeadLetter, DeadLetterStore, dead_letter_id
from worker.store.replication import NotReplicated
from worker.store.webhooks import WebhookQueue, body_digest
from worker.vipps.webhook_events import known

OTHER_EVENT = "other"   # an eventType that is none of the ten (webhook_events.known)
NOT_READ = "-"   # the event of a delivery whose body was not read (rejected) or not readable
UNREADABLE = "webhook_unreadable"
MAX_KEPT_CHARS = 4096


@dataclass(frozen=True)
class Taken:
    outcome: str    # queued, duplicate, unreadable, unavailable (Redis did not answer, or no replica held it)
    event: str      # one of the ten event types, OTHER_EVENT or NOT_READ: a bounded metric label


def event_label(event_type: object) -> str:
    return known(event_type) if isinstance(event_type, str) else NOT_READ


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse(body: bytes) -> tuple[dict[str, Any] | None, str]:
    """(payload, "") for a JSON object with a string ``eventType``; else (None, why not)."""
    try:
        payload = json.loads(body, parse_constant=_no_constants)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        return None, f"not JSON: {type(exc).__name__}"
    if not isinstance(payload, dict):
        return None, f"not a JSON object but a {type(payload).__name__}"
    if not isinstance(payload.get("eventType"), str):
        return None, "no eventType"
    return payload, ""


class Intake:
    def __init__(self, queue: WebhookQueue, dead_letters: DeadLetterStore) -> None:
        self.queue = queue
        self.dead_letters = dead_letters

    def rejected(self, reason: str) -> None:
        """Count a refused request where `status` can see it (best effort: the answer does not wait on it)."""
        with contextlib.suppress(redis.RedisError):
            self.queue.rejected(reason)

    def take(self, body: bytes, registration: str) -> Taken:
        """Queue or dead-letter a genuine delivery (``unavailable`` when Redis does not answer: nothing kept)."""
        received_ms = now_ms()
        payload, why = parse(body)
        if payload is None:
            try:
                self.dead_letters.add(unreadable_letter(body, registration, why, received_ms))
            except redis.RedisError:
                return Taken("unavailable", NOT_READ)
            return Taken("unreadable", NOT_READ)
        event_type = payload["eventType"]
        delivery = {"payload": payload, "registration": registration, "received_ms": received_ms,
                    "event_type": event_type}
        try:
            new = self.queue.add(body, delivery)
        except (redis.RedisError, NotReplicated):  # answered 503: Vipps delivers it again
            return Taken("unavailable", event_label(event_type))
        return Taken("queued" if new else "duplicate", event_label(event_type))


def unreadable_letter(body: bytes, registration: str, why: str, at_ms: int) -> DeadLetter:
    """The same body twice is one dead letter (its id is the body's digest)."""
    text = body.decode("utf-8", errors="replace")
    kept = text if len(text) <= MAX_KEPT_CHARS else text[:MAX_KEPT_CHARS] + f"... ({len(text)} characters)"
    return DeadLetter(id=dead_letter_id(UNREADABLE, body_digest(body)), reason=UNREADABLE,
                      detail=f"a genuine webhook delivery (registration {registration}) that cannot be read: {why}",
                      at_ms=at_ms, payload=kept)
