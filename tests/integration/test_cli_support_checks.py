"""Support actions Vipps would refuse (or silently ignore) are refused by the CLI, before confirmation, with
nothing enqueued: checked against a fresh fetch from Vipps. Real CLI, Redis, simulator and a running worker."""

from __future__ import annotations

import getpass
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.e2e.clirun import cli, ok_json, one_line_error
from tests.stack import Simulator, Worker


@pytest.fixture(scope="module")
def env(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    redis.Redis.from_url(redis_url).flushdb()
    simulator = Simulator()
    worker = Worker(redis_url, simulator.url)
    variables = {"REDIS_URL": redis_url, "VIPPS_ENV": "simulator", "VIPPS_BASE_URL": simulator.url}
    state = tmp_path_factory.mktemp("checks") / "state.json"
    try:
        report = ok_json(cli("checklist", "--state-file", str(state), "--json", env=variables))
        yield {"vars": variables, "report": report, "state": state, "redis": redis.Redis.from_url(redis_url)}
    finally:
        worker.stop()
        simulator.stop()
        redis.Redis.from_url(redis_url).flushdb()


def sent(env: dict[str, Any]) -> int:
    """How many Redis keys name a support command: any enqueued support action leaves some."""
    return sum(1 for _ in env["redis"].scan_iter(match="*support-*", count=1000))


def refused(env: dict[str, Any], *args: str) -> str:
    before = sent(env)
    # refused before the question: the "y" is never read
    result = cli(*args, "--reason", "a test", env=env["vars"], input="y\n")
    line = one_line_error(result)
    assert result.returncode == 1, line
    assert "sent as" not in result.stderr and sent(env) == before
    return line


def test_stopping_a_stopped_agreement_is_refused(env: dict[str, Any]) -> None:
    stopped = env["report"]["agreements"]["stopped"]
    assert "already STOPPED" in refused(env, "agreement", "stop", stopped)
    assert "already STOPPED" in refused(env, "agreement", "stop", stopped, "--yes")
    assert "already STOPPED" in refused(env, "agreement", "update", stopped, "--product-name", "X", "--yes")


def test_an_agreement_that_does_not_exist_is_refused(env: dict[str, Any]) -> None:
    assert "Vipps said no" in refused(env, "agreement", "stop", "agr_doesnotexist", "--yes")
    assert "Vipps said no" in refused(env, "charge", "cancel", "agr_doesnotexist", "chr_nope", "--yes")
    assert "Vipps said no" in refused(env, "charge", "refund", "agr_doesnotexist", "chr_nope", "--amount", "1000",
                                      "--yes")


def test_refunding_more_than_is_left_is_refused(env: dict[str, Any]) -> None:
    active, charged = env["report"]["agreements"]["active"], env["report"]["charges"]["charged"]
    charge = ok_json(cli("charge", "show", active, charged, "--json", env=env["vars"]))
    left = charge["summary"]["captured"] - charge["summary"]["refunded"]
    line = refused(env, "charge", "refund", active, charged, "--amount", str(left + 100), "--yes")
    assert "left to refund" in line
    assert ok_json(cli("charge", "show", active, charged, "--json", env=env["vars"]))["summary"] == charge["summary"]


def test_cancelling_a_charge_that_is_not_open_is_refused(env: dict[str, Any]) -> None:
    active, refunded = env["report"]["agreements"]["active"], env["report"]["charges"]["refunded"]
    assert "REFUNDED, not open" in refused(env, "charge", "cancel", active, refunded, "--yes")


def test_stop_reports_the_stop(env: dict[str, Any], tmp_path: Path) -> None:
    report = ok_json(cli("checklist", "--restart", "--state-file", str(tmp_path / "s.json"), "--json",
                         env=env["vars"]))
    active = report["agreements"]["active"]
    result = cli("agreement", "stop", active, "--reason", "a test", "--yes", env=env["vars"])
    assert result.returncode == 0, result.stderr
    assert "agreement.stopped" in result.stdout and active in result.stdout and "updated" not in result.stdout


def test_an_external_id_search_covers_every_status(env: dict[str, Any]) -> None:
    """The customer's agreement is STOPPED: found without --status (one listing per status, 4 of Vipps's 5 a
    minute), and --status takes any case."""
    run_id, stopped = env["report"]["run_id"], env["report"]["agreements"]["stopped"]
    found = cli("agreement", "list", "--external-id", f"checklist-{run_id}-stopped", env=env["vars"])
    assert found.returncode == 0, found.stderr
    assert stopped in found.stdout and "STOPPED" in found.stdout and "no ACTIVE" not in found.stdout
    listed = ok_json(cli("agreement", "list", "--status", "stopped", "--json", env=env["vars"]))
    assert stopped in [a["id"] for a in listed] and {a["status"] for a in listed} == {"STOPPED"}


def test_a_support_action_records_who_and_why(env: dict[str, Any]) -> None:
    """--reason is required; the operator is --operator or the login name; the command, its outcome event and
    `command show` carry both."""
    active, charged = env["report"]["agreements"]["active"], env["report"]["charges"]["charged"]
    missing = cli("charge", "refund", active, charged, "--amount", "1000", "--yes", env=env["vars"])
    assert missing.returncode == 2 and "--reason" in one_line_error(missing)
    outcome = ok_json(cli("charge", "refund", active, charged, "--amount", "1000", "--reason", "ticket 4711",
                          "--operator", "kari", "--yes", "--json", env=env["vars"]))
    assert outcome["status"] == "succeeded"
    refunded = [e for e in outcome["events"] if e["type"] == "charge.refunded"]
    assert refunded and refunded[0]["audit"] == {"operator": "kari", "reason": "ticket 4711"}
    shown = ok_json(cli("command", "show", outcome["command_id"], "--json", env=env["vars"]))
    assert shown["operator"] == "kari" and shown["reason"] == "ticket 4711"
    assert shown["command"]["operator"] == "kari" and shown["command"]["reason"] == "ticket 4711"
    table = cli("command", "show", outcome["command_id"], env=env["vars"])
    assert table.returncode == 0 and "kari" in table.stdout and "ticket 4711" in table.stdout
    again = ok_json(cli("charge", "refund", active, charged, "--amount", "1000", "--reason", "ticket 4712",
                        "--yes", "--json", env=env["vars"]))
    shown = ok_json(cli("command", "show", again["command_id"], "--json", env=env["vars"]))
    assert shown["operator"] == getpass.getuser() and shown["reason"] == "ticket 4712"
