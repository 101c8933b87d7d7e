"""`vipps-billing enqueue` reports every bad line, can dry-run, prints the ids it sent, and warns about repeats."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import redis

from tests.e2e.clirun import cli, ok_json, one_line_error
from tests.stack import Simulator, Worker, wait_for
from worker.core.control import Control
from worker.runtime.settings import get_settings

FETCH = {"type": "charge.fetch", "agreement_id": "agr_doesnotexist", "charge_id": "chr_nope"}


def write(path: Path, *commands: dict[str, Any] | str) -> str:
    path.write_text("".join((c if isinstance(c, str) else json.dumps(c)) + "\n" for c in commands))
    return str(path)


def queued(redis_url: str) -> int:
    client = redis.Redis.from_url(redis_url)
    return sum(int(client.llen(key)) for key in client.scan_iter("*") if client.type(key) == b"list")


def test_every_bad_line_is_reported_and_nothing_is_sent(redis_url: str, tmp_path: Path) -> None:
    redis.Redis.from_url(redis_url).flushdb()
    env = {"REDIS_URL": redis_url}
    path = write(tmp_path / "bad.jsonl", FETCH | {"command_id": "ok-1"}, "{not json",
                 {"command_id": "no-charge", "type": "charge.fetch", "agreement_id": "agr_1"},
                 FETCH | {"command_id": "ok-2"}, FETCH | {"command_id": "other-msn", "msn": "654321"})
    result = cli("enqueue", path, env=env)
    assert result.returncode == 1
    line = one_line_error(result)
    assert "3 invalid command(s)" in line and "line 2: not valid JSON" in line
    assert "line 3:" in line and "charge_id" in line
    assert "line 5: MSN 654321 is not a merchant of this deployment (123456 (default))" in line
    assert "line 1" not in line and "line 4" not in line
    assert queued(redis_url) == 0


def test_dry_run_ids_and_duplicate_warnings(redis_url: str, tmp_path: Path) -> None:
    redis.Redis.from_url(redis_url).flushdb()
    env = {"REDIS_URL": redis_url}
    path = write(tmp_path / "cmds.jsonl", FETCH | {"command_id": "a-1"}, FETCH | {"command_id": "a-2"},
                 FETCH | {"command_id": "a-1"})
    dry = cli("enqueue", path, "--dry-run", env=env)
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.split() == ["a-1", "a-2"]
    assert "line 3: command_id a-1 repeats line 1" in dry.stderr and "would enqueue 2 command(s)" in dry.stderr
    assert queued(redis_url) == 0
    sent = ok_json(cli("enqueue", path, "--json", env=env))
    assert sent["sent"] == ["a-1", "a-2"] and sent["skipped"] == 1
    assert queued(redis_url) == 2
    redis.Redis.from_url(redis_url).flushdb()


def test_a_resent_file_warns_about_finished_commands(redis_url: str, tmp_path: Path) -> None:
    redis.Redis.from_url(redis_url).flushdb()
    simulator = Simulator()
    worker = Worker(redis_url, simulator.url)
    env = {"REDIS_URL": redis_url, "VIPPS_ENV": "simulator", "VIPPS_BASE_URL": simulator.url}
    path = write(tmp_path / "once.jsonl", FETCH | {"command_id": "done-1"})
    try:
        first = cli("enqueue", path, env=env)
        assert first.returncode == 0 and first.stdout.split() == ["done-1"], first.stderr
        ops = Control(redis_url, get_settings())
        try:
            wait_for(lambda: (ops.record("done-1") or {}).get("status") in
                     ("succeeded", "failed", "rejected", "dead_lettered"), 30, interval=0.3, what="done-1 finished")
        finally:
            ops.close()
        again = cli("enqueue", path, env=env)
        assert again.returncode == 0, again.stderr
        assert again.stdout.split() == ["done-1"]  # sent: its events are published again, nothing is redone
        assert "command_id done-1 already" in again.stderr and "1 already finished" in again.stderr
    finally:
        worker.stop()
        simulator.stop()
        redis.Redis.from_url(redis_url).flushdb()
