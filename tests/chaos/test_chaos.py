"""Chaos: mixed commands through faults at Vipps, SIGKILLed workers and a Redis restart.

The simulator answers 10 % of calls 5xx, 5 % 429 with Retry-After, holds 5 % of responses back after the
effect was committed (the client times out) and drops 2 % of connections before processing. Two worker
groups (serving two merchants, one with its own keys and one through a partner set, each with its own
queues) share an embedded Redis with AOF; worker groups are SIGKILLed three times and Redis is SIGKILLed and
restarted once while commands are in flight. Then:

- every command ends in exactly one terminal outcome event (distinct event_ids), of the expected kind;
- the simulator recorded no effect twice;
- no event was lost (every outcome published, the outbox drained, nothing left in flight);
- dead letters exist only for commands whose error was permanent (invalid input, Vipps 4xx);
- webhooks are on (a receiver registered for both merchants; deliveries failed, duplicated and delayed, the
  receiver SIGKILLed once): every agreement and charge transition is published once, however many saw it;
- charge creations go through the batch endpoint (its answers lost and failed like any other's, both worker
  groups SIGKILLed once while a batch is being sent): no charge is created twice.

CI size by default; larger by hand:

    TEST_REDIS_DB=4 uv run pytest tests/chaos -s                       # 1,000 commands
    CHAOS_COMMANDS=5000 TEST_REDIS_DB=4 uv run pytest tests/chaos -s   # the full size

Redis runs with ``appendfsync always`` (set ``CHAOS_FSYNC=everysec`` to try the default): with ``everysec``
a SIGKILL may drop the last second of writes Redis already acknowledged, which no client can detect.
"""

from __future__ import annotations

import collections
import json
import os
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.merchants import OWN_MSN, PARTNER_MSNS, worker_merchants_data, write_merchants_file
from tests.stack import Events, Simulator, Worker, due_in, wait_for
from worker.core.producer import Producer
from worker.local.processes import kill_group, receiver_url, start_receiver, stop_group
from worker.local.redis import EmbeddedRedis, redis_server_binary
from worker.runtime.settings import WorkerSettings
from worker.store.keys import Keys, command_ref
from worker.vipps import VippsClient, load_settings
from worker.vipps.merchants import load_merchants
from worker.vipps.webhook_events import RECURRING_EVENTS
from worker.webhooks.secrets import keep_secret

# Two merchants: Gym One with its own keys and Yoga Two through the partner set (tests/merchants.py).
MSNS = (OWN_MSN, PARTNER_MSNS[0])

COMMANDS = int(os.environ.get("CHAOS_COMMANDS", "1000"))
FSYNC = os.environ.get("CHAOS_FSYNC", "always")
KEYS = Keys()
SEED = int(os.environ.get("CHAOS_SEED", "20241124"))
AGREEMENTS = 40
CHARGES_PER_AGREEMENT = 5

SUCCESS = {
    "agreement.create": "agreement.created", "agreement.update": "agreement.updated",
    "agreement.force_accept": "agreement.force_accepted", "agreement.fetch": "agreement.snapshot",
    "agreement.list_charges": "agreement.charges", "charge.create": "charge.created",
    "charge.fetch": "charge.snapshot", "charge.capture": "charge.captured", "charge.refund": "charge.refunded",
    "charge.cancel": "charge.cancelled",
}
FAILURES = {"command.failed", "command.rejected", "command.dead_lettered"}
TERMINAL = set(SUCCESS.values()) | FAILURES
WEBHOOK_FAULTS = {"seed": SEED, "fail_rate": 0.05, "duplicate_rate": 0.05, "delay_rate": 0.05, "delay_seconds": 1}
FAULTS = {"seed": SEED, "error_5xx_rate": 0.10, "error_429_rate": 0.05, "retry_after_seconds": 1,
          "timeout_after_commit_rate": 0.05, "timeout_seconds": 3.0, "connection_drop_rate": 0.02}
WORKER_ENV = {
    "LOG_LEVEL": "WARNING", "VIPPS_READ_TIMEOUT": "1.5", "RETRY_MIN_BACKOFF_SECONDS": "0.5",
    "RETRY_MAX_BACKOFF_SECONDS": "4", "LEASE_SECONDS": "20",
    # Keep the watch poller quiet: this suite is about commands, and polls would only add load.
    "AGREEMENT_POLL_START_SECONDS": "600", "AGREEMENT_POLL_SECONDS": "600", "CHARGE_POLL_SECONDS": "3600",
    # Faults, not limits: at 500 charges a minute per merchant the run would mostly wait (and CI is timed).
    "VIPPS_CHARGES_PER_MINUTE": "0",
}
AGREEMENT = {"type": "agreement.create", "product_name": "Chaos", "pricing": {"amount": 49900},
             "interval": {"unit": "MONTH", "count": 1}, "merchant_redirect_url": "https://example.com/back",
             "merchant_agreement_url": "https://example.com/agreements/1", "phone_number": "4791234567"}

pytestmark = pytest.mark.skipif(redis_server_binary() is None, reason="needs a redis-server binary")


def charge(agreement_id: str, n: int) -> dict[str, Any]:
    return {"type": "charge.create", "agreement_id": agreement_id, "amount": 29900, "description": f"Run {n}",
            "due": due_in(3), "retry_days": 2, "transaction_type": "DIRECT_CAPTURE"}


class Terminal:
    """Terminal outcome events per command_id, deduplicated on event_id, read from the events queue."""

    def __init__(self, client: redis.Redis) -> None:
        self.events = Events(client)

    def by_command(self) -> dict[str, dict[str, str]]:
        out: dict[str, dict[str, str]] = collections.defaultdict(dict)
        for e in self.events.all():
            if e.get("type") in TERMINAL and e.get("command_id"):
                out[e["command_id"]][e["event_id"]] = e["type"]
        return out


def mix(rng: random.Random, n: int, agreements: list[str], charges: list[tuple[str, str]]) -> list[
        tuple[dict[str, Any], str]]:
    """n commands with their expected outcome: 'ok', 'failed' (Vipps 4xx) or 'rejected' (invalid input)."""
    cancellable = list(charges)
    rng.shuffle(cancellable)
    out: list[tuple[dict[str, Any], str]] = []
    for i in range(n):
        cid = f"x-{i}"
        agreement = rng.choice(agreements)
        roll = rng.random()
        if roll < 0.10:
            out.append(({"command_id": cid, "type": "agreement.fetch", "agreement_id": agreement}, "ok"))
        elif roll < 0.15:
            out.append(({"command_id": cid, "type": "agreement.list_charges", "agreement_id": agreement}, "ok"))
        elif roll < 0.23:
            out.append(({"command_id": cid} | AGREEMENT | {"product_name": f"Chaos {i}"}, "ok"))
        elif roll < 0.26:
            out.append(({"command_id": cid, "type": "agreement.update", "agreement_id": agreement,
                         "product_name": f"Renamed {i}"}, "ok"))
        elif roll < 0.31:
            a, c = rng.choice(charges)
            out.append(({"command_id": cid, "type": "charge.fetch", "agreement_id": a, "charge_id": c}, "ok"))
        elif roll < 0.35 and cancellable:
            a, c = cancellable.pop()
            out.append(({"command_id": cid, "type": "charge.cancel", "agreement_id": a, "charge_id": c}, "ok"))
        elif roll < 0.38:  # Vipps answers 404: permanent
            out.append(({"command_id": cid} | charge(f"agr-missing-{i}", i), "failed"))
        elif roll < 0.40:
            out.append(({"command_id": cid, "type": "charge.cancel", "agreement_id": agreement,
                         "charge_id": f"chr-missing-{i}"}, "failed"))
        elif roll < 0.43:  # invalid input: rejected before Vipps
            out.append(({"command_id": cid} | charge(agreement, i) | {"amount": -5}, "rejected"))
        else:
            out.append(({"command_id": cid} | charge(agreement, i), "ok"))
    return out


def diagnose(client: redis.Redis, missing: list[tuple[str, str]]) -> str:
    """Where the unfinished commands are: ledger status, queues, schedules."""
    statuses: collections.Counter[str] = collections.Counter()
    for msn, cid in missing:
        status = client.hget(KEYS.command(command_ref(msn, cid)), "status")
        statuses[status.decode() if isinstance(status, bytes) else str(status)] += 1
    queues = {k.decode(): client.llen(k) for k in client.scan_iter(match="dramatiq:vipps.*") if client.type(k)
              == b"list"}
    acks = {k.decode(): client.scard(k) for k in client.scan_iter(match="dramatiq:__acks__.*")}
    return (f"unfinished {len(missing)} e.g. {missing[:5]}: ledger {dict(statuses)}; queues {queues}; acks {acks}; "
            f"inflight {client.zcard(KEYS.inflight)} retry {client.zcard(KEYS.retry)} "
            f"heartbeats {client.zrange('dramatiq:__heartbeats__', 0, -1, withscores=True)}")


@dataclass
class World:
    """What the setup made before the faults were switched on."""

    agreements: list[str]
    charges: list[tuple[str, str]]
    owner: dict[str, str]  # agreement_id -> its merchant's MSN
    command_ids: set[str]
    seconds: float


@dataclass
class Run:
    """What one chaos run left behind, for the tests below to judge."""

    commands: list[tuple[dict[str, Any], str]]
    world: World
    outcomes: dict[str, dict[str, str]]
    duplicates: list[Any]
    effects: list[dict[str, Any]]
    letters: list[dict[str, Any]]
    stats: dict[str, Any]
    log: list[str] = field(default_factory=list)
    transitions: list[dict[str, Any]] = field(default_factory=list)  # published agreement and charge changes
    deliveries: list[dict[str, Any]] = field(default_factory=list)   # the simulator's webhook delivery record
    charges: dict[str, Any] = field(default_factory=dict)            # the simulator's per-charge creations
    created: dict[str, str] = field(default_factory=dict)            # command_id -> the charge it created

    @property
    def expected(self) -> dict[str, str]:
        return {c["command_id"]: e for c, e in self.commands}


def set_up_world(p: Any, terminal: Terminal) -> World:
    """Faults off: active agreements with open charges to fetch and cancel."""
    started = time.monotonic()
    for i in range(AGREEMENTS):
        p.send({"command_id": f"s-agr-{i}", "msn": MSNS[i % 2]} | AGREEMENT)
    agreements = [terminal.events.wait(60, command_id=f"s-agr-{i}", type="agreement.created")["agreement_id"]
                  for i in range(AGREEMENTS)]
    owner = {a: MSNS[i % 2] for i, a in enumerate(agreements)}
    for i, a in enumerate(agreements):
        p.send({"command_id": f"s-acc-{i}", "type": "agreement.force_accept", "agreement_id": a,
                "phone_number": "4791234567", "msn": owner[a]})
    wait_for(lambda: all(terminal.events.of(command_id=f"s-acc-{i}", type="agreement.force_accepted")
                         for i in range(AGREEMENTS)), 60, what="agreements accepted")
    for i, a in enumerate(agreements):
        for j in range(CHARGES_PER_AGREEMENT):
            p.send({"command_id": f"s-chg-{i}-{j}", "msn": owner[a]} | charge(a, j))
    wait_for(lambda: len([c for c in terminal.by_command() if c.startswith("s-chg-")])
             == AGREEMENTS * CHARGES_PER_AGREEMENT, 120, what="setup charges")
    charges = [(e["agreement_id"], e["charge_id"]) for e in terminal.events.of(type="charge.created")]
    return World(agreements, charges, owner, set(terminal.by_command()), time.monotonic() - started)


class Receiver:
    """The webhook receiver of the run, registered for both merchants; SIGKILLed once."""

    def __init__(self, directory: Path, sim_url: str, redis_url: str, merchants_file: Path) -> None:
        self.url, self.secrets, self.redis_url = receiver_url(), directory / "webhook-secrets", redis_url
        for merchant in load_merchants(load_settings(base_url=sim_url, merchants_file=merchants_file)):
            with VippsClient(merchant.settings) as vipps:
                made = vipps.register_webhook(self.url, list(RECURRING_EVENTS))
            keep_secret(self.secrets, made.id, made.secret.get_secret_value())
        self.log = open(directory / "receiver.log", "wb")  # noqa: SIM115 (open for the run)
        self.process = self._start()

    def _start(self) -> Any:
        return start_receiver(self.log, self.url, redis_url=self.redis_url, secrets_dir=self.secrets,
                              settings=WorkerSettings())

    def kill_and_restart(self) -> None:
        kill_group(self.process)
        time.sleep(1.0)  # Vipps's deliveries meanwhile fail, and are retried
        self.process = self._start()

    def stop(self) -> None:
        stop_group(self.process, 5.0)
        self.log.close()


def unleash(server: EmbeddedRedis, client: redis.Redis, workers: list[Worker], receiver: Receiver,
            done: Callable[[], int], started: float) -> list[str]:
    """The disasters, spread over the run by progress: both worker groups SIGKILLed mid-batch, two more worker
    SIGKILLs, one Redis SIGKILL and one of the webhook receiver.

    The mid-batch kill comes first: charge creations leave their queues in batches, far sooner than the rest,
    so late in a small run no batch may be left to catch in flight."""
    disasters = [(0.02, "mid-batch", 0), (0.15, "kill", 0), (0.35, "kill", 1), (0.50, "redis", 0),
                 (0.60, "receiver", 0)]
    log: list[str] = []
    deadline = time.monotonic() + 600
    while disasters and time.monotonic() < deadline:
        share = done() / COMMANDS
        at, what, which = disasters[0]
        if share >= at:
            disasters.pop(0)
            at_text = f"{time.monotonic() - started:6.1f}s at {share:.0%}"
            if what == "kill":
                inflight = client.zcard(KEYS.inflight)
                workers[which].kill()
                log.append(f"{at_text}: SIGKILL worker group {which} ({inflight} commands in flight)")
                time.sleep(1.0)
                workers[which].restart()
            elif what == "mid-batch":
                held = wait_for(lambda: held_by_batch_senders(client), 60, interval=0.02,
                                what="a batch being sent")
                for worker in workers:
                    worker.kill()
                log.append(f"{at_text}: SIGKILL both worker groups while a batch of {held} charges is sent")
                time.sleep(1.0)
                for worker in workers:
                    worker.restart()
            elif what == "receiver":
                receiver.kill_and_restart()
                log.append(f"{at_text}: SIGKILL the webhook receiver, restart")
            else:
                server.kill()
                log.append(f"{at_text}: SIGKILL Redis, restart")
                time.sleep(0.5)
                server.start()
                redis.Redis.from_url(server.url).config_set("appendfsync", FSYNC)
        time.sleep(0.2)
    assert not disasters, "the run ended before every disaster happened"
    return log


def held_by_batch_senders(client: redis.Redis) -> int:
    """Commands a batch sender holds right now (taken from a merchant's batch, the request not answered yet)."""
    refs = client.zrangebyscore(KEYS.inflight, "(" + str(int(time.time() * 1000)), "+inf")
    pipe = client.pipeline(transaction=False)
    for ref in refs:
        pipe.hget(KEYS.command(ref.decode()), "owner")
    return sum(1 for owner in pipe.execute() if owner and owner.startswith(b"batch-"))


def await_outcomes(client: redis.Redis, terminal: Terminal, expected: dict[str, str], msn: dict[str, str],
                   started: float) -> None:
    progress: list[tuple[float, int]] = []

    def all_done() -> bool:
        progress.append((time.monotonic() - started, sum(1 for c in terminal.by_command() if c in expected)))
        return progress[-1][1] == COMMANDS

    try:
        wait_for(all_done, float(os.environ.get("CHAOS_WAIT_SECONDS", "600")), interval=1.0,
                 what="every command's outcome")
    except AssertionError:
        print(diagnose(client, [(msn[c], c) for c in expected if c not in terminal.by_command()]))
        print("  progress (s, done): " + ", ".join(f"{t:.0f}:{n}" for t, n in progress[::5]))
        raise
    print(f"\nchaos: all terminal after {time.monotonic() - started:.1f}s")
    # Let anything still settling finish: outbox drained, nothing in flight or waiting to retry.
    wait_for(lambda: client.zcard(KEYS.outbox_pending) == 0 and client.zcard(KEYS.inflight) == 0
             and client.zcard(KEYS.retry) == 0, 60, what="quiet")
    time.sleep(2.0)


def with_merchants(commands: list[tuple[dict[str, Any], str]], owner: dict[str, str], rng: random.Random
                   ) -> list[tuple[dict[str, Any], str]]:
    """Each command as its agreement's merchant; new agreements and unknown ones go to either."""
    return [(c | {"msn": owner.get(c.get("agreement_id", "")) or rng.choice(MSNS)}, e) for c, e in commands]


def two_merchants(directory: Path) -> tuple[tuple[str, ...], dict[str, str], Path]:
    """(simulator arguments, worker environment, worker merchants file) for the two merchants of the run."""
    setup = write_merchants_file(directory)
    data = worker_merchants_data()
    data["merchants"] = [m for m in data["merchants"] if m["msn"] in MSNS]
    worker_file = directory / "two-merchants.json"
    worker_file.write_text(json.dumps(data))
    return setup.simulator_args, WORKER_ENV | {"MERCHANTS_FILE": str(worker_file)}, worker_file


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    server = EmbeddedRedis(appendonly=True).start()
    client = redis.Redis.from_url(server.url, socket_timeout=10)
    client.config_set("appendfsync", FSYNC)
    directory = tmp_path_factory.mktemp("chaos")
    simulator_args, env, merchants_file = two_merchants(directory)
    simulator = Simulator(*simulator_args)
    receiver = Receiver(directory, simulator.url, server.url, merchants_file)
    workers = [Worker(server.url, simulator.url, threads=8, env=env) for _ in range(2)]
    terminal = Terminal(client)
    try:
        p = Producer(server.url, layout=WorkerSettings().layout(MSNS))  # each merchant's own queues
        world = set_up_world(p, terminal)
        simulator.faults(**FAULTS)
        simulator.webhook_faults(**WEBHOOK_FAULTS)
        rng = random.Random(SEED)
        commands = with_merchants(mix(rng, COMMANDS, world.agreements, world.charges), world.owner, rng)
        for command, expected in commands:
            (p.send_raw if expected == "rejected" else p.send)(command)
        p.close()
        started = time.monotonic()
        expected_by_id = {c["command_id"]: e for c, e in commands}
        log = unleash(server, client, workers, receiver,
                      lambda: sum(1 for c in terminal.by_command() if c in expected_by_id), started)
        await_outcomes(client, terminal, expected_by_id, {c["command_id"]: c["msn"] for c, _ in commands}, started)
        yield Run(commands, world, terminal.by_command(), simulator.effects(duplicates="true"), simulator.effects(),
                  [json.loads(v) for v in client.hvals(KEYS.dead_letters)],
                  simulator.admin.get("/stats").raise_for_status().json(), log,
                  transitions=[e for e in terminal.events.all() if e.get("transition")],
                  deliveries=simulator.webhook_deliveries(),
                  charges=simulator.admin.get("/effects/charges").raise_for_status().json(),
                  created={e["command_id"]: e["charge_id"] for e in terminal.events.all()
                           if e.get("type") == "charge.created"})
    finally:
        for w in workers:
            w.stop()
        receiver.stop()
        simulator.stop()
        client.close()
        server.stop()
        print("\n".join(w.output()[-3000:] for w in workers))


def test_report(run: Run) -> None:
    counts = collections.Counter(kind for events in run.outcomes.values() for kind in events.values())
    print(f"\nchaos: {COMMANDS} commands (+{len(run.world.command_ids)} setup in {run.world.seconds:.1f}s); "
          f"Redis appendfsync {FSYNC}")
    print("  " + "\n  ".join(run.log))
    print(f"  terminal outcomes: {dict(sorted(counts.items()))}")
    print(f"  simulator: {run.stats['total']} requests, faults {run.stats['faults_injected']}, "
          f"{run.stats['idempotent_replays']} idempotent replays, {len(run.duplicates)} effects twice")
    print(f"  dead letters: {dict(collections.Counter(letter['reason'] for letter in run.letters))}")
    assert len(run.log) == 5
    assert sum(run.stats["faults_injected"].values()) > 0, "no fault was injected: the run proves nothing"


def test_every_command_has_exactly_one_terminal_outcome_of_its_kind(run: Run) -> None:
    wants: dict[str, set[str | None]] = {"failed": {"command.failed"}, "rejected": {"command.rejected"},
                                         "setup": set(SUCCESS.values())}
    judged = run.commands + [({"command_id": c, "type": "-"}, "setup") for c in run.world.command_ids]
    problems = []
    for command, expected in judged:
        kinds = list(run.outcomes.get(command["command_id"], {}).values())
        want = wants.get(expected, {SUCCESS.get(command["type"])})
        if len(kinds) != 1 or kinds[0] not in want:
            problems.append(f"{command['command_id']}: {kinds}, expected one of {want}")
    assert not problems, problems[:20]


def test_no_effect_at_vipps_twice(run: Run) -> None:
    assert run.duplicates == [], run.duplicates[:5]


def test_charge_runs_went_through_batches_and_no_charge_was_created_twice(run: Run) -> None:
    batches = run.stats["requests"].get("CreateChargesAsyncV3", {})
    print(f"\n  batch requests by answer: {batches}; single creations: "
          f"{run.stats['requests'].get('CreateChargeV3', {})}")
    assert sum(batches.values()) > 0 and set(batches) - {"202"}, "batches were sent, and some met a fault"
    assert any("while a batch of" in line for line in run.log)
    assert run.charges["created_more_than_once"] == [] and run.charges["queued"] == []
    made = {cid for cid, c in run.charges["charges"].items() if "charge.create" in c["operations"]}
    wanted = [c["command_id"] for c, expected in run.commands if c["type"] == "charge.create" and expected == "ok"]
    mine = [run.created[cid] for cid in wanted]
    assert len(set(mine)) == len(mine), "one charge per command"
    assert set(mine) <= made, sorted(set(mine) - made)[:5]  # each exists at Vipps, and once (above)


def test_dead_letters_only_for_permanent_errors(run: Run) -> None:
    expected = run.expected
    bad = [letter for letter in run.letters if letter["reason"] not in ("vipps_problem", "invalid_command")
           or expected.get(letter["command_id"]) not in ("failed", "rejected")]
    assert not bad, bad[:5]
    permanent = {cid for cid, e in expected.items() if e != "ok"}
    lettered = {letter["command_id"] for letter in run.letters}
    assert lettered == permanent, (sorted(permanent - lettered)[:10], sorted(lettered - permanent)[:10])


def test_both_merchants_worked_and_no_effect_landed_on_the_other(run: Run) -> None:
    assert {c["msn"] for c, _ in run.commands} == set(MSNS)
    known = [e for e in run.effects if e["agreement_id"] in run.world.owner]
    assert {e["msn"] for e in known} == set(MSNS)
    assert [e for e in known if e["msn"] != run.world.owner[e["agreement_id"]]] == []


def test_webhooks_were_used_through_faults_and_every_transition_was_published_once(run: Run) -> None:
    results = collections.Counter(d["result"] for d in run.deliveries)
    print(f"\n  webhook deliveries: {dict(results)}; transitions first seen by "
          f"{dict(collections.Counter(e.get('observed_by') for e in run.transitions))}")
    assert results["delivered"] > 0 and results["retry"] > 0 and results["duplicate"] > 0
    assert any(e.get("observed_by") == "webhook" for e in run.transitions)
    by_change: dict[tuple[str, str], set[str]] = collections.defaultdict(set)
    for e in run.transitions:
        resource = e.get("charge_id") or e["agreement_id"]
        by_change[(resource, f"{e['type']}:{e['transition']['to']}:{(e.get('charge') or {}).get('summary')}")].add(
            e["event_id"])
    assert [change for change, ids in by_change.items() if len(ids) != 1] == []
