"""Access tokens: issued by ``POST /accesstoken/get`` against the configured credentials, checked on
every Recurring call together with the subscription key. Expiry follows the simulated clock."""

from __future__ import annotations

import base64
import hmac
import json
import secrets
from typing import Any

from worker.simulator.config import SimulatorConfig
from worker.simulator.problems import Problem


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _same(given: str | None, expected: str) -> bool:
    """Constant-time comparison; bytes, because compare_digest refuses non-ASCII str (a header may hold any)."""
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


class TokenStore:
    def __init__(self, config: SimulatorConfig) -> None:
        self.config = config
        self.tokens: dict[str, float] = {}
        self._key = secrets.token_bytes(32)

    def issue(self, headers: Any, now: float) -> dict[str, str]:
        self._check_subscription_key(headers)
        if not (
            _same(headers.get("client_id"), self.config.secret("client_id"))
            and _same(headers.get("client_secret"), self.config.secret("client_secret"))
        ):
            raise Problem(401, "not-authorized", "Invalid client_id or client_secret")
        msn = headers.get("merchant-serial-number")
        if msn is not None and msn != self.config.msn:
            raise Problem(401, "not-authorized", "The Merchant-Serial-Number is not valid for these credentials")
        lifetime = self.config.token_lifetime_seconds
        expires = now + lifetime
        token = self._mint(now, expires)
        self.tokens[token] = expires
        if len(self.tokens) > 10_000:
            self.tokens = {t: e for t, e in self.tokens.items() if e > now}
        return {
            "token_type": "Bearer",
            "expires_in": str(lifetime),
            "ext_expires_in": "0",
            "expires_on": str(int(expires)),
            "not_before": str(int(now)),
            "resource": "00000002-0000-0000-c000-000000000000",
            "access_token": token,
        }

    def _check_subscription_key(self, headers: Any) -> None:
        subscription_key = headers.get("ocp-apim-subscription-key")
        if subscription_key is None:
            raise Problem(401, "not-authorized", "Access denied due to missing subscription key")
        if not _same(subscription_key, self.config.secret("subscription_key")):
            raise Problem(401, "not-authorized", "Access denied due to invalid subscription key")

    def _mint(self, now: float, expires: float) -> str:
        # Shaped like the JWT Vipps issues; only this store can vouch for it.
        header = _b64(json.dumps({"typ": "JWT", "alg": "HS256"}).encode())
        claims = {
            "aud": "00000002-0000-0000-c000-000000000000",
            "iss": "vipps-simulator",
            "iat": int(now),
            "nbf": int(now),
            "exp": int(expires),
            "msn": self.config.msn,
            "jti": secrets.token_hex(16),
        }
        payload = _b64(json.dumps(claims).encode())
        signature = _b64(hmac.new(self._key, f"{header}.{payload}".encode(), "sha256").digest())
        return f"{header}.{payload}.{signature}"

    def check(self, headers: Any, now: float) -> None:
        """Subscription key, Bearer token, MSN; raises the matching problem."""
        self._check_subscription_key(headers)
        authorization = headers.get("authorization")
        if authorization is None:
            raise Problem(401, "not-authorized", "Missing Authorization header")
        scheme, _, token = authorization.partition(" ")
        # Postman sends "bearer"; the real gateway accepts it.
        if scheme.lower() != "bearer" or not token:
            raise Problem(401, "not-authorized", "Authorization must be 'Bearer <access token>'")
        expires = self.tokens.get(token.strip())
        if expires is None:
            raise Problem(401, "not-authorized", "The access token is invalid")
        if expires <= now:
            raise Problem(401, "not-authorized", "The access token has expired")
        msn = headers.get("merchant-serial-number")
        if msn is not None and msn != self.config.msn:
            raise Problem(403, "invalid-sale-unit", "The Merchant-Serial-Number does not match the access token")
