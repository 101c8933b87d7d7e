"""Authentication as an `httpx.Auth`: the access token and subscription key on every call, and
one retry with a fresh token after a 401.

The token comes from a `TokenCache` shared through the client's store (one refresher at a
time) under a key made from a digest of the whole credential set, so a changed or wrong
credential never finds a token fetched with another.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Generator, Mapping

import httpx

from worker.vipps import models
from worker.vipps import operations as ops
from worker.vipps.config import VippsSettings
from worker.vipps.errors import AuthError, error_for_response, parse_problem
from worker.vipps.observer import VippsObserver
from worker.vipps.responses import parse, transport_error
from worker.vipps.store import KeyValue
from worker.vipps.token import DEFAULT_LIFETIME, Token, TokenCache, TokenGrant

OPERATION = "vipps_operation"  # request extension naming the operation, for the observer


def token_cache_key(settings: VippsSettings, prefix: str) -> str:
    """Where the token of these credentials is kept: a digest of all of them, never the values.

    Partner keys leave the MSN out: their one token serves every merchant of the set."""
    credentials = [
        settings.secret("client_id"),
        settings.secret("client_secret"),
        settings.secret("subscription_key"),
        "" if settings.partner_keys else settings.msn or "",
        settings.url,
    ]
    digest = hashlib.sha256(json.dumps(credentials).encode()).hexdigest()[:32]
    return f"{prefix}:vipps:token:{digest}"


class TokenEndpoint:
    """``POST /accesstoken/get`` with the client's credentials; remembers whether Vipps refused them."""

    def __init__(
        self, http: httpx.Client, settings: VippsSettings, observer: VippsObserver, system_headers: Mapping[str, str]
    ) -> None:
        self._http = http
        self._settings = settings
        self._observer = observer
        self._system_headers = dict(system_headers)
        if settings.partner_keys:  # the token is the partner's, for all its merchants
            self._system_headers.pop("Merchant-Serial-Number", None)
        self.refused = False  # the last answer was 400/401/403; a transient failure leaves it as it was

    def __call__(self) -> TokenGrant:
        op = ops.ACCESS_TOKEN
        headers = {
            "client_id": self._settings.secret("client_id"),
            "client_secret": self._settings.secret("client_secret"),
            "Ocp-Apim-Subscription-Key": self._settings.secret("subscription_key"),
            **self._system_headers,
        }
        started = time.perf_counter()
        try:
            response = self._http.request(op.method, op.path, headers=headers)
        except httpx.TransportError as exc:
            self._observer.request_finished(op.id, None, time.perf_counter() - started, None)
            raise transport_error(op.id, exc, False)[0] from None
        elapsed = time.perf_counter() - started
        status = response.status_code
        if status != 200:
            error = error_for_response(op.id, status, response.content, response.headers.get("retry-after"))
            self._observer.request_finished(op.id, status, elapsed, error.problem_type)
            if status in (400, 401, 403):
                self.refused = True
                raise AuthError(
                    f"AccessToken: credentials refused (HTTP {status})",
                    operation=op.id,
                    status=status,
                    problem=error.problem,
                )
            raise error
        self._observer.request_finished(op.id, status, elapsed, None)
        self.refused = False
        grant = parse(op.id, response, models.AccessTokenResponse)
        lifetime = grant.expires_in
        if lifetime is None and grant.expires_on is not None:
            lifetime = grant.expires_on - time.time()
        return TokenGrant(grant.access_token.get_secret_value(), lifetime or DEFAULT_LIFETIME)


class BearerAuth(httpx.Auth):
    """Bearer token and subscription key on each call; after a 401, the same request once more with a
    fresh token (same body, same Idempotency-Key)."""

    requires_response_body = True  # read the 401 (freeing its connection) before fetching a new token

    def __init__(
        self,
        http: httpx.Client,
        settings: VippsSettings,
        store: KeyValue,
        *,
        key_prefix: str,
        observer: VippsObserver,
        system_headers: Mapping[str, str],
    ) -> None:
        self._endpoint = TokenEndpoint(http, settings, observer, system_headers)
        self._tokens = TokenCache(
            store,
            token_cache_key(settings, key_prefix),
            self._endpoint,
            margin=settings.token_refresh_margin,
            observer=observer,
            lock_ttl=settings.connect_timeout + settings.write_timeout + settings.read_timeout + 1.0,
        )
        self._subscription_key = settings.secret("subscription_key")
        self._observer = observer
        self._unauthorized = False  # a call met 401 even with a freshly fetched token

    @property
    def credentials_refused(self) -> bool:
        """Vipps refused these credentials at the last token fetch, or the last call, even after a refresh."""
        return self._endpoint.refused or self._unauthorized

    def token(self) -> Token:
        return self._tokens.get()

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        token = self._tokens.get()
        response = yield self._authorized(request, token)
        if response.status_code == 401:
            operation = str(request.extensions.get(OPERATION, "unknown"))
            problem = parse_problem(401, response.content).type
            self._observer.request_finished(operation, 401, response.elapsed.total_seconds(), problem)
            self._observer.retried(operation, "unauthorized")
            self._tokens.invalidate(token)
            response = yield self._authorized(request, self._tokens.get())
        self._unauthorized = response.status_code == 401

    def _authorized(self, request: httpx.Request, token: Token) -> httpx.Request:
        request.headers["Authorization"] = f"Bearer {token.value}"
        request.headers["Ocp-Apim-Subscription-Key"] = self._subscription_key
        return request
