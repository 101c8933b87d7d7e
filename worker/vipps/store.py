"""A tiny key-value store for the shared token cache: Redis across pods, or in-process memory."""

from __future__ import annotations

import threading
import time
from typing import Protocol

import redis

# Delete only if the value is still the one we saw, so a late invalidation never removes
# a token another caller has just stored.
_DELETE_IF_EQUAL = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class KeyValue(Protocol):
    def get(self, key: str) -> str | None: ...

    def set(self, key: str, value: str, ttl_ms: int) -> None: ...

    def set_if_absent(self, key: str, value: str, ttl_ms: int) -> bool: ...

    def delete_if_equal(self, key: str, value: str) -> bool: ...


def _text(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.decode("utf-8")
    return str(value)


class RedisKeyValue:
    def __init__(self, client: redis.Redis) -> None:
        self._redis = client
        self._delete_if_equal = client.register_script(_DELETE_IF_EQUAL)

    def get(self, key: str) -> str | None:
        return _text(self._redis.get(key))

    def set(self, key: str, value: str, ttl_ms: int) -> None:
        self._redis.set(key, value, px=max(1, ttl_ms))

    def set_if_absent(self, key: str, value: str, ttl_ms: int) -> bool:
        return bool(self._redis.set(key, value, px=max(1, ttl_ms), nx=True))

    def delete_if_equal(self, key: str, value: str) -> bool:
        return bool(self._delete_if_equal(keys=[key], args=[value]))


class MemoryKeyValue:
    """Same semantics as RedisKeyValue for one process (tests, single-process tools)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._data: dict[str, tuple[str, float]] = {}

    def _live(self, key: str) -> str | None:
        item = self._data.get(key)
        if item is None:
            return None
        if item[1] <= time.monotonic():
            del self._data[key]
            return None
        return item[0]

    def get(self, key: str) -> str | None:
        with self._lock:
            return self._live(key)

    def set(self, key: str, value: str, ttl_ms: int) -> None:
        with self._lock:
            self._data[key] = (value, time.monotonic() + max(1, ttl_ms) / 1000)

    def set_if_absent(self, key: str, value: str, ttl_ms: int) -> bool:
        with self._lock:
            if self._live(key) is not None:
                return False
            self._data[key] = (value, time.monotonic() + max(1, ttl_ms) / 1000)
            return True

    def delete_if_equal(self, key: str, value: str) -> bool:
        with self._lock:
            if self._live(key) == value:
                del self._data[key]
                return True
            return False
