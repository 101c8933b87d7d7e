"""Parking charge.create commands in their merchant's batch and taking them out for one send, in real Redis."""

from __future__ import annotations

import datetime as dt

import pytest
import redis

from schemas import Event, EventType
from worker.runtime.settings import WorkerSettings
from worker.store import scripts
from worker.store.batches import ChargeBatches, TakeArgs, TakeKeys
from worker.store.clock import now_ms
from worker.store.ledger import ClaimStatus, DeliveryAck, Ledger, ParkArgs, ParkKeys, Terminal

LAYOUT = WorkerSettings(key_prefix="t", dramatiq_namespace="t").layout()
KEYS = LAYOUT.keys


@pytest.mark.parametrize(("script", "table", "names"), [
    ("park", "KEYS", ParkKeys._fields), ("park", "ARGV", ParkArgs._fields),
    ("take_batch", "KEYS", TakeKeys._fields), ("take_batch", "ARGV", TakeArgs._fields),
])
def test_scripts_take_their_keys_and_arguments_in_the_order_python_passes_them(
        script: str, table: str, names: tuple[str, ...]) -> None:
    assert scripts.declared(script, table) == list(names)


def charge(n: int) -> dict[str, object]:
    return {"command_id": f"c{n}", "type": "charge.create", "msn": "123456", "agreement_id": "agr_1",
            "amount": 1000 + n, "issued_at": "now"}


def delivered(client: redis.Redis, redis_id: str) -> DeliveryAck:
    """A message fetched by a consumer: in its acks set and its queue's message hash, as dramatiq keeps it."""
    ack = DeliveryAck(acks_key="t:__acks__.b1.vipps.charges", messages_key="t:vipps.charges.msgs",
                      redis_message_id=redis_id)
    client.sadd(ack.acks_key, redis_id)
    client.hset(ack.messages_key, redis_id, "{}")
    return ack


def test_park_claims_parks_and_acks_in_one_step(redis_client: redis.Redis) -> None:
    ledger = Ledger(redis_client, LAYOUT, heartbeat_timeout_ms=1000, retention_seconds=60)
    batch = KEYS.charge_batch("123456")
    ack = delivered(redis_client, "r1")
    parked = ledger.park(charge(1), batch=batch, owner="m1", broker_id="b1", lease_ms=10_000, ack=ack)
    assert parked.status is ClaimStatus.PARKED and parked.attempts == 1 and ack.done
    assert not redis_client.sismember(ack.acks_key, "r1") and not redis_client.hexists(ack.messages_key, "r1")
    assert redis_client.zscore(batch, "123456:c1") is not None
    assert redis_client.zcard(KEYS.inflight) == 0  # no lease: nothing for the sweeper to re-drive
    record = ledger.get("123456:c1")
    assert record is not None and record["status"] == "batched"
    # Delivered again, by whatever path: it waits in the batch, so this delivery steps aside.
    again = delivered(redis_client, "r2")
    assert ledger.park(charge(1), batch=batch, owner="m2", broker_id="b1", lease_ms=10_000,
                       ack=again).status is ClaimStatus.BUSY
    assert not again.done and redis_client.sismember(again.acks_key, "r2")  # dramatiq acks it as usual
    assert ledger.claim(charge(1), owner="m3", broker_id="b1", lease_ms=10_000).status is ClaimStatus.BUSY
    assert ledger.park({**charge(1), "amount": 5}, batch=batch, owner="m4", broker_id="b1",
                       lease_ms=10_000).status is ClaimStatus.MISMATCH


def test_take_hands_out_the_oldest_under_a_lease_and_skips_finished_ones(redis_client: redis.Redis) -> None:
    ledger = Ledger(redis_client, LAYOUT, heartbeat_timeout_ms=1000, retention_seconds=60)
    batches = ChargeBatches(redis_client, KEYS)
    batch = KEYS.charge_batch("123456")
    for n in range(5):
        ledger.park(charge(n), batch=batch, owner=f"m{n}", broker_id="b1", lease_ms=10_000)
        redis_client.zadd(batch, {f"123456:c{n}": now_ms() - 1000 + n}, xx=True)  # parked in this order
    # One of them finished meanwhile (a replay found it done, say): it is not sent.
    redis_client.hset(KEYS.command("123456:c1"), "status", "succeeded")
    waiting = batches.waiting(["123456", "999"])
    assert waiting["123456"].count == 5 and waiting["123456"].oldest_age_ms >= 990
    assert waiting["999"].count == 0 and waiting["999"].oldest_age_ms == 0

    first = batches.take("123456", limit=3, lease_ms=20_000, owner="batch-1", broker_id="b2")
    assert [t.ref for t in first] == ["123456:c0", "123456:c2"]  # c1 skipped, still counted in the limit
    assert first[0].command["amount"] == 1000 and first[0].attempts == 1
    for taken in first:
        record = ledger.get(taken.ref)
        assert record is not None and record["status"] == "in_progress" and record["broker"] == "b2"
        lease = redis_client.zscore(KEYS.inflight, taken.ref)
        assert lease is not None and lease > now_ms() + 15_000  # the sweeper re-drives it if this sender dies
    rest = batches.take("123456", limit=2000, lease_ms=20_000, owner="batch-2", broker_id="b2")
    assert [t.ref for t in rest] == ["123456:c3", "123456:c4"]
    assert batches.take("123456", limit=2000, lease_ms=20_000, owner="batch-3", broker_id="b2") == []


def test_finish_many_records_each_outcome_atomically_in_one_round_trip(redis_client: redis.Redis) -> None:
    ledger = Ledger(redis_client, LAYOUT, heartbeat_timeout_ms=1000, retention_seconds=60)
    batches = ChargeBatches(redis_client, KEYS)
    for n in range(3):
        ledger.park(charge(n), batch=KEYS.charge_batch("123456"), owner=f"m{n}", broker_id="b1", lease_ms=10_000)
    taken = batches.take("123456", limit=10, lease_ms=20_000, owner="batch-1", broker_id="b1")
    occurred = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
    outcomes = [Terminal(t.command, "succeeded", [Event(event_id=f"e{i}", type=EventType.CHARGE_CREATED,
                                                        command_id=t.command["command_id"], occurred_at=occurred)])
                for i, t in enumerate(taken)]
    assert ledger.finish_many(outcomes) == [True, True, True]
    assert ledger.finish_many(outcomes[:1]) == [False]  # the first outcome stands
    assert redis_client.zcard(KEYS.inflight) == 0
    assert redis_client.llen(ledger.events.queue) == 3
    record = ledger.get("123456:c2")
    assert record is not None and record["status"] == "succeeded" and record["events"][0]["event_id"] == "e2"
