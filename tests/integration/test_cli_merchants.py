"""One deployment, two merchants (each with its own keys), through the CLI: real Redis, the simulator and a worker.

The simulator (without a merchants file of its own) accepts one key set, that of MSN 123456: Gym One runs the
go-live checklist through its own queues; Yoga Two (223344) shows what needs no Vipps, and that every call
for it goes out with its keys. `merchants check` is also run against a simulator serving three merchants
(tests/merchants.py) and their sales units.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.e2e.clirun import cli, ok_json, one_line_error
from tests.merchants import write_merchants_file, write_worker_merchants_file
from tests.stack import Simulator, Worker, wait_for
from worker.core.producer import Producer
from worker.runtime.settings import WorkerSettings

GYM, YOGA = "123456", "223344"
SIMULATOR_KEYS = {"client_id": "simulator-client-id", "client_secret": "simulator-client-secret",
                  "subscription_key": "simulator-subscription-key"}
YOGA_KEYS = {"client_id": "yoga-id", "client_secret": "yoga-secret", "subscription_key": "yoga-sub"}
REQUIRED = f"msn is required: this deployment serves 2 merchants ({GYM} (Gym One), {YOGA} (Yoga Two))"


@pytest.fixture(scope="module")
def two(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    redis.Redis.from_url(redis_url).flushdb()
    tmp = tmp_path_factory.mktemp("merchants")
    merchants = tmp / "merchants.json"
    merchants.write_text(json.dumps({"merchants": [{"msn": GYM, "name": "Gym One", **SIMULATOR_KEYS},
                                                   {"msn": YOGA, "name": "Yoga Two", **YOGA_KEYS}]}))
    simulator = Simulator()
    worker = Worker(redis_url, simulator.url, env={"MERCHANTS_FILE": str(merchants)})
    variables = {"REDIS_URL": redis_url, "VIPPS_ENV": "simulator", "VIPPS_BASE_URL": simulator.url,
                 "MERCHANTS_FILE": str(merchants)}
    try:
        report = ok_json(cli("checklist", "--msn", GYM, "--state-file", str(tmp / "state.json"), "--json",
                             env=variables))
        yield {"vars": variables, "report": report, "tmp": tmp, "redis_url": redis_url}
    finally:
        worker.stop()
        simulator.stop()
        redis.Redis.from_url(redis_url).flushdb()


def test_the_checklist_runs_as_the_named_merchant(two: dict[str, Any]) -> None:
    report = two["report"]
    assert report["status"] == "passed" and report["msn"] == GYM
    refund = ok_json(cli("command", "show", f"checklist-{report['run_id']}-refund", "--msn", GYM, "--json",
                         env=two["vars"]))
    assert refund["status"] == "succeeded" and refund["command"]["msn"] == GYM
    assert {e["msn"] for e in refund["events"]} == {GYM}
    assert "no command" in one_line_error(cli("command", "show", f"checklist-{report['run_id']}-refund",
                                              "--msn", YOGA, env=two["vars"]))


def test_reads_need_the_msn_and_go_out_as_that_merchant(two: dict[str, Any]) -> None:
    active = two["report"]["agreements"]["active"]
    assert REQUIRED in one_line_error(cli("agreement", "show", active, env=two["vars"]))
    assert "MSN 999999 is not a merchant" in one_line_error(cli("charge", "list", active, "--msn", "999999",
                                                                env=two["vars"]))
    assert ok_json(cli("agreement", "show", active, "--msn", GYM, "--json", env=two["vars"]))["status"] == "ACTIVE"
    charged = two["report"]["charges"]["charged"]
    assert charged in {c["id"] for c in ok_json(cli("charge", "list", active, "--msn", GYM, "--json",
                                                    env=two["vars"]))}
    # Yoga Two's keys are not the simulator's: the read is refused, never made with Gym One's keys.
    assert "Vipps said no" in one_line_error(cli("agreement", "show", active, "--msn", YOGA, env=two["vars"]))


def test_an_action_carries_the_merchants_msn_through_its_own_queue(two: dict[str, Any]) -> None:
    active, charged = two["report"]["agreements"]["active"], two["report"]["charges"]["charged"]
    assert REQUIRED in one_line_error(cli("charge", "refund", active, charged, "--amount", "1000", "--reason", "t",
                                          "--yes", env=two["vars"]))
    outcome = ok_json(cli("charge", "refund", active, charged, "--amount", "1000", "--reason", "a test", "--msn",
                          GYM, "--yes", "--json", env=two["vars"]))
    assert outcome["status"] == "succeeded" and [e["msn"] for e in outcome["events"]] == [GYM]
    history = ok_json(cli("charge", "history", active, charged, "--msn", GYM, "--json", env=two["vars"]))
    assert "charge.refunded" in [e["type"] for e in history]
    other = cli("charge", "history", active, charged, "--msn", YOGA, env=two["vars"])
    assert other.returncode == 0 and f"it has events of MSN {GYM}" in other.stdout


def test_status_shows_each_merchants_queues(two: dict[str, Any]) -> None:
    data = ok_json(cli("status", "--json", env=two["vars"]))
    assert data["workers_alive"] >= 1
    assert set(data["merchants"]) == {GYM, YOGA} and data["merchants"][YOGA]["name"] == "Yoga Two"
    assert set(data["merchants"][GYM]["queues"]) == {f"vipps.agreements.{GYM}", f"vipps.charges.{GYM}"}
    table = cli("status", env=two["vars"])
    assert table.returncode == 0 and "Merchants" in table.stdout and "Yoga Two" in table.stdout


def test_enqueue_refuses_lines_of_no_merchant(two: dict[str, Any]) -> None:
    fetch = {"type": "agreement.fetch", "agreement_id": "agr_x"}
    path = two["tmp"] / "bad.jsonl"
    path.write_text(json.dumps({"command_id": "e-1", **fetch}) + "\n"
                    + json.dumps({"command_id": "e-2", "msn": "654321", **fetch}) + "\n")
    line = one_line_error(cli("enqueue", str(path), env=two["vars"]))
    assert f"line 1: {REQUIRED}" in line and "line 2: MSN 654321 is not a merchant of this deployment" in line
    filled = one_line_error(cli("enqueue", str(path), "--msn", YOGA, env=two["vars"]))
    assert "1 invalid command(s)" in filled and "line 2" in filled and "line 1" not in filled
    good = two["tmp"] / "good.jsonl"
    good.write_text(json.dumps({"command_id": "e-1", **fetch}) + "\n")
    sent = ok_json(cli("enqueue", str(good), "--msn", YOGA, "--dry-run", "--json", env=two["vars"]))
    assert sent["would_send"] == ["e-1"]


def test_merchants_list_and_the_token_check_over_http(two: dict[str, Any]) -> None:
    listed = ok_json(cli("merchants", "list", "--json", env=two["vars"]))
    assert [(m["msn"], m["credential_set"]) for m in listed] == [(GYM, f"merchant:{GYM}"), (YOGA, f"merchant:{YOGA}")]
    assert "yoga-secret" not in json.dumps(listed)
    # This simulator serves no Management API (it has no merchants file): here, the token.
    checked = cli("merchants", "check", "--json", env=two["vars"])
    assert checked.returncode == 1
    gym, yoga = json.loads(checked.stdout)["merchants"]
    assert gym["token"] == "ok" and yoga["token"] == "refused (HTTP 401)" and yoga["sales_unit"] == "not checked"
    assert "yoga-secret" not in checked.stdout + checked.stderr


def test_dead_letters_are_told_apart_by_merchant(two: dict[str, Any]) -> None:
    layout = WorkerSettings().layout((GYM, YOGA))
    with Producer(two["redis_url"], layout=layout) as producer:
        for command_id, msn in (("bad-gym-1", GYM), ("bad-yoga-1", YOGA), ("bad-yoga-2", YOGA)):
            producer.send_raw({"command_id": command_id, "type": "charge.refund", "msn": msn, "amount": "a lot"})
    wait_for(lambda: len(ok_json(cli("dlq", "list", "--msn", YOGA, "--json", env=two["vars"]))) == 2, 30,
             interval=0.5, what="Yoga Two's dead letters")
    yoga = ok_json(cli("dlq", "list", "--msn", YOGA, "--json", env=two["vars"]))
    assert {x["command_id"] for x in yoga} == {"bad-yoga-1", "bad-yoga-2"} and {x["msn"] for x in yoga} == {YOGA}
    gym = ok_json(cli("dlq", "list", "--msn", GYM, "--reason", "invalid_command", "--json", env=two["vars"]))
    assert [x["command_id"] for x in gym] == ["bad-gym-1"]
    assert ok_json(cli("status", "--json", env=two["vars"]))["merchants"][YOGA]["dead_letters"] == 2
    table = cli("dlq", "list", env=two["vars"])
    assert table.returncode == 0 and YOGA in table.stdout and GYM in table.stdout
    assert "is not of MSN" in one_line_error(cli("dlq", "show", gym[0]["id"], "--msn", YOGA, env=two["vars"]))


def test_merchants_check_reads_each_sales_unit_over_http(tmp_path: Path) -> None:
    """Gym One's own keys and the partner set of Yoga Two and Dojo Three; Vipps does not let Dojo Three take
    recurring payments, and does not know the stray MSN the worker's file routes through the partner."""
    setup = write_merchants_file(tmp_path)
    served = json.loads(setup.path.read_text())
    served["merchants"][2]["recurring_allowed"] = False
    setup.path.write_text(json.dumps(served))
    worker_file = write_worker_merchants_file(tmp_path, [{"msn": "445566", "name": "Stray", "partner": "platform"}])
    simulator = Simulator(*setup.simulator_args)
    try:
        env = {"VIPPS_ENV": "simulator", "VIPPS_BASE_URL": simulator.url, "MERCHANTS_FILE": str(worker_file)}
        result = cli("merchants", "check", "--json", env=env)
        one = cli("merchants", "check", "--msn", GYM, env=env)
    finally:
        simulator.stop()
    assert result.returncode == 1, result.stderr
    checks = {c["msn"]: c for c in json.loads(result.stdout)["merchants"]}
    assert {msn: c["token"] for msn, c in checks.items()} == dict.fromkeys((GYM, YOGA, "334455", "445566"), "ok")
    assert [(c["sales_unit"], c["sales_unit_name"], c["recurring_allowed"], c["capture_type"], c["ok"])
            for c in (checks[GYM], checks[YOGA])] == [("found", "Gym One", True, "ReserveCapture", True),
                                                       ("found", "Yoga Two", True, "ReserveCapture", True)]
    assert checks["334455"]["recurring_allowed"] is False and not checks["334455"]["ok"]
    assert checks["445566"]["sales_unit"] == "not found (HTTP 404)" and not checks["445566"]["ok"]
    assert one.returncode == 0 and "Gym One" in one.stdout and "ReserveCapture" in one.stdout
    secrets = [setup.own.client_secret, setup.partner.client_secret, setup.partner.subscription_key]
    assert not [s for s in secrets if s in result.stdout + result.stderr + one.stdout]
