"""The dead-letter store: every command or message that will not be carried out.

Records are kept in Redis (a hash of JSON plus a time index) for at least
``DEAD_LETTER_RETENTION_DAYS`` (30 by default), listable, replayable and purgeable
from the CLI. dramatiq's own XQ is only a secondary copy.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any

import redis

from worker.store.clock import now_ms
from worker.store.keys import Keys
from worker.store.replies import texts


@dataclass
class DeadLetter:
    id: str
    reason: str                     # invalid_command, vipps_problem, retries_exhausted, undecodable, unknown_actor, ...
    detail: str
    at_ms: int
    command_id: str | None = None
    command_type: str | None = None
    queue: str | None = None
    actor: str | None = None
    attempts: int | None = None
    problem: dict[str, Any] | None = None
    payload: Any = None             # the command (or the raw message text when it could not be decoded)
    replayed_ms: list[int] = field(default_factory=list)
    replayed_as: list[str] = field(default_factory=list)    # command ids of the replays, in order
    msn: str | None = None          # the merchant, when the command named a configured one

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"), default=str)

    @classmethod
    def from_json(cls, raw: str | bytes) -> DeadLetter:
        return cls(**json.loads(raw))


def dead_letter_id(*parts: object) -> str:
    return hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).hexdigest()[:24]


class DeadLetterStore:
    def __init__(self, client: redis.Redis, keys: Keys, *, retention_days: int) -> None:
        self.redis = client
        self.keys = keys
        self.retention_ms = retention_days * 86_400_000

    def add(self, letter: DeadLetter) -> bool:
        """Keep a dead letter; the same id twice keeps the first. Returns True if new."""
        pipe = self.redis.pipeline(transaction=True)
        pipe.hsetnx(self.keys.dead_letters, letter.id, letter.to_json())
        pipe.zadd(self.keys.dead_letter_index, {letter.id: letter.at_ms}, nx=True)
        added, _ = pipe.execute()
        return bool(added)

    def get(self, letter_id: str) -> DeadLetter | None:
        raw = self.redis.hget(self.keys.dead_letters, letter_id)
        return DeadLetter.from_json(raw) if raw else None

    def find(self, *, limit: int = 100, reason: str | None = None, command_type: str | None = None,
             since_ms: int | None = None, command_id: str | None = None,
             msn: str | None = None) -> list[DeadLetter]:
        ids = texts(self.redis.zrevrangebyscore(self.keys.dead_letter_index, "+inf", since_ms or "-inf"))
        out: list[DeadLetter] = []
        for start in range(0, len(ids), 500):
            for raw in self.redis.hmget(self.keys.dead_letters, ids[start:start + 500]):
                if raw is None:
                    continue
                letter = DeadLetter.from_json(raw)
                if (reason and letter.reason != reason) or (command_type and letter.command_type != command_type) \
                        or (command_id and letter.command_id != command_id) or (msn and letter.msn != msn):
                    continue
                out.append(letter)
                if len(out) >= limit:
                    return out
        return out

    def mark_replayed(self, letter: DeadLetter, command_id: str | None = None) -> None:
        letter.replayed_ms.append(now_ms())
        if command_id is not None:
            letter.replayed_as.append(command_id)
        self.redis.hset(self.keys.dead_letters, letter.id, letter.to_json())

    def remove(self, letter_ids: list[str]) -> int:
        if not letter_ids:
            return 0
        pipe = self.redis.pipeline(transaction=True)
        pipe.hdel(self.keys.dead_letters, *letter_ids)
        pipe.zrem(self.keys.dead_letter_index, *letter_ids)
        removed, _ = pipe.execute()
        return int(removed)

    def count(self) -> int:
        return int(self.redis.zcard(self.keys.dead_letter_index))

    def count_by_msn(self) -> dict[str | None, int]:
        """How many dead letters each merchant has (None: those naming no configured merchant)."""
        counts: dict[str | None, int] = {}
        for _, raw in self.redis.hscan_iter(self.keys.dead_letters, count=500):
            try:
                msn = json.loads(raw).get("msn")
            except (ValueError, AttributeError):
                msn = None
            key = msn if isinstance(msn, str) else None
            counts[key] = counts.get(key, 0) + 1
        return counts

    def prune(self) -> int:
        """Forget records older than the retention period."""
        cutoff = now_ms() - self.retention_ms
        old = texts(self.redis.zrangebyscore(self.keys.dead_letter_index, "-inf", cutoff))
        return self.remove(old)

