"""Failed console logins, counted in Redis per username and per client address: one count for all replicas.

A fixed window per name: at most ``limit`` failed attempts within ``window_seconds`` of the first. A name over
its limit is refused before the password is checked, so a blocked attempt costs no hashing; a successful login
is not counted, so colleagues behind one address do not lock each other out. Names are hashed into the key
(a username is input); the key expires with its window.
"""

from __future__ import annotations

import hashlib

import redis

from worker.store.keys import Keys


class FailedLogins:
    def __init__(self, client: redis.Redis, keys: Keys, *, limit: int, window_seconds: int) -> None:
        self.redis = client
        self.keys = keys
        self.limit = limit
        self.window_seconds = window_seconds

    def _key(self, name: str) -> str:
        return self.keys.login_failures(hashlib.sha256(name.encode()).hexdigest()[:32])

    def blocked(self, *names: str) -> bool:
        """Whether any name has used up its failed attempts in its current window."""
        counts = self.redis.mget([self._key(name) for name in names])
        return any(count is not None and int(count) >= self.limit for count in counts)

    def failed(self, *names: str) -> None:
        """Count a failed attempt under each name (the first one of a window starts it)."""
        pipe = self.redis.pipeline(transaction=True)
        for name in names:
            key = self._key(name)
            pipe.set(key, 0, ex=self.window_seconds, nx=True)
            pipe.incr(key)
        pipe.execute()
