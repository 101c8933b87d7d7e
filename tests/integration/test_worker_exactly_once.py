"""Exactly once in effect: duplicates, a worker killed between the Vipps call and the ack, retries."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
import redis

from tests.integration.test_worker_lifecycle import AGREEMENT, active_agreement, send
from tests.stack import Events, Simulator, Worker, due_in, wait_for
from worker.store.keys import command_ref
from worker.vipps.config import SIMULATOR_DEFAULTS

MSN = SIMULATOR_DEFAULTS["msn"]  # the one merchant: the ledger keeps commands per merchant

OUTCOMES = {"agreement.created", "agreement.updated", "agreement.force_accepted", "agreement.snapshot",
            "agreement.charges", "charge.created", "charge.snapshot", "charge.captured", "charge.refunded",
            "charge.cancelled", "command.failed", "command.rejected", "command.dead_lettered"}


@pytest.fixture
def sim(redis_client: redis.Redis) -> Iterator[Simulator]:
    simulator = Simulator()
    try:
        yield simulator
    finally:
        simulator.stop()


def outcome_ids(events: Events, command_id: str) -> set[str]:
    return {e["event_id"] for e in events.of(command_id=command_id) if e["type"] in OUTCOMES}


def test_kill_between_call_and_ack_and_duplicate_deliveries(sim: Simulator, redis_url: str,
                                                            redis_client: redis.Redis) -> None:
    events = Events(redis_client)
    # Every command in flight at once, each through its own endpoint (test_charge_runs has the batch's case).
    worker = Worker(redis_url, sim.url, threads=8, env={"CHARGE_BATCH": "off"})
    try:
        agreement_id = active_agreement(redis_url, events, "x")
        # Vipps applies the effect, then the response is held back: the worker is mid-call when it dies.
        sim.faults(timeout_after_commit_rate=1.0, timeout_seconds=8,
                   operations=["CreateChargeV3", "UpdateAgreementPatchV3", "DraftAgreementV3"])
        commands = [f"crash-charge-{i}" for i in range(3)]
        for _ in range(2):  # every command twice
            for cid in commands:
                send(redis_url, cid, type="charge.create", agreement_id=agreement_id, amount=10000 + 100 * int(
                    cid[-1]), description="Crash test", due=due_in(3), retry_days=1, transaction_type="DIRECT_CAPTURE")
            send(redis_url, "crash-update", type="agreement.update", agreement_id=agreement_id,
                 product_name="Renamed plan")
            send(redis_url, "crash-draft", **AGREEMENT)
        wait_for(lambda: len(sim.effects(operation="charge.create")) == 3
                 and sim.effects(operation="agreement.update")
                 and len(sim.effects(operation="agreement.draft")) == 2, timeout=30,
                 what="the effects applied at Vipps")
        worker.kill()
        assert not any(outcome_ids(events, cid) for cid in commands), "no outcome can exist before the response"
        sim.faults()  # Vipps recovers
        worker.restart()
        for cid in [*commands, "crash-update", "crash-draft"]:
            wait_for(lambda c=cid: outcome_ids(events, c), timeout=45, what=f"outcome of {cid}")
        for cid in [*commands, "crash-update", "crash-draft"]:
            assert len(outcome_ids(events, cid)) == 1, f"{cid} must have exactly one outcome event"
            assert events.of(command_id=cid)[0]["type"] != "command.failed"
        assert len(sim.effects(operation="charge.create")) == 3
        assert len(sim.effects(operation="agreement.draft")) == 2
        assert sim.effects(duplicates="true") == []
        created = {e["charge_id"] for e in events.of(type="charge.created") if e["command_id"] in commands}
        assert len(created) == 3
    finally:
        worker.stop()
        print(worker.output()[-15000:])


def test_failures_are_classified(sim: Simulator, redis_url: str, redis_client: redis.Redis) -> None:
    from worker.store.deadletters import DeadLetterStore
    from worker.store.keys import Keys, Layout
    from worker.store.ledger import Ledger

    events = Events(redis_client)
    worker = Worker(redis_url, sim.url, env={"RETRY_MAX_ATTEMPTS": "3", "RETRY_MIN_BACKOFF_SECONDS": "0.2",
                                             "RETRY_MAX_BACKOFF_SECONDS": "0.5"})
    try:
        agreement_id = active_agreement(redis_url, events, "f")
        today = dt.datetime.now(dt.UTC).date().isoformat()

        # Permanent: Vipps says the due date is too soon. Failed once, never retried, dead-lettered.
        send(redis_url, "too-soon", type="charge.create", agreement_id=agreement_id, amount=10000,
             description="Too soon", due=today, retry_days=0, transaction_type="DIRECT_CAPTURE")
        failed = events.wait(command_id="too-soon", type="command.failed")
        assert failed["problem"]["type"] == "charge-due-too-soon"
        assert failed["problem"]["context_id"]
        assert failed["attempts"] == 1

        # Transient, always: bounded attempts, then dead-lettered with the last problem.
        sim.faults(error_5xx_rate=1.0, operations=["FetchAgreementV3"])
        send(redis_url, "always-503", type="agreement.fetch", agreement_id=agreement_id)
        dead = events.wait(command_id="always-503", type="command.dead_lettered", timeout=30)
        assert dead["problem"]["reason"] == "retries_exhausted" and dead["problem"]["status"] >= 500
        assert dead["attempts"] == 3

        # Transient, once: 429 with Retry-After, then it goes through.
        sim.faults(error_429_rate=1.0, retry_after_seconds=2, operations=["ListChargesV3"])
        send(redis_url, "rate-limited", type="agreement.list_charges", agreement_id=agreement_id)
        ledger = Ledger(redis_client, Layout(), heartbeat_timeout_ms=0, retention_seconds=1)
        wait_for(lambda: ledger.get(command_ref(MSN, "rate-limited")) is not None, what="first attempt")
        sim.faults()
        events.wait(command_id="rate-limited", type="agreement.charges", timeout=30)

        # The same command_id with another payload is refused before anything reaches Vipps.
        effects_before = len(sim.effects())
        send(redis_url, "too-soon", type="charge.create", agreement_id=agreement_id, amount=20000,
             description="Different", due=due_in(3), retry_days=0, transaction_type="DIRECT_CAPTURE")
        rejected = wait_for(lambda: [e for e in events.of(command_id="too-soon", type="command.rejected")],
                            what="rejection of a reused command_id")[0]
        assert rejected["problem"]["reason"] == "command_id_reused"
        assert len(sim.effects()) == effects_before

        store = DeadLetterStore(redis_client, Keys(), retention_days=30)
        reasons = {d.command_id: d.reason for d in store.find(limit=100)}
        assert reasons["too-soon"] in ("vipps_problem", "command_id_reused")
        assert reasons["always-503"] == "retries_exhausted"
        assert "rate-limited" not in reasons
        assert ledger.get(command_ref(MSN, "too-soon"))["status"] == "failed"  # type: ignore[index]
    finally:
        worker.stop()
        print(worker.output()[-15000:])
