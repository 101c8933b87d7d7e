"""Support console sessions ended before their cookie expires: by logging out, or all of a user's at once.

A console session lives in its signed cookie (console.sessions), which the server cannot take back. This
store is the list of exceptions, kept only as long as a cookie could still be valid: a logged-out session's
id, and per user the time before which every session is refused (someone who left, a stolen laptop).
"""

from __future__ import annotations

import redis

from worker.store.keys import Keys


class Revocations:
    def __init__(self, client: redis.Redis, keys: Keys, *, session_seconds: int) -> None:
        self.redis = client
        self.keys = keys
        self.session_seconds = session_seconds  # the longest a cookie lives: nothing is kept longer

    def end_session(self, sid: str, expires_ms: int, now_ms: int) -> None:
        """Refuse this session from now on (until its cookie expires anyway)."""
        ttl_ms = min(max(expires_ms - now_ms, 1), self.session_seconds * 1000)
        self.redis.set(self.keys.console_session_revoked(sid), 1, px=ttl_ms)

    def end_user(self, user: str, now_ms: int) -> None:
        """Refuse every session of ``user`` issued until now; a later login works."""
        self.redis.set(self.keys.console_user_revoked(user), now_ms, px=self.session_seconds * 1000)

    def allows(self, sid: str, user: str, issued_ms: int) -> bool:
        """Whether a logged-in session may still be used (one round trip)."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.exists(self.keys.console_session_revoked(sid))
        pipe.get(self.keys.console_user_revoked(user))
        ended, user_since = pipe.execute()
        return not ended and (user_since is None or issued_ms > int(user_since))
