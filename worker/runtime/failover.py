"""Redis failovers, as Sentinel reports them: the primary's address, watched by one process per pod.

The worker's HTTP process runs this (one per pod, so each failover is counted once per pod). Asking
Sentinel also drops the idle connections to a primary that is no longer it, so the next call finds the
new one. A plain ``REDIS_URL`` (a managed Redis's failover endpoint) has no address to watch.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import redis

from worker.runtime.loops import Loop
from worker.store.connection import primary_address, through_sentinel

log = logging.getLogger("worker.runtime.failover")

CHECK_SECONDS = 1.0


class PrimaryWatch:
    def __init__(self, client: redis.Redis, on_change: Callable[[], None]) -> None:
        self.client = client
        self.on_change = on_change
        self.address: tuple[str, int] | None = None

    def check(self) -> bool:
        """Ask where the primary is; True (and ``on_change``) when it moved since the last answer."""
        address = primary_address(self.client)
        moved = address is not None and self.address is not None and address != self.address
        if moved:
            log.warning("the Redis primary changed (failover)",
                        extra={"previous": _shown(self.address), "primary": _shown(address)})
            self.on_change()
        if address is not None:
            self.address = address
        return moved

    def loop(self) -> Loop | None:
        """The background loop that keeps checking, or None for a client of a plain URL."""
        if not through_sentinel(self.client):
            return None
        return Loop("redis-primary", CHECK_SECONDS, self.check)


def _shown(address: tuple[str, int] | None) -> str | None:
    return f"{address[0]}:{address[1]}" if address else None
