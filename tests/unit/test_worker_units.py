from __future__ import annotations

import datetime as dt
import json
import re

import dramatiq
import redis
from hypothesis import given
from hypothesis import strategies as st

from worker.core.idempotency import idempotency_key
from worker.core.pipeline import backoff
from worker.core.watch import REMOVE, SETTLE, next_charge_check
from worker.runtime.broker import UNDECODABLE_ACTOR, PoisonTolerantEncoder, make_broker
from worker.runtime.settings import WorkerSettings
from worker.runtime.sweeper import Sweeper
from worker.store.deadletters import DeadLetterStore
from worker.store.eventqueue import EventQueue
from worker.store.keys import Keys
from worker.store.ledger import ClaimStatus, Ledger, WatchChange, fingerprint, now_ms
from worker.vipps.budgets import BudgetSlot

VIPPS_KEY = re.compile(r"^[^#?/\\]{1,40}$")


@given(st.text(min_size=1, max_size=64), st.text(min_size=1, max_size=30), st.sampled_from(["CreateChargeV3", "x"]))
def test_idempotency_keys_are_valid_for_vipps_and_stable(command_id: str, msn: str, operation: str) -> None:
    key = idempotency_key(msn, command_id, operation)
    assert VIPPS_KEY.match(key)
    assert key == idempotency_key(msn, command_id, operation)
    assert key != idempotency_key(msn, command_id + "x", operation)


@given(st.integers(min_value=1, max_value=60))
def test_backoff_grows_and_stays_within_bounds(attempt: int) -> None:
    delay = backoff(attempt, 1.0, 300.0)
    ceiling = min(300.0, 2 ** (attempt - 1))
    assert ceiling / 2 <= delay <= ceiling


def test_charge_checks_follow_the_processing_rounds() -> None:
    due = dt.date(2026, 12, 1)
    before = dt.datetime(2026, 11, 20, 12, tzinfo=dt.UTC)
    assert next_charge_check(before, due, 2) == dt.datetime(2026, 12, 1, 8, tzinfo=dt.UTC)
    between = dt.datetime(2026, 12, 1, 9, tzinfo=dt.UTC)
    assert next_charge_check(between, due, 2) == dt.datetime(2026, 12, 1, 16, tzinfo=dt.UTC)
    last_round = dt.datetime(2026, 12, 3, 17, tzinfo=dt.UTC)
    assert next_charge_check(last_round, due, 2) == dt.datetime(2026, 12, 4, 0, 5, tzinfo=dt.UTC)
    assert next_charge_check(dt.datetime(2026, 12, 5, tzinfo=dt.UTC), due, 2) is None


def test_fingerprint_ignores_only_issued_at() -> None:
    a = {"command_id": "c", "type": "charge.fetch", "issued_at": "2026-01-01T00:00:00Z", "charge_id": "x"}
    assert fingerprint(a) == fingerprint({**a, "issued_at": "2027-01-01T00:00:00Z"})
    assert fingerprint(a) != fingerprint({**a, "charge_id": "y"})


def test_undecodable_bytes_become_a_dead_letter_message() -> None:
    encoder = PoisonTolerantEncoder()
    good = {"queue_name": "q", "actor_name": "a", "args": [], "kwargs": {}, "options": {"redis_message_id": "r"},
            "message_id": "m", "message_timestamp": 1}
    assert encoder.decode(json.dumps(good).encode()) == good
    # Without the id it is stored under, dramatiq could never acknowledge it: a dead letter, not a stuck message.
    unackable = {**good, "options": {}}
    assert encoder.decode(json.dumps(unackable).encode())["actor_name"] == UNDECODABLE_ACTOR
    broken = b'{"options": {"redis_message_id": "0b5e6c0e-9c7f-4b43-8d3e-2f1a3c4d5e6f"}, \xff\xfe'
    message = encoder.decode(broken)
    assert message["actor_name"] == UNDECODABLE_ACTOR
    assert message["options"]["redis_message_id"] == "0b5e6c0e-9c7f-4b43-8d3e-2f1a3c4d5e6f"
    assert encoder.decode(b"[1, 2]")["actor_name"] == UNDECODABLE_ACTOR


def test_ledger_claims(redis_client: redis.Redis) -> None:
    queue = EventQueue(namespace="t")
    ledger = Ledger(redis_client, Keys("t"), heartbeats_key="t:hb", heartbeat_timeout_ms=1000, retention_seconds=60,
                    events=queue)
    cmd = {"command_id": "c1", "type": "charge.fetch", "agreement_id": "a", "charge_id": "x", "issued_at": "now"}
    first = ledger.claim(cmd, owner="m1", broker_id="b1", lease_ms=10_000)
    assert first.status is ClaimStatus.CLAIMED and first.attempts == 1
    assert ledger.claim(cmd, owner="m2", broker_id="b1", lease_ms=10_000).status is ClaimStatus.BUSY
    assert ledger.claim({**cmd, "charge_id": "y"}, owner="m2", broker_id="b1",
                        lease_ms=10_000).status is ClaimStatus.MISMATCH
    # A holder whose heartbeat stopped loses the claim before its lease runs out.
    redis_client.zadd("t:hb", {"b1": 0})
    taken = ledger.claim(cmd, owner="m2", broker_id="b2", lease_ms=10_000)
    assert taken.status is ClaimStatus.CLAIMED and taken.attempts == 2
    event = {"event_id": "e1", "type": "charge.snapshot", "command_id": "c1"}
    assert ledger.finish(cmd, status="succeeded", events=[event])
    assert not ledger.finish(cmd, status="failed", events=[])  # the first outcome stands
    done = ledger.claim(cmd, owner="m3", broker_id="b2", lease_ms=10_000)
    assert done.status is ClaimStatus.DONE and done.events == [event]
    # Published in the same step, as dramatiq's enqueue would (message under its redis id, id on the list).
    [redis_id] = redis_client.lrange(queue.keys[0], 0, -1)
    message = json.loads(redis_client.hget(queue.keys[1], redis_id) or b"{}")
    assert message["message_id"] == "e1" and message["args"] == [event]
    assert message["options"]["redis_message_id"] == redis_id.decode()
    assert redis_client.zcard("t:outbox:pending") == 0
    assert redis_client.zcard("t:inflight") == 0


def test_a_claim_takes_the_calls_budget_slot_only_when_it_claims(redis_client: redis.Redis) -> None:
    ledger = Ledger(redis_client, Keys("t"), heartbeats_key="t:hb", heartbeat_timeout_ms=1000, retention_seconds=60,
                    events=EventQueue(namespace="t"))
    slot = BudgetSlot("t:budget:k", limit=2, window_ms=60_000)
    one = {"command_id": "b1", "type": "charge.create", "issued_at": "now"}
    two = {"command_id": "b2", "type": "charge.create", "issued_at": "now"}
    assert ledger.claim(one, owner="m1", broker_id="b", lease_ms=10_000, budget=slot).budget_wait_ms == 0
    assert ledger.claim(one, owner="m2", broker_id="b", lease_ms=10_000, budget=slot).status is ClaimStatus.BUSY
    assert redis_client.zcard(slot.key) == 1  # the busy claim took no slot
    assert ledger.claim(two, owner="m3", broker_id="b", lease_ms=10_000, budget=slot).budget_wait_ms == 0
    full = ledger.claim({**two, "command_id": "b3"}, owner="m4", broker_id="b", lease_ms=10_000, budget=slot)
    assert full.status is ClaimStatus.CLAIMED and 59_000 < full.budget_wait_ms <= 60_000
    assert redis_client.zcard(slot.key) == 2


def test_the_outcome_acks_the_delivery_and_the_consumer_skips_its_own_ack(redis_client: redis.Redis,
                                                                          redis_url: str) -> None:
    broker = make_broker(WorkerSettings(dramatiq_namespace="t-ack"), redis_url)
    try:
        message = dramatiq.Message(queue_name="q", actor_name="a", args=({"x": 1},), kwargs={}, options={})
        broker.declare_queue("q")
        broker.enqueue(message)
        consumer = broker.consume("q", prefetch=1, timeout=100)
        delivered = next(item for item in iter(consumer) if item is not None)
        ack = broker.delivery_ack("q", delivered.options["redis_message_id"])
        assert redis_client.sismember(ack.acks_key, ack.redis_message_id)  # held until acked
        assert redis_client.hexists(ack.messages_key, ack.redis_message_id)

        ledger = Ledger(redis_client, Keys("t"), heartbeats_key="t:hb", heartbeat_timeout_ms=1000,
                        retention_seconds=60, events=EventQueue(namespace="t"))
        command = {"command_id": "acked", "type": "charge.fetch", "issued_at": "now"}
        ledger.claim(command, owner="m1", broker_id=broker.broker_id, lease_ms=10_000)
        assert ledger.finish(command, status="succeeded", events=[], ack=ack)
        assert ack.done
        assert not redis_client.sismember(ack.acks_key, ack.redis_message_id)  # acked with the outcome
        assert not redis_client.hexists(ack.messages_key, ack.redis_message_id)

        def no_round_trip(*args: object) -> None:
            raise AssertionError("dramatiq's ack ran although the ledger had acked")

        broker.do_ack = no_round_trip  # type: ignore[attr-defined]
        delivered.ledger_ack = ack
        consumer.ack(delivered)
        assert consumer.outstanding_message_count == 0
        consumer.close()
    finally:
        broker.close()


def test_a_budget_refusal_is_not_reported_as_a_vipps_answer() -> None:
    from worker.cli.common import describe
    from worker.vipps.errors import BudgetExhaustedError

    text = describe(BudgetExhaustedError("ListAgreementsV3: rate budget exhausted, not sent; retry in 41.000s",
                                         operation="ListAgreementsV3", retry_after=41.0))
    assert not text.startswith("Vipps said no") and "not sent; retry in 41.000s" in text and "rate limit" in text


def test_settled_resources_are_indexed_and_forgotten_after_the_retention(redis_client: redis.Redis,
                                                                         redis_url: str) -> None:
    """What was seen of a settled charge is kept for later comparisons, but not forever."""
    keys = Keys("t")
    ledger = Ledger(redis_client, keys, heartbeats_key="t:hb", heartbeat_timeout_ms=1000, retention_seconds=60,
                    events=EventQueue(namespace="t"))
    settled, watched, removed = "charge:a:settled", "charge:a:watched", "charge:a:removed"
    ledger.observe([], [WatchChange(settled, SETTLE, {"status": "CHARGED"}),
                        WatchChange(watched, now_ms() + 60_000, {"status": "PENDING"}),
                        WatchChange(removed, SETTLE, {"status": "CANCELLED"})])
    assert {m.decode() for m in redis_client.zrange(keys.watch_settled, 0, -1)} == {settled, removed}
    # Watched again (a refund on it, say): no longer settled. Forgotten: gone from the index too.
    command = {"command_id": "w1", "type": "charge.refund", "issued_at": "now"}
    ledger.claim(command, owner="m1", broker_id="b", lease_ms=10_000)
    ledger.finish(command, status="succeeded", events=[], watch=[WatchChange(settled, now_ms(), {"status": "x"}),
                                                                 WatchChange(removed, REMOVE)])
    assert redis_client.zcard(keys.watch_settled) == 0 and not redis_client.hexists(keys.watch_state, removed)
    ledger.observe([], [WatchChange(settled, SETTLE, {"status": "REFUNDED"})])
    redis_client.zadd(keys.watch_settled, {"charge:a:long-ago": now_ms() - 40 * 86_400_000})
    redis_client.hset(keys.watch_state, "charge:a:long-ago", "{}")

    sweeper = Sweeper(redis_client, keys, ledger, DeadLetterStore(redis_client, keys, retention_days=30),
                      make_broker(WorkerSettings(dramatiq_namespace="t"), redis_url),
                      WorkerSettings(ledger_retention_days=35))
    assert sweeper.prune_settled(batch=1) == 1
    assert not redis_client.hexists(keys.watch_state, "charge:a:long-ago")
    assert redis_client.hexists(keys.watch_state, settled) and redis_client.hexists(keys.watch_state, watched)
    assert {m.decode() for m in redis_client.zrange(keys.watch_settled, 0, -1)} == {settled}
    assert ledger.prune_settled(older_than_ms=now_ms() + 1) == 1 and not redis_client.hexists(keys.watch_state,
                                                                                              settled)
