"""Support and operator commands through the CLI, against real Redis, the simulator and a running worker.

The go-live checklist (run through the CLI) makes the agreements and charges the support commands work on.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from typer.testing import CliRunner

from tests.e2e.clirun import cli, ok_json, one_line_error
from tests.stack import Simulator, Worker, producer, wait_for
from worker.cli.app import app
from worker.vipps import VippsClient, load_settings, models


@pytest.fixture(scope="module")
def env(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    redis.Redis.from_url(redis_url).flushdb()
    simulator = Simulator()
    worker = Worker(redis_url, simulator.url)
    variables = {"REDIS_URL": redis_url, "VIPPS_ENV": "simulator", "VIPPS_BASE_URL": simulator.url}
    state = tmp_path_factory.mktemp("checklist") / "state.json"
    try:
        report = ok_json(cli("checklist", "--state-file", str(state), "--json", env=variables))
        yield {"vars": variables, "report": report, "state": state, "simulator": simulator}
    finally:
        worker.stop()
        simulator.stop()
        redis.Redis.from_url(redis_url).flushdb()


def ids(env: dict[str, Any]) -> tuple[str, str, str, str]:
    r = env["report"]
    return r["agreements"]["active"], r["agreements"]["stopped"], r["charges"]["charged"], r["charges"]["refunded"]


def test_checklist_passes_against_a_running_worker(env: dict[str, Any]) -> None:
    report = env["report"]
    assert report["status"] == "passed" and report["env"] == "simulator"
    assert [row["holds"] for row in report["results"]] == [True, True, True, True]
    assert Path(report["state_file"]) == env["state"]


def test_checklist_resume_verifies_the_recorded_run_again(env: dict[str, Any]) -> None:
    again = ok_json(cli("checklist", "--resume", "--state-file", str(env["state"]), "--json", env=env["vars"]))
    assert again["run_id"] == env["report"]["run_id"] and again["status"] == "passed"
    assert again["charges"] == env["report"]["charges"]


def test_checklist_refuses_to_overwrite_nothing_and_resume_needs_a_run(env: dict[str, Any], tmp_path: Path) -> None:
    line = one_line_error(cli("checklist", "--resume", "--state-file", str(tmp_path / "none.json"), env=env["vars"]))
    assert "no checklist run is recorded" in line


def test_agreement_show(env: dict[str, Any]) -> None:
    active, stopped, _, _ = ids(env)
    assert ok_json(cli("agreement", "show", active, "--json", env=env["vars"]))["status"] == "ACTIVE"
    shown = cli("agreement", "show", stopped, env=env["vars"])
    assert shown.returncode == 0 and "STOPPED" in shown.stdout and stopped in shown.stdout


def test_agreement_show_tells_the_campaign(env: dict[str, Any]) -> None:
    """What a customer pays during a campaign, so support can answer "why was I charged 1 kr?"."""
    with VippsClient(load_settings(base_url=env["simulator"].url)) as client:
        draft = client.draft_agreement(models.DraftAgreementV3(
            pricing=models.PricingRequest(amount=29900), interval=models.TimePeriod(unit="MONTH", count=1),
            merchantAgreementUrl="https://example.com/a", merchantRedirectUrl="https://example.com/r",
            productName="Gym", campaign=models.PeriodCampaignV3(
                price=100, period=models.TimePeriod(unit="WEEK", count=10))), idempotency_key="cli-campaign")
    shown = cli("agreement", "show", draft.agreementId, env=env["vars"])
    assert shown.returncode == 0, shown.stderr
    assert "PERIOD_CAMPAIGN 1.00 NOK for 10 WEEK" in shown.stdout
    assert "299.00 NOK" in shown.stdout


def test_charge_list_and_status_filter(env: dict[str, Any]) -> None:
    active, _, charged, refunded = ids(env)
    listed = {c["id"]: c["status"] for c in ok_json(cli("charge", "list", active, "--json", env=env["vars"]))}
    assert listed[charged] == "CHARGED" and listed[refunded] == "REFUNDED"
    only = ok_json(cli("charge", "list", active, "--status", "REFUNDED", "--json", env=env["vars"]))
    assert [c["id"] for c in only] == [refunded]
    table = cli("charge", "list", active, env=env["vars"])
    assert table.returncode == 0 and charged in table.stdout and "199.00 NOK" in table.stdout


def test_charge_show_has_history(env: dict[str, Any]) -> None:
    active, _, _, refunded = ids(env)
    charge = ok_json(cli("charge", "show", active, refunded, "--json", env=env["vars"]))
    assert [h["event"] for h in charge["history"]][:1] == ["CREATE"]
    assert "REFUND" in [h["event"] for h in charge["history"]]
    table = cli("charge", "show", active, refunded, env=env["vars"])
    assert table.returncode == 0 and "History" in table.stdout and "REFUND" in table.stdout


def test_charge_find_by_its_id_alone(env: dict[str, Any]) -> None:
    """A customer's claim names a charge, not an agreement: FetchChargeById finds both."""
    active, _, _, refunded = ids(env)
    charge = ok_json(cli("charge", "find", refunded, "--json", env=env["vars"]))
    assert charge["id"] == refunded and charge["agreementId"] == active and charge["status"] == "REFUNDED"
    table = cli("charge", "find", refunded, env=env["vars"])
    assert table.returncode == 0 and active in table.stdout and "REFUND" in table.stdout
    assert "Vipps said no" in one_line_error(cli("charge", "find", "chr_nosuchcharge", env=env["vars"]))


def test_agreement_list_by_status_and_external_id(env: dict[str, Any]) -> None:
    """Four listings: Vipps allows five a minute per merchant, and the CLI keeps to that budget."""
    active, stopped, _, _ = ids(env)
    listed = {a["id"]: a["status"] for a in ok_json(cli("agreement", "list", "--json", env=env["vars"]))}
    assert listed.get(active) == "ACTIVE" and stopped not in listed  # Vipps lists ACTIVE by default
    stopped_ones = ok_json(cli("agreement", "list", "--status", "STOPPED", "--since", "1h", "--json",
                               env=env["vars"]))
    assert stopped in [a["id"] for a in stopped_ones] and {a["status"] for a in stopped_ones} == {"STOPPED"}
    table = cli("agreement", "list", "--status", "active", "--external-id",
                f"checklist-{env['report']['run_id']}-active", env=env["vars"])
    assert table.returncode == 0 and active in table.stdout and "ACTIVE agreements" in table.stdout
    assert [r for r in table.stdout.splitlines() if "agr_" in r and active not in r] == []
    future = ok_json(cli("agreement", "list", "--since", "2999-01-01T00:00:00Z", "--json", env=env["vars"]))
    assert future == []
    assert "not a duration" in one_line_error(cli("agreement", "list", "--since", "yesterday", env=env["vars"]))


def test_command_show_tells_what_the_worker_did(env: dict[str, Any]) -> None:
    """Support asks "did this go through?" with the billing system's command_id."""
    run_id, (active, _, _, refunded) = env["report"]["run_id"], ids(env)
    shown = ok_json(cli("command", "show", f"checklist-{run_id}-refund", "--json", env=env["vars"]))
    assert shown["status"] == "succeeded" and shown["type"] == "charge.refund" and shown["attempts"] >= 1
    assert shown["command"]["charge_id"] == refunded and shown["dead_letter"] is None
    assert [e["type"] for e in shown["events"]] == ["charge.refunded"]
    assert shown["events"][0]["agreement_id"] == active
    table = cli("command", "show", f"checklist-{run_id}-refund", env=env["vars"])
    assert table.returncode == 0 and "charge.refunded" in table.stdout and refunded in table.stdout


def test_command_show_of_a_refused_command_names_the_problem_and_its_dead_letter(env: dict[str, Any],
                                                                                 redis_url: str) -> None:
    active, _, _, refunded = ids(env)
    # Sent past the CLI's pre-checks (a billing system's own command), so that Vipps refuses it.
    command_id = "support-test-capture-refunded"
    sender = producer(redis_url)
    sender.send({"command_id": command_id, "type": "charge.capture", "agreement_id": active, "charge_id": refunded,
                 "amount": 1000, "description": "Captured"})
    sender.close()
    shown: dict[str, Any] = {}

    def failed() -> bool:
        result = cli("command", "show", command_id, "--json", env=env["vars"])
        shown.update(json.loads(result.stdout) if result.returncode == 0 else {})
        return shown.get("status") == "failed"

    wait_for(failed, 30, interval=0.5, what="Vipps's refusal")
    assert shown["status"] == "failed" and shown["error"]["type"] and shown["error"]["status"] >= 400
    assert [e["type"] for e in shown["events"]] == ["command.failed"]
    letter = ok_json(cli("dlq", "show", shown["dead_letter"], "--json", env=env["vars"]))
    assert letter["command_id"] == command_id and letter["reason"] == "vipps_problem"
    table = cli("command", "show", command_id, env=env["vars"])
    assert table.returncode == 0 and "last error" in table.stdout and shown["dead_letter"] in table.stdout
    assert "no command" in one_line_error(cli("command", "show", "never-sent-42", env=env["vars"]))


def test_command_show_of_an_invalid_command_names_its_field_errors(env: dict[str, Any], redis_url: str) -> None:
    active, _, _, _ = ids(env)
    sender = producer(redis_url)
    sender.send_raw({"command_id": "support-test-bad-amount", "type": "charge.create", "agreement_id": active,
                     "amount": 19.5, "description": "December", "due": "2030-01-01", "retry_days": 2,
                     "transaction_type": "DIRECT_CAPTURE", "issued_at": "2030-01-01T00:00:00Z"})
    sender.close()
    shown: dict[str, Any] = {}

    def rejected() -> bool:
        result = cli("command", "show", "support-test-bad-amount", "--json", env=env["vars"])
        shown.update(json.loads(result.stdout) if result.returncode == 0 else {})
        return bool(shown)

    wait_for(rejected, 30, interval=0.5, what="the rejection")
    assert shown["status"] == "rejected" and shown["type"] == "charge.create" and shown["dead_letter"]
    assert [e["field"] for e in shown["error"]["errors"]] == ["charge.create.amount"]
    table = cli("command", "show", "support-test-bad-amount", env=env["vars"])
    assert table.returncode == 0 and "rejected" in table.stdout and "amount" in table.stdout


def test_refund_goes_through_the_queue_and_waits_for_its_event(env: dict[str, Any]) -> None:
    active, _, charged, _ = ids(env)
    outcome = ok_json(cli("charge", "refund", active, charged, "--amount", "5000", "--reason", "a test", "--yes",
                          "--json", env=env["vars"]))
    assert outcome["status"] == "succeeded" and outcome["command_id"].startswith("support-")
    assert [e["type"] for e in outcome["events"]] == ["charge.refunded"]
    after = ok_json(cli("charge", "show", active, charged, "--json", env=env["vars"]))
    assert after["summary"]["refunded"] == 5000


def test_refund_asks_first_and_sends_nothing_when_declined(env: dict[str, Any]) -> None:
    active, _, charged, _ = ids(env)
    before = ok_json(cli("charge", "show", active, charged, "--json", env=env["vars"]))["summary"]["refunded"]
    declined = cli("charge", "refund", active, charged, "--amount", "1000", "--reason", "a test", env=env["vars"],
                   input="n\n")
    assert declined.returncode == 1 and "not confirmed" in declined.stderr
    after = ok_json(cli("charge", "show", active, charged, "--json", env=env["vars"]))["summary"]["refunded"]
    assert after == before


def test_capturing_more_than_is_left_is_refused_before_anything_is_sent(env: dict[str, Any]) -> None:
    active, _, _, refunded = ids(env)
    before = ok_json(cli("charge", "show", active, refunded, "--json", env=env["vars"]))
    line = one_line_error(cli("charge", "capture", active, refunded, "--amount", "1000", "--reason", "a test", "--yes",
                              env=env["vars"]))
    assert "left to capture" in line and "nothing was sent" in line
    assert ok_json(cli("charge", "show", active, refunded, "--json", env=env["vars"]))["history"] == before["history"]


def test_stop_an_agreement(env: dict[str, Any]) -> None:
    report = ok_json(cli("checklist", "--restart", "--state-file", str(env["state"]) + ".2", "--json",
                         env=env["vars"]))
    active = report["agreements"]["active"]
    outcome = ok_json(cli("agreement", "stop", active, "--reason", "a test", "--yes", "--json", env=env["vars"]))
    assert {e["type"] for e in outcome["events"]} == {"agreement.updated", "agreement.stopped"}
    assert ok_json(cli("agreement", "show", active, "--json", env=env["vars"]))["status"] == "STOPPED"


def test_update_an_agreement_through_the_queue(env: dict[str, Any]) -> None:
    active, _, _, _ = ids(env)
    outcome = ok_json(cli("agreement", "update", active, "--price", "39900", "--product-name", "Gym, off-peak",
                          "--reason", "a test", "--yes", "--json", env=env["vars"]))
    assert outcome["status"] == "succeeded" and outcome["command_id"].startswith("support-")
    assert "agreement.updated" in [e["type"] for e in outcome["events"]]
    shown = ok_json(cli("agreement", "show", active, "--json", env=env["vars"]))
    assert shown["pricing"]["amount"] == 39900 and shown["productName"] == "Gym, off-peak"


def test_an_invalid_update_is_refused_before_confirmation_and_sends_nothing(env: dict[str, Any]) -> None:
    active, _, _, _ = ids(env)
    before = ok_json(cli("agreement", "show", active, "--json", env=env["vars"]))
    line = one_line_error(cli("agreement", "update", active, "--price", "50", "--reason", "a test", env=env["vars"],
                                        input="y\n"))
    assert "pricing_amount" in line
    result = cli("agreement", "update", active, "--reason", "a test", env=env["vars"])
    assert result.returncode == 2 and "at least one change" in one_line_error(result)
    declined = cli("agreement", "update", active, "--product-name", "Never", "--reason", "a test", env=env["vars"],
                   input="n\n")
    assert declined.returncode == 1 and "not confirmed" in declined.stderr
    assert ok_json(cli("agreement", "show", active, "--json", env=env["vars"])) == before


def test_status_shows_queues_and_workers(env: dict[str, Any]) -> None:
    data = ok_json(cli("status", "--json", env=env["vars"]))
    assert data["workers_alive"] >= 1
    assert set(data["queues"]) == {"vipps.agreements", "vipps.charges", "vipps.events"}
    assert data["queues"]["vipps.events"]["ready"] > 0  # nobody consumes the events in this test
    assert data["in_flight"] == 0
    table = cli("status", env=env["vars"])
    assert table.returncode == 0 and "workers alive" in table.stdout and "vipps.charges" in table.stdout


@pytest.mark.parametrize("args", [("agreement", "show", "agr_doesnotexist"),
                                  ("charge", "show", "agr_doesnotexist", "chr_nope"),
                                  ("charge", "list", "agr_doesnotexist")])
def test_unknown_ids_are_one_line(env: dict[str, Any], args: tuple[str, ...]) -> None:
    assert "Vipps said no" in one_line_error(cli(*args, env=env["vars"]))


def test_malformed_input_is_one_line(env: dict[str, Any], tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"command_id": "x1", "type": "charge.fetch"}\n{not json\n')
    assert "line 2: not valid JSON" in one_line_error(cli("enqueue", str(bad), env=env["vars"]))
    bad.write_text('{"command_id": "x1", "type": "charge.fetch", "agreement_id": "agr_1"}\n')
    assert "charge_id" in one_line_error(cli("enqueue", str(bad), env=env["vars"]))
    assert "invalid command" in one_line_error(cli("agreement", "stop", "not an id", "--reason", "a test", "--yes",
                                                env=env["vars"]))


@pytest.mark.parametrize("args", [("status",), ("dlq", "list"),
                                  ("agreement", "stop", "agr_1", "--reason", "a test", "--yes")])
def test_unreachable_redis_is_one_line(args: tuple[str, ...]) -> None:
    line = one_line_error(cli(*args, env={"REDIS_URL": "redis://127.0.0.1:1/0"}))
    assert "Redis" in line


@pytest.mark.parametrize(("args", "says"), [
    (("status", "--bogus"), "No such option: --bogus"),
    (("charge", "show", "agr_1"), "Missing argument 'charge_id'"),
    (("charge", "list", "agr_1", "--status", "NOPE"), "'NOPE' is not one of"),
    (("dlq", "list", "--since", "yesterday"), "not a duration or date-time: 'yesterday'"),
    (("agreement", "list", "--since", "yesterday"), "not a duration or date-time: 'yesterday'"),
    (("nosuchcommand",), "No such command 'nosuchcommand'")])
def test_mistyped_commands_are_one_line_with_a_pointer_to_help(args: tuple[str, ...], says: str) -> None:
    result = cli(*args, env={"REDIS_URL": "redis://127.0.0.1:1/0"})
    line = one_line_error(result)
    assert result.returncode == 2 and says in line and "--help" in line, line


@pytest.mark.parametrize("command", [
    ("worker",), ("enqueue",), ("demo",), ("checklist",), ("status",), ("agreement", "show"), ("agreement", "stop"),
    ("agreement", "list"), ("agreement", "update"), ("charge", "list"), ("charge", "show"), ("charge", "find"),
    ("charge", "capture"), ("charge", "refund"), ("charge", "cancel"), ("command", "show"), ("dlq", "list"),
    ("dlq", "show"), ("dlq", "replay"), ("dlq", "purge"), ("merchants", "list"), ("merchants", "check"), ("bench",),
    ("simulator",)])
def test_every_command_has_help_with_an_example(command: tuple[str, ...]) -> None:
    result = CliRunner().invoke(app, [*command, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0 and "Example" in result.output, result.output
