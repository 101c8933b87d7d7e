"""The command ledger: who holds a command, what became of it, and its events.

One Redis hash per command. Claiming, finishing and scheduling a retry are each a
single Lua script, so a command's outcome and its events are written in one atomic
step and a finished command is never carried out again. The events queue lives in
the same Redis, so that step puts the events straight onto it; an event that cannot
go there is written to the outbox instead, in the same step, and the relay publishes
it later.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, NamedTuple, Protocol

import redis
from pydantic_core import to_json

from schemas.events import Event
from worker.store import scripts
from worker.store.clock import now_ms
from worker.store.deadletters import DeadLetter
from worker.store.eventqueue import EventQueue
from worker.store.keys import Layout, command_ref
from worker.store.replication import Replicas
from worker.store.replies import text
from worker.store.watchlist import WatchChange, change_args

TERMINAL = ("succeeded", "failed", "rejected", "dead_lettered")


class ClaimStatus(StrEnum):
    CLAIMED = "claimed"      # ours: go ahead and call Vipps
    PARKED = "parked"        # ours, and now waiting in its merchant's charge batch (the delivery is acked)
    DONE = "done"            # finished before: re-publish its events, nothing else
    BUSY = "busy"            # another live attempt holds it
    WAIT = "wait"            # a retry is scheduled for later
    MISMATCH = "mismatch"    # same command_id, different payload


@dataclass(frozen=True)
class Terminal:
    """A command's terminal outcome, as ``Ledger.finish`` records it."""

    command: dict[str, Any]
    status: str
    events: Sequence[Event]
    watch: Sequence[WatchChange] = ()
    error: dict[str, Any] | None = None
    dead_letter: DeadLetter | None = None  # kept in the same step: a crash cannot lose it after the outcome


@dataclass(frozen=True)
class Claim:
    status: ClaimStatus
    attempts: int = 0
    first_attempt_ms: int = 0
    budget_wait_ms: int = 0  # > 0: claimed, but the call's rate budget slot frees only in this many ms
    events: list[Event] = field(default_factory=list)


class RateSlot(Protocol):
    """One send's worth of a rate budget (the Vipps client's ``BudgetSlot``): where it is kept, its rule."""

    @property
    def key(self) -> str: ...
    @property
    def limit(self) -> int: ...
    @property
    def window_ms(self) -> int: ...


@dataclass
class DeliveryAck:
    """Where dramatiq keeps a fetched message until it is acked, so ``finish`` can ack it with the outcome."""

    acks_key: str
    messages_key: str
    redis_message_id: str
    done: bool = False  # set once finish has acked it: dramatiq's own ack is then skipped


# Keys and fixed arguments of the scripts, in the order their ``unpack`` lines name them (tested).
class ClaimKeys(NamedTuple):
    command: str
    inflight: str
    retry: str
    heartbeats: str
    budget: str | None


class ClaimArgs(NamedTuple):
    fingerprint: str
    payload: bytes
    now: int
    lease: int
    owner: str
    broker: str
    heartbeat_timeout: int
    command_id: str
    command_type: str
    budget_limit: int | None
    budget_window: int | None
    budget_unique: str | None


class ParkKeys(NamedTuple):
    command: str
    inflight: str
    retry: str
    heartbeats: str
    batch: str
    delivery_acks: str | None
    delivery_messages: str | None


class ParkArgs(NamedTuple):
    fingerprint: str
    payload: bytes
    now: int
    lease: int
    owner: str
    broker: str
    heartbeat_timeout: int
    command_id: str
    command_type: str
    delivery_id: str


class FinishKeys(NamedTuple):
    command: str
    inflight: str
    retry: str
    outbox: str
    outbox_pending: str
    outbox_born: str
    watch_agreements: str
    watch_charges: str
    watch_state: str
    watch_settled: str
    events_queue: str
    events_messages: str
    dead_letters: str
    dead_letter_index: str
    delivery_acks: str | None
    delivery_messages: str | None


class FinishArgs(NamedTuple):
    command_id: str
    status: str
    now: int
    retention: int
    events: bytes
    error: str
    command_type: str
    create: str
    fingerprint: str
    payload: bytes | str
    delivery_id: str
    dead_letter_id: str
    dead_letter: str


class ObserveKeys(NamedTuple):
    outbox: str
    outbox_pending: str
    outbox_born: str
    watch_agreements: str
    watch_charges: str
    watch_state: str
    watch_settled: str
    events_queue: str
    events_messages: str


class RetryKeys(NamedTuple):
    command: str
    inflight: str
    retry: str


class RetryArgs(NamedTuple):
    command_id: str
    next_ms: int
    error: str
    not_sent: int


def _claim_of(result: list[Any]) -> Claim:
    status = ClaimStatus(text(result[0]))
    if status in (ClaimStatus.CLAIMED, ClaimStatus.PARKED):
        return Claim(status, attempts=int(result[1]), first_attempt_ms=int(result[2]),
                     budget_wait_ms=int(result[3]) if len(result) > 3 else 0)
    if status is ClaimStatus.DONE:
        return Claim(status, events=[Event.model_validate(e) for e in json.loads(text(result[2]))])
    return Claim(status)


def present(values: Sequence[Any]) -> list[Any]:
    """Script keys or arguments without the optional ones left out (always the last)."""
    return [v for v in values if v is not None]


def fingerprint(command: dict[str, Any]) -> str:
    """What makes two deliveries the same intent: everything but when it was issued."""
    body = {k: v for k, v in command.items() if k != "issued_at"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def encode_events(events: Sequence[Event]) -> bytes:
    return to_json([event.wire() for event in events])


class Ledger:
    def __init__(self, client: redis.Redis, layout: Layout, *, heartbeat_timeout_ms: int, retention_seconds: int,
                 on_published: Callable[[list[str]], None] | None = None, replicas: Replicas | None = None,
                 on_unreplicated: Callable[[int], None] | None = None) -> None:
        self.redis = client
        # Outcomes and parks wait for this many replicas (REDIS_WAIT_REPLICAS); one not confirmed in time
        # stands all the same (it is on the primary), and is reported with the count that acknowledged it.
        self.replicas = replicas or Replicas()
        self.on_unreplicated = on_unreplicated
        self.layout = layout
        self.keys = layout.keys
        self.events = EventQueue(layout)
        self.on_published = on_published  # receives the types of the events published
        self.heartbeat_timeout_ms = heartbeat_timeout_ms
        self.retention_seconds = retention_seconds
        self._claim = scripts.register(client, "take_slot", "claim_command", "claim")
        self._park = scripts.register(client, "claim_command", "park")
        self._finish = scripts.register(client, "watch", "publish", "finish")
        self._observe = scripts.register(client, "watch", "publish", "observe")
        self._retry_later = scripts.register(client, "retry_later")

    def claim(self, command: dict[str, Any], *, owner: str, broker_id: str, lease_ms: int,
              budget: RateSlot | None = None) -> Claim:
        """Claim a command; with ``budget``, also take that rate budget slot if the claim succeeds."""
        cid = command_ref(command.get("msn"), command["command_id"])
        keys = ClaimKeys(self.keys.command(cid), self.keys.inflight, self.keys.retry,
                         self.layout.dramatiq.heartbeats, budget.key if budget else None)
        args = ClaimArgs(fingerprint(command), to_json(command), now_ms(), lease_ms, owner, broker_id,
                         self.heartbeat_timeout_ms, cid, command["type"], budget.limit if budget else None,
                         budget.window_ms if budget else None, os.urandom(8).hex() if budget else None)
        return _claim_of(self._claim(keys=present(keys), args=present(args)))

    def park(self, command: dict[str, Any], *, batch: str, owner: str, broker_id: str, lease_ms: int,
             ack: DeliveryAck | None = None) -> Claim:
        """Claim a charge.create and park it in the charge batch ``batch`` (its delivery acked in the same
        step); any other answer is the claim's (done before, busy, ...)."""
        cid = command_ref(command.get("msn"), command["command_id"])
        keys = ParkKeys(self.keys.command(cid), self.keys.inflight, self.keys.retry, self.layout.dramatiq.heartbeats,
                        batch, ack.acks_key if ack else None, ack.messages_key if ack else None)
        args = ParkArgs(fingerprint(command), to_json(command), now_ms(), lease_ms, owner, broker_id,
                        self.heartbeat_timeout_ms, cid, command["type"], ack.redis_message_id if ack else "")
        claim = _claim_of(self._durably(self._park, present(keys), list(args)))
        if ack and claim.status is ClaimStatus.PARKED:
            ack.done = True
        return claim

    def finish(self, command: dict[str, Any], *, status: str, events: Sequence[Event],
               watch: Sequence[WatchChange] = (), error: dict[str, Any] | None = None,
               create: bool = False, ack: DeliveryAck | None = None, dead_letter: DeadLetter | None = None) -> bool:
        """Record a terminal outcome, publish its events and apply its watch changes, atomically.

        With ``ack``, the delivery is acked in the same step; with ``dead_letter``, the letter is kept in it.
        With ``create``, a command that was never claimed (rejected before its claim) gets its record. Returns
        False when the command had already finished (the first outcome stands).
        """
        keys, args = self._finish_call(Terminal(command, status, events, watch, error, dead_letter), create, ack)
        result = self._durably(self._finish, keys, args)
        if ack:
            ack.done = True
        self._published(result[1:])
        return bool(result[0])

    def finish_many(self, outcomes: Sequence[Terminal]) -> list[bool]:
        """``finish`` for many commands, sent in one round trip (each still its own atomic step)."""
        if not outcomes:
            return []
        pipe = self.redis.pipeline(transaction=False)
        for outcome in outcomes:
            keys, args = self._finish_call(outcome, False, None)
            self._finish(keys=keys, args=args, client=pipe)
        self.replicas.add_wait(pipe)
        results, acknowledged = self.replicas.results(pipe.execute())
        self._replicated(acknowledged)
        self._published([t for result in results for t in result[1:]])
        return [bool(result[0]) for result in results]

    def _durably(self, script: Any, keys: list[Any], args: list[Any]) -> Any:
        """Run ``script``, waiting for the replicas asked for; one not confirmed in time is reported, not undone."""
        result, acknowledged = self.replicas.run(self.redis, script, keys, args)
        self._replicated(acknowledged)
        return result

    def _replicated(self, acknowledged: int | None) -> None:
        if acknowledged is not None and acknowledged < self.replicas.count and self.on_unreplicated:
            self.on_unreplicated(acknowledged)

    def _finish_call(self, outcome: Terminal, create: bool, ack: DeliveryAck | None) -> tuple[list[Any], list[Any]]:
        command, status = outcome.command, outcome.status
        assert status in TERMINAL
        cid = command_ref(command.get("msn"), command["command_id"])
        keys = FinishKeys(self.keys.command(cid), self.keys.inflight, self.keys.retry, *self._observe_keys()[:-2],
                          self.events.queue, self.events.messages, self.keys.dead_letters,
                          self.keys.dead_letter_index, ack.acks_key if ack else None,
                          ack.messages_key if ack else None)
        letter = outcome.dead_letter
        args = FinishArgs(cid, status, now_ms(), self.retention_seconds, encode_events(outcome.events),
                          json.dumps(outcome.error) if outcome.error else "", str(command.get("type", "")),
                          "1" if create else "", fingerprint(command),
                          to_json(command) if create else "", ack.redis_message_id if ack else "",
                          letter.id if letter else "", letter.to_json() if letter else "")
        return present(keys), [*args, *change_args(outcome.watch), *self.events.args(outcome.events)]

    def observe(self, events: Sequence[Event], watch: Sequence[WatchChange] = ()) -> None:
        """Publish events and apply watch changes atomically (an observation, not a command's outcome)."""
        if not events and not watch:
            return
        args = [now_ms(), self.retention_seconds, *change_args(watch), *self.events.args(events)]
        self._published(self._observe(keys=list(self._observe_keys()), args=args))

    def _observe_keys(self) -> ObserveKeys:
        k = self.keys
        return ObserveKeys(k.outbox, k.outbox_pending, k.outbox_born, k.watch, k.watch_charges, k.watch_state,
                           k.watch_settled, self.events.queue, self.events.messages)

    def retry_later(self, ref: str, *, at_ms: int, error: dict[str, Any], not_sent: bool = False) -> bool:
        keys = RetryKeys(self.keys.command(ref), self.keys.inflight, self.keys.retry)
        return bool(self._retry_later(keys=list(keys), args=list(RetryArgs(ref, at_ms, json.dumps(error),
                                                                          int(not_sent)))))

    def release(self, ref: str) -> None:
        """Give up a claim at once (after an unexpected error) so the next delivery may take it."""
        now = now_ms()
        pipe = self.redis.pipeline(transaction=True)
        pipe.hset(self.keys.command(ref), "lease_until", now)
        pipe.zadd(self.keys.inflight, {ref: now}, xx=True)
        pipe.execute()

    def _published(self, types: list[Any]) -> None:
        if self.on_published and types:
            self.on_published([text(t) for t in types])

    def get(self, ref: str) -> dict[str, Any] | None:
        """A command's record by its `command_ref`."""
        raw = self.redis.hgetall(self.keys.command(ref))
        if not raw:
            return None
        record = {text(k): text(v) for k, v in raw.items()}
        for name in ("events", "error", "waiting", "payload"):
            if record.get(name):
                record[name] = json.loads(record[name])
        return record

    def timeline(self, agreement_id: str, charge_id: str | None = None, limit: int = 500) -> list[dict[str, Any]]:
        """A resource's events in the order they were published (kept ``LEDGER_RETENTION_DAYS``)."""
        raw = self.redis.zrange(self.keys.history(agreement_id, charge_id), -limit, -1)
        return [json.loads(text(item)) for item in raw]

    def payload(self, ref: str) -> dict[str, Any] | None:
        raw = self.redis.hget(self.keys.command(ref), "payload")
        return json.loads(raw) if raw else None
