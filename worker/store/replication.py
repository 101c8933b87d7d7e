"""Waiting for replicas: ``WAIT numreplicas timeout`` after a write, on the connection that wrote it.

Redis replicates asynchronously: a write the primary acknowledged may be missing on the replica that
Sentinel (or a managed Redis) promotes. ``WAIT`` holds the caller until that many replicas have every
write made so far on the same connection, so it is sent in the same pipeline as the write (a pooled
client could otherwise ask on another connection and be told about older writes).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import redis


class NotReplicated(Exception):
    """Written on the primary, but fewer replicas than asked for acknowledged it in time: a failover now
    could lose it."""

    def __init__(self, wanted: int, acknowledged: int, timeout_ms: int, written: Sequence[str] = ()) -> None:
        super().__init__(f"written on the Redis primary, but only {acknowledged} of {wanted} replica(s) "
                         f"acknowledged it within {timeout_ms} ms")
        self.wanted = wanted
        self.acknowledged = acknowledged
        self.timeout_ms = timeout_ms
        self.written = list(written)  # what was written, by the writer's ids (message ids, command ids)


@dataclass(frozen=True)
class Replicas:
    """How many replicas a write waits for (0: none) and for how long at most."""

    count: int = 0
    timeout_ms: int = 1000

    def __post_init__(self) -> None:
        if self.count < 0 or self.timeout_ms < 0:
            raise ValueError("replicas and their timeout are >= 0")

    def add_wait(self, pipe: redis.client.Pipeline) -> None:
        """Append the WAIT to a pipeline that holds the writes (nothing when no replica is asked for)."""
        if self.count:
            pipe.wait(self.count, self.timeout_ms)

    def run(self, client: redis.Redis, script: Any, keys: list[Any], args: list[Any]) -> tuple[Any, int | None]:
        """Run a registered script and, with replicas to wait for, WAIT on the connection that ran it (a pooled
        client could ask on another and be told about older writes): (its result, replicas that acknowledged,
        None when not asked)."""
        if not self.count:
            return script(keys=keys, args=args), None
        with client.client() as single:
            result = script(keys=keys, args=args, client=single)
            return result, int(single.wait(self.count, self.timeout_ms))

    def results(self, results: Sequence[Any]) -> tuple[list[Any], int | None]:
        """The pipeline's results without the WAIT's, and how many replicas acknowledged (None: not asked)."""
        if not self.count:
            return list(results), None
        return list(results[:-1]), int(results[-1])

    def check(self, acknowledged: int | None, written: Sequence[str] = ()) -> None:
        """``NotReplicated`` when fewer replicas than asked for acknowledged."""
        if acknowledged is not None and acknowledged < self.count:
            raise NotReplicated(self.count, acknowledged, self.timeout_ms, written)
