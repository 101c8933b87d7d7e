"""The Vipps client's shared state in Redis: the token cache store and the rate budgets.

`worker.vipps` knows only its `KeyValue` and `BudgetBackend` protocols; these are Redis implementations
of them (matching by shape, so the store imports nothing of the client), and every process and pod
shares one token and one count per budget. ``VippsClient(settings, **redis_backends(client))`` wires both.
"""

from __future__ import annotations

import uuid
from typing import Any

import redis

from worker.store import scripts
from worker.store.replies import text


class RedisKeyValue:
    """The shared token cache and its refresh lock."""

    def __init__(self, client: redis.Redis) -> None:
        self._redis = client
        self._delete_if_equal = scripts.register(client, "delete_if_equal")

    def get(self, key: str) -> str | None:
        value = self._redis.get(key)
        return None if value is None else text(value)

    def set(self, key: str, value: str, ttl_ms: int) -> None:
        self._redis.set(key, value, px=max(1, ttl_ms))

    def set_if_absent(self, key: str, value: str, ttl_ms: int) -> bool:
        return bool(self._redis.set(key, value, px=max(1, ttl_ms), nx=True))

    def delete_if_equal(self, key: str, value: str) -> bool:
        """Delete only if the value is still the one we saw: a late invalidation never removes a newer token."""
        return bool(self._delete_if_equal(keys=[key], args=[value]))


class RedisBudgetBackend:
    """One sorted set of send times per budget key, trimmed and counted atomically (``take_slot.lua``)."""

    def __init__(self, client: redis.Redis) -> None:
        self._take = scripts.register(client, "take_slot", "take_one_slot")

    def take(self, key: str, limit: int, window: float) -> float:
        wait_ms = int(self._take(keys=[key], args=[limit, int(window * 1000), uuid.uuid4().hex]))
        return wait_ms / 1000


def redis_backends(client: redis.Redis) -> dict[str, Any]:
    """``VippsClient(settings, **redis_backends(client))``: token cache and budgets shared through ``client``."""
    return {"token_store": RedisKeyValue(client), "budget_backend": RedisBudgetBackend(client)}
