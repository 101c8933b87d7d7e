"""Schedules: sorted sets of members scored by when they are due (ms), taken by several processes at once."""

from __future__ import annotations

import redis

from worker.store import scripts
from worker.store.replies import texts


class Schedules:
    """Take due members of a schedule atomically, pushing them on so that other takers skip them meanwhile."""

    def __init__(self, client: redis.Redis) -> None:
        self._take = scripts.register(client, "take_due")

    def take_due(self, schedule: str, *, now: int, limit: int, push_ms: int) -> list[str]:
        return texts(self._take(keys=[schedule], args=[now, limit, now + push_ms]))
