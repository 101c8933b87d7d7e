"""The simulator over real HTTP: `vipps-billing simulator` under uvicorn on a free loopback port."""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner, Result

from tests.merchants import write_merchants_file
from tests.stack import Simulator, wait_for
from tests.webhook_receiver import Receiver, verify
from worker.cli.app import app as cli
from worker.simulator.cli import app as simulator_app

CREDENTIALS = {
    "client_id": "simulator-client-id",
    "client_secret": "simulator-client-secret",
    "Ocp-Apim-Subscription-Key": "simulator-subscription-key",
}
AGREEMENT = {
    "pricing": {"amount": 10000, "currency": "NOK"},
    "interval": {"unit": "MONTH", "count": 1},
    "merchantRedirectUrl": "https://example.com/r",
    "merchantAgreementUrl": "https://example.com/a",
    "productName": "Integration",
}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def _serve(*args: str) -> Iterator[str]:
    """`vipps-billing simulator --port <free> *args` in a subprocess; its URL once it answers."""
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-c", "from worker.cli.app import main; main()", "simulator", "--port", str(port), *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            if process.poll() is not None:
                assert process.stderr is not None
                raise RuntimeError(f"simulator exited: {process.stderr.read().decode()}")
            try:
                if httpx.get(url + "/_simulator/health").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        else:
            raise RuntimeError("simulator did not start")
        yield url
    finally:
        process.terminate()
        process.wait(10)
        assert process.stderr is not None
        errors = process.stderr.read().decode()
        assert "Traceback" not in errors, errors


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    with _serve("--seed", "5") as url:
        yield url


@pytest.fixture
def client(base_url: str) -> Iterator[httpx.Client]:
    httpx.post(base_url + "/_simulator/reset", json={})
    with httpx.Client(base_url=base_url, timeout=5) as http:
        token = http.post("/accesstoken/get", headers=CREDENTIALS).json()["access_token"]
        http.headers.update(
            {"Authorization": f"Bearer {token}", "Ocp-Apim-Subscription-Key": CREDENTIALS["Ocp-Apim-Subscription-Key"]}
        )
        yield http


def _cli(base_url: str, *args: str) -> Any:
    result = CliRunner().invoke(cli, ["simulator", *args, "--url", base_url, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_agreement_and_charge_lifecycle_over_http(client: httpx.Client, base_url: str) -> None:
    _cli(base_url, "clock", "set", "2031-05-01T12:00:00Z")
    token = client.post("/accesstoken/get", headers=CREDENTIALS).json()["access_token"]
    client.headers["Authorization"] = f"Bearer {token}"
    draft = client.post("/recurring/v3/agreements", json=AGREEMENT, headers={"Idempotency-Key": "it-draft"})
    assert draft.status_code == 201
    agreement_id = draft.json()["agreementId"]
    assert draft.json()["vippsConfirmationUrl"].startswith(base_url)
    accept = client.patch(
        f"/recurring/v3/agreements/{agreement_id}/accept",
        json={"phoneNumber": "4791234567"},
        headers={"Idempotency-Key": "it-accept"},
    )
    assert accept.status_code == 204
    charge = client.post(
        f"/recurring/v3/agreements/{agreement_id}/charges",
        json={
            "amount": 5000,
            "description": "May",
            "due": "2031-05-02",
            "retryDays": 1,
            "transactionType": "DIRECT_CAPTURE",
        },
        headers={"Idempotency-Key": "it-charge"},
    )
    assert charge.status_code == 201
    moved = _cli(base_url, "clock", "advance", "20h")
    assert moved["now"] == "2031-05-02T08:00:00Z" and moved["transitions"] == 1
    token = client.post("/accesstoken/get", headers=CREDENTIALS).json()["access_token"]
    client.headers["Authorization"] = f"Bearer {token}"
    fetched = client.get(f"/recurring/v3/agreements/{agreement_id}/charges/{charge.json()['chargeId']}")
    assert fetched.json()["status"] == "CHARGED"
    assert _cli(base_url, "effects", "--duplicates") == []
    assert len(_cli(base_url, "effects")) == 5
    assert _cli(base_url, "stats")["requests"]["CreateChargeV3"] == {"201": 1}


def test_a_batch_is_created_in_the_background_within_a_second(client: httpx.Client, base_url: str) -> None:
    draft = client.post("/recurring/v3/agreements", json=AGREEMENT, headers={"Idempotency-Key": "it-b-draft"})
    agreement_id = draft.json()["agreementId"]
    client.patch(
        f"/recurring/v3/agreements/{agreement_id}/accept",
        json={"phoneNumber": "4791234567"},
        headers={"Idempotency-Key": "it-b-accept"},
    )
    item = {
        "agreementId": agreement_id,
        "orderId": "it-batch-1",
        "amount": 5000,
        "description": "May",
        "due": (datetime.now(UTC).date() + timedelta(days=2)).isoformat(),
        "retryDays": 1,
        "transactionType": "DIRECT_CAPTURE",
    }
    batch = client.post("/recurring/v3/agreements/charges", json=[item], headers={"Idempotency-Key": "it-batch"})
    assert batch.status_code == 202 and batch.json()["validCharges"] == ["it-batch-1"]
    started = time.monotonic()
    # No call comes in: the app's own tick creates it (stats do not move the clock).
    while httpx.get(base_url + "/_simulator/stats").json()["queued_charges"]:
        assert time.monotonic() - started < 1.0
        time.sleep(0.02)
    assert httpx.get(base_url + "/_simulator/stats").json()["charges"] == 1
    table = _sim_cli("effects", "--per-charge", "--url", base_url, env={"COLUMNS": "200"})
    assert "Charge creations" in table.stdout and "it-batch-1" in table.stdout
    assert "No charge was created more than once." in table.stdout
    assert _cli(base_url, "effects", "--per-charge")["charges"]["it-batch-1"]["creations"] == 1


def test_connection_drop_closes_the_socket_without_a_response(client: httpx.Client, base_url: str) -> None:
    _cli(base_url, "faults", "set", "--drop-rate", "1", "--seed", "2")
    # A closed connection surfaces as "disconnected without a response" (or a reset if the close races
    # the client's write); either way no response arrives.
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        client.post("/recurring/v3/agreements", json=AGREEMENT, headers={"Idempotency-Key": "it-drop"})
    _cli(base_url, "faults", "off")
    assert client.get("/recurring/v3/agreements").status_code == 200
    assert _cli(base_url, "effects") == []


def test_timeout_after_commit_then_the_retry_replays(client: httpx.Client, base_url: str) -> None:
    _cli(base_url, "faults", "set", "--timeout-after-commit-rate", "1", "--timeout-seconds", "2")
    with pytest.raises(httpx.ReadTimeout):
        client.post("/recurring/v3/agreements", json=AGREEMENT, headers={"Idempotency-Key": "it-slow"}, timeout=0.5)
    effects = _cli(base_url, "effects")
    assert [(e["operation"], e["idempotency_key"]) for e in effects] == [("agreement.draft", "it-slow")]
    _cli(base_url, "faults", "off")
    retry = client.post("/recurring/v3/agreements", json=AGREEMENT, headers={"Idempotency-Key": "it-slow"})
    assert retry.status_code == 201 and retry.json()["agreementId"] == effects[0]["agreement_id"]
    assert _cli(base_url, "effects", "--duplicates") == []


def test_injected_5xx_and_429_over_http(client: httpx.Client, base_url: str) -> None:
    _cli(base_url, "faults", "set", "--429-rate", "1", "--retry-after", "3")
    limited = client.get("/recurring/v3/agreements")
    assert limited.status_code == 429 and limited.headers["Retry-After"] == "3"
    _cli(base_url, "faults", "set", "--5xx-rate", "1")
    assert client.get("/recurring/v3/agreements").status_code in (500, 502, 503)
    shown = _cli(base_url, "faults", "show")
    assert shown["injected"] == {"status_429": 1, "status_5xx": 1}
    _cli(base_url, "faults", "off")


def _sim_cli(*args: str, env: dict[str, str | None] | None = None) -> Result:
    """The simulator's own typer app, with neither VIPPS_BASE_URL nor SIMULATOR_URL unless given."""
    return CliRunner().invoke(
        simulator_app, list(args), env={"VIPPS_BASE_URL": None, "SIMULATOR_URL": None, **(env or {})}
    )


@pytest.mark.parametrize("variable", ["VIPPS_BASE_URL", "SIMULATOR_URL"])
def test_admin_commands_find_the_simulator_from_the_environment(base_url: str, variable: str) -> None:
    httpx.put(base_url + "/_simulator/clock", json={"now": "2032-07-01T12:00:00Z"}).raise_for_status()
    result = _sim_cli("clock", "show", "--json", env={variable: base_url})
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["now"].startswith("2032-07-01T12:0")
    httpx.post(base_url + "/_simulator/reset", json={}).raise_for_status()


def test_tables_by_default_and_json_with_the_flag(client: httpx.Client, base_url: str) -> None:
    client.post("/recurring/v3/agreements", json=AGREEMENT, headers={"Idempotency-Key": "it-table"})
    expected = {
        ("clock", "show"): ["Simulated clock", "next processing round"],
        ("faults", "show"): ["Fault injection", "--5xx-rate", "No faults injected so far."],
        ("effects",): ["Effects", "agreement.draft", "it-table"],
        ("stats",): ["Requests", "DraftAgreementV3", "Totals"],
        ("script", '{"charge_amount_fails": 151}'): ["Scripted outcomes", "amount 151 øre"],
    }
    for command, shown in expected.items():
        # A terminal wide enough that no id is folded over two lines.
        table = _sim_cli(*command, "--url", base_url, env={"COLUMNS": "200"})
        assert table.exit_code == 0, table.output
        assert all(text in table.stdout for text in shown), (command, table.stdout)
        with pytest.raises(ValueError):
            json.loads(table.stdout)
        as_json = _sim_cli(*command, "--url", base_url, "--json")
        assert as_json.exit_code == 0 and isinstance(json.loads(as_json.stdout), dict | list), as_json.output


def test_the_clock_cannot_go_back_in_one_line(base_url: str) -> None:
    httpx.put(base_url + "/_simulator/clock", json={"now": "2031-05-01T12:00:00Z"}).raise_for_status()
    result = _sim_cli("clock", "set", "2031-04-30T00:00:00Z", "--url", base_url)
    assert result.exit_code == 1
    assert result.stderr.startswith("error: the clock cannot go back") and result.stderr.count("\n") == 1
    assert "/_simulator" not in result.stderr and "reset" in result.stderr
    assert _sim_cli("clock", "show", "--json", "--url", base_url).stdout.count("2031-05-01T12:0") == 1
    httpx.post(base_url + "/_simulator/reset", json={}).raise_for_status()


def test_an_unknown_script_rule_sent_anyway_is_refused_by_the_simulator(base_url: str) -> None:
    response = httpx.post(base_url + "/_simulator/scripts", json={"charge_amount_fail": 151})
    assert response.status_code == 400 and "unknown rule 'charge_amount_fail'" in response.json()["error"]


def test_start_up_takes_the_fault_options_of_faults_set() -> None:
    flags = ["--seed", "3", "--429-rate", "1", "--retry-after", "4", "--operation", "ListAgreementsV3"]
    with _serve(*flags) as url:
        config = httpx.get(url + "/_simulator/faults").json()["config"]
        assert (config["seed"], config["error_429_rate"], config["retry_after_seconds"]) == (3, 1.0, 4)
        assert config["operations"] == ["ListAgreementsV3"]
        token = httpx.post(url + "/accesstoken/get", headers=CREDENTIALS).json()["access_token"]
        headers = {
            "Authorization": f"Bearer {token}",
            "Ocp-Apim-Subscription-Key": CREDENTIALS["Ocp-Apim-Subscription-Key"],
        }
        limited = httpx.get(url + "/recurring/v3/agreements", headers=headers)
        assert limited.status_code == 429 and limited.headers["Retry-After"] == "4"


def test_many_merchants_over_http(tmp_path: Path) -> None:
    """Started as tests/stack.py starts it for worker tests: each merchant's state its own, every call recorded."""
    setup = write_merchants_file(tmp_path)
    yoga, dojo = setup.partner_msns
    simulator = Simulator(*setup.simulator_args)
    try:
        with httpx.Client(base_url=simulator.url, timeout=5) as http:
            token = http.post("/accesstoken/get", headers=setup.partner.token_headers()).json()["access_token"]
            partner = {"Vipps-System-Name": "tests", **setup.partner.call_headers(token, yoga)}
            draft = http.post("/recurring/v3/agreements", json=AGREEMENT, headers={**partner, "Idempotency-Key": "k"})
            assert draft.status_code == 201
            path = f"/recurring/v3/agreements/{draft.json()['agreementId']}"
            assert http.get(path, headers=partner).status_code == 200
            assert http.get(path, headers={**partner, "Merchant-Serial-Number": dojo}).status_code == 404
            no_msn = {k: v for k, v in partner.items() if k != "Merchant-Serial-Number"}
            assert http.get(path, headers=no_msn).status_code == 403
            units = http.get("/management/v1/sales-units", headers=no_msn).json()
            assert [unit["msn"] for unit in units] == list(setup.partner_msns)
        assert [(e["msn"], e["credentials"]) for e in simulator.effects()] == [(yoga, setup.partner.label)]
        assert simulator.effects(msn=dojo) == []
        assert _cli(simulator.url, "effects", "--msn", dojo) == []
        assert len(_cli(simulator.url, "effects", "--msn", yoga)) == 1
        recorded = [(r["operation"], r["msn"], r["status"]) for r in simulator.requests()]
        assert recorded == [
            ("DraftAgreementV3", yoga, 201),
            ("FetchAgreementV3", yoga, 200),
            ("FetchAgreementV3", dojo, 404),
            ("FetchAgreementV3", None, 403),
            ("ListSalesUnits", None, 200),
        ]
        assert {r["credentials"] for r in simulator.requests()} == {setup.partner.label}
    finally:
        simulator.stop()


def test_webhooks_over_http_signed_retried_and_on_time() -> None:
    """Registered through the Webhooks API; each delivery signed for the registered URL and dated by the real
    clock; a failed one retried; an auto-accept the clock brings about delivered with no call to set it off."""
    simulator = Simulator("--seed", "5", "--webhook-retry-wait", "0.05", "--auto-accept-after", "1")
    receiver = Receiver(500)
    try:
        with httpx.Client(base_url=simulator.url, timeout=5) as http:
            token = http.post("/accesstoken/get", headers=CREDENTIALS).json()["access_token"]
            key = CREDENTIALS["Ocp-Apim-Subscription-Key"]
            headers = {"Authorization": f"Bearer {token}", "Ocp-Apim-Subscription-Key": key}
            url = receiver.url("/hooks/vipps?src=recurring")
            events = ["recurring.agreement-activated.v1", "recurring.agreement-stopped.v1"]
            registered = http.post("/webhooks/v1/webhooks", json={"url": url, "events": events}, headers=headers)
            assert registered.status_code == 201
            secret = registered.json()["secret"]
            first = http.post("/recurring/v3/agreements", json=AGREEMENT, headers={**headers, "Idempotency-Key": "w1"})
            second = http.post("/recurring/v3/agreements", json=AGREEMENT, headers={**headers, "Idempotency-Key": "w2"})
        first_id, second_id = first.json()["agreementId"], second.json()["agreementId"]
        # Nothing is called from here on: the simulator's own clock accepts both after a second.
        receiver.wait(3)
        simulator.stop_as_user(first_id)
        assert simulator.stop_as_admin(second_id)["stopped"] == [second_id]
        received = receiver.wait(5)
        assert all(verify(secret, url, r, max_skew=60) for r in received)
        assert received[0].path == "/hooks/vipps?src=recurring" and received[0].status == 500
        stops = [(r.json()["agreementId"], r.json()["actor"]) for r in received if "stopped" in r.json()["eventType"]]
        assert stops == [(first_id, "USER"), (second_id, "ADMIN")]
        wait_for(lambda: len(simulator.webhook_deliveries(result="delivered")) == 4, 10)
        [retried] = simulator.webhook_deliveries(result="retry")
        assert (retried["attempt"], retried["status"]) == (1, 500)
        assert simulator.webhook_pending() == []
        listed = _sim_cli("webhooks", "--url", simulator.url, "--json")
        assert listed.exit_code == 0 and len(json.loads(listed.stdout)) == 5
    finally:
        receiver.close()
        simulator.stop()
