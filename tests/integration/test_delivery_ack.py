"""A running worker acks each delivery in its outcome's Lua step, never with a separate dramatiq ack."""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
import uuid
from typing import Any

import redis

from tests.integration.test_worker_lifecycle import active_agreement, send
from tests.stack import Events, Simulator, Worker, wait_for


def test_outcomes_ack_their_deliveries_and_dramatiq_sends_no_ack_of_its_own(
        redis_url: str, redis_client: redis.Redis) -> None:
    sim = Simulator()
    worker = Worker(redis_url, sim.url)
    events = Events(redis_client)
    seen: list[str] = []
    stop = threading.Event()
    watcher = redis.Redis.from_url(redis_url)
    db = watcher.connection_pool.connection_kwargs.get("db", 0)

    def watch() -> None:
        with watcher.monitor() as monitor:
            for command in monitor.listen():
                if command["db"] == db:  # MONITOR sees every database: other tests may run beside this one
                    seen.append(str(command["command"]))
                if stop.is_set():
                    return

    try:
        agreement_id = active_agreement(redis_url, events, "ack")
        thread = threading.Thread(target=watch, daemon=True)
        thread.start()
        time.sleep(0.5)
        due = (dt.datetime.now(dt.UTC).date() + dt.timedelta(days=3)).isoformat()
        for i in range(20):
            send(redis_url, f"ack-{i}", type="charge.create", agreement_id=agreement_id, amount=1000 + i,
                 description="Month", due=due, retry_days=0, transaction_type="DIRECT_CAPTURE")
        wait_for(lambda: len(events.of(type="charge.created")) == 20, timeout=60, what="20 charges created")
        stop.set()
        redis_client.ping()  # one more command, so the monitor thread sees the stop
        thread.join(10)

        def dispatches(command: str) -> list[str]:
            return [line for line in seen if line.upper().startswith("EVALSHA") and f" {command} " in f"{line} "]

        assert dispatches("fetch"), "the monitor saw dramatiq fetch its messages"
        assert dispatches("ack") == []
        # ... and nothing is left unacked: no message held for this worker, none left in the queue's hash.
        held: list[Any] = [key for key in redis_client.scan_iter("dramatiq:__acks__.*")
                           if redis_client.scard(key)]
        assert held == []
        assert redis_client.hlen("dramatiq:vipps.charges.msgs") == 0
    finally:
        stop.set()
        worker.stop()
        sim.stop()
        watcher.close()


def test_a_fetched_message_nobody_holds_is_put_back_and_carried_out(redis_url: str,
                                                                    redis_client: redis.Redis) -> None:
    """A fetch whose reply was lost (Redis restarted under it) leaves its messages in the live worker's acks
    set, where dramatiq's maintenance never looks while the heartbeat goes on: the worker puts them back."""
    sim = Simulator()
    worker = Worker(redis_url, sim.url)
    events = Events(redis_client)
    try:
        agreement_id = active_agreement(redis_url, events, "orphan")
        time.sleep(2)  # producers beat once when they enqueue; the worker's consumers beat on every fetch
        [(member, _)] = redis_client.zrevrange("dramatiq:__heartbeats__", 0, 0, withscores=True)
        broker_id = member.decode()
        due = (dt.datetime.now(dt.UTC).date() + dt.timedelta(days=3)).isoformat()
        command = {"command_id": "orphan-charge", "type": "charge.create", "agreement_id": agreement_id,
                   "amount": 1500, "description": "Month", "due": due, "retry_days": 0,
                   "transaction_type": "DIRECT_CAPTURE", "issued_at": dt.datetime.now(dt.UTC).isoformat()}
        redis_id = str(uuid.uuid4())
        message = {"queue_name": "vipps.charges", "actor_name": "charge_create", "args": [command], "kwargs": {},
                   "options": {"redis_message_id": redis_id}, "message_id": redis_id,
                   "message_timestamp": int(time.time() * 1000)}
        # As dispatch.lua's fetch leaves it: in the hash and this worker's acks set, no longer on the queue.
        redis_client.hset("dramatiq:vipps.charges.msgs", redis_id, json.dumps(message))
        redis_client.sadd(f"dramatiq:__acks__.{broker_id}.vipps.charges", redis_id)
        created = events.wait(20, command_id="orphan-charge", type="charge.created")
        assert created["charge"]["amount"] == 1500
        assert [e["operation"] for e in sim.effects()].count("charge.create") == 1
        assert sim.effects(duplicates="true") == []
        assert "requeued messages fetched but held by nobody" in worker.output()
        wait_for(lambda: redis_client.scard(f"dramatiq:__acks__.{broker_id}.vipps.charges") == 0,
                 what="the delivery acked")
    finally:
        worker.stop()
        sim.stop()
