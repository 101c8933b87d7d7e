"""`--msn` on the support and operator commands, against a real Redis: required with several merchants (the
one-line error names them), refused when unknown, and the filter of what only reads the worker's records."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from typer.testing import CliRunner, Result

from worker.cli.app import app
from worker.core.producer import Producer
from worker.runtime.settings import WorkerSettings, get_settings
from worker.store.deadletters import DeadLetter, DeadLetterStore
from worker.store.keys import Keys

REQUIRED = "msn is required: this deployment serves 3 merchants (123456 (Gym One), 223344 (Yoga Two), 334455 (Old)"
FETCH = {"type": "agreement.fetch", "agreement_id": "agr_1"}


def keys(name: str) -> dict[str, str]:
    return {"client_id": f"{name}-id", "client_secret": f"{name}-secret", "subscription_key": f"{name}-sub"}


@pytest.fixture
def env(tmp_path: Path, redis_url: str, redis_client: redis.Redis) -> Iterator[dict[str, str]]:
    path = tmp_path / "merchants.json"
    path.write_text(json.dumps({"merchants": [
        {"msn": "123456", "name": "Gym One", **keys("gym")}, {"msn": "223344", "name": "Yoga Two", **keys("yoga")},
        {"msn": "334455", "name": "Old", "enabled": False, **keys("old")}]}))
    get_settings.cache_clear()  # REDIS_URL is read once per process
    yield {"REDIS_URL": redis_url, "MERCHANTS_FILE": str(path), "COLUMNS": "200"}
    get_settings.cache_clear()


def run(env: dict[str, str], *args: str) -> Result:
    return CliRunner().invoke(app, list(args), env=env)


def error(result: Result) -> str:
    assert result.exit_code == 1, result.output
    return result.output


SUPPORT = [("agreement", "show", "agr_1"), ("agreement", "list"), ("agreement", "history", "agr_1"),
           ("agreement", "stop", "agr_1", "--reason", "r", "--yes"),
           ("agreement", "update", "agr_1", "--price", "10000", "--reason", "r", "--yes"),
           ("charge", "list", "agr_1"), ("charge", "show", "agr_1", "chr_1"), ("charge", "find", "chr_1"),
           ("charge", "history", "agr_1", "chr_1"),
           ("charge", "capture", "agr_1", "chr_1", "--reason", "r", "--yes"),
           ("charge", "refund", "agr_1", "chr_1", "--reason", "r", "--yes"),
           ("charge", "cancel", "agr_1", "chr_1", "--reason", "r", "--yes"),
           ("command", "show", "c-1"), ("checklist",)]


@pytest.mark.parametrize("args", SUPPORT, ids=[" ".join(a[:2]) for a in SUPPORT])
def test_with_several_merchants_every_support_command_needs_a_known_msn(env: dict[str, str],
                                                                        args: tuple[str, ...]) -> None:
    assert REQUIRED in error(run(env, *args))
    assert "MSN 999999 is not a merchant of this deployment (123456 (Gym One)" in error(
        run(env, *args, "--msn", "999999"))


@pytest.mark.parametrize("args", [a for a in SUPPORT if "history" not in a], ids=lambda a: " ".join(a[:2]))
def test_a_disabled_merchant_is_refused_where_vipps_would_be_called(env: dict[str, str],
                                                                     args: tuple[str, ...]) -> None:
    assert "MSN 334455 (Old) is disabled in the merchants file" in error(run(env, *args, "--msn", "334455"))


def test_with_one_merchant_the_msn_may_be_left_out_but_not_mistaken(redis_url: str, redis_client: redis.Redis) -> None:
    get_settings.cache_clear()
    env = {"REDIS_URL": redis_url}
    assert "no command c-1" in error(run(env, "command", "show", "c-1"))
    assert "no command c-1" in error(run(env, "command", "show", "c-1", "--msn", "123456"))
    line = error(run(env, "agreement", "history", "agr_1", "--msn", "654321"))
    assert "MSN 654321 is not a merchant of this deployment (123456 (default))" in line


def event(msn: str, kind: str, at: int) -> str:
    return json.dumps({"event_id": f"e-{msn}-{at}", "type": kind, "msn": msn, "agreement_id": "agr_1",
                       "occurred_at": f"2030-01-01T00:00:0{at}Z"})


def test_history_shows_the_named_merchants_events(env: dict[str, str], redis_client: redis.Redis) -> None:
    redis_client.zadd(Keys().history("agr_1"), {event("123456", "agreement.created", 1): 1,
                                                event("223344", "agreement.stopped", 2): 2})
    yoga = json.loads(run(env, "agreement", "history", "agr_1", "--msn", "223344", "--json").output)
    assert [e["type"] for e in yoga] == ["agreement.stopped"]
    old = run(env, "agreement", "history", "agr_1", "--msn", "334455")  # a disabled merchant's records stay readable
    assert old.exit_code == 0 and "no events recorded for agreement agr_1 of MSN 334455" in old.output
    assert "it has events of MSN 123456, 223344" in old.output


def letter(msn: str | None, n: int) -> DeadLetter:
    return DeadLetter(id=f"dl-{msn}-{n}", reason="invalid_command", detail="bad", at_ms=1_900_000_000_000 + n,
                      command_id=f"cmd-{n}", command_type="charge.create", payload={"command_id": f"cmd-{n}"},
                      msn=msn)


@pytest.fixture
def letters(redis_client: redis.Redis) -> DeadLetterStore:
    store = DeadLetterStore(redis_client, Keys(), retention_days=30)
    for n, msn in enumerate(("123456", "223344", "223344", None)):
        store.add(letter(msn, n))
    return store


def test_dlq_filters_by_merchant_and_shows_the_msn(env: dict[str, str], letters: DeadLetterStore) -> None:
    listed = json.loads(run(env, "dlq", "list", "--json").output)
    assert [x["msn"] for x in listed] == [None, "223344", "223344", "123456"]
    yoga = json.loads(run(env, "dlq", "list", "--msn", "223344", "--json").output)
    assert {x["id"] for x in yoga} == {"dl-223344-1", "dl-223344-2"}
    table = run(env, "dlq", "list")
    assert table.exit_code == 0 and "msn" in table.output and "223344" in table.output
    assert "is not a merchant" in error(run(env, "dlq", "list", "--msn", "999999"))
    assert run(env, "dlq", "list", "--msn", "334455", "--json").output.strip() == "[]"  # disabled: still listed
    assert "dead letter dl-123456-0 is not of MSN 223344 (it is of 123456)" in error(
        run(env, "dlq", "show", "dl-123456-0", "--msn", "223344"))
    assert json.loads(run(env, "dlq", "show", "dl-123456-0", "--msn", "123456", "--json").output)["msn"] == "123456"


def test_dlq_purge_and_replay_select_by_merchant(env: dict[str, str], letters: DeadLetterStore) -> None:
    purged = json.loads(run(env, "dlq", "purge", "--msn", "223344", "--force", "--yes", "--json").output)
    assert purged["removed"] == 2 and set(purged["ids"]) == {"dl-223344-1", "dl-223344-2"}
    assert {x.id for x in letters.find()} == {"dl-123456-0", "dl-None-3"}
    dry = json.loads(run(env, "dlq", "replay", "--msn", "123456", "--dry-run", "--json").output)
    assert [d["dead_letter"] for d in dry["decisions"]] == ["dl-123456-0"]


def test_dlq_list_with_one_merchant_has_no_msn_column(redis_url: str, letters: DeadLetterStore) -> None:
    get_settings.cache_clear()
    table = run({"REDIS_URL": redis_url, "COLUMNS": "200"}, "dlq", "list")
    assert table.exit_code == 0 and "msn" not in table.output.splitlines()[2]


def test_status_per_merchant(env: dict[str, str], redis_url: str, letters: DeadLetterStore) -> None:
    layout = WorkerSettings().layout(("123456", "223344", "334455"))
    with Producer(redis_url, layout=layout) as producer:
        producer.send_many([{"command_id": f"a-{n}", "msn": "223344", **FETCH} for n in range(3)])
        producer.send({"command_id": "c-1", "msn": "123456", "type": "charge.fetch", "agreement_id": "agr_1",
                       "charge_id": "chr_1"})
        producer.send({"command_id": "x-1", **FETCH})  # names no merchant: the shared queue
    data = json.loads(run(env, "status", "--json").output)
    assert data["merchants"]["223344"] == {
        "name": "Yoga Two", "enabled": True, "dead_letters": 2,
        "queues": {"vipps.agreements.223344": {"ready": 3, "delayed": 0},
                   "vipps.charges.223344": {"ready": 0, "delayed": 0}}}
    assert data["merchants"]["123456"]["queues"]["vipps.charges.123456"]["ready"] == 1
    assert data["merchants"]["334455"]["enabled"] is False and data["queues"]["vipps.agreements"]["ready"] == 1
    table = run(env, "status").output
    rows = {line.split("│")[1].strip(): line for line in table.splitlines() if line.count("│") == 6}
    assert "Yoga Two" in rows["223344"] and rows["223344"].split("│")[3].strip() == "3"
    assert "Old (disabled)" in rows["334455"] and "no merchant of ours" in rows["-"]


def test_status_with_one_merchant_is_as_before(redis_url: str, redis_client: redis.Redis) -> None:
    get_settings.cache_clear()
    data = json.loads(run({"REDIS_URL": redis_url}, "status", "--json").output)
    assert "merchants" not in data and set(data["queues"]) == {"vipps.agreements", "vipps.charges", "vipps.events"}


def test_redis_only_commands_go_on_when_the_configuration_cannot_be_read(redis_url: str, tmp_path: Path,
                                                                         redis_client: redis.Redis) -> None:
    get_settings.cache_clear()
    env = {"REDIS_URL": redis_url, "MERCHANTS_FILE": str(tmp_path / "absent.yaml")}
    status = run(env, "status", "--json")
    assert status.exit_code == 0 and "warning: MERCHANTS_FILE" in status.output
    assert "is not a readable file" in error(run(env, "dlq", "list", "--msn", "123456"))
    assert "is not a readable file" in error(run(env, "agreement", "show", "agr_1"))


def commands_file(tmp_path: Path, *commands: dict[str, str]) -> str:
    path = tmp_path / "commands.jsonl"
    path.write_text("".join(json.dumps(c) + "\n" for c in commands))
    return str(path)


def test_enqueue_reports_each_line_of_no_unknown_or_disabled_merchant(env: dict[str, str], tmp_path: Path,
                                                                      redis_client: redis.Redis) -> None:
    path = commands_file(tmp_path, {"command_id": "ok-1", "msn": "123456", **FETCH}, {"command_id": "none", **FETCH},
                         {"command_id": "unknown", "msn": "999999", **FETCH},
                         {"command_id": "old", "msn": "334455", **FETCH})
    line = error(run(env, "enqueue", path))
    assert "3 invalid command(s), nothing was sent" in line and "line 1" not in line
    assert f"line 2: {REQUIRED}" in line
    assert "line 3: MSN 999999 is not a merchant of this deployment" in line
    assert "line 4: MSN 334455 (Old) is disabled in the merchants file" in line
    assert redis_client.dbsize() == 0


def test_enqueue_msn_fills_in_lines_that_name_none(env: dict[str, str], tmp_path: Path,
                                                   redis_client: redis.Redis) -> None:
    path = commands_file(tmp_path, {"command_id": "same", **FETCH}, {"command_id": "same", "msn": "123456", **FETCH})
    sent = run(env, "enqueue", path, "--msn", "223344", "--json")
    assert sent.exit_code == 0, sent.output
    assert json.loads(sent.output)["sent"] == ["same", "same"]  # one command_id, two merchants: two commands
    assert redis_client.llen("dramatiq:vipps.agreements.223344") == 1
    assert redis_client.llen("dramatiq:vipps.agreements.123456") == 1
    assert "--msn: MSN 999999 is not a merchant" in error(run(env, "enqueue", path, "--msn", "999999"))
