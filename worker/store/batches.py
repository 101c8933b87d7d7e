"""Each merchant's charge batch: ``charge.create`` commands parked until the batch endpoint sends them.

A sorted set per merchant of command refs, scored by when they were parked; the commands themselves stay
in the ledger (status ``batched``). ``Ledger.park`` puts one in, ``take`` hands the oldest ones to one
sender under a lease, so several senders (processes, pods) never send the same command at once.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, NamedTuple

import redis

from worker.store import scripts
from worker.store.clock import now_ms
from worker.store.keys import Keys
from worker.store.replies import text


class TakeKeys(NamedTuple):
    batch: str
    inflight: str


class TakeArgs(NamedTuple):
    command_prefix: str
    now: int
    limit: int
    lease: int
    owner: str
    broker: str


@dataclass(frozen=True)
class Taken:
    """A parked command handed to a sender."""

    ref: str
    command: dict[str, Any]
    attempts: int
    first_attempt_ms: int


@dataclass(frozen=True)
class Waiting:
    count: int
    oldest_age_ms: int  # 0 when none waits


class ChargeBatches:
    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self.redis = client
        self.keys = keys
        self._take = scripts.register(client, "take_batch")

    def waiting(self, msns: Iterable[str]) -> dict[str, Waiting]:
        """How many of each merchant's charges wait, and how long their oldest has (one round trip)."""
        msns = list(msns)
        pipe = self.redis.pipeline(transaction=False)
        for msn in msns:
            pipe.zcard(self.keys.charge_batch(msn))
            pipe.zrange(self.keys.charge_batch(msn), 0, 0, withscores=True)
        replies = pipe.execute()
        now = now_ms()
        return {msn: Waiting(int(count), max(0, now - int(oldest[0][1])) if oldest else 0)
                for msn, count, oldest in zip(msns, replies[::2], replies[1::2], strict=True)}

    def take(self, msn: str, *, limit: int, lease_ms: int, owner: str, broker_id: str) -> list[Taken]:
        """The merchant's oldest parked commands, at most ``limit``, now held by ``owner`` until the lease ends."""
        keys = TakeKeys(self.keys.charge_batch(msn), self.keys.inflight)
        args = TakeArgs(self.keys.command(""), now_ms(), limit, lease_ms, owner, broker_id)
        flat = self._take(keys=list(keys), args=list(args))
        return [Taken(text(flat[i]), json.loads(flat[i + 1]), int(flat[i + 2]), int(flat[i + 3]))
                for i in range(0, len(flat), 4)]
