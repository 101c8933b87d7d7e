"""Dead letters through the CLI: list, show, replay (checked against Vipps first) and purge."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.e2e.clirun import cli, ok_json, one_line_error
from tests.stack import Simulator, Worker, producer, wait_for

FAST_RETRIES = {"RETRY_MAX_ATTEMPTS": "2", "RETRY_MIN_BACKOFF_SECONDS": "0.2", "RETRY_MAX_BACKOFF_SECONDS": "0.5",
                "VIPPS_MAX_ATTEMPTS": "1"}


def enqueue(tmp_path: Path, env: dict[str, str], *commands: dict[str, Any]) -> None:
    path = tmp_path / "commands.jsonl"
    path.write_text("\n".join(json.dumps(c) for c in commands))
    result = cli("enqueue", str(path), env=env)
    assert result.returncode == 0, result.stderr


def letters(env: dict[str, str], *args: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = ok_json(cli("dlq", "list", "--json", *args, env=env))
    return found


def seed_dead_letters(tmp: Path, env: dict[str, str], simulator: Simulator, redis_url: str) -> tuple[str, str]:
    """Through the running worker: an ACTIVE agreement with a CHARGED charge (their ids returned) and three dead
    letters, a capture Vipps refused (dlq-capture), a refund that met only 5xx (dlq-refund), an invalid command."""
    report = ok_json(cli("checklist", "--state-file", str(tmp / "state.json"), "--json", env=env))
    agreement, charge = report["agreements"]["active"], report["charges"]["charged"]
    enqueue(tmp, env, {"command_id": "dlq-capture", "type": "charge.capture", "agreement_id": agreement,
                       "charge_id": charge, "amount": 1000, "description": "Shipped"})
    simulator.faults(error_5xx_rate=1.0, operations=["RefundChargeV3"])
    enqueue(tmp, env, {"command_id": "dlq-refund", "type": "charge.refund", "agreement_id": agreement,
                       "charge_id": charge, "amount": 3000, "description": "Goodwill"})
    sender = producer(redis_url)
    sender.send_raw({"command_id": "dlq-invalid", "type": "charge.refund", "amount": "a lot"})
    sender.close()
    wait_for(lambda: len(letters(env)) == 3, 30, interval=0.5, what="three dead letters")
    simulator.faults()
    return agreement, charge


@pytest.fixture(scope="module")
def dead(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A CHARGED charge and three dead letters: a refused capture, a refund that met only 5xx, an invalid command."""
    redis.Redis.from_url(redis_url).flushdb()
    simulator = Simulator()
    worker = Worker(redis_url, simulator.url, env=FAST_RETRIES)
    env = {"REDIS_URL": redis_url, "VIPPS_ENV": "simulator", "VIPPS_BASE_URL": simulator.url}
    tmp = tmp_path_factory.mktemp("dlq")
    try:
        agreement, charge = seed_dead_letters(tmp, env, simulator, redis_url)
        yield {"env": env, "agreement": agreement, "charge": charge,
               "ids": {x["command_id"]: x["id"] for x in letters(env)}}
    finally:
        worker.stop()
        simulator.stop()
        redis.Redis.from_url(redis_url).flushdb()


def refunded(dead: dict[str, Any]) -> int:
    charge = ok_json(cli("charge", "show", dead["agreement"], dead["charge"], "--json", env=dead["env"]))
    return int(charge["summary"]["refunded"])


def test_list_with_filters(dead: dict[str, Any]) -> None:
    env = dead["env"]
    reasons = {x["command_id"]: x["reason"] for x in letters(env)}
    assert reasons == {"dlq-capture": "vipps_problem", "dlq-refund": "retries_exhausted",
                       "dlq-invalid": "invalid_command"}
    assert [x["command_id"] for x in letters(env, "--reason", "retries_exhausted")] == ["dlq-refund"]
    assert [x["command_id"] for x in letters(env, "--type", "charge.capture")] == ["dlq-capture"]
    assert len(letters(env, "--since", "1h")) == 3
    assert letters(env, "--since", "2000-01-01T00:00:00Z", "--limit", "1")[0]["id"] in dead["ids"].values()
    table = cli("dlq", "list", env=env)
    assert table.returncode == 0 and "retries_exhausted" in table.stdout


def test_show(dead: dict[str, Any]) -> None:
    shown = ok_json(cli("dlq", "show", dead["ids"]["dlq-capture"], "--json", env=dead["env"]))
    assert shown["payload"]["command_id"] == "dlq-capture"
    assert shown["problem"]["type"] == "charge-capture-failed"
    assert "no dead letter" in one_line_error(cli("dlq", "show", "nope", env=dead["env"]))


def test_replay_checks_vipps_first_and_sends_only_what_is_still_needed(dead: dict[str, Any]) -> None:
    env = dead["env"]
    before = refunded(dead)
    dry = ok_json(cli("dlq", "replay", "--all", "--dry-run", "--json", env=env))
    decided = {d["command_id"]: d for d in dry["decisions"]}
    # Vipps refused that capture (the charge was CHARGED, not RESERVED): the same command would be refused again.
    assert decided["dlq-capture"]["replay"] is False
    assert "would refuse the same command again" in decided["dlq-capture"]["why"]
    assert decided["dlq-invalid"]["replay"] is False
    assert decided["dlq-refund"]["replay"] is True and decided["dlq-refund"]["new_command_id"] == "dlq-refund.r1"
    assert refunded(dead) == before  # a dry run sends nothing

    done = ok_json(cli("dlq", "replay", dead["ids"]["dlq-refund"], "--yes", "--rate", "10", "--json", env=env))
    assert [d["new_command_id"] for d in done["decisions"]] == ["dlq-refund.r1"]
    wait_for(lambda: refunded(dead) == before + 3000, 30, interval=0.5, what="the replayed refund")
    shown = ok_json(cli("dlq", "show", dead["ids"]["dlq-refund"], "--json", env=env))
    assert shown["replayed_as"] == ["dlq-refund.r1"]
    # Support sees the whole story under the billing system's own id.
    def replay_finished() -> dict[str, Any] | None:
        found: dict[str, Any] = ok_json(cli("command", "show", "dlq-refund", "--json", env=env))
        return found if found["replays"] == [{"command_id": "dlq-refund.r1", "status": "succeeded"}] else None

    story = wait_for(replay_finished, 30, interval=0.5, what="the replay's outcome in the ledger")
    assert story["status"] == "dead_lettered" and story["attempts"] == 2
    assert story["error"]["reason"] == "retries_exhausted" and story["error"]["status"] >= 500
    assert story["dead_letter"] == dead["ids"]["dlq-refund"]
    assert [e["type"] for e in story["events"]] == ["command.dead_lettered"]
    table = cli("command", "show", "dlq-refund", env=env)
    assert table.returncode == 0 and "dlq-refund.r1 (succeeded)" in table.stdout and "HTTP 5" in table.stdout

    again = ok_json(cli("dlq", "replay", dead["ids"]["dlq-refund"], "--yes", "--json", env=env))
    assert again["decisions"][0]["replay"] is False and "already replayed" in again["decisions"][0]["why"]
    assert refunded(dead) == before + 3000


def test_replay_needs_a_selection(dead: dict[str, Any]) -> None:
    assert "--all" in one_line_error(cli("dlq", "replay", env=dead["env"]))


def test_purge(dead: dict[str, Any]) -> None:
    env = dead["env"]
    assert "--all" in one_line_error(cli("dlq", "purge", env=env))
    kept = ok_json(cli("dlq", "purge", "--reason", "invalid_command", "--older-than", "1d", "--yes", "--json",
                       env=env))
    assert kept["removed"] == 0  # all are younger than a day
    refused = cli("dlq", "purge", "--all", "--yes", env=env)
    assert refused.returncode == 1
    line = one_line_error(refused)
    assert "--force" in line and "3 of 3" in line and "DEAD_LETTER_RETENTION_DAYS" in line
    assert len(letters(env)) == 3  # nothing deleted
    gone = ok_json(cli("dlq", "purge", "--reason", "invalid_command", "--force", "--yes", "--json", env=env))
    assert gone["removed"] == 1 and gone["ids"] == [dead["ids"]["dlq-invalid"]]
    assert {x["command_id"] for x in letters(env)} == {"dlq-capture", "dlq-refund"}
    forced = cli("dlq", "purge", "--all", "--force", "--yes", env=env)
    assert forced.returncode == 0 and "removed 2 dead letter(s)" in forced.stdout
    assert letters(env) == []
