"""The console's OpenID Connect login over real HTTP: the console through starlette's TestClient, the browser's
hops to the provider with httpx to a fake provider (tests/oidc_provider.py) on loopback, and back."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

from tests.oidc_provider import CLIENT_ID, CLIENT_SECRET, REDIRECT_URL, FakeProvider, new_key
from worker.console.app import Console, build
from worker.console.finder import Finder
from worker.console.settings import ConsoleSettings, SettingsError, load_settings
from worker.console.users import Users
from worker.core.control import Control
from worker.local.processes import free_port
from worker.store.settings import StoreSettings
from worker.vipps import load_settings as load_vipps_settings
from worker.vipps.merchants import load_merchants

CONSOLE = "https://console.example"
ROLE_MAP = "support-viewers=viewer,support-agents=agent,billing-ops=operator"
SESSION = "__Host-console"


@pytest.fixture(scope="module")
def server() -> Iterator[FakeProvider]:
    provider = FakeProvider()
    try:
        yield provider
    finally:
        provider.stop()


@pytest.fixture
def idp(server: FakeProvider) -> FakeProvider:
    server.reset()
    return server


@pytest.fixture(scope="module")
def ops(redis_url: str) -> Iterator[Control]:
    control = Control(redis_url, StoreSettings(), load_merchants(load_vipps_settings()))
    try:
        yield control
    finally:
        control.close()


def settings_of(issuer: str, **changes: Any) -> ConsoleSettings:
    return ConsoleSettings(**{
        "console_session_secret": "s" * 40, "console_oidc_issuer": issuer, "console_oidc_client_id": CLIENT_ID,
        "console_oidc_client_secret": CLIENT_SECRET, "console_oidc_redirect_url": REDIRECT_URL,
        "console_oidc_role_map": ROLE_MAP, "console_oidc_name": "Company SSO", **changes})


def console_of(ops: Control, settings: ConsoleSettings) -> tuple[TestClient, Console]:
    console = Console(settings, Users({}), Finder(ops))
    return TestClient(build(console), base_url=CONSOLE, follow_redirects=False), console


def sso(client: TestClient, state: str | None = None) -> httpx.Response:
    """The browser's way through the login: to the provider, which approves at once, and back (with ``state``
    put in place of the one the provider sent back, when given)."""
    start = client.get("/login/oidc")
    assert start.status_code == 303, start.text
    at_provider = httpx.get(start.headers["location"], follow_redirects=False)
    assert at_provider.status_code == 302, at_provider.text
    back = at_provider.headers["location"]
    assert back.startswith(f"{CONSOLE}/login/oidc/callback?")
    if state is not None:
        back = re.sub(r"state=[^&]*", f"state={state}", back)
    return client.get(back)


def cookie_body(cookie: str) -> dict[str, Any]:
    body = cookie.split(".")[0]
    data: dict[str, Any] = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    return data


def logins(console: Console, result: str) -> float:
    value = console.metrics.registry.get_sample_value("vipps_billing_console_logins_total",
                                                      {"method": "oidc", "result": result})
    return value or 0.0


def assert_refused(client: TestClient, console: Console, answer: httpx.Response, text: str) -> None:
    assert answer.status_code == 403 and text in answer.text, answer.text
    assert client.get("/").status_code == 303  # not logged in
    assert logins(console, "failure") == 1 and logins(console, "success") == 0


def test_an_agent_logs_in_and_gets_the_role_their_group_maps_to(idp: FakeProvider, ops: Control) -> None:
    client, console = console_of(ops, settings_of(idp.issuer))
    answer = sso(client)
    assert answer.status_code == 200 and 'http-equiv="refresh" content="0; url=/"' in answer.text
    session = cookie_body(client.cookies[SESSION])
    assert session["user"] == "alice" and session["role"] == "agent"
    home = client.get("/")
    assert home.status_code == 200 and "alice (agent)" in home.text
    assert logins(console, "success") == 1 and logins(console, "failure") == 0
    query = idp.authorize_queries[-1]
    assert "code_challenge_method=S256" in query and "nonce=" in query and "state=" in query
    assert CLIENT_SECRET not in query and "code_verifier" not in query
    assert idp.hits["token"] == 1
    cookies = answer.headers.get_list("set-cookie")
    assert any(c.startswith(f"{SESSION}=") and "samesite=strict" in c.lower() for c in cookies)
    assert any(c.startswith(f"{SESSION}-oidc=") and "max-age=0" in c.lower() for c in cookies)  # used once


def test_the_highest_role_wins_and_a_string_claim_is_one_group(idp: FakeProvider, ops: Control) -> None:
    idp.user |= {"preferred_username": None, "groups": ["support-viewers", "billing-ops", "support-agents"]}
    client, _ = console_of(ops, settings_of(idp.issuer))
    assert sso(client).status_code == 200
    assert cookie_body(client.cookies[SESSION]).items() >= {"user": "alice@example.com", "role": "operator"}.items()
    idp.user = {"sub": "u-7", "roles": "support-viewers"}
    client, _ = console_of(ops, settings_of(idp.issuer, console_oidc_roles_claim="roles"))
    assert sso(client).status_code == 200
    assert cookie_body(client.cookies[SESSION]).items() >= {"user": "u-7", "role": "viewer"}.items()


def test_the_session_id_changes_at_login(idp: FakeProvider, ops: Control) -> None:
    client, _ = console_of(ops, settings_of(idp.issuer))
    client.get("/login")
    before = client.cookies[SESSION]
    assert sso(client).status_code == 200
    after = client.cookies[SESSION]
    old, new = cookie_body(before), cookie_body(after)
    assert old["user"] is None and new["user"] == "alice"
    assert old["sid"] != new["sid"] and old["csrf"] != new["csrf"]
    fixed, _ = console_of(ops, settings_of(idp.issuer))
    fixed.cookies.set(SESSION, before)
    assert fixed.get("/").status_code == 303  # the session from before the login is no login


def test_a_user_in_no_mapped_group_is_refused(idp: FakeProvider, ops: Control) -> None:
    idp.user["groups"] = ["marketing", "everyone"]
    client, console = console_of(ops, settings_of(idp.issuer))
    assert_refused(client, console, sso(client), "no group that may use the support console")
    idp.user.pop("groups")
    client, console = console_of(ops, settings_of(idp.issuer))
    assert_refused(client, console, sso(client), "no group that may use the support console")


def test_a_callback_with_a_wrong_state_is_refused(idp: FakeProvider, ops: Control) -> None:
    client, console = console_of(ops, settings_of(idp.issuer))
    assert_refused(client, console, sso(client, state="forged-state"), "Login refused")
    assert idp.hits["token"] == 0  # the code was never used
    stranger, console = console_of(ops, settings_of(idp.issuer))
    start = client.get("/login/oidc")
    back = httpx.get(start.headers["location"]).headers["location"]
    assert_refused(stranger, console, stranger.get(back), "log in again")  # no login started in this browser


def test_an_error_from_the_provider_is_refused(idp: FakeProvider, ops: Control) -> None:
    idp.error = "access_denied"
    client, console = console_of(ops, settings_of(idp.issuer))
    assert_refused(client, console, sso(client), "did not log you in")
    assert idp.hits["token"] == 0


@pytest.mark.parametrize("change", ["another key, same key id", "another key, unknown key id", "wrong audience",
                                    "also for another client", "wrong nonce", "no nonce", "expired",
                                    "wrong issuer", "issued in the future"])
def test_an_id_token_that_does_not_check_out_is_refused(idp: FakeProvider, ops: Control, change: str) -> None:
    now = int(time.time())
    if change == "another key, same key id":
        idp.sign_with = new_key(idp.key.kid or "")
    elif change == "another key, unknown key id":
        idp.sign_with = new_key("key-of-someone-else")
    else:
        claims: dict[str, dict[str, Any]] = {
            "wrong audience": {"aud": "another-client"},
            "also for another client": {"aud": ["another-client"], "azp": CLIENT_ID},
            "wrong nonce": {"nonce": "forged-nonce"}, "no nonce": {"nonce": None},
            "expired": {"iat": now - 900, "exp": now - 600}, "wrong issuer": {"iss": "https://idp.example"},
            "issued in the future": {"iat": now + 900, "exp": now + 1200}}
        idp.claims = claims[change]
    client, console = console_of(ops, settings_of(idp.issuer))
    assert_refused(client, console, sso(client), "Login refused")
    assert idp.hits["token"] == 1
    # An unknown key id sends the console for the keys once more, and no more than once.
    assert idp.hits["jwks"] == (2 if change == "another key, unknown key id" else 1)


def test_discovery_is_cached_and_rotated_keys_are_fetched_again(idp: FakeProvider, ops: Control) -> None:
    client, console = console_of(ops, settings_of(idp.issuer))
    assert sso(client).status_code == 200
    assert (idp.hits["discovery"], idp.hits["jwks"]) == (1, 1)
    client.cookies.clear()
    assert sso(client).status_code == 200
    assert (idp.hits["discovery"], idp.hits["jwks"]) == (1, 1)
    idp.rotate()
    client.cookies.clear()
    assert sso(client).status_code == 200
    assert (idp.hits["discovery"], idp.hits["jwks"]) == (1, 2)
    assert logins(console, "success") == 3


def test_no_code_token_or_secret_reaches_the_log_or_the_page(idp: FakeProvider, ops: Control,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    client, _ = console_of(ops, settings_of(idp.issuer))
    pages = [sso(client).text, client.get("/").text]
    idp.claims = {"aud": "another-client"}
    client.cookies.clear()
    pages.append(sso(client).text)
    assert len(idp.issued) == 6  # two codes, two access tokens, two ID tokens
    # What the test's own browser hops log (httpx, with the callback's query) is the browser's, not the console's.
    logged = "\n".join(r.getMessage() for r in caplog.records
                       if "https://console.example/" not in r.getMessage() and "/authorize?" not in r.getMessage())
    assert "console login: alice (agent, oidc)" in logged and "'aud'" in logged
    for secret in [*idp.issued, CLIENT_SECRET]:
        assert secret not in logged
        assert all(secret not in page for page in pages)


def test_the_login_page_offers_the_ways_that_are_configured(idp: FakeProvider, ops: Control,
                                                            tmp_path: Path) -> None:
    client, _ = console_of(ops, settings_of(idp.issuer))
    page = client.get("/login").text
    assert '<a href="/login/oidc">Log in with Company SSO</a>' in page and 'name="password"' not in page
    users = tmp_path / "users.yaml"
    users.write_text('{"users": []}')
    client, _ = console_of(ops, settings_of(idp.issuer, console_users_file=users))
    page = client.get("/login").text
    assert "Log in with Company SSO" in page and 'name="password"' in page
    client, _ = console_of(ops, settings_of(idp.issuer))
    client.get("/login")
    anonymous = cookie_body(client.cookies[SESSION])
    answer = client.post("/login", data={"csrf": anonymous["csrf"], "username": "a", "password": "b"})
    assert answer.status_code == 403 and "identity provider" in answer.text


def test_an_unreachable_provider_is_a_clear_page(ops: Control) -> None:
    client, console = console_of(ops, settings_of(f"http://127.0.0.1:{free_port()}"))
    answer = client.get("/login/oidc")
    assert answer.status_code == 502 and "cannot be reached" in answer.text
    assert logins(console, "failure") == 1


def test_the_fake_provider_checks_the_client_secret_and_the_verifier(idp: FakeProvider) -> None:
    """The console's successful logins prove it sends both, since this provider refuses a code without them."""
    verifier = "v" * 50
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=")
    query = {"response_type": "code", "client_id": CLIENT_ID, "redirect_uri": REDIRECT_URL, "scope": "openid",
             "state": "s", "code_challenge": challenge.decode(), "code_challenge_method": "S256"}

    def code() -> str:
        location = httpx.get(f"{idp.issuer}/authorize", params=query).headers["location"]
        return re.search(r"code=([^&]+)", location).group(1)  # type: ignore[union-attr]

    def token(auth: tuple[str, str], code_verifier: str) -> int:
        form = {"grant_type": "authorization_code", "code": code(), "redirect_uri": REDIRECT_URL,
                "code_verifier": code_verifier}
        return httpx.post(f"{idp.issuer}/token", data=form, auth=auth).status_code

    assert token((CLIENT_ID, "wrong-secret"), verifier) == 401
    assert token((CLIENT_ID, CLIENT_SECRET), "w" * 50) == 400
    assert token((CLIENT_ID, CLIENT_SECRET), verifier) == 200


@pytest.mark.parametrize(("changes", "message"), [
    ({"console_oidc_client_id": None}, "so CONSOLE_OIDC_CLIENT_ID must be set too"),
    ({"console_oidc_client_secret": None, "console_oidc_redirect_url": None},
     "so CONSOLE_OIDC_CLIENT_SECRET (or _FILE), CONSOLE_OIDC_REDIRECT_URL must be set too"),
    ({"console_oidc_role_map": None}, "so CONSOLE_OIDC_ROLE_MAP must be set too"),
    ({"console_oidc_issuer": "http://idp.example"}, "CONSOLE_OIDC_ISSUER must be an https URL"),
    ({"console_oidc_redirect_url": "https://console.example/callback"},
     "CONSOLE_OIDC_REDIRECT_URL must end in /login/oidc/callback"),
    ({"console_oidc_redirect_url": "http://console.example/login/oidc/callback"},
     "CONSOLE_OIDC_REDIRECT_URL must be an https URL"),
    ({"console_oidc_role_map": "support-agents=agent,billing-ops=admin"}, "CONSOLE_OIDC_ROLE_MAP: entry 2 is not"),
    ({"console_oidc_issuer": None}, "no way to log in: set CONSOLE_USERS_FILE, CONSOLE_OIDC_ISSUER"),
    ({"console_oidc_client_secret": None, "console_oidc_client_secret_file": "/nonexistent/secret"},
     "CONSOLE_OIDC_CLIENT_SECRET_FILE cannot be read"),
])
def test_settings_errors_are_one_clear_line(changes: dict[str, Any], message: str) -> None:
    given = {"console_session_secret": "s" * 40, "console_oidc_issuer": "https://idp.example",
             "console_oidc_client_id": CLIENT_ID, "console_oidc_client_secret": CLIENT_SECRET,
             "console_oidc_redirect_url": REDIRECT_URL, "console_oidc_role_map": ROLE_MAP} | changes
    with pytest.raises(SettingsError) as raised:
        load_settings(**given)
    text = str(raised.value)
    assert message in text and "\n" not in text, text
    assert CLIENT_SECRET not in text and "admin" not in text and "idp.example" not in text


def test_the_client_secret_may_come_from_a_file(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text(CLIENT_SECRET + "\n")
    settings = load_settings(console_session_secret="s" * 40, console_oidc_issuer="https://idp.example/realms/x",
                             console_oidc_client_id=CLIENT_ID, console_oidc_client_secret_file=str(secret),
                             console_oidc_redirect_url=REDIRECT_URL, console_oidc_role_map=ROLE_MAP)
    assert settings.oidc is not None and settings.oidc.client_secret == CLIENT_SECRET
    assert settings.oidc.discovery_url == "https://idp.example/realms/x/.well-known/openid-configuration"
    assert CLIENT_SECRET not in repr(settings.oidc)
