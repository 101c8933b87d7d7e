"""Idempotency as Vipps does it: the first response to a key is replayed for the same request
(4xx included); the same key on a different request is a 409 idempotency-conflict. Keys are per merchant:
the same key from two merchants names two requests."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass

from worker.simulator.problems import Problem

FORBIDDEN = re.compile(r"[#?/\\]")


def idempotency_key(value: str | None) -> str:
    if value is None or value == "":
        raise Problem(400, "idempotency-key-header", "Missing Idempotency-Key header")
    if len(value) > 40 or FORBIDDEN.search(value):
        raise Problem(
            400,
            "idempotency-key-header",
            "Invalid Idempotency-Key header: 1 to 40 characters, none of '#', '?', '/' or '\\'",
        )
    return value


@dataclass(frozen=True)
class Stored:
    fingerprint: str
    status: int
    body: bytes
    media_type: str | None
    created: float


def fingerprint(method: str, path: str, body: bytes) -> str:
    """Method, path and the JSON body in canonical form (key order and whitespace do not matter)."""
    try:
        canonical = json.dumps(json.loads(body), sort_keys=True, separators=(",", ":")).encode() if body else b""
    except ValueError:
        canonical = body
    return hashlib.sha256(method.encode() + b" " + path.encode() + b"\n" + canonical).hexdigest()


class IdempotencyStore:
    def __init__(self, ttl_seconds: float | None = None) -> None:
        # (MSN, key) -> the first response
        self.entries: dict[tuple[str, str], Stored] = {}
        self.ttl = ttl_seconds
        self.replays = 0
        self.conflicts = 0

    def lookup(self, msn: str, key: str, print_: str, now: float) -> Stored | None:
        entry = self.entries.get((msn, key))
        if entry is None:
            return None
        if self.ttl is not None and now - entry.created > self.ttl:
            del self.entries[(msn, key)]
            return None
        if entry.fingerprint != print_:
            self.conflicts += 1
            raise Problem(
                409,
                "idempotency-conflict",
                "The specified Idempotency-Key has previously been used in a different context",
            )
        self.replays += 1
        return entry

    def store(self, msn: str, key: str, entry: Stored) -> None:
        self.entries[(msn, key)] = entry

    def clear(self) -> None:
        self.entries.clear()
