"""Login through the company's identity provider with OpenID Connect: the authorization-code flow with PKCE.

``GET /login/oidc`` makes a state, a nonce and a PKCE verifier, keeps them in a short-lived signed cookie and
sends the browser to the provider. ``GET /login/oidc/callback`` checks the state, exchanges the code at the
token endpoint (client secret and verifier), checks the ID token (signature against the provider's keys, iss,
aud, exp, iat, nonce), maps the roles claim to a role and issues a new session.

The flow cookie is SameSite=Lax, not Strict like the session's: the provider's redirect back is a cross-site
navigation, which a Strict cookie does not come along with. For the same reason the callback answers with a
page that moves on to ``/`` itself rather than a redirect: a redirect would still be part of the navigation
the provider started, and the new Strict session cookie would not be sent with it.

Discovery and keys are fetched with httpx and kept for an hour; the keys are fetched again at once when an ID
token names a key id they lack (the provider rotated its keys). The endpoints are sync, so starlette runs
their blocking HTTP in its thread pool. Nothing here logs or shows a code, a token or the client secret.
"""

from __future__ import annotations

import hmac
import logging
import re
import secrets
import threading
import time
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import httpx
from authlib.oauth2.auth import ClientAuth
from authlib.oauth2.rfc6749.parameters import prepare_grant_uri, prepare_token_request
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from authlib.oidc.core import CodeIDToken
from joserfc import jwt
from joserfc.errors import InvalidKeyIdError, JoseError
from joserfc.jwk import KeySet
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from worker.console import pages
from worker.console.sessions import Sealer, derived_key, new_session
from worker.console.settings import CALLBACK_PATH, OidcSettings, checked_url
from worker.console.users import Role

if TYPE_CHECKING:
    from worker.console.app import Console

log = logging.getLogger("worker.console")

START_PATH = "/login/oidc"
FLOW_SECONDS = 10 * 60
CACHE_SECONDS = 60 * 60
# Clock skew allowed between the provider and the console when checking exp and iat.
LEEWAY_SECONDS = 60
TIMEOUT = httpx.Timeout(10.0)
SCOPE = "openid profile email"
# Signatures with the provider's published keys only: never "none", never a MAC keyed with the client secret.
ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")
MAX_USER_CHARS = 255


class Refused(Exception):
    """A login refused: ``reason`` for the log, ``shown`` for the person; neither holds a code or a token."""

    def __init__(self, reason: str, shown: str = "The identity provider's answer could not be accepted.") -> None:
        super().__init__(reason)
        self.reason, self.shown = reason, shown


class Unreachable(Exception):
    """The provider cannot be reached, or answers what no provider should (its discovery, its keys)."""


@dataclass(frozen=True)
class Flow:
    """One login in progress, kept in the browser's flow cookie."""

    state: str
    nonce: str
    verifier: str
    expires: float


@dataclass(frozen=True)
class Identity:
    user: str
    role: Role


def _short(text: object, limit: int = 60) -> str:
    """A provider's error code for the log: printable, bounded."""
    return re.sub(r"[^A-Za-z0-9_.:' -]", "?", str(text))[:limit]


def role_of(groups: object, role_map: dict[str, Role]) -> Role | None:
    """The highest role any of the groups maps to; ``groups`` is the roles claim, a list of strings or a string."""
    names = [groups] if isinstance(groups, str) else groups if isinstance(groups, list) else []
    roles = [role_map[name] for name in names if isinstance(name, str) and name in role_map]
    return max(roles) if roles else None


def user_of(claims: dict[str, Any]) -> str | None:
    """The name the session shows and the log records: preferred_username, else email, else sub (printable only,
    so a name cannot start a line of its own in the log)."""
    for name in ("preferred_username", "email", "sub"):
        value = claims.get(name)
        if isinstance(value, str) and value.strip() and len(value) <= MAX_USER_CHARS and value.isprintable():
            return value.strip()
    return None


class Provider:
    """The identity provider as the console uses it: discovery and keys cached, codes exchanged, ID tokens checked."""

    def __init__(self, settings: OidcSettings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._metadata: dict[str, Any] | None = None
        self._metadata_at = 0.0
        self._keys: KeySet | None = None
        self._keys_at = 0.0

    @staticmethod
    def _get_json(url: str, what: str) -> dict[str, Any]:
        try:
            response = httpx.get(url, timeout=TIMEOUT, headers={"accept": "application/json"})
            data = response.json() if response.status_code == 200 else None
        except (httpx.HTTPError, ValueError) as exc:
            raise Unreachable(f"the provider's {what} cannot be fetched: {type(exc).__name__}") from None
        if not isinstance(data, dict):
            raise Unreachable(f"the provider's {what} answered HTTP {response.status_code} without a JSON object")
        return data

    def metadata(self) -> dict[str, Any]:
        """The provider's discovery document, checked: our issuer, and https endpoints."""
        with self._lock:
            if self._metadata is not None and time.monotonic() - self._metadata_at < CACHE_SECONDS:
                return self._metadata
            found = self._get_json(self.settings.discovery_url, "discovery")
            if found.get("issuer") != self.settings.issuer:
                raise Unreachable("the provider's discovery names another issuer than CONSOLE_OIDC_ISSUER")
            for name in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
                try:
                    checked_url(str(found.get(name) or ""), f"the discovery's {name}")
                except ValueError as exc:
                    raise Unreachable(str(exc)) from None
            self._metadata, self._metadata_at = found, time.monotonic()
            return found

    def keys(self, refresh: bool = False) -> KeySet:
        """The provider's signing keys (JWKS); fetched again when ``refresh`` or an hour old."""
        uri = self.metadata()["jwks_uri"]
        with self._lock:
            if not refresh and self._keys is not None and time.monotonic() - self._keys_at < CACHE_SECONDS:
                return self._keys
            try:
                keys = KeySet.import_key_set(self._get_json(uri, "keys"))  # type: ignore[arg-type]
            except (JoseError, ValueError, TypeError, KeyError):
                raise Unreachable("the provider's keys are not a JWK set") from None
            self._keys, self._keys_at = keys, time.monotonic()
            return keys

    def authorization_url(self, flow: Flow) -> str:
        s = self.settings
        url: str = prepare_grant_uri(self.metadata()["authorization_endpoint"], s.client_id, "code", s.redirect_url,
                                     SCOPE, flow.state, nonce=flow.nonce,
                                     code_challenge=create_s256_code_challenge(flow.verifier),
                                     code_challenge_method="S256")
        return url

    def exchange(self, code: str, verifier: str) -> dict[str, Any]:
        """The token endpoint's answer for the code; ``Refused`` when it says no."""
        metadata, s = self.metadata(), self.settings
        methods = metadata.get("token_endpoint_auth_methods_supported") or ["client_secret_basic"]
        method = "client_secret_post" if "client_secret_basic" not in methods else "client_secret_basic"
        body = prepare_token_request("authorization_code", code=code, redirect_uri=s.redirect_url,
                                     code_verifier=verifier)
        headers = {"content-type": "application/x-www-form-urlencoded", "accept": "application/json"}
        url, headers, body = ClientAuth(s.client_id, s.client_secret, method).prepare(
            "POST", metadata["token_endpoint"], headers, body)
        try:
            response = httpx.post(url, content=body, headers=headers, timeout=TIMEOUT)
            answer = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise Unreachable(f"the token endpoint cannot be used: {type(exc).__name__}") from None
        if not isinstance(answer, dict):
            raise Unreachable(f"the token endpoint answered HTTP {response.status_code} without a JSON object")
        if response.status_code != 200 or "error" in answer:
            raise Refused(f"the token endpoint refused the code: {_short(answer.get('error'))} "
                          f"(HTTP {response.status_code})")
        return answer

    def _verified(self, id_token: str, nonce: str, access_token: object) -> dict[str, Any]:
        listed = self.metadata().get("id_token_signing_alg_values_supported") or ["RS256"]
        algorithms = [a for a in listed if a in ALGORITHMS]
        try:
            try:
                token = jwt.decode(id_token, self.keys(), algorithms=algorithms)
            except InvalidKeyIdError:
                token = jwt.decode(id_token, self.keys(refresh=True), algorithms=algorithms)
            options = {"iss": {"essential": True, "value": self.settings.issuer},
                       "aud": {"essential": True, "value": self.settings.client_id}}
            params = {"nonce": nonce, "client_id": self.settings.client_id,
                      "access_token": access_token if isinstance(access_token, str) else None}
            claims = CodeIDToken(token.claims, token.header, options, params)
            claims.validate(leeway=LEEWAY_SECONDS)
        except JoseError as exc:
            raise Refused(f"the ID token is not valid: {_short(exc, 120)}") from None
        return dict(claims)

    def identity(self, tokens: dict[str, Any], nonce: str) -> Identity:
        """Who the checked ID token names, with the role their groups map to; ``Refused`` otherwise."""
        id_token = tokens.get("id_token")
        if not isinstance(id_token, str):
            raise Refused("the token endpoint sent no ID token")
        claims = self._verified(id_token, nonce, tokens.get("access_token"))
        user = user_of(claims)
        if user is None:
            raise Refused("the ID token names no user (preferred_username, email or sub)")
        role = role_of(claims.get(self.settings.roles_claim), self.settings.role_map)
        if role is None:
            raise Refused(f"no group of user {user!r} maps to a role (claim {self.settings.roles_claim!r})",
                          "Your account is in no group that may use the support console.")
        return Identity(user, role)


class OidcLogin:
    """The two endpoints, with the console's sessions and metrics."""

    def __init__(self, console: Console, provider: Provider) -> None:
        self.console, self.provider = console, provider
        self.sealer = Sealer(derived_key(console.settings.session_secret, "console oidc flow"))
        self.cookie = f"{console.cookie}-oidc"

    def _flow(self, request: Request) -> Flow | None:
        data = self.sealer.unseal(request.cookies.get(self.cookie))
        try:
            flow = Flow(**data) if data is not None else None
        except TypeError:
            return None
        return flow if flow is not None and flow.expires > time.time() else None

    def _failed(self, exc: Refused | Unreachable) -> Response:
        self.console.metrics.login("oidc", "failure")
        if isinstance(exc, Refused):
            log.warning("console login refused (oidc): %s", exc.reason)
            page, status = pages.problem(None, "Login refused", exc.shown), 403
        else:
            log.warning("console login failed (oidc): %s", exc)
            page, status = pages.problem(None, "Login failed", "The identity provider cannot be reached; "
                                         "try again later."), 502
        return self._forget(HTMLResponse(page, status_code=status))

    def _forget(self, response: Response) -> Response:
        secure = self.console.settings.console_cookie_secure
        response.delete_cookie(self.cookie, path="/", secure=secure, httponly=True, samesite="lax")
        return response

    def start(self, request: Request) -> Response:
        session = self.console.session(request)
        if session is not None and session.logged_in:
            return RedirectResponse("/", status_code=303)
        flow = Flow(state=secrets.token_urlsafe(24), nonce=secrets.token_urlsafe(24),
                    verifier=secrets.token_urlsafe(48), expires=time.time() + FLOW_SECONDS)
        try:
            response = RedirectResponse(self.provider.authorization_url(flow), status_code=303)
        except Unreachable as exc:
            return self._failed(exc)
        response.set_cookie(self.cookie, self.sealer.seal(asdict(flow)), max_age=FLOW_SECONDS, path="/",
                            httponly=True, secure=self.console.settings.console_cookie_secure, samesite="lax")
        return response

    def _identity(self, request: Request) -> Identity:
        flow, params = self._flow(request), request.query_params
        if flow is None:
            raise Refused("no login in progress in this browser (no flow cookie, or it expired)",
                          "This login has expired or was started elsewhere; log in again.")
        if not hmac.compare_digest(params.get("state", "").encode(), flow.state.encode()):
            raise Refused("the state does not match this browser's login")
        if "error" in params:
            raise Refused(f"the provider answered {_short(params['error'])}",
                          "The identity provider did not log you in.")
        code = params.get("code")
        if not code:
            raise Refused("the provider's answer holds no code")
        return self.provider.identity(self.provider.exchange(code, flow.verifier), flow.nonce)

    def callback(self, request: Request) -> Response:
        try:
            identity = self._identity(request)
        except (Refused, Unreachable) as exc:
            return self._failed(exc)
        log.info("console login: %s (%s, oidc)", identity.user, identity.role.name)
        self.console.metrics.login("oidc", "success")
        # A new session id and CSRF token: nothing from before the login carries over (no fixation).
        fresh = new_session(self.console.settings.console_session_minutes * 60, identity.user, identity.role)
        return self._forget(self.console.with_session(HTMLResponse(pages.signed_in()), fresh))


def routes(console: Console) -> list[Route]:
    """The OpenID Connect endpoints, when ``CONSOLE_OIDC_ISSUER`` is set; none otherwise."""
    if console.settings.oidc is None:
        return []
    login = OidcLogin(console, Provider(console.settings.oidc))
    return [Route(START_PATH, login.start, methods=["GET"]), Route(CALLBACK_PATH, login.callback, methods=["GET"])]


class HideCallbackQuery(logging.Filter):
    """For uvicorn's access log: the callback's query holds the authorization code, so it is left out."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(_without_code(arg) if isinstance(arg, str) else arg for arg in record.args)
        return True


def _without_code(text: str) -> str:
    """A request path with the callback's query left out (a prefix before the path, from a proxy, stays)."""
    at = text.find(CALLBACK_PATH + "?")
    return text[:at] + CALLBACK_PATH + "?..." if at >= 0 else text
