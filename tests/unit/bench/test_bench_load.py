"""The bench's Redis side writes and reads where the workers do: their key prefix, namespace and queues."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator

import pytest
import redis

from worker.bench import naive
from worker.bench.load import Target, charge_command
from worker.runtime.settings import WorkerSettings
from worker.store.keys import DramatiqKeys, Keys, command_ref
from worker.vipps.config import SIMULATOR_DEFAULTS

SETTINGS = WorkerSettings(key_prefix="bench-kp", dramatiq_namespace="bench-ns", charges_queue="my.charges",
                          events_queue="my.events")
QUEUES = DramatiqKeys("bench-ns")


@pytest.fixture
def target(redis_url: str, redis_client: redis.Redis) -> Iterator[Target]:
    bench = Target(redis_url, SETTINGS)
    yield bench
    bench.close()


def queued(client: redis.Redis, queue: str) -> list[dict[str, object]]:
    """The messages on a queue, in order, as a dramatiq consumer would fetch them."""
    ids = client.lrange(QUEUES.queue(queue), 0, -1)
    return [json.loads(client.hget(QUEUES.messages(queue), rid) or "null") for rid in ids]


def test_commands_are_enqueued_as_dramatiq_does_on_the_workers_queue(target: Target,
                                                                      redis_client: redis.Redis) -> None:
    commands = [charge_command("agr_1", n, "t") for n in range(3)]
    target.enqueue(commands)
    messages = queued(redis_client, "my.charges")
    assert [m["args"] for m in messages] == [[c] for c in commands]
    assert {m["actor_name"] for m in messages} == {"charge_create"} and target.queued_charges() == 3
    for rid, message in zip(redis_client.lrange(QUEUES.queue("my.charges"), 0, -1), messages, strict=True):
        assert message["options"] == {"redis_message_id": rid.decode()}  # dramatiq acks by this id


def test_commands_for_the_naive_baseline_go_to_its_queue_and_actor(target: Target,
                                                                    redis_client: redis.Redis) -> None:
    target.enqueue([charge_command("agr_1", 1, "n")], to_naive=True)
    [message] = queued(redis_client, naive.QUEUE)
    assert message["actor_name"] == naive.ACTOR and target.queued_charges() == 0


def test_progress_is_read_from_the_workers_ledger_and_events_queue(target: Target,
                                                                    redis_client: redis.Redis) -> None:
    keys = Keys("bench-kp")
    event = {"type": "charge.created", "event_id": "e1"}
    msn = SIMULATOR_DEFAULTS["msn"]
    redis_client.hset(keys.command(command_ref(msn, "c1")), mapping={"status": "succeeded",
                                                                      "events": json.dumps([event])})
    redis_client.hset(QUEUES.messages("my.events"), "e1", json.dumps({"args": [event]}))
    redis_client.zadd(keys.inflight, {command_ref(msn, "c2"): 1})
    redis_client.hset(keys.outbox, "e2", "{}")
    assert target.status("c1") == "succeeded" and target.status("nope") is None
    assert target.events("c1") == [event] and target.events("nope") == []
    assert target.all_succeeded(["c1"])() and not target.all_succeeded(["c1", "nope"])()
    assert target.published() == 1 and target.published_messages() == [{"args": [event]}]
    assert target.in_flight() == {"c2"}
    assert target.in_outbox("e2") and not target.in_outbox("e1")
    redis_client.incr(naive.DONE_KEY, 7)
    assert target.naive_done() == 7
    target.reset_naive()
    assert target.naive_done() == 0
    assert target.cpu_seconds() > 0


def test_importing_the_naive_baseline_does_no_work() -> None:
    code = ("import dramatiq.broker, worker.bench.naive; "
            "assert dramatiq.broker.global_broker is None, 'a broker was built at import'")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env={"REDIS_URL": "redis://127.0.0.1:1/0", "PATH": ""})
    assert result.returncode == 0, result.stderr
