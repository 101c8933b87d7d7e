"""``vipps-billing bench``: the worker measured against the simulator, scenario by scenario, in one run.

Every scenario starts its own simulator and worker processes on one Redis (an embedded one unless
``--redis-url`` is given; that database is flushed between scenarios). Prints a table and writes JSON.

- simulator: the simulator's own capacity for the same POST, from as many client threads as the worker has;
- throughput: N charge.create through the full worker vs. a naive dramatiq actor doing only the POST
  (``worker.bench.naive``), same processes and threads; commands/s, CPU-seconds per command, peak RSS;
- latency: simulator latency fixed at 100 ms; commands/s against threads / latency, and enqueue-to-event
  p50/p99 at half that rate;
- timeliness: an agreement stop enqueued behind a backlog of queued charges; seconds to agreement.stopped;
- recovery: one of two worker groups SIGKILLed with commands in flight; seconds until all are done, and the
  effects done twice at Vipps.

Throughput runs start the simulator with ``--no-rate-limits`` (one agreement takes many charges per second).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any

import httpx
import redis
import typer

from worker.local.processes import free_port

app = typer.Typer(add_completion=False, help="Benchmarks of the worker against the simulator; prints a table of "
                  "the figures against their targets and writes JSON.\n\n"
                  "Example: vipps-billing bench --scenarios throughput,timeliness --charges 5000")

SCENARIOS = ("simulator", "throughput", "latency", "timeliness", "recovery")
EVENTS_MSGS = "dramatiq:vipps.events.msgs"
DUE = (dt.date.today() + dt.timedelta(days=7)).isoformat()
AGREEMENT = {"type": "agreement.create", "product_name": "Bench", "pricing": {"amount": 49900},
             "interval": {"unit": "MONTH", "count": 1}, "merchant_redirect_url": "https://example.com/back",
             "merchant_agreement_url": "https://example.com/agreements/1", "phone_number": "4791234567"}



def _wait(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(interval)
    raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}")


@functools.cache
def scratch() -> str:
    """Logs and metrics files of every process the bench starts; removed when the bench exits."""
    directory = tempfile.TemporaryDirectory(prefix="vipps-billing-bench-")
    _scratch_dirs.append(directory)
    return directory.name


_scratch_dirs: list[tempfile.TemporaryDirectory[str]] = []


class Group:
    """A process group (simulator or worker) whose CPU time and memory can be read from /proc."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.log = tempfile.NamedTemporaryFile(prefix="bench-", suffix=".log", delete=False,  # noqa: SIM115
                                               dir=scratch())
        self.process = subprocess.Popen(args, env=env, stdout=self.log, stderr=subprocess.STDOUT,
                                        start_new_session=True)

    def pids(self) -> list[int]:
        out = []
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                with contextlib.suppress(OSError, IndexError, ValueError):
                    stat = Path(f"/proc/{entry}/stat").read_text()
                    if int(stat[stat.rindex(")") + 2:].split()[2]) == self.process.pid:
                        out.append(int(entry))
        return out

    def usage(self) -> tuple[float, int]:
        """(CPU seconds, RSS bytes) summed over the live processes of the group."""
        tick, page = os.sysconf("SC_CLK_TCK"), os.sysconf("SC_PAGE_SIZE")
        cpu, rss = 0.0, 0
        for pid in self.pids():
            with contextlib.suppress(OSError, IndexError, ValueError):
                stat = Path(f"/proc/{pid}/stat").read_text()
                fields = stat[stat.rindex(")") + 2:].split()
                cpu += (int(fields[11]) + int(fields[12])) / tick
                rss += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * page
        return cpu, rss

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.kill()


class Sampler:
    """Samples a group's peak RSS in the background."""

    def __init__(self, group: Group) -> None:
        self.group, self.peak, self._stop = group, 0, threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.25):
            self.peak = max(self.peak, self.group.usage()[1])

    def close(self) -> int:
        self._stop.set()
        self.thread.join()
        return self.peak


def start_simulator(*args: str) -> tuple[Group, str]:
    port = free_port()
    group = Group([sys.executable, "-m", "worker.cli.app", "simulator", "--host", "127.0.0.1", "--port", str(port),
                   *args], dict(os.environ))
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        with contextlib.suppress(httpx.HTTPError):
            return httpx.get(f"{url}/_simulator/health", timeout=2).status_code == 200
        return False

    _wait(up, 30, "the simulator")
    return group, url


def start_worker(kind: str, redis_url: str, sim_url: str, processes: int, threads: int,
                 env: dict[str, str] | None = None) -> Group:
    base = dict(os.environ) | {"REDIS_URL": redis_url, "VIPPS_ENV": "simulator", "VIPPS_BASE_URL": sim_url,
                               "METRICS_PORT": str(free_port()), "METRICS_HOST": "127.0.0.1",
                               "PROMETHEUS_MULTIPROC_DIR": tempfile.mkdtemp(prefix="prom-", dir=scratch()),
                               "LOG_LEVEL": "WARNING", "CHARGE_POLL_SECONDS": "3600",
                               "dramatiq_queue_prefetch": str(threads * 2), "dramatiq_worker_timeout": "200"}
    if kind == "naive":
        args = [sys.executable, "-m", "dramatiq", "worker.bench.naive", "--processes", str(processes),
                "--threads", str(threads), "--queues", "bench.naive", "--skip-logging"]
    else:
        args = [sys.executable, "-m", "worker.cli.app", "worker", "--processes", str(processes), "--threads",
                str(threads)]
    return Group(args, base | (env or {}))


def charge_command(agreement_id: str, n: int, prefix: str) -> dict[str, Any]:
    return {"command_id": f"{prefix}-{n}", "type": "charge.create", "agreement_id": agreement_id,
            "amount": 100 + n % 1000, "description": f"Bench {n}", "due": DUE, "retry_days": 0,
            "transaction_type": "DIRECT_CAPTURE", "issued_at": dt.datetime.now(dt.UTC).isoformat()}


def fast_enqueue(client: redis.Redis, queue: str, actor: str, commands: list[dict[str, Any]]) -> None:
    """What dramatiq's Redis enqueue does (HSET + RPUSH), pipelined, so enqueueing is not what is measured."""
    for start in range(0, len(commands), 2000):
        pipe = client.pipeline(transaction=False)
        for command in commands[start:start + 2000]:
            rid = str(uuid.uuid4())
            message = {"queue_name": queue, "actor_name": actor, "args": [command], "kwargs": {},
                       "options": {"redis_message_id": rid}, "message_id": rid,
                       "message_timestamp": int(time.time() * 1000)}
            pipe.hset(f"dramatiq:{queue}.msgs", rid, json.dumps(message, separators=(",", ":")))
            pipe.rpush(f"dramatiq:{queue}", rid)
        pipe.execute()


def ledger_status(client: redis.Redis, command_id: str) -> str | None:
    value = client.hget(f"vipps-billing:cmd:{command_id}", "status")
    return value.decode() if isinstance(value, bytes) else None


def setup_agreements(client: redis.Redis, redis_url: str, sim_url: str, count: int, prefix: str) -> list[str]:
    """Active agreements, made through the worker itself."""
    worker = start_worker("full", redis_url, sim_url, 1, 8)
    try:
        commands = [{"command_id": f"{prefix}-agr-{i}", **AGREEMENT,
                     "issued_at": dt.datetime.now(dt.UTC).isoformat()} for i in range(count)]
        fast_enqueue(client, "vipps.agreements", "agreement_create", commands)
        _wait(lambda: all(ledger_status(client, str(c["command_id"])) == "succeeded" for c in commands), 120,
              "agreements created")
        ids = []
        for c in commands:
            raw = client.hget(f"vipps-billing:cmd:{c['command_id']}", "events")
            ids.append(next(e["agreement_id"] for e in json.loads(raw or "[]") if e["type"] == "agreement.created"))
        accepts = [{"command_id": f"{prefix}-acc-{i}", "type": "agreement.force_accept", "agreement_id": a,
                    "phone_number": "4791234567", "issued_at": dt.datetime.now(dt.UTC).isoformat()}
                   for i, a in enumerate(ids)]
        fast_enqueue(client, "vipps.agreements", "agreement_force_accept", accepts)
        _wait(lambda: all(ledger_status(client, c["command_id"]) == "succeeded" for c in accepts), 120,
              "agreements accepted")
        return ids
    finally:
        worker.stop()


def redis_cpu(client: redis.Redis) -> float:
    info = client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def measure(group: Group, done: Callable[[], int], total: int, timeout: float,
            client: redis.Redis | None = None) -> dict[str, float]:
    """From the first completion to the last: commands/s, CPU-seconds per command, peak RSS (and Redis's CPU)."""
    sampler = Sampler(group)
    first = _wait(lambda: done() or None, timeout, "a first completion", 0.01)
    redis0 = redis_cpu(client) if client else 0.0
    t0, (cpu0, _) = time.monotonic(), group.usage()
    last = first
    deadline = time.monotonic() + timeout
    while last < total and time.monotonic() < deadline:
        time.sleep(0.05)
        last = done()
    t1, (cpu1, _) = time.monotonic(), group.usage()
    peak = sampler.close()
    if last < total:
        raise RuntimeError(f"only {last} of {total} done within {timeout:.0f} s")
    n = total - first
    out = {"commands": n, "seconds": round(t1 - t0, 2), "commands_per_s": round(n / (t1 - t0), 1),
           "cpu_s_per_command": round((cpu1 - cpu0) / n, 5), "peak_rss_mb": round(peak / 2**20, 1)}
    if client:
        out["redis_cpu_s_per_command"] = round((redis_cpu(client) - redis0) / n, 5)
    return out


def events_done(client: redis.Redis, offset: int = 0) -> Callable[[], int]:
    return lambda: int(client.hlen(EVENTS_MSGS)) - offset


def scenario_simulator(threads: int, requests: int) -> dict[str, Any]:
    """The simulator alone: tests/bench/bench_simulator.py (raw keep-alive clients in several processes) when
    run from the repository, else the same POST from as many httpx threads as the worker has (client-bound)."""
    script = Path(__file__).resolve().parent.parent / "tests" / "bench" / "bench_simulator.py"
    if script.exists():
        done = subprocess.run([sys.executable, str(script), "--requests", str(requests)], capture_output=True,
                              text=True, timeout=900, check=True)
        return {"tool": "tests/bench/bench_simulator.py", "report": done.stdout.strip().splitlines()}
    sim, url = start_simulator("--no-rate-limits")
    try:
        client = httpx.Client(base_url=url, timeout=10)
        creds = {"client_id": "simulator-client-id", "client_secret": "simulator-client-secret",
                 "Ocp-Apim-Subscription-Key": "simulator-subscription-key"}
        token = client.post("/accesstoken/get", headers=creds).raise_for_status().json()["access_token"]
        headers = {"Authorization": f"Bearer {token}", "Ocp-Apim-Subscription-Key": creds[
            "Ocp-Apim-Subscription-Key"], "Vipps-System-Name": "bench"}
        draft = {"pricing": {"type": "LEGACY", "amount": 49900, "currency": "NOK"},
                 "interval": {"unit": "MONTH", "count": 1}, "merchantRedirectUrl": "https://example.com/b",
                 "merchantAgreementUrl": "https://example.com/a", "productName": "Bench",
                 "phoneNumber": "4791234567"}
        agreement = client.post("/recurring/v3/agreements", json=draft, headers=headers | {
            "Idempotency-Key": "bench-sim-agr"}).raise_for_status().json()["agreementId"]
        client.patch(f"/recurring/v3/agreements/{agreement}/accept", json={"phoneNumber": "4791234567"},
                     headers=headers | {"Idempotency-Key": "bench-sim-acc"})
        count = [0]
        lock = threading.Lock()

        def run(share: int, offset: int) -> None:
            with httpx.Client(base_url=url, timeout=10) as c:
                for i in range(share):
                    body = {"amount": 1000, "description": "Bench", "due": DUE, "retryDays": 0,
                            "transactionType": "DIRECT_CAPTURE"}
                    c.post(f"/recurring/v3/agreements/{agreement}/charges", json=body,
                           headers=headers | {"Idempotency-Key": f"sim-{offset + i}"}).raise_for_status()
            with lock:
                count[0] += share

        cpu0 = sim.usage()[0]
        start = time.monotonic()
        pool = [threading.Thread(target=run, args=(requests // threads, t * requests)) for t in range(threads)]
        for t in pool:
            t.start()
        for t in pool:
            t.join()
        seconds = time.monotonic() - start
        cpu = sim.usage()[0] - cpu0
        return {"requests": count[0], "seconds": round(seconds, 2), "requests_per_s": round(count[0] / seconds, 1),
                "simulator_cpu_s_per_request": round(cpu / count[0], 5), "client_threads": threads}
    finally:
        sim.stop()


def scenario_throughput(client: redis.Redis, redis_url: str, n: int, processes: int, threads: int,
                        rounds: int) -> dict[str, Any]:
    """Naive and full worker, ``rounds`` times each, alternating which goes first (a shared machine drifts)."""
    sim, url = start_simulator("--no-rate-limits")
    try:
        agreements = setup_agreements(client, redis_url, url, 20, "tp")
        runs: dict[str, list[dict[str, float]]] = {"naive": [], "full": []}
        for r in range(rounds):
            for kind in ("naive", "full") if r % 2 == 0 else ("full", "naive"):
                runs[kind].append(_throughput_run(client, redis_url, url, kind, agreements, n, processes, threads,
                                                  prefix=f"{kind}{r}"))
        out: dict[str, Any] = {kind: _median_run(results) for kind, results in runs.items()}
        ratios = [f["commands_per_s"] / v["commands_per_s"] for f, v in zip(runs["full"], runs["naive"], strict=True)]
        out["ratio"] = round(statistics.median(ratios), 3)
        out["ratio_per_round"] = [round(x, 3) for x in ratios]
        out["duplicate_effects"] = len(httpx.get(f"{url}/_simulator/effects", params={"duplicates": "true"},
                                                 timeout=30).json())
        return out
    finally:
        sim.stop()


def _throughput_run(client: redis.Redis, redis_url: str, sim_url: str, kind: str, agreements: list[str], n: int,
                    processes: int, threads: int, prefix: str) -> dict[str, float]:
    offset = int(client.hlen(EVENTS_MSGS))
    client.delete("bench:naive:done")
    commands = [charge_command(agreements[i % len(agreements)], i, prefix) for i in range(n)]
    if kind == "naive":
        fast_enqueue(client, "bench.naive", "naive_charge_create", commands)
        done = lambda: int(client.get("bench:naive:done") or 0)  # noqa: E731
    else:
        fast_enqueue(client, "vipps.charges", "charge_create", commands)
        done = events_done(client, offset)
    group = start_worker(kind, redis_url, sim_url, processes, threads)
    try:
        return measure(group, done, n, timeout=max(600, n / 10), client=client)
    finally:
        group.stop()


def _median_run(results: list[dict[str, float]]) -> dict[str, Any]:
    """Median commands/s and CPU per command over the rounds; the highest peak RSS."""
    return {"rounds": len(results),
            "commands": results[0]["commands"],
            "commands_per_s": round(statistics.median(r["commands_per_s"] for r in results), 1),
            "cpu_s_per_command": round(statistics.median(r["cpu_s_per_command"] for r in results), 5),
            "redis_cpu_s_per_command": round(statistics.median(r["redis_cpu_s_per_command"] for r in results), 5),
            "peak_rss_mb": max(r["peak_rss_mb"] for r in results),
            "commands_per_s_per_round": [r["commands_per_s"] for r in results]}


def scenario_latency(client: redis.Redis, redis_url: str, n: int, processes: int, threads: int) -> dict[str, Any]:
    sim, url = start_simulator("--no-rate-limits", "--fault-latency", "fixed:100")
    try:
        agreements = setup_agreements(client, redis_url, url, 20, "lat")
        bound = processes * threads / 0.100
        offset = int(client.hlen(EVENTS_MSGS))
        group = start_worker("full", redis_url, url, processes, threads)
        try:
            fast_enqueue(client, "vipps.charges", "charge_create",
                         [charge_command(agreements[i % 20], i, "lat") for i in range(n)])
            result = measure(group, events_done(client, offset), n, timeout=600)
            # Enqueue-to-event latency at half the bound, paced, so queueing is not what is measured.
            offset = int(client.hlen(EVENTS_MSGS))
            paced = max(200, n // 4)
            sent: dict[str, float] = {}
            rate = bound / 2
            start = time.time()
            for i in range(paced):
                command = charge_command(agreements[i % 20], i, "paced")
                sent[command["command_id"]] = time.time()
                fast_enqueue(client, "vipps.charges", "charge_create", [command])
                time.sleep(max(0.0, start + (i + 1) / rate - time.time()))
            _wait(lambda: client.hlen(EVENTS_MSGS) - offset >= paced, 120, "paced commands")
            latencies = []
            for raw in client.hvals(EVENTS_MSGS):
                message = json.loads(raw)
                event = message["args"][0]
                if event.get("command_id") in sent and event["type"] == "charge.created":
                    latencies.append(message["message_timestamp"] / 1000 - sent[event["command_id"]])
            latencies.sort()
        finally:
            group.stop()
        return result | {"bound_per_s": bound, "share_of_bound": round(result["commands_per_s"] / bound, 3),
                         "paced_rate_per_s": rate, "paced_commands": len(latencies),
                         "p50_ms": round(1000 * statistics.median(latencies), 1),
                         "p99_ms": round(1000 * latencies[int(0.99 * (len(latencies) - 1))], 1)}
    finally:
        sim.stop()


def scenario_timeliness(client: redis.Redis, redis_url: str, backlog: int, processes: int,
                        threads: int) -> dict[str, Any]:
    sim, url = start_simulator("--no-rate-limits")
    try:
        agreements = setup_agreements(client, redis_url, url, 21, "tl")
        to_stop, charged = agreements[0], agreements[1:]
        fast_enqueue(client, "vipps.charges", "charge_create",
                     [charge_command(charged[i % 20], i, "tl") for i in range(backlog)])
        group = start_worker("full", redis_url, url, processes, threads)
        try:
            _wait(lambda: client.hlen(EVENTS_MSGS) > 0 and client.llen("dramatiq:vipps.charges") < backlog, 60,
                  "the charge run to start")
            queued = int(client.llen("dramatiq:vipps.charges"))
            stop = {"command_id": "tl-stop", "type": "agreement.update", "agreement_id": to_stop,
                    "status": "STOPPED", "issued_at": dt.datetime.now(dt.UTC).isoformat()}
            start = time.monotonic()
            fast_enqueue(client, "vipps.agreements", "agreement_update", [stop])
            _wait(lambda: ledger_status(client, "tl-stop") == "succeeded", 120, "the stop", 0.01)
            events = json.loads(client.hget("vipps-billing:cmd:tl-stop", "events") or "[]")
            stopped = next(e["event_id"] for e in events if e["type"] == "agreement.stopped")
            # The relay deletes an outbox entry once its event is on the events queue.
            _wait(lambda: not client.hexists("vipps-billing:outbox", stopped), 60, "agreement.stopped published",
                  0.01)
            seconds = time.monotonic() - start
        finally:
            group.kill()  # the rest of the backlog is not part of this scenario
        return {"backlog": backlog, "queued_at_stop": queued, "seconds_to_agreement_stopped": round(seconds, 3)}
    finally:
        sim.stop()


def scenario_recovery(client: redis.Redis, redis_url: str, n: int, threads: int) -> dict[str, Any]:
    sim, url = start_simulator("--no-rate-limits", "--fault-latency", "fixed:200")
    try:
        agreements = setup_agreements(client, redis_url, url, 20, "rc")
        offset = int(client.hlen(EVENTS_MSGS))
        # Production heartbeat settings: the dead group's commands come back through the sweeper/heartbeats.
        groups = [start_worker("full", redis_url, url, 1, threads, {"HEARTBEAT_TIMEOUT_MS": "10000"})
                  for _ in range(2)]
        try:
            commands = [charge_command(agreements[i % 20], i, "rc") for i in range(n)]
            fast_enqueue(client, "vipps.charges", "charge_create", commands)
            _wait(lambda: client.hlen(EVENTS_MSGS) - offset >= n // 5, 120, "a fifth done")
            inflight = {m.decode() if isinstance(m, bytes) else str(m)
                        for m in client.zrange("vipps-billing:inflight", 0, -1)}
            groups[0].kill()
            killed = time.monotonic()
            held = {c for c in inflight if ledger_status(client, c) == "in_progress"}

            def all_done() -> bool:
                return all(ledger_status(client, c["command_id"]) == "succeeded" for c in commands) and \
                    client.hlen(EVENTS_MSGS) - offset >= n

            _wait(lambda: all(ledger_status(client, c) == "succeeded" for c in held), 300, "held commands", 0.1)
            held_s = time.monotonic() - killed
            _wait(all_done, 300, "every command", 0.1)
            all_s = time.monotonic() - killed
        finally:
            for g in groups:
                g.stop()
        effects = httpx.get(f"{url}/_simulator/effects", params={"duplicates": "true"}, timeout=30).json()
        return {"commands": n, "in_flight_at_kill": len(held), "seconds_until_held_done": round(held_s, 2),
                "seconds_until_all_done": round(all_s, 2), "done_twice_at_vipps": len(effects)}
    finally:
        sim.stop()


@contextlib.contextmanager
def bench_redis(url: str | None) -> Iterator[str]:
    if url:
        yield url
        return
    from worker.local.redis import EmbeddedRedis

    server = EmbeddedRedis().start()
    try:
        yield server.url
    finally:
        server.stop()


def machine() -> str:
    cpu = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return f"{os.cpu_count()} vCPU {cpu}, Python {sys.version.split()[0]}"


def verdicts(results: dict[str, Any]) -> list[tuple[str, str, str, bool | None]]:
    """(scenario, result, target, met) for each scenario that ran."""
    rows: list[tuple[str, str, str, bool | None]] = []
    if "simulator" in results:
        sim = results["simulator"]
        posts = [re.search(r"= *([\d.]+) req/s", line) for line in sim.get("report", []) if "create charge" in line]
        rate = sim.get("requests_per_s") or (float(posts[0].group(1)) if posts and posts[0] else None)
        text = f"{rate:,.0f} charge POSTs/s" if rate else "see its report below"
        rows.append(("simulator alone", text, "not the bottleneck", None))
    if "throughput" in results:
        t = results["throughput"]
        rows.append(("throughput vs naive", f"{t['ratio']:.2f}x ({t['full']['commands_per_s']:,.0f} vs "
                     f"{t['naive']['commands_per_s']:,.0f} cmd/s), {t['duplicate_effects']} effects twice",
                     ">= 0.70x, 0 twice", t["ratio"] >= 0.7 and t["duplicate_effects"] == 0))
    if "latency" in results:
        lat = results["latency"]
        rows.append(("latency-bound (100 ms)", f"{lat['share_of_bound']:.0%} of {lat['bound_per_s']:.0f}/s; "
                     f"p50 {lat['p50_ms']:.0f} ms, p99 {lat['p99_ms']:.0f} ms", ">= 85% of the bound",
                     lat["share_of_bound"] >= 0.85))
    if "timeliness" in results:
        tl = results["timeliness"]
        rows.append((f"stop behind {tl['backlog']:,} charges", f"{tl['seconds_to_agreement_stopped']:.2f} s",
                     "< 5 s", tl["seconds_to_agreement_stopped"] < 5))
    if "recovery" in results:
        rc = results["recovery"]
        rows.append(("recovery after SIGKILL", f"{rc['seconds_until_all_done']:.1f} s, "
                     f"{rc['done_twice_at_vipps']} done twice", "< 30 s, 0 twice",
                     rc["seconds_until_all_done"] < 30 and rc["done_twice_at_vipps"] == 0))
    return rows


def table(results: dict[str, Any]) -> str:
    """The verdicts, the two sides of the throughput run next to each other, then every figure."""
    lines = [f"{'scenario':<28} {'result':<58} {'target':<20} met"]
    for scenario, result, target, met in verdicts(results):
        lines.append(f"{scenario:<28} {result:<58} {target:<20} {'-' if met is None else 'yes' if met else 'NO'}")
    if "throughput" in results:
        t = results["throughput"]
        lines += ["", f"throughput: charge.create, first completion to last, medians of {t['naive']['rounds']} rounds",
                  f"  {'':<28} {'naive':>12} {'full':>12}"]
        for label, key, scale in (("commands/s", "commands_per_s", 1), ("CPU ms per command", "cpu_s_per_command",
                                  1000), ("Redis CPU ms per command", "redis_cpu_s_per_command", 1000),
                                  ("peak RSS MB", "peak_rss_mb", 1)):
            lines.append(f"  {label:<28} {t['naive'][key] * scale:>12.2f} {t['full'][key] * scale:>12.2f}")
        lines.append(f"  {'commands/s by round':<28} {_joined(t['naive']['commands_per_s_per_round']):>12} "
                     f"{_joined(t['full']['commands_per_s_per_round']):>12}")
        lines.append(f"  {'ratio by round':<28} {_joined(t['ratio_per_round'], '.2f'):>25}")
    if "simulator" in results and "report" in results["simulator"]:
        lines += ["", *results["simulator"]["report"]]
    lines += ["", "all figures"]
    for name, result in results.items():
        if name in ("machine", "simulator"):
            continue
        flat: dict[str, Any] = {}
        for key, value in result.items():
            if isinstance(value, dict):
                flat |= {f"{key}.{k}": v for k, v in value.items()}
            else:
                flat[key] = value
        lines.append(f"  {name}")
        lines += [f"    {key:<40} {value}" for key, value in flat.items()]
    return "\n".join(lines)


def _joined(values: list[float], spec: str = ".0f") -> str:
    return "/".join(format(v, spec) for v in values)


@app.callback(invoke_without_command=True)
def bench(
    scenarios: Annotated[str, typer.Option(help=f"comma-separated, of {', '.join(SCENARIOS)}")] = ",".join(
        SCENARIOS),
    charges: Annotated[int, typer.Option(help="charge.create commands in the throughput scenario")] = 20_000,
    rounds: Annotated[int, typer.Option(help="throughput rounds of each (naive, full); medians are reported")] = 3,
    backlog: Annotated[int, typer.Option(help="queued charges ahead of the stop (timeliness)")] = 100_000,
    latency_commands: Annotated[int, typer.Option(help="commands in the latency scenario")] = 2_000,
    recovery_commands: Annotated[int, typer.Option(help="commands in the recovery scenario")] = 1_000,
    processes: Annotated[int, typer.Option(help="worker processes")] = 2,
    threads: Annotated[int, typer.Option(help="threads per worker process")] = 8,
    redis_url: Annotated[str | None, typer.Option(help="Redis to use (FLUSHED); default: an embedded one")] = None,
    output: Annotated[Path, typer.Option(help="JSON results file")] = Path("bench-results.json"),
) -> None:
    """Run the benchmarks; prints a table and writes JSON.

    Example: vipps-billing bench --scenarios throughput --charges 5000
    """
    chosen = [s.strip() for s in scenarios.split(",") if s.strip()]
    unknown = set(chosen) - set(SCENARIOS)
    if unknown:
        raise typer.BadParameter(f"unknown scenario(s): {', '.join(sorted(unknown))}")
    results: dict[str, Any] = {"machine": machine(), "settings": {"processes": processes, "threads": threads}}
    with bench_redis(redis_url) as url:
        client = redis.Redis.from_url(url)
        runs: dict[str, Callable[[], dict[str, Any]]] = {
            "simulator": lambda: scenario_simulator(processes * threads, charges // 4),
            "throughput": lambda: scenario_throughput(client, url, charges, processes, threads, rounds),
            "latency": lambda: scenario_latency(client, url, latency_commands, processes, threads),
            "timeliness": lambda: scenario_timeliness(client, url, backlog, processes, threads),
            "recovery": lambda: scenario_recovery(client, url, recovery_commands, threads),
        }
        for name in chosen:
            client.flushdb()
            typer.echo(f"running {name} ...", err=True)
            results[name] = runs[name]()
            output.write_text(json.dumps(results, indent=2))
        client.close()
    typer.echo(f"machine: {results['machine']}")
    typer.echo(table({k: v for k, v in results.items() if k != "machine"}))
    typer.echo(f"results written to {output}")


if __name__ == "__main__":
    app()
