"""The support console over HTTP (starlette's TestClient): login, sessions, CSRF, headers, and a viewer
finding an agreement through the real simulator and the worker's Redis."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from starlette.testclient import TestClient
from typer.testing import CliRunner

from tests.stack import Simulator
from worker.cli.app import app
from worker.console.app import Console, build
from worker.console.finder import Finder
from worker.console.settings import ConsoleSettings
from worker.console.users import Users, hash_password
from worker.core.control import Control
from worker.runtime.settings import get_settings
from worker.store.keys import Keys
from worker.vipps import VippsClient, load_settings, models
from worker.vipps.merchants import load_merchants

PASSWORD = "correct horse battery staple"
PAGES = ["/", "/search?q=agr_x", "/agreements/agr_x", "/agreements/agr_x/charges/chr_x"]


@pytest.fixture(scope="module")
def stack(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    redis.Redis.from_url(redis_url).flushdb()
    simulator = Simulator()
    users = tmp_path_factory.mktemp("console") / "users.yaml"
    users.write_text(json.dumps({"users": [{"username": "vera", "password_hash": hash_password(PASSWORD),
                                            "role": "viewer"}]}))
    vipps = load_settings(base_url=simulator.url)
    with VippsClient(vipps) as client:
        draft = client.draft_agreement(models.DraftAgreementV3(
            pricing=models.PricingRequest(amount=29900), interval=models.TimePeriod(unit="MONTH", count=1),
            merchantAgreementUrl="https://example.com/a", merchantRedirectUrl="https://example.com/r",
            productName="Gym <b>Plus</b>"), idempotency_key="console-test")
    settings = ConsoleSettings(console_users_file=users, console_session_secret="s" * 40,
                               console_cookie_secure=False, console_login_attempts=5)
    ops = Control(redis_url, settings, load_merchants(vipps))
    try:
        yield {"settings": settings, "ops": ops, "agreement_id": draft.agreementId}
    finally:
        ops.close()
        simulator.stop()
        redis.Redis.from_url(redis_url).flushdb()


def client_of(stack: dict[str, Any], **changes: Any) -> TestClient:
    settings = stack["settings"].model_copy(update=changes) if changes else stack["settings"]
    for key in stack["ops"].redis.scan_iter(Keys().login_failures("*")):  # each test starts with no failures
        stack["ops"].redis.delete(key)
    console = Console(settings, Users.read(settings.console_users_file), Finder(stack["ops"]))
    return TestClient(build(console), follow_redirects=False)


def csrf(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found, page
    return found.group(1)


def log_in(client: TestClient, password: str = PASSWORD, username: str = "vera") -> Any:
    token = csrf(client.get("/login").text)
    return client.post("/login", data={"csrf": token, "username": username, "password": password})


def test_every_page_without_a_session_redirects_to_login(stack: dict[str, Any]) -> None:
    client = client_of(stack)
    for path in PAGES:
        answer = client.get(path)
        assert answer.status_code == 303 and answer.headers["location"] == "/login", path


def test_a_wrong_password_is_refused(stack: dict[str, Any]) -> None:
    client = client_of(stack)
    answer = log_in(client, "wrong")
    assert answer.status_code == 401 and "Wrong username or password" in answer.text
    assert client.get("/").status_code == 303
    assert PASSWORD not in answer.text and "wrong" not in answer.text


def test_login_is_rate_limited_per_username(stack: dict[str, Any]) -> None:
    client = client_of(stack)
    codes = [log_in(client, "wrong", username="mallory").status_code for _ in range(6)]
    assert codes == [401] * 5 + [429]


def test_login_is_rate_limited_per_client(stack: dict[str, Any]) -> None:
    client = client_of(stack)
    codes = [log_in(client, "wrong", username=f"user{n}").status_code for n in range(6)]
    assert codes[-1] == 429
    assert log_in(client).status_code == 429  # even the right password, from this client, for now


def test_session_fixation_the_session_changes_at_login(stack: dict[str, Any]) -> None:
    client = client_of(stack)
    before = client.get("/login")
    cookie_before = before.cookies["console"]
    answer = client.post("/login", data={"csrf": csrf(before.text), "username": "vera", "password": PASSWORD})
    assert answer.status_code == 303 and answer.headers["location"] == "/"
    after = answer.cookies["console"]
    sid = [json.loads(base64.urlsafe_b64decode(c.split(".")[0] + "==")) for c in (cookie_before, after)]
    assert sid[0]["sid"] != sid[1]["sid"] and sid[0]["csrf"] != sid[1]["csrf"]
    assert sid[1]["user"] == "vera" and "password" not in json.dumps(sid[1])
    fixed = client_of(stack)
    fixed.cookies.set("console", cookie_before)
    assert fixed.get("/").status_code == 303  # the pre-login session is no login


def test_a_tampered_cookie_is_refused(stack: dict[str, Any]) -> None:
    client = client_of(stack)
    assert log_in(client).status_code == 303
    body, mac = client.cookies["console"].split(".")
    claims = json.loads(base64.urlsafe_b64decode(body + "=="))
    forged = base64.urlsafe_b64encode(json.dumps(claims | {"role": "operator"}).encode()).rstrip(b"=").decode()
    client.cookies.set("console", f"{forged}.{mac}")
    assert client.get("/").status_code == 303


def test_an_expired_session_is_refused(stack: dict[str, Any]) -> None:
    client = client_of(stack)
    assert log_in(client).status_code == 303
    assert client.get("/").status_code == 200
    console = Console(stack["settings"], Users({}), Finder(stack["ops"]))
    session = console.signer.load(client.cookies["console"])
    assert session is not None
    client.cookies.set("console", console.signer.dump(session.__class__(**{**session.__dict__, "expires": 1.0})))
    assert client.get("/").status_code == 303


def test_a_post_without_its_csrf_token_is_refused(stack: dict[str, Any]) -> None:
    client = client_of(stack)
    client.get("/login")
    assert client.post("/login", data={"username": "vera", "password": PASSWORD}).status_code == 403
    assert client.post("/login", data={"csrf": "forged", "username": "vera", "password": PASSWORD}).status_code == 403
    assert log_in(client).status_code == 303
    assert client.post("/logout", data={}).status_code == 403
    assert client.get("/").status_code == 200  # still logged in
    assert client.post("/logout", data={"csrf": csrf(client.get("/").text)}).status_code == 303


def test_security_headers_and_cookie_flags(stack: dict[str, Any]) -> None:
    client = client_of(stack, console_cookie_secure=True)
    for answer in (client.get("/login"), client.get("/"), client.get("/static/console.css")):
        csp = answer.headers["content-security-policy"]
        assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert answer.headers["referrer-policy"] == "no-referrer"
    cookie = client.get("/login").headers["set-cookie"]
    assert cookie.startswith("__Host-console=")
    for flag in ("HttpOnly", "Secure", "SameSite=strict", "Path=/"):
        assert flag.lower() in cookie.lower()
    assert "style=" not in client.get("/login").text and "<script" not in client.get("/login").text


def test_a_reflected_probe_in_the_search_box_comes_back_escaped(stack: dict[str, Any]) -> None:
    client = client_of(stack)
    log_in(client)
    probe = '"><script>alert(1)</script>'
    answer = client.get("/search", params={"q": probe})
    assert answer.status_code == 200 and "<script>alert(1)" not in answer.text
    assert "&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;" in answer.text


def test_a_viewer_finds_an_agreement_by_id_and_sees_its_page(stack: dict[str, Any]) -> None:
    client = client_of(stack)
    assert log_in(client).status_code == 303
    agreement_id = stack["agreement_id"]
    found = client.get("/search", params={"q": agreement_id})
    assert found.status_code == 200 and f'href="/agreements/{agreement_id}"' in found.text and "PENDING" in found.text
    page = client.get(f"/agreements/{agreement_id}")
    assert page.status_code == 200 and "PENDING" in page.text and "299.00 NOK" in page.text
    assert "Gym &lt;b&gt;Plus&lt;/b&gt;" in page.text and "Fetched from Vipps at" in page.text
    nothing = client.get("/search", params={"q": "chr_nosuchcharge"})
    assert nothing.status_code == 200 and "Nothing found" in nothing.text


def test_a_copy_of_the_cookie_is_refused_after_logout(stack: dict[str, Any]) -> None:
    client, thief = client_of(stack), client_of(stack)
    assert log_in(client).status_code == 303
    thief.cookies.set("console", client.cookies["console"])
    assert thief.get("/").status_code == 200
    assert client.post("/logout", data={"csrf": csrf(client.get("/").text)}).status_code == 303
    assert thief.get("/").status_code == 303 and thief.get("/").headers["location"] == "/login"
    assert log_in(client).status_code == 303 and client.get("/").status_code == 200  # a new login works


def test_console_revoke_ends_every_session_of_the_user_and_a_new_login_works(
        stack: dict[str, Any], redis_url: str) -> None:
    first, second = client_of(stack), client_of(stack)
    for client in (first, second):
        assert log_in(client).status_code == 303 and client.get("/").status_code == 200
    get_settings.cache_clear()  # the CLI reads REDIS_URL once per process
    result = CliRunner().invoke(app, ["console", "revoke", "vera"], env={"REDIS_URL": redis_url})
    get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    assert "Every console session of vera issued until now is refused." in result.output
    assert [c.get("/").status_code for c in (first, second)] == [303, 303]
    assert log_in(first).status_code == 303 and first.get("/").status_code == 200
    assert second.get("/").status_code == 303
    refused = CliRunner().invoke(app, ["console", "revoke", " "], env={"REDIS_URL": redis_url})
    assert refused.exit_code == 1 and "give the user's name" in refused.output
