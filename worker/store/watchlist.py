"""The watchlist as kept in Redis: what is followed, when it is checked next, and what was last seen.

Two sorted sets (agreements, charges) score each member by its next check (ms); a hash holds the
JSON of what was last seen; a settled index remembers when a resource stopped changing, so what
was seen of it can be forgotten after the retention period. Changes are written by the ledger's
and the observation's scripts (``watch.lua``), together with the events they cause.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import redis
from pydantic_core import to_json

from worker.store import scripts
from worker.store.clock import now_ms
from worker.store.keys import Keys
from worker.store.schedules import Schedules

REMOVE = -1        # forget the resource
SETTLE = -2        # stop polling, but remember what was seen (later commands compare against it)


@dataclass(frozen=True)
class WatchChange:
    member: str
    next_check_ms: int          # REMOVE, SETTLE, or when to check next
    state: dict[str, Any] | None = None


def change_args(changes: Sequence[WatchChange]) -> list[str | bytes | int]:
    """The changes as ``watch.lua`` takes them: their count, then (member, next check, state JSON) each."""
    args: list[str | bytes | int] = [len(changes)]
    for change in changes:
        args += [change.member, change.next_check_ms, to_json(change.state or {})]
    return args


def agreement_member(agreement_id: str) -> str:
    return f"agreement:{agreement_id}"


def charge_member(agreement_id: str, charge_id: str) -> str:
    return f"charge:{agreement_id}:{charge_id}"


class Watchlist:
    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self.redis = client
        self.keys = keys
        self._schedules = Schedules(client)
        self._prune_settled = scripts.register(client, "prune_settled")

    def state(self, member: str) -> dict[str, Any] | None:
        """What was last seen of a watched (or settled) resource."""
        raw = self.redis.hget(self.keys.watch_state, member)
        if not raw:
            return None
        state: dict[str, Any] = json.loads(raw)
        return state

    def take_due(self, *, limit: int, lease_ms: int) -> list[str]:
        """Members due for a check, agreements first; pushed on by ``lease_ms`` so other pollers skip them."""
        now = now_ms()
        return [member for key in (self.keys.watch, self.keys.watch_charges)
                for member in self._schedules.take_due(key, now=now, limit=limit, push_ms=lease_ms)]

    def check_in(self, member: str, seconds: float) -> None:
        """Check a member again in ``seconds`` (after a failed check), if it is still watched."""
        self.redis.zadd(self.keys.watch_for(member), {member: now_ms() + int(seconds * 1000)}, xx=True)

    def drop(self, member: str) -> None:
        """Stop checking a member nothing is known of."""
        self.redis.zrem(self.keys.watch_for(member), member)

    def prune_settled(self, *, older_than_ms: int, limit: int = 1000) -> int:
        """Forget settled resources (a charge that reached its final status) after the retention period.

        A later observation of one starts afresh; its transition events keep their ids, so a repeat is
        one more delivery of an event consumers have seen, not a new one.
        """
        return int(self._prune_settled(keys=[self.keys.watch_settled, self.keys.watch_state],
                                       args=[older_than_ms, limit]))

    def sizes(self) -> tuple[int, int]:
        """(agreements, charges) watched."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.zcard(self.keys.watch)
        pipe.zcard(self.keys.watch_charges)
        agreements, charges = pipe.execute()
        return int(agreements), int(charges)
