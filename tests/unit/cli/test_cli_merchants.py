"""`vipps-billing merchants list|check`: the configured merchants, and each one's token and sales unit at a
respx-mocked Vipps; never a secret nor a token in the output."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
from typer.testing import CliRunner, Result

from worker.cli.app import app

BASE = "http://127.0.0.1:8070"
SECRETS = ("gym-secret", "dojo-secret", "partner-secret", "gym-sub", "partner-sub")
TOKEN = "eyJ-a-token-never-shown"


def keys(name: str) -> dict[str, str]:
    return {"client_id": f"{name}-id", "client_secret": f"{name}-secret", "subscription_key": f"{name}-sub"}


@pytest.fixture
def merchants_file(tmp_path: Path) -> Path:
    path = tmp_path / "merchants.json"
    path.write_text(json.dumps({"partners": {"platform": keys("partner")}, "merchants": [
        {"msn": "123456", "name": "Gym One", **keys("gym")},
        {"msn": "223344", "name": "Yoga Two", "partner": "platform"},
        {"msn": "334455", "name": "Dojo Three", "enabled": False, **keys("dojo")}]}))
    return path


def run(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "200", **(env or {})})


def unit(msn: str, name: str, recurring: bool | None = True, capture: str = "ReserveCapture") -> dict[str, Any]:
    configuration: dict[str, Any] = {"captureType": capture, "paymentAllowed": True}
    if recurring is not None:
        configuration["recurringAllowed"] = recurring
    return {"msn": msn, "name": name, "businessIdentifier": {"scheme": "business:NO:ORG", "id": "1"},
            "configuration": configuration}


@pytest.fixture
def vipps() -> Iterator[respx.MockRouter]:
    """Vipps knows the gym's, the partner's and the simulator's keys (not the dojo's); Yoga Two may not take
    recurring payments."""
    def token(request: httpx.Request) -> httpx.Response:
        if request.headers.get("client_id") in ("gym-id", "partner-id", "simulator-client-id"):
            return httpx.Response(200, json={"access_token": TOKEN, "expires_in": "3600"})
        return httpx.Response(401, json={"error": "invalid_client"})

    with respx.mock(base_url=BASE, assert_all_called=False) as router:
        router.post("/accesstoken/get", name="token").mock(side_effect=token)
        router.get("/management/v1/sales-units/123456").respond(200, json=unit("123456", "Gym One AS"))
        router.get("/management/v1/sales-units/223344").respond(
            200, json=unit("223344", "Yoga", False, "DirectCapture"))
        yield router


def no_secret_in(text: str) -> None:
    assert TOKEN not in text and not [s for s in SECRETS if s in text]


def test_list_names_each_merchant_and_its_key_set_never_a_secret(merchants_file: Path) -> None:
    shown = run("merchants", "list", env={"MERCHANTS_FILE": str(merchants_file)})
    assert shown.exit_code == 0, shown.output
    assert "Yoga Two" in shown.output and "partner:platform" in shown.output and "merchant:334455" in shown.output
    listed = json.loads(run("merchants", "list", "--json", env={"MERCHANTS_FILE": str(merchants_file)}).output)
    assert listed == [
        {"msn": "123456", "name": "Gym One", "enabled": True, "credential_set": "merchant:123456"},
        {"msn": "223344", "name": "Yoga Two", "enabled": True, "credential_set": "partner:platform"},
        {"msn": "334455", "name": "Dojo Three", "enabled": False, "credential_set": "merchant:334455"}]
    no_secret_in(shown.output)


def test_list_without_a_file_is_the_one_merchant_of_vipps_msn() -> None:
    listed = json.loads(run("merchants", "list", "--json").output)
    assert listed == [{"msn": "123456", "name": "default", "enabled": True, "credential_set": "merchant:123456"}]


def test_list_of_a_broken_file_is_one_line(tmp_path: Path) -> None:
    shown = run("merchants", "list", env={"MERCHANTS_FILE": str(tmp_path / "absent.yaml")})
    assert shown.exit_code == 1 and "is not a readable file" in shown.output


def test_check_tells_each_merchants_token_and_sales_unit(merchants_file: Path, vipps: respx.MockRouter) -> None:
    result = run("merchants", "check", "--json", env={"MERCHANTS_FILE": str(merchants_file)})
    assert result.exit_code == 1  # Yoga Two may not take recurring payments
    report = json.loads(result.output)
    gym, yoga = report["merchants"]  # the disabled one is left out
    assert report["ok"] is False
    assert gym["ok"] and gym["problems"] == [] and gym["token"] == "ok" and gym["sales_unit"] == "found"
    assert (gym["sales_unit_name"], gym["recurring_allowed"], gym["capture_type"]) == ("Gym One AS", True,
                                                                                       "ReserveCapture")
    assert yoga["token"] == "ok" and yoga["capture_type"] == "DirectCapture" and not yoga["ok"]
    assert yoga["problems"] == ["the sales unit may not take recurring payments (recurringAllowed is false)"]
    # Each call is made as its merchant: the partner's one token, with the merchant's MSN.
    calls = {c.request.url.path: c.request.headers["Merchant-Serial-Number"] for c in vipps.calls
             if "sales-units" in c.request.url.path}
    assert calls == {"/management/v1/sales-units/123456": "123456", "/management/v1/sales-units/223344": "223344"}
    no_secret_in(result.output)


def test_check_of_one_merchant_a_disabled_one_too(merchants_file: Path, vipps: respx.MockRouter) -> None:
    env = {"MERCHANTS_FILE": str(merchants_file)}
    ok = run("merchants", "check", "--msn", "123456", env=env)
    assert ok.exit_code == 0, ok.output
    assert "Gym One AS" in ok.output and "allowed" in ok.output and "ReserveCapture" in ok.output
    refused = run("merchants", "check", "--msn", "334455", env=env)
    assert refused.exit_code == 1 and "token refused (HTTP 401)" in refused.output
    assert "334455" in refused.output and "not checked" in refused.output
    assert not [c for c in vipps.calls if c.request.url.path.endswith("/334455")]  # no token: no lookup
    no_secret_in(ok.output + refused.output)


def test_check_of_an_unknown_merchant_lists_the_configured_ones(merchants_file: Path) -> None:
    result = run("merchants", "check", "--msn", "999999", env={"MERCHANTS_FILE": str(merchants_file)})
    assert result.exit_code == 1
    assert "MSN 999999 is not a merchant of this deployment (123456 (Gym One), 223344 (Yoga Two)" in result.output


def test_an_unknown_or_missing_sales_unit_fails_the_check(vipps: respx.MockRouter) -> None:
    vipps.get("/management/v1/sales-units/123456").respond(404, json={"title": "Not Found", "status": 404})
    result = run("merchants", "check", "--json")
    assert result.exit_code == 1
    [only] = json.loads(result.output)["merchants"]
    assert only["token"] == "ok" and only["sales_unit"] == "not found (HTTP 404)"
    assert only["problems"] == ["sales unit not found (HTTP 404)"]


def test_in_the_vipps_test_environment_only_the_token_is_checked(vipps: respx.MockRouter) -> None:
    env = {"VIPPS_ENV": "test", "VIPPS_BASE_URL": BASE, "VIPPS_MSN": "123456", **{
        f"VIPPS_{name.upper()}": value for name, value in keys("gym").items()}}
    result = run("merchants", "check", "--json", env=env)
    assert result.exit_code == 0, result.output
    [only] = json.loads(result.output)["merchants"]
    assert only["token"] == "ok" and "production only" in only["sales_unit"] and only["ok"]
    assert not [c for c in vipps.calls if "sales-units" in c.request.url.path]


def test_an_unreachable_vipps_is_a_failed_check() -> None:
    with respx.mock(base_url=BASE) as router:
        router.post("/accesstoken/get").mock(side_effect=httpx.ConnectError("refused"))
        result = run("merchants", "check", "--json")
    assert result.exit_code == 1
    [only] = json.loads(result.output)["merchants"]
    assert only["token"].startswith("failed: ") and only["sales_unit"] == "not checked"
