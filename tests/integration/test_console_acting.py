"""Acting from the console over HTTP, carried out by a real worker against the simulator: the confirmation
step, the outcome, the operator and reason in the timeline, the pre-checks, and roles and CSRF on every action."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from starlette.testclient import TestClient

from tests.e2e.clirun import cli, ok_json
from tests.stack import Simulator, Worker
from worker.console.app import Console, build
from worker.console.finder import Finder
from worker.console.settings import ConsoleSettings
from worker.console.users import Users, hash_password
from worker.core.control import Control
from worker.vipps import load_settings
from worker.vipps.merchants import load_merchants

PASSWORD = "correct horse battery staple"
USERS = {"alice": "agent", "victor": "viewer", "olga": "operator"}


@pytest.fixture(scope="module")
def stack(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    redis.Redis.from_url(redis_url).flushdb()
    simulator = Simulator()
    worker = Worker(redis_url, simulator.url)
    tmp = tmp_path_factory.mktemp("acting")
    env = {"REDIS_URL": redis_url, "VIPPS_ENV": "simulator", "VIPPS_BASE_URL": simulator.url}
    console = console_on(redis_url, simulator.url, tmp)
    ops = console.finder.ops
    try:
        report = ok_json(cli("checklist", "--state-file", str(tmp / "state.json"), "--json", env=env))
        yield {"console": console, "env": env, "report": report, "ops": ops, "simulator": simulator}
    finally:
        ops.close()
        worker.stop()
        simulator.stop()
        redis.Redis.from_url(redis_url).flushdb()


def console_on(redis_url: str, simulator_url: str, tmp: Path) -> Console:
    """A console on the worker's Redis and the simulator, with alice (agent), victor (viewer), olga (operator)."""
    users = tmp / "users.yaml"
    users.write_text(json.dumps({"users": [{"username": name, "password_hash": hash_password(PASSWORD), "role": role}
                                           for name, role in USERS.items()]}))
    settings = ConsoleSettings(console_users_file=users, console_session_secret="s" * 40,
                               console_cookie_secure=False, console_action_wait_seconds=30)
    ops = Control(redis_url, settings, load_merchants(load_settings(base_url=simulator_url)))
    return Console(settings, Users.read(users), Finder(ops))


def client_as(console: Console, user: str) -> TestClient:
    client = TestClient(build(console), follow_redirects=False)
    token = csrf(client.get("/login").text)
    assert client.post("/login", data={"csrf": token, "username": user, "password": PASSWORD}).status_code == 303
    return client


def csrf(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found, page
    return found.group(1)


def hidden(page: str) -> dict[str, str]:
    form = page[page.index('<form id="confirm"'):]
    return dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', form[:form.index("</form>")]))


def effects(stack: dict[str, Any], charge_id: str) -> list[dict[str, Any]]:
    """What Vipps (the simulator) did to the charge: read from its record, so no read budget is spent."""
    done: list[dict[str, Any]] = stack["simulator"].effects(charge_id=charge_id)
    return done


def refunded(stack: dict[str, Any], charge_id: str) -> int:
    return sum(e["amount"] or 0 for e in effects(stack, charge_id) if "refund" in e["operation"].lower())


def test_an_agent_refunds_part_of_a_charge_after_confirming_it(stack: dict[str, Any]) -> None:
    agreement_id, charge_id = stack["report"]["agreements"]["active"], stack["report"]["charges"]["charged"]
    path = f"/agreements/{agreement_id}/charges/{charge_id}"
    client = client_as(stack["console"], "alice")
    page = client.get(path)
    assert page.status_code == 200 and '<form id="refund"' in page.text and '<form id="capture"' not in page.text
    before = refunded(stack, charge_id)
    asked = client.post(f"{path}/refund", data={"csrf": csrf(page.text), "amount": "10,50",
                                                "reason": "customer complained, ticket 4711"})
    assert asked.status_code == 200 and "Confirm refund" in asked.text
    assert f"Refund 10.50 NOK of charge {charge_id}" in asked.text and "(1050 øre)" in asked.text
    assert refunded(stack, charge_id) == before  # nothing is sent before it is confirmed
    confirm = hidden(asked.text)
    done = client.post(f"{path}/refund", data=confirm)
    assert done.status_code == 303 and done.headers["location"] == f"/commands/{confirm['command_id']}"
    outcome = client.get(done.headers["location"])
    assert re.search(r'<p id="outcome" class="ok">succeeded</p>', outcome.text), outcome.text
    assert "charge.refunded" in outcome.text and "customer complained, ticket 4711" in outcome.text
    assert refunded(stack, charge_id) == before + 1050
    # The same confirmation posted again is the same command: the worker does not refund twice.
    again = client.post(f"{path}/refund", data=confirm)
    assert again.status_code == 303 and again.headers["location"] == done.headers["location"]
    assert refunded(stack, charge_id) == before + 1050
    timeline = client.get(path).text
    assert "alice / customer complained, ticket 4711" in timeline
    metrics = stack["console"].metrics.actions.labels("charge.refund", "succeeded")._value.get()
    assert metrics == 2


def test_what_the_pre_checks_refuse_is_never_sent(stack: dict[str, Any]) -> None:
    report = stack["report"]
    agreement_id, charge_id = report["agreements"]["active"], report["charges"]["charged"]
    path = f"/agreements/{agreement_id}/charges/{charge_id}"
    client = client_as(stack["console"], "alice")
    token = csrf(client.get(path).text)
    before = effects(stack, charge_id)
    too_much = client.post(f"{path}/refund", data={"csrf": token, "amount": "1000000",
                                                   "reason": "a test"})
    assert too_much.status_code == 409 and "left to refund" in too_much.text and "nothing was sent" in too_much.text
    bad = client.post(f"{path}/refund", data={"csrf": token, "amount": "ten kroner", "reason": "a test"})
    assert bad.status_code == 400 and "not an amount in kroner" in bad.text
    no_reason = client.post(f"{path}/refund", data={"csrf": token, "amount": "1", "reason": "  "})
    assert no_reason.status_code == 409 and "reason is required" in no_reason.text
    stopped = client.post(f"/agreements/{report['agreements']['stopped']}/stop", data={"csrf": token,
                                                                                      "reason": "a test"})
    assert stopped.status_code == 409 and "already STOPPED" in stopped.text
    assert effects(stack, charge_id) == before


def test_a_viewer_sees_no_actions_and_a_forged_post_is_refused(stack: dict[str, Any]) -> None:
    report = stack["report"]
    agreement_id, charge_id = report["agreements"]["active"], report["charges"]["charged"]
    path = f"/agreements/{agreement_id}/charges/{charge_id}"
    client = client_as(stack["console"], "victor")
    page = client.get(path)
    assert page.status_code == 200 and "<form id=" not in page.text.replace('<form id="confirm"', "")
    assert '<form id="stop"' not in client.get(f"/agreements/{agreement_id}").text
    before = effects(stack, charge_id)
    forged = client.post(f"{path}/refund", data={"csrf": csrf(page.text), "amount": "5", "reason": "forged"})
    assert forged.status_code == 403
    assert client.post(f"/agreements/{agreement_id}/stop", data={"csrf": csrf(page.text),
                                                                 "reason": "forged"}).status_code == 403
    assert effects(stack, charge_id) == before


def test_an_action_without_its_csrf_token_is_refused(stack: dict[str, Any]) -> None:
    agreement_id = stack["report"]["agreements"]["active"]
    client = client_as(stack["console"], "alice")
    assert client.post(f"/agreements/{agreement_id}/stop", data={"reason": "no token"}).status_code == 403
    assert client.post(f"/agreements/{agreement_id}/stop", data={"reason": "x", "csrf": "forged"}).status_code == 403
    assert TestClient(build(stack["console"]), follow_redirects=False).post(
        f"/agreements/{agreement_id}/stop", data={"reason": "x"}).status_code == 303  # no session: to login


def test_an_agent_stops_an_agreement(stack: dict[str, Any]) -> None:
    agreement_id = stack["report"]["agreements"]["active"]
    client = client_as(stack["console"], "alice")
    page = client.get(f"/agreements/{agreement_id}")
    assert '<form id="stop"' in page.text
    asked = client.post(f"/agreements/{agreement_id}/stop", data={"csrf": csrf(page.text), "reason": "moved away"})
    assert asked.status_code == 200 and f"Stop agreement {agreement_id}" in asked.text
    done = client.post(f"/agreements/{agreement_id}/stop", data=hidden(asked.text))
    assert done.status_code == 303
    outcome = client.get(done.headers["location"]).text
    assert 'class="ok">succeeded' in outcome and "agreement.stopped" in outcome
    after = client.get(f"/agreements/{agreement_id}").text
    assert "STOPPED" in after and '<form id="stop"' not in after and "alice / moved away" in after


def test_an_agreement_is_found_by_the_external_id_it_was_created_with(stack: dict[str, Any]) -> None:
    ops = stack["ops"]
    outcome = ops.run({"command_id": "console-test-external", "type": "agreement.create", "product_name": "Gym",
                       "pricing": {"type": "LEGACY", "amount": 29900, "currency": "NOK"},
                       "interval": {"unit": "MONTH", "count": 1}, "external_id": "cust 4711/b",
                       "merchant_agreement_url": "https://example.com/a",
                       "merchant_redirect_url": "https://example.com/r"}, timeout=30)
    agreement_id = (outcome.event("agreement.created") or {})["agreement_id"]
    client = client_as(stack["console"], "victor")
    found = client.get("/search", params={"q": "cust 4711/b"})
    assert found.status_code == 200 and f'href="/agreements/{agreement_id}"' in found.text and "PENDING" in found.text
    assert "Nothing found" in client.get("/search", params={"q": "cust 4711/c"}).text
    page = client.get(f"/agreements/{agreement_id}").text
    assert re.search(r"<th>confirmation URL</th><td>https?://[^<]+</td>", page), page
    too_long = client.get("/search", params={"q": "x" * 65})
    assert too_long.status_code == 400 and "1 to 64 printable characters" in too_long.text
