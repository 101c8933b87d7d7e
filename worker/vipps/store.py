"""A tiny key-value store for the shared token cache: the protocol and its in-process version.

The Redis version, shared across processes and pods, is `worker.store.vipps_state.RedisKeyValue`.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol


class KeyValue(Protocol):
    def get(self, key: str) -> str | None: ...

    def set(self, key: str, value: str, ttl_ms: int) -> None: ...

    def set_if_absent(self, key: str, value: str, ttl_ms: int) -> bool: ...

    def delete_if_equal(self, key: str, value: str) -> bool:
        """Delete ``key`` only while it still holds ``value``, so a late delete never drops a newer value."""
        ...


class MemoryKeyValue:
    """The `KeyValue` of one process (tests, single-process tools); same semantics as the Redis one."""

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
