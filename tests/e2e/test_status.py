"""`vipps-billing status`: only worker processes count as live workers; the events backlog shows."""

from __future__ import annotations

import json
from pathlib import Path

import redis

from tests.e2e.clirun import cli, ok_json

AGREEMENT = {"type": "agreement.fetch", "agreement_id": "agr_x"}


def test_enqueueing_from_the_cli_is_not_a_live_worker(redis_url: str, redis_client: redis.Redis,
                                                      tmp_path: Path) -> None:
    commands = tmp_path / "commands.jsonl"
    commands.write_text("\n".join(json.dumps({"command_id": f"st-{i}", **AGREEMENT}) for i in range(3)))
    env = {"REDIS_URL": redis_url}
    assert cli("enqueue", str(commands), env=env).returncode == 0
    status = ok_json(cli("status", "--json", env=env))
    assert status["workers_alive"] == 0  # dramatiq's dispatch script would have counted the CLI
    assert status["queues"]["vipps.agreements"]["ready"] == 3
    assert redis_client.zcard("dramatiq:__heartbeats__") == 0


def test_status_shows_events_waiting_for_the_consumer(redis_url: str, redis_client: redis.Redis) -> None:
    message = {"queue_name": "vipps.events", "actor_name": "vipps_event", "args": [{"event_id": "e1"}], "kwargs": {},
               "options": {"redis_message_id": "r1"}, "message_id": "e1", "message_timestamp": 1}
    redis_client.hset("dramatiq:vipps.events.msgs", "r1", json.dumps(message))
    redis_client.rpush("dramatiq:vipps.events", "r1")
    env = {"REDIS_URL": redis_url}
    status = ok_json(cli("status", "--json", env=env))
    assert status["events"]["waiting"] == 1 and status["events"]["oldest_age_seconds"] > 1e6
    table = cli("status", env=env)
    assert table.returncode == 0 and "events waiting for your consumer" in table.stdout
