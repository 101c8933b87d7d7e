"""What the ledger does about writes a failover may lose, and its optional wait for replicas."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
import redis

from schemas import Event, EventType
from tests.replicated import Node, nodes, replica_of
from worker.local.redis import redis_server_binary
from worker.runtime.settings import WorkerSettings
from worker.store.keys import command_ref
from worker.store.ledger import ClaimStatus, Ledger, Terminal
from worker.store.replication import Replicas

LAYOUT = WorkerSettings(key_prefix="t", dramatiq_namespace="t").layout()
CMD = {"command_id": "c1", "type": "charge.fetch", "agreement_id": "a", "charge_id": "x", "issued_at": "now"}


def event(event_id: str) -> Event:
    return Event(event_id=event_id, type=EventType.CHARGE_SNAPSHOT, command_id="c1",
                 occurred_at=dt.datetime(2026, 12, 1, tzinfo=dt.UTC))


def test_an_outcome_recorded_after_its_claim_was_lost_keeps_the_fingerprint(redis_client: redis.Redis) -> None:
    ledger = Ledger(redis_client, LAYOUT, heartbeat_timeout_ms=1000, retention_seconds=60)
    assert ledger.claim(CMD, owner="m1", broker_id="b1", lease_ms=10_000).status is ClaimStatus.CLAIMED
    redis_client.delete(LAYOUT.keys.command(command_ref(None, "c1")))  # the new primary never had the claim
    assert ledger.finish(CMD, status="succeeded", events=[event("e1")])
    # The producer's resend (same command_id, same intent) gets the outcome, not a reuse rejection.
    again = ledger.claim({**CMD, "issued_at": "later"}, owner="m2", broker_id="b1", lease_ms=10_000)
    assert again.status is ClaimStatus.DONE
    assert ledger.claim({**CMD, "charge_id": "y"}, owner="m2", broker_id="b1",
                        lease_ms=10_000).status is ClaimStatus.MISMATCH


def test_waiting_for_a_missing_replica_keeps_the_outcome_and_reports_it(redis_client: redis.Redis) -> None:
    short: list[int] = []
    ledger = Ledger(redis_client, LAYOUT, heartbeat_timeout_ms=1000, retention_seconds=60,
                    replicas=Replicas(1, 50), on_unreplicated=short.append)
    ledger.claim(CMD, owner="m1", broker_id="b1", lease_ms=10_000)
    assert ledger.finish(CMD, status="succeeded", events=[event("e1")])
    assert short == [0]
    assert ledger.get(command_ref(None, "c1"))["status"] == "succeeded"  # type: ignore[index]


@pytest.fixture(scope="module")
def primary_and_replica() -> Iterator[tuple[Node, Node]]:
    if redis_server_binary() is None:
        pytest.skip("no redis-server binary")
    primary = Node()
    replica = replica_of(primary)
    with nodes(primary, replica):
        yield primary, replica


def test_with_a_replica_an_outcome_is_there_when_finish_returns(primary_and_replica: tuple[Node, Node]) -> None:
    primary, replica = primary_and_replica
    short: list[int] = []
    ledger = Ledger(primary.client, LAYOUT, heartbeat_timeout_ms=1000, retention_seconds=60,
                    replicas=Replicas(1, 5000), on_unreplicated=short.append)
    commands = [{**CMD, "command_id": f"w{i}"} for i in range(3)]
    for cmd in commands:
        ledger.claim(cmd, owner="m1", broker_id="b1", lease_ms=10_000)
    assert ledger.finish(commands[0], status="succeeded", events=[])
    assert ledger.finish_many([Terminal(c, "succeeded", [], [], None) for c in commands[1:]]) == [True, True]
    assert short == []
    for cmd in commands:
        assert replica.client.hget(LAYOUT.keys.command(command_ref(None, str(cmd["command_id"]))),
                                   "status") == b"succeeded"
