"""Access tokens: issued by ``POST /accesstoken/get`` to one key set of the merchants registry (a merchant's
own or a partner's), and checked on every call together with the subscription key, which must be that same
set's. Expiry follows the simulated clock. Which MSN a call may act for is the registry's rule (``merchants``).
"""

from __future__ import annotations

import base64
import hmac
import json
import secrets
from typing import Any

from worker.simulator.merchants import KeySet, Merchants, same
from worker.simulator.problems import Problem


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class TokenStore:
    def __init__(self, merchants: Merchants, lifetime_seconds: int) -> None:
        self.merchants = merchants
        self.lifetime = lifetime_seconds
        # token -> (expiry, the key set it was issued to)
        self.tokens: dict[str, tuple[float, KeySet]] = {}
        self._key = secrets.token_bytes(32)

    def issue(self, headers: Any, now: float) -> dict[str, str]:
        subscription_key = self._subscription_key(headers)
        keys = self.merchants.login(headers.get("client_id"), headers.get("client_secret"))
        if keys is None:
            raise Problem(401, "not-authorized", "Invalid client_id or client_secret")
        _check_same_set(keys, subscription_key)
        # Partner keys need no MSN here: one token serves every merchant they act for.
        msn = headers.get("merchant-serial-number")
        if msn is not None and msn not in keys.msns:
            raise Problem(401, "not-authorized", "The Merchant-Serial-Number is not valid for these credentials")
        expires = now + self.lifetime
        token = self._mint(now, expires, keys)
        self.tokens[token] = (expires, keys)
        if len(self.tokens) > 10_000:
            self.tokens = {t: grant for t, grant in self.tokens.items() if grant[0] > now}
        return {
            "token_type": "Bearer",
            "expires_in": str(self.lifetime),
            "ext_expires_in": "0",
            "expires_on": str(int(expires)),
            "not_before": str(int(now)),
            "resource": "00000002-0000-0000-c000-000000000000",
            "access_token": token,
        }

    def _subscription_key(self, headers: Any) -> str:
        subscription_key: str | None = headers.get("ocp-apim-subscription-key")
        if subscription_key is None:
            raise Problem(401, "not-authorized", "Access denied due to missing subscription key")
        if not self.merchants.knows_subscription_key(subscription_key):
            raise Problem(401, "not-authorized", "Access denied due to invalid subscription key")
        return subscription_key

    def _mint(self, now: float, expires: float, keys: KeySet) -> str:
        # Shaped like the JWT Vipps issues; only this store can vouch for it.
        header = _b64(json.dumps({"typ": "JWT", "alg": "HS256"}).encode())
        claims = {
            "aud": "00000002-0000-0000-c000-000000000000",
            "iss": "vipps-simulator",
            "iat": int(now),
            "nbf": int(now),
            "exp": int(expires),
            **({"msn": keys.own_msn} if keys.own_msn is not None else {}),
            "jti": secrets.token_hex(16),
        }
        payload = _b64(json.dumps(claims).encode())
        signature = _b64(hmac.new(self._key, f"{header}.{payload}".encode(), "sha256").digest())
        return f"{header}.{payload}.{signature}"

    def check(self, headers: Any, now: float) -> KeySet:
        """Subscription key and Bearer token; the key set the token was issued to, or the matching problem."""
        subscription_key = self._subscription_key(headers)
        authorization = headers.get("authorization")
        if authorization is None:
            raise Problem(401, "not-authorized", "Missing Authorization header")
        token = _bearer(authorization)
        if token is None:
            raise Problem(401, "not-authorized", "Authorization must be 'Bearer <access token>'")
        grant = self.tokens.get(token)
        if grant is None:
            raise Problem(401, "not-authorized", "The access token is invalid")
        expires, keys = grant
        if expires <= now:
            raise Problem(401, "not-authorized", "The access token has expired")
        _check_same_set(keys, subscription_key)
        return keys

    def holder(self, headers: Any) -> KeySet | None:
        """The key set a request's token was issued to, valid or not (for the request record); never raises."""
        token = _bearer(headers.get("authorization") or "")
        grant = self.tokens.get(token) if token else None
        return grant[1] if grant else None


def _bearer(authorization: str) -> str | None:
    scheme, _, token = authorization.partition(" ")
    # Postman sends "bearer"; the real gateway accepts it.
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def _check_same_set(keys: KeySet, subscription_key: str) -> None:
    if not same(subscription_key, keys.subscription_key):
        raise Problem(401, "not-authorized", "The subscription key does not belong to these credentials")
