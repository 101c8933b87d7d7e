"""A running worker acks each delivery in its outcome's Lua step, never with a separate dramatiq ack."""

from __future__ import annotations

import datetime as dt
import threading
import time
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

    def watch() -> None:
        with watcher.monitor() as monitor:
            for command in monitor.listen():
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
