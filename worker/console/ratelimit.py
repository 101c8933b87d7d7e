"""Login attempts, counted per username and per client address, in this process's memory.

A fixed window per key: at most ``limit`` failed attempts within ``window`` seconds. A key over its limit is
refused before the password is checked, so a blocked attempt costs no hashing; a successful login is not
counted, so colleagues behind one address do not lock each other out. Kept in memory: with several console replicas each
counts its own (a limit of N allows N per replica), and a restart forgets the counts.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class LoginLimiter:
    def __init__(self, limit: int, window: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.window = window
        self._clock = clock
        self._lock = threading.Lock()
        self._counts: dict[str, tuple[float, int]] = {}

    def blocked(self, *keys: str) -> bool:
        """Whether any key has used up its failed attempts in the current window."""
        now = self._clock()
        with self._lock:
            self._forget_old(now)
            return any(self._counts.get(key, (now, 0))[1] >= self.limit for key in keys)

    def failed(self, *keys: str) -> None:
        """Count a failed attempt under each key."""
        now = self._clock()
        with self._lock:
            self._forget_old(now)
            for key in keys:
                start, count = self._counts.get(key, (now, 0))
                self._counts[key] = (start, count + 1)

    def _forget_old(self, now: float) -> None:
        """Drop windows that have ended, so memory stays bounded by recent attempts."""
        for key in [k for k, (start, _) in self._counts.items() if now - start >= self.window]:
            del self._counts[key]
