"""A small OpenID provider for tests: a starlette app on a free loopback port, served by uvicorn in a thread.

It publishes discovery and its keys (an RSA key made per run), approves every authorization request at once
as ``user`` (a dict of claims) and redirects back with a code, and at its token endpoint checks the code, the
redirect URL, the client secret (HTTP Basic) and the PKCE verifier (S256) before it answers with an RS256 ID
token. Knobs make it misbehave the way a test needs: ``claims`` overrides ID token claims (None removes one),
``sign_with`` signs with another key, ``error`` answers the authorization request with an OAuth error, and
``rotate()`` replaces its key. ``hits`` counts requests per path; ``issued`` holds every code and token it gave.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote, urlencode

import uvicorn
from authlib.oidc.core.util import create_half_hash
from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

CLIENT_ID = "support-console"
CLIENT_SECRET = "fake-provider-client-secret-0123456789"
REDIRECT_URL = "https://console.example/login/oidc/callback"


def new_key(kid: str) -> RSAKey:
    return RSAKey.generate_key(2048, parameters={"kid": kid, "use": "sig", "alg": "RS256"}, private=True)


@dataclass(frozen=True)
class Grant:
    client_id: str
    redirect_uri: str
    challenge: str
    nonce: str | None


class FakeProvider:
    def __init__(self) -> None:
        self.key = new_key("key-1")
        self.reset()
        app = Starlette(routes=[
            Route("/.well-known/openid-configuration", self.discovery), Route("/jwks", self.jwks),
            Route("/authorize", self.authorize), Route("/token", self.token, methods=["POST"]),
        ])
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.port: int = sock.getsockname()[1]
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [sock]}, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline, "the fake provider did not start"
            time.sleep(0.01)

    def reset(self) -> None:
        """Back to a well-behaved provider with a user in support-agents (the key stays)."""
        self.user: dict[str, Any] = {"sub": "u-1001", "preferred_username": "alice", "email": "alice@example.com",
                                     "groups": ["support-agents", "everyone"]}
        self.claims: dict[str, Any] = {}
        self.sign_with: RSAKey | None = None
        self.error: str | None = None
        self.published = [self.key]
        self.grants: dict[str, Grant] = {}
        self.hits: Counter[str] = Counter()
        self.issued: list[str] = []
        self.authorize_queries: list[str] = []

    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)

    def rotate(self) -> None:
        """A new signing key under a new key id; only the new one is published."""
        self.key = new_key(f"key-{secrets.token_hex(4)}")
        self.published = [self.key]

    async def discovery(self, request: Request) -> Response:
        self.hits["discovery"] += 1
        return JSONResponse({
            "issuer": self.issuer, "authorization_endpoint": f"{self.issuer}/authorize",
            "token_endpoint": f"{self.issuer}/token", "jwks_uri": f"{self.issuer}/jwks",
            "response_types_supported": ["code"], "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"], "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic"],
        })

    async def jwks(self, request: Request) -> Response:
        self.hits["jwks"] += 1
        return JSONResponse(KeySet(list(self.published)).as_dict(private=False))

    async def authorize(self, request: Request) -> Response:
        self.hits["authorize"] += 1
        self.authorize_queries.append(request.url.query)
        q = request.query_params
        if q.get("client_id") != CLIENT_ID or q.get("redirect_uri") != REDIRECT_URL:
            return JSONResponse({"error": "invalid_request"}, status_code=400)  # never redirect to a stranger
        if (q.get("response_type") != "code" or "openid" not in q.get("scope", "").split()
                or q.get("code_challenge_method") != "S256" or not q.get("code_challenge")):
            answer = {"error": "invalid_request"}
        elif self.error:
            answer = {"error": self.error}
        else:
            code = secrets.token_urlsafe(24)
            self.grants[code] = Grant(CLIENT_ID, REDIRECT_URL, q["code_challenge"], q.get("nonce"))
            self.issued.append(code)
            answer = {"code": code}
        return RedirectResponse(f"{REDIRECT_URL}?{urlencode(answer | {'state': q.get('state', '')})}", 302)

    def _client_ok(self, request: Request) -> bool:
        scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return False
        client_id, _, client_secret = base64.b64decode(encoded).decode().partition(":")
        return (unquote(client_id), unquote(client_secret)) == (CLIENT_ID, CLIENT_SECRET)

    async def token(self, request: Request) -> Response:
        self.hits["token"] += 1
        form = {k: v[0] for k, v in parse_qs((await request.body()).decode()).items()}
        if not self._client_ok(request):
            return JSONResponse({"error": "invalid_client"}, status_code=401)
        grant = self.grants.pop(form.get("code", ""), None)  # a code works once
        verifier = form.get("code_verifier", "")
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        if (form.get("grant_type") != "authorization_code" or grant is None
                or form.get("redirect_uri") != grant.redirect_uri or challenge != grant.challenge):
            return JSONResponse({"error": "invalid_grant"}, status_code=400)
        access_token = secrets.token_urlsafe(32)
        id_token = self.id_token(grant, access_token)
        self.issued += [access_token, id_token]
        return JSONResponse({"access_token": access_token, "token_type": "Bearer", "expires_in": 300,
                             "id_token": id_token})

    def id_token(self, grant: Grant, access_token: str) -> str:
        now = int(time.time())
        claims = {"iss": self.issuer, "aud": grant.client_id, "iat": now, "exp": now + 300, "auth_time": now,
                  "nonce": grant.nonce, "at_hash": create_half_hash(access_token, "RS256").decode(), **self.user}
        claims = {k: v for k, v in (claims | self.claims).items() if v is not None}
        key = self.sign_with or self.key
        return jwt.encode({"alg": "RS256", "kid": key.kid}, claims, key)
