"""The Vipps client's shared state in Redis: the token cache store and the rate budgets.

`worker.vipps` knows only the `KeyValue` and `BudgetBackend` protocols; these are their Redis
implementations, so every process and pod shares one token and one count per budget.
``VippsClient(settings, **redis_backends(client))`` wires both in.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import TypedDict

import redis

from worker.vipps.budgets import BudgetBackend
from worker.vipps.store import KeyValue

LUA_DIR = Path(__file__).with_name("lua")
# take_slot.lua only defines the function, so other scripts (the ledger's claim) can prepend it to their own.
TAKE_SLOT_CALL = "\nreturn take_slot(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3])\n"


def lua(name: str) -> str:
    """The source of a script in the lua/ folder next to this module."""
    return (LUA_DIR / name).read_text(encoding="utf-8")


def _text(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.decode("utf-8")
    return str(value)


class RedisKeyValue:
    """`KeyValue` on Redis: the shared token cache and its refresh lock."""

    def __init__(self, client: redis.Redis) -> None:
        self._redis = client
        self._delete_if_equal = client.register_script(lua("delete_if_equal.lua"))

    def get(self, key: str) -> str | None:
        return _text(self._redis.get(key))

    def set(self, key: str, value: str, ttl_ms: int) -> None:
        self._redis.set(key, value, px=max(1, ttl_ms))

    def set_if_absent(self, key: str, value: str, ttl_ms: int) -> bool:
        return bool(self._redis.set(key, value, px=max(1, ttl_ms), nx=True))

    def delete_if_equal(self, key: str, value: str) -> bool:
        return bool(self._delete_if_equal(keys=[key], args=[value]))


class RedisBudgetBackend:
    """`BudgetBackend` on Redis: one sorted set of send times per budget key, trimmed and counted atomically."""

    def __init__(self, client: redis.Redis) -> None:
        self._take = client.register_script(lua("take_slot.lua") + TAKE_SLOT_CALL)

    def take(self, key: str, limit: int, window: float) -> float:
        wait_ms = int(self._take(keys=[key], args=[limit, int(window * 1000), uuid.uuid4().hex]))
        return wait_ms / 1000


class VippsBackends(TypedDict):
    """The keyword arguments of `VippsClient` that carry its shared state."""

    token_store: KeyValue
    budget_backend: BudgetBackend


def redis_backends(client: redis.Redis) -> VippsBackends:
    """``VippsClient(settings, **redis_backends(client))``: token cache and budgets shared through ``client``."""
    return VippsBackends(token_store=RedisKeyValue(client), budget_backend=RedisBudgetBackend(client))
