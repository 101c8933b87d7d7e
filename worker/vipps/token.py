"""The access token, cached and shared by every thread, process and pod.

The token lives in the store (Redis) as JSON {access_token, expires_at, refresh_at}
under a key that names no secret; each process reads it there before every use and keeps
only a decoded copy. It is refreshed `margin` seconds before expiry by
one caller at a time, holding a short lock (SET NX PX); the others keep using the
still-valid token or, when there is none, wait briefly for the refresher.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from worker.vipps.errors import TransientError, VippsError
from worker.vipps.observer import VippsObserver
from worker.vipps.store import KeyValue

log = logging.getLogger("worker.vipps")

SHARED_CHECK_SECONDS = 1.0  # how long a local copy of the shared token is used before comparing again
DEFAULT_LIFETIME = 3600.0  # when Vipps gives no lifetime, assume the shorter (test) one


@dataclass(frozen=True)
class TokenGrant:
    """What the token endpoint gave: the token and its lifetime in seconds."""

    access_token: str = field(repr=False)
    lifetime: float


@dataclass(frozen=True)
class Token:
    value: str = field(repr=False)
    expires_at: float  # epoch seconds (wall clock, shared across pods)
    refresh_at: float
    raw: str = field(repr=False, compare=False)  # exactly what the store holds, for compare-and-delete

    def usable(self, now: float, safety: float) -> bool:
        return now < self.expires_at - safety


def _decode(raw: str | None) -> Token | None:
    if raw is None:
        return None
    try:
        data = json.loads(raw)
        return Token(
            value=str(data["access_token"]),
            expires_at=float(data["expires_at"]),
            refresh_at=float(data.get("refresh_at", data["expires_at"])),
            raw=raw,
        )
    except (ValueError, KeyError, TypeError):
        return None


class TokenCache:
    def __init__(
        self,
        store: KeyValue,
        key: str,
        fetch: Callable[[], TokenGrant],
        *,
        margin: float,
        observer: VippsObserver,
        lock_ttl: float = 20.0,
        poll: float = 0.05,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._store = store
        self._key = key
        self._lock_key = f"{key}:refresh-lock"
        self._fetch = fetch
        self._margin = margin
        self._observer = observer
        self._lock_ttl = lock_ttl
        self._poll = poll
        self._clock = clock
        self._sleep = sleep
        self._local: Token | None = None
        self._checked_at = float("-inf")  # when the local copy was last compared with the shared token
        self._thread_lock = threading.Lock()

    def _safety(self, token: Token) -> float:
        # Do not send a token that may expire while the request is in flight.
        return min(5.0, max(0.0, (token.expires_at - token.refresh_at) / 2))

    def get(self) -> Token:
        # Look at the shared token first: another process may have replaced ours after a 401, and our
        # local copy would then meet one too. Not on every call, though: one Redis read per Vipps call is a
        # measurable share of a command's cost, so a local copy checked within SHARED_CHECK_SECONDS is used
        # as it is (a 401 in that window is still answered by a refresh and one retry).
        local = self._local
        now = self._clock()
        if local is not None and now < local.refresh_at and now - self._checked_at < SHARED_CHECK_SECONDS:
            return local
        raw = self._store.get(self._key)
        self._checked_at = now
        if local is not None and raw == local.raw and now < local.refresh_at:
            return local
        shared = self._adopt(raw)
        if shared is not None:
            return shared
        with self._thread_lock:  # one refresher per process; other threads queue here briefly
            raw = self._store.get(self._key)
            return self._adopt(raw) or self._refresh(_decode(raw))

    def _adopt(self, raw: str | None) -> Token | None:
        """The shared token, kept as our local copy, if it is not yet due for refresh."""
        shared = _decode(raw)
        if shared is None or self._clock() >= shared.refresh_at:
            return None
        self._local = shared
        return shared

    def invalidate(self, used: Token) -> None:
        """Forget `used` (after a 401), unless someone has already replaced it."""
        self._checked_at = float("-inf")
        if self._local is not None and self._local.value == used.value:
            self._local = None
        self._store.delete_if_equal(self._key, used.raw)

    def _refresh(self, current: Token | None) -> Token:
        deadline = self._clock() + self._lock_ttl + 1.0
        while True:
            lock_id = uuid.uuid4().hex
            if self._store.set_if_absent(self._lock_key, lock_id, int(self._lock_ttl * 1000)):
                try:
                    return self._refresh_holding_lock(current)
                finally:
                    self._store.delete_if_equal(self._lock_key, lock_id)
            # Someone else refreshes: keep using a still-valid token, else wait for theirs.
            now = self._clock()
            if current is not None and current.usable(now, self._safety(current)):
                self._local = current
                return current
            if now >= deadline:
                raise TransientError(
                    "AccessToken: timed out waiting for another caller's token refresh",
                    operation="AccessToken",
                    retry_after=1.0,
                )
            self._sleep(self._poll)
            current = _decode(self._store.get(self._key))
            if current is not None and current.usable(self._clock(), self._safety(current)):
                self._local = current
                return current

    def _refresh_holding_lock(self, current: Token | None) -> Token:
        shared = _decode(self._store.get(self._key))
        if shared is not None and self._clock() < shared.refresh_at:
            self._local = shared  # refreshed by someone else between our read and the lock
            return shared
        current = shared or current
        try:
            grant = self._fetch()
        except VippsError:
            self._observer.token_refreshed(False)
            now = self._clock()
            if current is not None and current.usable(now, self._safety(current)):
                log.warning(
                    "access token refresh failed; using the current token until it expires",
                    extra={"operation": "AccessToken"},
                )
                self._local = current
                return current
            raise
        now = self._clock()
        lifetime = max(1.0, grant.lifetime)
        margin = min(self._margin, lifetime / 4)  # a 300 s margin would eat a short-lived token
        expires_at = now + lifetime
        raw = json.dumps(
            {"access_token": grant.access_token, "expires_at": expires_at, "refresh_at": expires_at - margin}
        )
        self._store.set(self._key, raw, int(lifetime * 1000))
        token = Token(value=grant.access_token, expires_at=expires_at, refresh_at=expires_at - margin, raw=raw)
        self._local = token
        self._observer.token_refreshed(True)
        return token
