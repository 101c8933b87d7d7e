"""Charge runs through the batch endpoint, end to end: a worker, the simulator over HTTP with its limits on."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from tests.integration.test_worker_lifecycle import active_agreement, send
from tests.stack import Events, Simulator, Worker, due_in, producer, wait_for
from worker.core.idempotency import charge_order_id
from worker.vipps.config import SIMULATOR_DEFAULTS

MSN = SIMULATOR_DEFAULTS["msn"]
BATCHING = {"CHARGE_BATCH": "auto", "CHARGE_BATCH_LINGER_SECONDS": "0.5", "CHARGE_POLL_SECONDS": "1",
            "RETRY_MIN_BACKOFF_SECONDS": "0.2", "RETRY_MAX_BACKOFF_SECONDS": "1"}


@pytest.fixture
def sim(redis_client: redis.Redis) -> Iterator[Simulator]:
    simulator = Simulator()
    try:
        yield simulator
    finally:
        simulator.stop()


def charge_command(command_id: str, agreement_id: str, **fields: Any) -> dict[str, Any]:
    return {"command_id": command_id, "type": "charge.create", "agreement_id": agreement_id, "amount": 19900,
            "description": "Monthly", "due": due_in(2), "retry_days": 2, "transaction_type": "DIRECT_CAPTURE"} | fields


def enqueue(redis_url: str, commands: list[dict[str, Any]]) -> None:
    p = producer(redis_url)
    try:
        p.send_many(commands)
    finally:
        p.close()


def outcome(events: Events, command_id: str) -> list[dict[str, Any]]:
    return [e for e in events.of(command_id=command_id)
            if e["type"] in ("charge.created", "command.failed", "command.dead_lettered", "command.rejected")]


def batch_requests(sim: Simulator) -> list[dict[str, Any]]:
    return [r for r in sim.requests() if r.get("operation") == "CreateChargesAsyncV3"]


def test_a_charge_run_goes_through_the_batch_endpoint_and_each_command_ends_on_its_own(
        sim: Simulator, redis_url: str, redis_client: redis.Redis) -> None:
    events = Events(redis_client)
    worker = Worker(redis_url, sim.url, env=BATCHING)
    try:
        agreements = [active_agreement(redis_url, events, f"run{i}") for i in range(3)]
        stopped = active_agreement(redis_url, events, "run-stopped")
        send(redis_url, "stop-it", type="agreement.update", agreement_id=stopped, status="STOPPED")
        events.wait(type="agreement.stopped", agreement_id=stopped)
        today = dt.datetime.now(dt.UTC).date().isoformat()
        run = [charge_command(f"run-{i}", agreements[i % 3], amount=10000 + i) for i in range(60)]
        refused = [charge_command("run-on-stopped", stopped), charge_command("run-too-soon", agreements[0], due=today)]
        own_order = charge_command("run-own-order", agreements[1], order_id="inv-2026-12-0042")
        enqueue(redis_url, [*run, *refused, own_order])
        for command in [*run, *refused, own_order]:
            wait_for(lambda c=command["command_id"]: outcome(events, c), timeout=30,
                     what=f"outcome of {command['command_id']}")

        # Far fewer requests than charges: the limits (500 a minute per merchant, 2 a minute per charge) and
        # the 63 charges were one or two batches.
        assert 1 <= len(batch_requests(sim)) <= 3
        for command in [*run, own_order]:
            [created] = outcome(events, command["command_id"])
            assert created["type"] == "charge.created" and created["completion"] == "accepted"
            expected = command.get("order_id") or charge_order_id(MSN, command["command_id"])
            assert created["charge_id"] == expected  # the orderId it was sent with
        for command in refused:
            [failed] = outcome(events, command["command_id"])
            assert failed["type"] == "command.failed" and failed["problem"]["type"] == "invalid-charge"
            assert failed["problem"]["detail"]  # Vipps's own reasons
        # Every accepted charge exists at Vipps, once.
        report = wait_for(lambda: (r := sim.admin.get("/effects/charges").json())["queued"] == [] and r,
                          what="the batch processed")
        assert report["created_more_than_once"] == []
        made = {cid for cid, c in report["charges"].items() if "charge.create" in c["operations"]}
        assert made == {e["charge_id"] for c in [*run, own_order] for e in outcome(events, c["command_id"])}
        # The watcher finds each one and follows it: through the processing round to CHARGED.
        sim.advance(3 * 86_400)
        for command in run[:5]:
            charge_id = outcome(events, command["command_id"])[0]["charge_id"]
            events.wait(type="charge.status_changed", charge_id=charge_id, timeout=30)
            wait_for(lambda c=charge_id: any(e["transition"]["to"] == "CHARGED"
                                             for e in events.of(type="charge.status_changed", charge_id=c)),
                     timeout=30, what=f"{charge_id} CHARGED")
    finally:
        worker.stop()
        print(worker.output()[-15000:])


def test_a_lone_charge_goes_through_the_single_endpoint(sim: Simulator, redis_url: str,
                                                        redis_client: redis.Redis) -> None:
    events = Events(redis_client)
    worker = Worker(redis_url, sim.url, env=BATCHING)
    try:
        agreement = active_agreement(redis_url, events, "lone")
        enqueue(redis_url, [charge_command("lone-1", agreement)])
        created = events.wait(command_id="lone-1", type="charge.created")
        assert created["completion"] == "done" and created["charge"]["status"] == "PENDING"
        assert batch_requests(sim) == []
    finally:
        worker.stop()
        print(worker.output()[-15000:])


def test_lost_batch_answers_and_a_killed_sender_create_no_charge_twice(sim: Simulator, redis_url: str,
                                                                       redis_client: redis.Redis) -> None:
    """Vipps takes the batch and the answer is lost; the worker dies meanwhile; the charges are sent again,
    partly in other batches, partly alone: every command ends once, every charge exists once."""
    events = Events(redis_client)
    worker = Worker(redis_url, sim.url, threads=8, env=BATCHING | {"LEASE_SECONDS": "5"})
    try:
        agreements = [active_agreement(redis_url, events, f"lost{i}") for i in range(2)]
        sim.faults(timeout_after_commit_rate=1.0, timeout_seconds=8, operations=["CreateChargesAsyncV3"])
        first = [charge_command(f"lost-{i}", agreements[i % 2]) for i in range(40)]
        enqueue(redis_url, first)
        wait_for(lambda: batch_requests(sim), timeout=20, what="a batch sent")
        worker.kill()  # mid-batch: Vipps has the charges, the worker never heard back
        sim.faults()
        report = sim.admin.get("/effects/charges").json()
        assert report["queued"] or report["charges"], "Vipps accepted the batch before the kill"
        worker.restart()
        # More of the run arrives, and one command twice more: new batches mix old charges and new ones.
        second = [charge_command(f"lost-{i}", agreements[i % 2]) for i in range(40, 60)]
        enqueue(redis_url, [*second, first[0]])
        for command in [*first, *second]:
            wait_for(lambda c=command["command_id"]: outcome(events, c), timeout=60,
                     what=f"outcome of {command['command_id']}")
        for command in [*first, *second]:
            ends = outcome(events, command["command_id"])
            assert [e["type"] for e in ends] == ["charge.created"], (command["command_id"], ends)
        report = wait_for(lambda: (r := sim.admin.get("/effects/charges").json())["queued"] == [] and r,
                          what="the batches processed")
        assert report["created_more_than_once"] == []
        assert set(report["charges"]) == {charge_order_id(MSN, c["command_id"]) for c in [*first, *second]}
        assert sim.effects(duplicates="true") == []
    finally:
        worker.stop()
        print(worker.output()[-15000:])


def test_a_charge_vipps_could_not_create_later_ends_in_charge_creation_failed(
        sim: Simulator, redis_url: str, redis_client: redis.Redis) -> None:
    events = Events(redis_client)
    worker = Worker(redis_url, sim.url, env=BATCHING | {"CHARGE_CREATION_GIVE_UP_SECONDS": "3"})
    try:
        agreement = active_agreement(redis_url, events, "later")
        doomed = charge_order_id(MSN, "later-1")
        sim.scripts(charge_creation_fails=doomed)  # accepted by the batch, not created afterwards
        enqueue(redis_url, [charge_command("later-0", agreement), charge_command("later-1", agreement)])
        assert events.wait(command_id="later-1", type="charge.created")["completion"] == "accepted"
        failed = events.wait(command_id="later-1", type="charge.creation_failed", timeout=30)
        assert failed["charge_id"] == doomed and failed["observed_by"] == "poll"
        assert not events.of(command_id="later-0", type="charge.creation_failed")
    finally:
        worker.stop()
        print(worker.output()[-15000:])
