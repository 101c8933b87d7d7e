"""Session cookies: the session itself, signed (HMAC-SHA256) with ``CONSOLE_SESSION_SECRET``.

The cookie holds the session id, the user and role, the CSRF token, when it was issued and its expiry; the
browser keeps it, and the server keeps only the exceptions (store.revocations: logged out, or all of a user's
ended), so a cookie is valid until it expires or is revoked: ``CONSOLE_SESSION_MINUTES`` bounds that.
A visitor who is not logged in gets an anonymous session too, so the login form has a CSRF token; logging
in replaces it with a new session id and a new token (no fixation).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import asdict, dataclass, replace
from typing import Any

from worker.console.users import Role

# An anonymous session only carries the login form's CSRF token.
ANONYMOUS_SECONDS = 30 * 60


@dataclass(frozen=True)
class Session:
    sid: str
    csrf: str
    expires: float
    user: str | None = None
    role: str | None = None
    issued: float = 0.0

    @property
    def logged_in(self) -> bool:
        return self.user is not None

    def may(self, role: Role) -> bool:
        return self.role is not None and Role[self.role] >= role


def new_session(seconds: float, user: str | None = None, role: Role | None = None) -> Session:
    """A session with a fresh id and CSRF token."""
    now = time.time()
    return Session(sid=secrets.token_urlsafe(24), csrf=secrets.token_urlsafe(24), expires=now + seconds,
                   user=user, role=role.name if role else None, issued=now)


def anonymous() -> Session:
    return new_session(ANONYMOUS_SECONDS)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def derived_key(key: bytes, purpose: str) -> bytes:
    """A key of its own for each kind of signed cookie, so one kind cannot be passed off as another."""
    return hmac.new(key, purpose.encode(), hashlib.sha256).digest()


class Sealer:
    """A JSON object signed with HMAC-SHA256: the browser can read it but not change it."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    def _mac(self, body: str) -> str:
        return _b64(hmac.new(self._key, body.encode(), hashlib.sha256).digest())

    def seal(self, data: dict[str, Any]) -> str:
        body = _b64(json.dumps(data, separators=(",", ":")).encode())
        return f"{body}.{self._mac(body)}"

    def unseal(self, cookie: str | None) -> dict[str, Any] | None:
        """The object the cookie holds, when its signature is ours; else None."""
        if not cookie or cookie.count(".") != 1:
            return None
        body, mac = cookie.split(".")
        if not hmac.compare_digest(mac.encode(), self._mac(body).encode()):  # bytes: a str must be ASCII
            return None
        try:
            data = json.loads(_unb64(body))
        except ValueError:
            return None
        return data if isinstance(data, dict) else None


class Signer(Sealer):
    def dump(self, session: Session) -> str:
        return self.seal(asdict(session))

    def load(self, cookie: str | None, now: float | None = None) -> Session | None:
        """The session the cookie holds, when its signature is ours and it has not expired; else None."""
        data = self.unseal(cookie)
        if data is None:
            return None
        try:
            session = Session(**data)
        except TypeError:
            return None
        if session.expires <= (time.time() if now is None else now):
            return None
        return session


def expired(session: Session) -> Session:
    """The same session, expired (for tests and logout)."""
    return replace(session, expires=0)
