from __future__ import annotations

import datetime as dt
import json

import pytest
import redis

from schemas import Event, EventType
from worker.runtime.settings import WorkerSettings
from worker.runtime.sweeper import Sweeper
from worker.store import scripts
from worker.store.clock import now_ms
from worker.store.deadletters import DeadLetter, DeadLetterStore
from worker.store.eventqueue import EventQueue
from worker.store.keys import Layout
from worker.store.ledger import (
    ClaimArgs,
    ClaimKeys,
    ClaimStatus,
    FinishArgs,
    FinishKeys,
    Ledger,
    ObserveKeys,
    RetryArgs,
    RetryKeys,
    fingerprint,
)
from worker.store.outbox import RelayKeys
from worker.store.watchlist import REMOVE, SETTLE, WatchChange, Watchlist
from worker.vipps.budgets import BudgetSlot

LAYOUT = WorkerSettings(key_prefix="t", dramatiq_namespace="t").layout()


def ledger_of(client: redis.Redis) -> Ledger:
    return Ledger(client, LAYOUT, heartbeat_timeout_ms=1000, retention_seconds=60)


@pytest.mark.parametrize(("script", "table", "names"), [
    ("claim", "KEYS", ClaimKeys._fields), ("claim", "ARGV", ClaimArgs._fields),
    ("finish", "KEYS", FinishKeys._fields), ("finish", "ARGV", FinishArgs._fields),
    ("observe", "KEYS", ObserveKeys._fields), ("retry_later", "KEYS", RetryKeys._fields),
    ("retry_later", "ARGV", RetryArgs._fields), ("relay", "KEYS", RelayKeys._fields),
])
def test_scripts_take_their_keys_and_arguments_in_the_order_python_passes_them(
        script: str, table: str, names: tuple[str, ...]) -> None:
    assert scripts.declared(script, table) == list(names)


def test_fingerprint_ignores_only_issued_at() -> None:
    a = {"command_id": "c", "type": "charge.fetch", "issued_at": "2026-01-01T00:00:00Z", "charge_id": "x"}
    assert fingerprint(a) == fingerprint({**a, "issued_at": "2027-01-01T00:00:00Z"})
    assert fingerprint(a) != fingerprint({**a, "charge_id": "y"})


def snapshot_event(event_id: str) -> Event:
    return Event(event_id=event_id, type=EventType.CHARGE_SNAPSHOT, command_id="c1",
                 occurred_at=dt.datetime(2026, 12, 1, tzinfo=dt.UTC))


def test_ledger_claims(redis_client: redis.Redis) -> None:
    ledger = ledger_of(redis_client)
    queue = EventQueue(LAYOUT)
    cmd = {"command_id": "c1", "type": "charge.fetch", "agreement_id": "a", "charge_id": "x", "issued_at": "now"}
    first = ledger.claim(cmd, owner="m1", broker_id="b1", lease_ms=10_000)
    assert first.status is ClaimStatus.CLAIMED and first.attempts == 1
    assert ledger.claim(cmd, owner="m2", broker_id="b1", lease_ms=10_000).status is ClaimStatus.BUSY
    assert ledger.claim({**cmd, "charge_id": "y"}, owner="m2", broker_id="b1",
                        lease_ms=10_000).status is ClaimStatus.MISMATCH
    # A holder whose heartbeat stopped loses the claim before its lease runs out.
    redis_client.zadd(LAYOUT.dramatiq.heartbeats, {"b1": 0})
    taken = ledger.claim(cmd, owner="m2", broker_id="b2", lease_ms=10_000)
    assert taken.status is ClaimStatus.CLAIMED and taken.attempts == 2
    event = snapshot_event("e1")
    assert ledger.finish(cmd, status="succeeded", events=[event])
    assert not ledger.finish(cmd, status="failed", events=[])  # the first outcome stands
    done = ledger.claim(cmd, owner="m3", broker_id="b2", lease_ms=10_000)
    assert done.status is ClaimStatus.DONE and done.events == [event]
    # Published in the same step, as dramatiq's enqueue would (message under its redis id, id on the list).
    [redis_id] = redis_client.lrange(queue.queue, 0, -1)
    message = json.loads(redis_client.hget(queue.messages, redis_id) or b"{}")
    assert message["message_id"] == "e1" and message["args"] == [event.wire()]
    assert message["options"]["redis_message_id"] == redis_id.decode()
    assert redis_client.zcard(LAYOUT.keys.outbox_pending) == 0
    assert redis_client.zcard(LAYOUT.keys.inflight) == 0


def test_a_dead_letter_is_kept_in_the_same_step_as_the_outcome(redis_client: redis.Redis) -> None:
    ledger = ledger_of(redis_client)
    letters = DeadLetterStore(redis_client, LAYOUT.keys, retention_days=30)
    cmd = {"command_id": "c2", "type": "charge.fetch", "agreement_id": "a", "charge_id": "x", "issued_at": "now"}
    ledger.claim(cmd, owner="m1", broker_id="b1", lease_ms=10_000)
    letter = DeadLetter(id="dl1", reason="vipps_problem", detail="no", at_ms=now_ms(), command_id="c2", payload=cmd)
    assert ledger.finish(cmd, status="failed", events=[snapshot_event("e2")], dead_letter=letter)
    assert letters.get("dl1") == letter and [x.id for x in letters.find()] == ["dl1"]
    # A second finish (a redelivery after a crash) keeps the first outcome and adds no second letter.
    other = DeadLetter(id="dl2", reason="vipps_problem", detail="again", at_ms=now_ms(), command_id="c2")
    assert not ledger.finish(cmd, status="failed", events=[], dead_letter=other)
    assert letters.get("dl2") is None and letters.count() == 1


def test_an_event_that_cannot_be_queued_waits_in_the_outbox(redis_client: redis.Redis) -> None:
    ledger = ledger_of(redis_client)
    queue = EventQueue(LAYOUT)
    redis_client.set(queue.queue, "not a list")  # a foreign value under the queue's key
    cmd = {"command_id": "c2", "type": "charge.fetch", "issued_at": "now"}
    ledger.claim(cmd, owner="m1", broker_id="b1", lease_ms=10_000)
    assert ledger.finish(cmd, status="succeeded", events=[snapshot_event("e2")])
    assert redis_client.hexists(LAYOUT.keys.outbox, "e2") and redis_client.zcard(LAYOUT.keys.outbox_pending) == 1
    assert redis_client.hlen(queue.messages) == 0  # nothing half-published


def test_a_claim_takes_the_calls_budget_slot_only_when_it_claims(redis_client: redis.Redis) -> None:
    ledger = ledger_of(redis_client)
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


def test_settled_resources_are_indexed_and_forgotten_after_the_retention(redis_client: redis.Redis) -> None:
    """What was seen of a settled charge is kept for later comparisons, but not forever."""
    keys = LAYOUT.keys
    ledger = ledger_of(redis_client)
    watchlist = Watchlist(redis_client, keys)
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

    sweeper = Sweeper(redis_client, LAYOUT, ledger, DeadLetterStore(redis_client, keys, retention_days=30),
                      watchlist, WorkerSettings(ledger_retention_days=35))
    assert sweeper.prune_settled(batch=1) == 1
    assert not redis_client.hexists(keys.watch_state, "charge:a:long-ago")
    assert redis_client.hexists(keys.watch_state, settled) and redis_client.hexists(keys.watch_state, watched)
    assert {m.decode() for m in redis_client.zrange(keys.watch_settled, 0, -1)} == {settled}
    assert watchlist.prune_settled(older_than_ms=now_ms() + 1) == 1
    assert not redis_client.hexists(keys.watch_state, settled)


def test_layout_routes_agreement_commands_to_their_own_queue() -> None:
    layout = Layout()
    assert layout.queue_for("agreement.update") == "vipps.agreements"
    assert layout.queue_for("charge.create") == "vipps.charges"


def test_take_slot_is_one_function_that_the_budget_and_the_claim_embed(redis_client: redis.Redis) -> None:
    assert scripts.source("take_slot", "claim").startswith(scripts.source("take_slot"))
    script = redis_client.register_script(
        scripts.source("take_slot") + "return {take_slot(KEYS[1], 1, 60000, 'a'), take_slot(KEYS[1], 1, 60000, 'b')}")
    first, second = script(keys=["embed:slot"])
    assert first == 0
    assert 0 < second <= 60_000


def test_each_resource_keeps_a_timeline_of_its_events(redis_client: redis.Redis) -> None:
    ledger = ledger_of(redis_client)
    at = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
    created = Event(event_id="t1", type=EventType.AGREEMENT_CREATED, command_id="c-t", agreement_id="agr_t",
                    occurred_at=at)
    charged = Event(event_id="t2", type=EventType.CHARGE_STATUS_CHANGED, agreement_id="agr_t", charge_id="chr_t",
                    transition={"from": "DUE", "to": "CHARGED"}, occurred_at=at)
    rejected = Event(event_id="t3", type=EventType.COMMAND_REJECTED, occurred_at=at)
    command = {"command_id": "c-t", "type": "agreement.create", "issued_at": "now"}
    ledger.claim(command, owner="m1", broker_id="b", lease_ms=10_000)
    ledger.finish(command, status="succeeded", events=[created])
    ledger.observe([charged, rejected])
    ledger.observe([created])  # a redelivered command re-publishes its events: the timeline has them once
    assert [e["event_id"] for e in ledger.timeline("agr_t")] == ["t1"]
    [change] = ledger.timeline("agr_t", "chr_t")
    assert change["transition"] == {"from": "DUE", "to": "CHARGED"}
    ttl = redis_client.ttl(LAYOUT.keys.history("agr_t"))
    assert 0 < ttl <= 60  # kept as long as the ledger keeps finished commands
