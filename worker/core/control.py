"""Talking to a running worker from outside: send commands, wait for their outcome, read its state.

The outcome of a command is read from the ledger (the record the worker writes atomically with
the command's events), not from the events queue: a billing system may consume those events
before we could see them.
"""

from __future__ import annotations

import datetime as dt
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from worker.core.producer import Producer, prepare
from worker.core.replay import Decision, decide
from worker.store.connection import Where, connect
from worker.store.deadletters import DeadLetter, DeadLetterStore
from worker.store.externals import ExternalIds
from worker.store.keys import command_ref
from worker.store.ledger import TERMINAL, Ledger
from worker.store.settings import StoreSettings
from worker.store.state import read_state
from worker.store.vipps_state import redis_backends
from worker.vipps import ConfigError, VippsClient, VippsSettings, load_settings
from worker.vipps.merchants import Merchant, Merchants, UnknownMerchant, load_merchants


class OperationError(Exception):
    """Something a user can act on; the message is one line."""


class CommandFailed(OperationError):
    def __init__(self, command_id: str, status: str, events: list[dict[str, Any]]) -> None:
        problem = next((e.get("problem") for e in events if e.get("problem")), None) or {}
        text = problem.get("detail") or problem.get("title") or problem.get("reason") or status
        kind = f" [{problem['type']}]" if problem.get("type") else ""
        context = f" (Vipps contextId {problem['context_id']})" if problem.get("context_id") else ""
        super().__init__(f"command {command_id} {status.replace('_', ' ')}: {text}{kind}{context}")
        self.command_id = command_id
        self.status = status
        self.events = events
        self.problem = problem


class NoOutcome(OperationError):
    pass


@dataclass(frozen=True)
class Progress:
    """A command on its way: not yet seen by a worker, being tried, or waiting for its next attempt."""

    command_id: str
    status: str                                # queued, in_progress or retry_wait
    attempts: int
    next_attempt_ms: int | None = None
    error: dict[str, Any] | None = None        # what Vipps (or the network) said last
    waiting: dict[str, Any] | None = None      # our own share of Vipps's rate limit, used up for now

    def describe(self) -> str:
        if self.status == "queued":
            return "queued, not yet taken by a worker"
        if self.status != "retry_wait" or self.next_attempt_ms is None:
            return f"attempt {self.attempts} under way"
        at = dt.datetime.fromtimestamp(self.next_attempt_ms / 1000).strftime("%H:%M:%S")
        return f"retry {self.attempts + 1} at {at}: {problem_text(self.waiting or self.error or {})}"


def problem_text(problem: dict[str, Any]) -> str:
    """A recorded problem in one line, with Vipps's contextId when there is one."""
    text = str(problem.get("detail") or problem.get("title") or problem.get("reason") or "no reason recorded")
    if problem.get("context_id"):
        text += f" (Vipps contextId {problem['context_id']})"
    return text


@dataclass
class Outcome:
    command_id: str
    status: str
    events: list[dict[str, Any]] = field(default_factory=list)

    def event(self, kind: str) -> dict[str, Any] | None:
        return next((e for e in self.events if e.get("type") == kind), None)


def new_command_id(kind: str = "support") -> str:
    return f"{kind}-{uuid.uuid4()}"


class Control:
    def __init__(self, redis_url: Where, settings: StoreSettings, merchants: Merchants | None = None) -> None:
        self.settings = settings
        self._merchants = merchants
        self.layout = settings.layout(merchants.msns if merchants else ())
        self.redis = connect(redis_url)
        try:
            self.redis.ping()
        except Exception as exc:  # any failure to reach Redis: the message says what it was
            self.redis.close()
            raise OperationError(f"cannot reach Redis: {type(exc).__name__}: {exc}") from None
        self.keys = self.layout.keys
        self.ledger = Ledger(self.redis, self.layout, heartbeat_timeout_ms=settings.heartbeat_timeout_ms,
                             retention_seconds=settings.ledger_retention_days * 86_400)
        self.dead_letters = DeadLetterStore(self.redis, self.keys, retention_days=settings.dead_letter_retention_days)
        self.externals = ExternalIds(self.redis, self.keys, retention_seconds=settings.ledger_retention_days * 86_400)
        self.producer = Producer(client=self.redis, layout=self.layout)
        self._vipps: dict[str, VippsClient] = {}

    @property
    def merchants(self) -> Merchants:
        """The configured merchants (read from the Vipps settings on first use)."""
        if self._merchants is None:
            try:
                self._merchants = load_merchants(load_settings())
            except ConfigError as exc:
                raise OperationError(str(exc)) from None
        return self._merchants

    def merchant(self, msn: str | None) -> Merchant:
        """The merchant a call is for: ``msn``, or the only one configured; a one-line error otherwise."""
        try:
            return self.merchants.resolve(msn)
        except UnknownMerchant as exc:
            raise OperationError(str(exc)) from None

    def vipps(self, vipps_settings: VippsSettings | None = None, msn: str | None = None) -> VippsClient:
        """A direct client for reads, as the merchant ``msn`` (default: the only one); shares the worker's
        token cache and rate budgets in Redis, with the people's reserved share of reads."""
        settings = vipps_settings or self.merchant(msn).settings
        key = settings.msn or ""
        if key not in self._vipps:
            self._vipps[key] = VippsClient(settings, key_prefix=self.settings.key_prefix, for_people=True,
                                           **redis_backends(self.redis))
        return self._vipps[key]

    def close(self) -> None:
        for client in self._vipps.values():
            client.close()
        self.redis.close()

    # -- commands ----------------------------------------------------------------------------------

    def send(self, command: dict[str, Any]) -> str:
        """Validate and enqueue (with its merchant's MSN filled in); returns the command_id."""
        wire = prepare(command)
        wire["msn"] = self.merchant(wire.get("msn")).msn
        self.producer.send(wire)
        return str(wire["command_id"])

    def ref(self, command_id: str, msn: str | None = None) -> str:
        """Where the ledger keeps a command of the merchant ``msn`` (default: the only one)."""
        return command_ref(self.merchant(msn).msn, command_id)

    def record(self, command_id: str, msn: str | None = None) -> dict[str, Any] | None:
        """A command's ledger record, looked up as the merchant ``msn``."""
        return self.ledger.get(self.ref(command_id, msn))

    def outcome(self, command_id: str, msn: str | None = None) -> Outcome | None:
        record = self.record(command_id, msn)
        if record is None or record.get("status") not in TERMINAL:
            return None
        return Outcome(command_id, str(record["status"]), list(record.get("events") or []))

    def progress(self, command_id: str, msn: str | None = None) -> Progress:
        """Where a command that has no outcome yet stands, from its ledger record."""
        record = self.record(command_id, msn) or {}
        next_ms = record.get("next_attempt_ms")
        return Progress(command_id, str(record.get("status") or "queued"), int(record.get("attempts") or 0),
                        int(next_ms) if next_ms else None, record.get("error") or None,
                        record.get("waiting") or None)

    def wait(self, command_id: str, timeout: float = 60.0, tick: Callable[[], None] | None = None,
             on_progress: Callable[[Progress], None] | None = None, msn: str | None = None) -> Outcome:
        """The command's outcome once the worker recorded it; raises if it failed, or if it made no progress
        for ``timeout`` seconds. A retry the worker has scheduled is progress: the wait goes on until that
        retry is due (the worker bounds its retries), and ``on_progress`` hears of every change."""
        deadline = time.monotonic() + timeout
        seen: Progress | None = None
        while True:
            found = self.outcome(command_id, msn)
            if found is not None:
                if found.status != "succeeded":
                    raise CommandFailed(command_id, found.status, found.events)
                return found
            now = time.monotonic()
            progress = self.progress(command_id, msn)
            if progress != seen:
                seen = progress
                deadline = max(deadline, now + timeout)
                if progress.next_attempt_ms is not None:
                    deadline = max(deadline, now + max(0.0, progress.next_attempt_ms / 1000 - time.time()) + timeout)
                if on_progress is not None:
                    on_progress(progress)
            if now > deadline:
                hint = "" if self.workers_alive() else " and no worker is running (see `vipps-billing status`)"
                raise NoOutcome(f"command {command_id} ({progress.describe()}) had no outcome after "
                                f"{timeout:.0f} s without progress{hint}")
            if tick is not None:
                tick()
            time.sleep(0.1)

    def run(self, command: dict[str, Any], timeout: float = 60.0, tick: Callable[[], None] | None = None,
            on_progress: Callable[[Progress], None] | None = None) -> Outcome:
        msn = self.merchant(command.get("msn")).msn
        return self.wait(self.send(command | {"msn": msn}), timeout, tick, on_progress, msn)

    # -- dead letters ------------------------------------------------------------------------------

    def decide_replay(self, letter: DeadLetter, changes: dict[str, Any] | None = None) -> Decision:
        """Whether a dead letter is still needed (``replay.decide``), asking Vipps as the merchant it was for."""
        payload = letter.payload if isinstance(letter.payload, dict) else {}
        try:
            client = self.vipps(msn=letter.msn or payload.get("msn"))
        except OperationError as exc:
            return Decision(letter, False, str(exc))
        return decide(letter, self.ledger, client, changes or None)

    def replay(self, decision: Decision, audit: dict[str, str] | None = None) -> str:
        """Send a replay that ``decide_replay`` approved, with who and why when given; returns its command id."""
        if not decision.replay or decision.command is None or decision.new_command_id is None:
            raise OperationError(f"dead letter {decision.letter.id} is not to be replayed: {decision.why}")
        command = prepare(decision.command | (audit or {}))
        # Recorded first: should the send fail, a second replay still sees this one and holds back.
        self.dead_letters.mark_replayed(decision.letter, decision.new_command_id)
        return self.send(command)

    # -- state -------------------------------------------------------------------------------------

    def workers_alive(self) -> int:
        cutoff = time.time() * 1000 - self.settings.heartbeat_timeout_ms
        return int(self.redis.zcount(self.layout.dramatiq.heartbeats, cutoff, "+inf"))

    def published_events(self) -> list[dict[str, Any]]:
        """Events still on the events queue (not yet consumed by anyone); read, never taken."""
        key = self.layout.dramatiq.messages(self.layout.events_queue)
        out = []
        for raw in self.redis.hvals(key):
            try:
                message = json.loads(raw)
                out.append(message["args"][0])
            except (ValueError, KeyError, IndexError, TypeError):
                continue
        return out

    def status(self) -> dict[str, Any]:
        """Queue depths, in flight, retries, watchlist, dead letters, outbox and workers, from Redis."""
        state = read_state(self.redis, self.layout, heartbeat_timeout_ms=self.settings.heartbeat_timeout_ms)
        events = state.queues[self.layout.events_queue]
        return {
            "queues": {name: {"ready": q.ready, "delayed": q.delayed, "dead": q.dead,
                              "oldest_age_seconds": round(q.oldest_age_seconds, 1)}
                       for name, q in state.queues.items()},
            # Published, not yet taken by the billing system's consumer.
            "events": {"waiting": events.ready, "oldest_age_seconds": round(events.oldest_age_seconds, 1)},
            "in_flight": state.in_flight,
            "retry_scheduled": state.retry_scheduled,
            "charge_batches": state.charge_batches,
            "watchlist": {"agreements": state.watch_agreements, "charges": state.watch_charges},
            "dead_letters": state.dead_letters,
            "outbox": {"pending": state.outbox_pending,
                       "oldest_age_seconds": round(state.outbox_oldest_age_seconds, 1)},
            "workers_alive": state.workers_live,
        }
