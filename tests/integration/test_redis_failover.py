"""A Redis failover under load: the primary SIGKILLed twice while commands flow, Sentinel promoting the replica.

A Sentinel group (tests/sentinel.py), the simulator and a worker of two processes that finds Redis through
the Sentinels (``REDIS_URL=redis+sentinel://...``). A producer sends a steady stream of mixed commands
(charge.create mostly, agreement.fetch and .update, charge.fetch and .cancel) at a fixed rate through that
same URL; a send that raises (no primary to take it) is sent again, with the same command_id, until one
returns: as a billing system would. While it sends, twice: the primary is SIGKILLed, Sentinel promotes the
replica, sending goes on, and the killed node comes back as the new primary's replica. Then:

- every command the producer saw acknowledged ends in exactly one terminal outcome (distinct event_ids);
- a failover fails no command: each outcome is its command's success;
- the simulator recorded no effect twice, and no charge created twice;
- the outbox drained and nothing is left in flight, waiting to retry or parked in a charge batch.

Events are read from the primary of the moment. The figures printed: commands in flight and charges parked
at each kill, the time from each kill to the first event published on the new primary, the sends the
producer had to repeat, and the acknowledged commands that were carried out again.
"""

from __future__ import annotations

import collections
import contextlib
import datetime as dt
import random
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import redis

from tests.chaos.test_chaos import AGREEMENT, SUCCESS, TERMINAL, Terminal, charge
from tests.sentinel import Address, SentinelGroup
from tests.stack import EVENTS_QUEUE, Simulator, Worker, wait_for
from worker.core.producer import NotConfirmed, Producer
from worker.local.processes import wait_ready
from worker.local.redis import redis_server_binary
from worker.runtime.settings import WorkerSettings
from worker.store.keys import DramatiqKeys, Keys, command_ref

KEYS = Keys()
EVENTS = DramatiqKeys().messages(EVENTS_QUEUE)
RATE = 50.0           # commands a second
CYCLES = 2            # kill the primary, promote, restart it as a replica
AGREEMENTS = 10
CHARGES_PER_AGREEMENT = 3
SEED = 20250611
WORKER_ENV = {
    "LOG_LEVEL": "WARNING", "RETRY_MIN_BACKOFF_SECONDS": "0.5", "RETRY_MAX_BACKOFF_SECONDS": "4",
    # Commands only: the watch poller would add load and no outcome.
    "AGREEMENT_POLL_START_SECONDS": "600", "AGREEMENT_POLL_SECONDS": "600", "CHARGE_POLL_SECONDS": "3600",
    "VIPPS_CHARGES_PER_MINUTE": "0",
}

pytestmark = pytest.mark.skipif(redis_server_binary() is None, reason="needs a redis-server binary")


def open_producer(url: str) -> Producer:
    """The billing system's producer, through the Sentinel URL."""
    # Receipt confirmed: send returns once the replica holds the command too (NotConfirmed otherwise: sent again).
    return Producer(url, layout=WorkerSettings().layout(), confirm_replicas=1, confirm_timeout_ms=1000)


@dataclass
class Setup:
    msn: str
    agreements: list[str]
    charges: list[tuple[str, str]]  # (agreement_id, charge_id), created and shown at the simulator


def set_up(p: Producer, terminal: Terminal, sim: Simulator) -> Setup:
    """ACTIVE agreements, each with a few charges to fetch and cancel."""
    for i in range(AGREEMENTS):
        p.send({"command_id": f"s-agr-{i}"} | AGREEMENT)
    created = [terminal.events.wait(60, command_id=f"s-agr-{i}", type="agreement.created")
               for i in range(AGREEMENTS)]
    agreements = [e["agreement_id"] for e in created]
    for i, a in enumerate(agreements):
        p.send({"command_id": f"s-acc-{i}", "type": "agreement.force_accept", "agreement_id": a,
                "phone_number": "4791234567"})
    for a in agreements:
        terminal.events.wait(60, type="agreement.activated", agreement_id=a)
    for i, a in enumerate(agreements):
        for j in range(CHARGES_PER_AGREEMENT):
            p.send({"command_id": f"s-chg-{i}-{j}"} | charge(a, j))
    wanted = {f"s-chg-{i}-{j}" for i in range(AGREEMENTS) for j in range(CHARGES_PER_AGREEMENT)}
    wait_for(lambda: wanted <= set(terminal.by_command()), 60, what="the set-up charges")
    charges = [(e["agreement_id"], e["charge_id"]) for e in terminal.events.of(type="charge.created")]

    def shown() -> bool:  # a batch's charges are created at Vipps moments after it was accepted
        return {c for _, c in charges} <= set(sim.admin.get("/effects/charges").json()["charges"])

    wait_for(shown, 30, what="the set-up charges created at the simulator")
    return Setup(created[0]["msn"], agreements, charges)


class Stream:
    """The producer thread: RATE commands a second until stopped; a send that raises is sent again, the same
    command with the same command_id, until one returns. ``acked``: the commands whose send returned."""

    def __init__(self, url: str, setup: Setup) -> None:
        self.url, self.setup = url, setup
        self.rng = random.Random(SEED)
        self.cancellable = list(setup.charges)
        self.rng.shuffle(self.cancellable)
        self.acked: list[dict[str, Any]] = []
        self.repeated_sends = 0
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="producer", daemon=True)

    def start(self) -> Stream:
        self._thread.start()
        return self

    def next_command(self, n: int) -> dict[str, Any]:
        cid, roll = f"f-{n}", self.rng.random()
        agreement = self.rng.choice(self.setup.agreements)
        # The shares keep within Vipps's per-agreement and per-charge limits, which the worker waits for.
        if roll < 0.05:
            body = {"type": "agreement.fetch", "agreement_id": agreement}
        elif roll < 0.055:
            body = {"type": "agreement.update", "agreement_id": agreement, "product_name": f"Renamed {n}"}
        elif roll < 0.10:
            a, c = self.rng.choice(self.setup.charges)
            body = {"type": "charge.fetch", "agreement_id": a, "charge_id": c}
        elif roll < 0.11 and self.cancellable:
            a, c = self.cancellable.pop()
            body = {"type": "charge.cancel", "agreement_id": a, "charge_id": c}
        else:
            body = charge(agreement, n)
        # issued_at fixed once: the same command is sent again, not a new one.
        return {"command_id": cid, "issued_at": dt.datetime.now(dt.UTC).isoformat()} | body

    def _run(self) -> None:
        try:
            with open_producer(self.url) as p:
                n, due = 0, time.monotonic()
                while not self._stop.is_set():
                    command = self.next_command(n)
                    self._send(p, command)
                    self.acked.append(command)
                    n += 1
                    # A fixed rate from here on: the time lost to a failover is not made up in a burst.
                    due = max(due + 1 / RATE, time.monotonic() - 1 / RATE)
                    self._stop.wait(max(0.0, due - time.monotonic()))
        except BaseException as exc:
            self.error = exc

    def _send(self, p: Producer, command: dict[str, Any]) -> None:
        while True:
            try:
                p.send(command)
                return
            except (redis.RedisError, NotConfirmed):  # no primary, or no replica holds it yet: again, the same
                self.repeated_sends += 1
                if self._stop.wait(0.1):
                    raise

    def wait_sent(self, more: int, timeout: float = 60.0) -> None:
        """Until ``more`` commands beyond those acknowledged now are acknowledged."""
        target = len(self.acked) + more
        wait_for(lambda: len(self.acked) >= target or self.error, timeout, what=f"{more} more commands sent")
        assert self.error is None, self.error

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)


@dataclass
class Failover:
    killed: Address
    promoted: Address
    inflight: int         # commands held by an attempt when the primary died
    parked: int           # charge.create commands waiting in the merchant's batch then
    promotion_s: float    # kill -> Sentinel reports the replica as primary
    first_event_s: float  # kill -> the first event published on the new primary
    rejoin_s: float       # restart -> replicating the new primary


def fail_over(group: SentinelGroup, watch: redis.Redis, msn: str) -> Failover:
    """SIGKILL the primary, wait for the promotion and the first event published on the new primary."""
    pipe = watch.pipeline(transaction=False)
    pipe.zcard(KEYS.inflight)
    pipe.zcard(KEYS.charge_batch(msn))
    inflight, parked = pipe.execute()
    killed_at = time.monotonic()
    killed = group.kill_primary()
    promoted = group.wait_promoted(killed, 60)
    promotion_s = time.monotonic() - killed_at
    before = wait_for(lambda: _events_count(watch), 30, interval=0.02, what="the new primary answering")
    wait_for(lambda: _events_count(watch) > before, 60, interval=0.02, what="an event on the new primary")
    return Failover(killed, promoted, inflight, parked, promotion_s, time.monotonic() - killed_at, 0.0)


def _events_count(client: redis.Redis) -> int | None:
    """Events waiting on the queue (None while there is no primary); +1, so that an empty queue is true."""
    try:
        return int(client.hlen(EVENTS)) + 1
    except redis.RedisError:
        return None


@dataclass
class Run:
    setup: Setup
    acked: list[dict[str, Any]]
    failovers: list[Failover]
    repeated_sends: int
    outcomes: dict[str, dict[str, str]]
    duplicates: list[Any]
    charges: dict[str, Any]
    stats: dict[str, Any]
    leftovers: dict[str, int]
    carried_out_again: list[str] = field(default_factory=list)


def settle(terminal: Terminal, acked: list[dict[str, Any]], client: redis.Redis, msn: str) -> None:
    """Until every acknowledged command has an outcome and the outbox, leases and batch are empty, or the time
    is up (the tests below then say what is missing)."""
    wanted = {c["command_id"] for c in acked}

    def quiet() -> bool:
        try:
            return wanted <= set(terminal.by_command()) and not any(leftovers(client, msn).values())
        except redis.RedisError:
            return False

    with contextlib.suppress(AssertionError):
        wait_for(quiet, 120, interval=1.0, what="every outcome, and nothing left to do")


def leftovers(client: redis.Redis, msn: str) -> dict[str, int]:
    pipe = client.pipeline(transaction=False)
    for key in (KEYS.outbox_pending, KEYS.inflight, KEYS.retry, KEYS.charge_batch(msn)):
        pipe.zcard(key)
    return dict(zip(("outbox", "inflight", "retry", "batch"), pipe.execute(), strict=True))


def claimed_again(client: redis.Redis, msn: str, acked: list[dict[str, Any]]) -> list[str]:
    """Acknowledged commands whose ledger record counts more than one attempt: carried out again."""
    pipe = client.pipeline(transaction=False)
    for c in acked:
        pipe.hget(KEYS.command(command_ref(msn, c["command_id"])), "attempts")
    return [c["command_id"] for c, n in zip(acked, pipe.execute(), strict=True) if n is not None and int(n) > 1]


def run_failovers(group: SentinelGroup, stream: Stream, watch: redis.Redis, msn: str) -> list[Failover]:
    failovers = []
    for _ in range(CYCLES):
        stream.wait_sent(int(RATE * 5))
        failover = fail_over(group, watch, msn)
        # Until the old primary replicates the new one, no replica can confirm a command: the producer waits.
        restarted = time.monotonic()
        group.restart_as_replica(failover.killed, 90)
        failover.rejoin_s = time.monotonic() - restarted
        stream.wait_sent(int(RATE * 3))  # the producer is through to the new primary, confirmed again
        failovers.append(failover)
    stream.wait_sent(int(RATE * 3))
    return failovers


@pytest.fixture(scope="module")
def run() -> Iterator[Run]:
    group = SentinelGroup().start()
    sim = Simulator()
    worker = Worker(group.url, sim.url, processes=2, threads=8, env=WORKER_ENV)
    watch = group.client()
    terminal = Terminal(watch)
    stream: Stream | None = None
    try:
        wait_ready(worker.process, f"http://127.0.0.1:{worker.metrics_port}/readyz", 60, "the worker")
        with open_producer(group.url) as p:
            setup = set_up(p, terminal, sim)
        stream = Stream(group.url, setup).start()
        failovers = run_failovers(group, stream, watch, setup.msn)
        stream.stop()
        assert stream.error is None, stream.error
        settle(terminal, stream.acked, watch, setup.msn)
        yield Run(setup, stream.acked, failovers, stream.repeated_sends, terminal.by_command(),
                  sim.effects(duplicates="true"), sim.admin.get("/effects/charges").raise_for_status().json(),
                  sim.admin.get("/stats").raise_for_status().json(), leftovers(watch, setup.msn),
                  claimed_again(watch, setup.msn, stream.acked))
    finally:
        if stream is not None:
            stream.stop()
        worker.stop()
        sim.stop()
        watch.close()
        group.stop()
        print(worker.output()[-5000:])


def test_report(run: Run) -> None:
    kinds = collections.Counter(k for c in run.acked for k in run.outcomes.get(c["command_id"], {}).values())
    print(f"\nfailover: {len(run.acked)} commands acknowledged at {RATE:.0f}/s, "
          f"{run.repeated_sends} sends repeated while no primary answered or no replica confirmed")
    for i, f in enumerate(run.failovers, 1):
        print(f"  kill {i}: primary {f.killed[1]} -> {f.promoted[1]}; {f.inflight} commands in flight, "
              f"{f.parked} charges parked in the batch; promoted after {f.promotion_s:.1f}s, first event on "
              f"the new primary after {f.first_event_s:.1f}s; old primary replicating again {f.rejoin_s:.1f}s "
              "after its restart")
    print(f"  outcomes: {dict(sorted(kinds.items()))}")
    print(f"  carried out again: {len(run.carried_out_again)} acknowledged commands claimed more than once, "
          f"{run.stats['idempotent_replays']} Vipps calls answered from Vipps's idempotency record")
    print(f"  effects twice = {len(run.duplicates)}, charges created more than once = "
          f"{len(run.charges['created_more_than_once'])}")
    assert len(run.failovers) == CYCLES
    assert all(f.promoted != f.killed for f in run.failovers)
    assert run.repeated_sends > 0, "no send met the failover: the run proves nothing about the producer"


def test_every_acknowledged_command_has_exactly_one_terminal_outcome(run: Run) -> None:
    problems = [(c["command_id"], list(kinds.values())) for c in run.acked
                if len(kinds := run.outcomes.get(c["command_id"], {})) != 1]
    assert not problems, problems[:20]
    assert all(k in TERMINAL for c in run.acked for k in run.outcomes.get(c["command_id"], {}).values())


def test_a_failover_fails_no_command(run: Run) -> None:
    wrong = [(c["command_id"], c["type"], kind) for c in run.acked
             for kind in run.outcomes.get(c["command_id"], {}).values() if kind != SUCCESS[c["type"]]]
    assert not wrong, wrong[:20]


def test_no_effect_at_vipps_twice(run: Run) -> None:
    assert run.duplicates == [], run.duplicates[:5]
    assert run.charges["created_more_than_once"] == [], run.charges["created_more_than_once"][:5]


def test_the_outbox_drained_and_nothing_is_left_in_flight(run: Run) -> None:
    assert run.leftovers == {"outbox": 0, "inflight": 0, "retry": 0, "batch": 0}
