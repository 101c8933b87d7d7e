"""The bench's scenarios; each returns its figures as a dict (see ``worker.bench.run`` for the list)."""

from __future__ import annotations

import statistics
import threading
import time
from typing import Any

import httpx

from worker.bench.lab import Lab, effects_done_twice, measure, published_since, setup_agreements
from worker.bench.load import charge_command, due, now
from worker.local.wait import wait_until
from worker.vipps.config import SIMULATOR_DEFAULTS


def simulator(lab: Lab, threads: int, requests: int) -> dict[str, Any]:
    """The simulator alone: the worker's charge POST from as many httpx threads as the worker has.

    Client-bound: ``tests/bench/bench_simulator.py`` measures the simulator with cheaper clients.
    """
    with lab.simulator("--no-rate-limits") as (url, group):
        headers, agreement = _simulator_agreement(url)
        body = {"amount": 1000, "description": "Bench", "due": due(), "retryDays": 0,
                "transactionType": "DIRECT_CAPTURE"}
        share = requests // threads

        def run(offset: int) -> None:
            with httpx.Client(base_url=url, timeout=10) as c:
                for i in range(share):
                    c.post(f"/recurring/v3/agreements/{agreement}/charges", json=body,
                           headers=headers | {"Idempotency-Key": f"sim-{offset + i}"}).raise_for_status()

        cpu0 = group.usage()[0]
        start = time.monotonic()
        pool = [threading.Thread(target=run, args=(t * requests,)) for t in range(threads)]
        for t in pool:
            t.start()
        for t in pool:
            t.join()
        seconds = time.monotonic() - start
        cpu = group.usage()[0] - cpu0
    count = share * threads
    return {"requests": count, "seconds": round(seconds, 2), "requests_per_s": round(count / seconds, 1),
            "simulator_cpu_s_per_request": round(cpu / count, 5), "client_threads": threads}


def _simulator_agreement(url: str) -> tuple[dict[str, str], str]:
    """(headers with a token, an ACTIVE agreement) at the simulator, with its default credentials."""
    headers = simulator_headers(url)
    with httpx.Client(base_url=url, timeout=10) as client:
        return headers, active_agreement(client, headers, "bench-sim")


def simulator_headers(url: str) -> dict[str, str]:
    """Headers with a token of the simulator's default credentials, for calls made straight to it."""
    with httpx.Client(base_url=url, timeout=10) as client:
        key = SIMULATOR_DEFAULTS["subscription_key"]
        token = client.post("/accesstoken/get", headers={
            "client_id": SIMULATOR_DEFAULTS["client_id"], "client_secret": SIMULATOR_DEFAULTS["client_secret"],
            "Ocp-Apim-Subscription-Key": key}).raise_for_status().json()["access_token"]
    return {"Authorization": f"Bearer {token}", "Ocp-Apim-Subscription-Key": key, "Vipps-System-Name": "bench"}


def active_agreement(client: httpx.Client, headers: dict[str, str], key: str) -> str:
    """An agreement drafted and force-accepted straight at the simulator (idempotency keys from ``key``)."""
    draft = {"pricing": {"type": "LEGACY", "amount": 49900, "currency": "NOK"},
             "interval": {"unit": "MONTH", "count": 1}, "merchantRedirectUrl": "https://example.com/b",
             "merchantAgreementUrl": "https://example.com/a", "productName": "Bench", "phoneNumber": "4791234567"}
    agreement = str(client.post("/recurring/v3/agreements", json=draft, headers=headers | {
        "Idempotency-Key": f"{key}-agr"}).raise_for_status().json()["agreementId"])
    client.patch(f"/recurring/v3/agreements/{agreement}/accept", json={"phoneNumber": "4791234567"},
                 headers=headers | {"Idempotency-Key": f"{key}-acc"}).raise_for_status()
    return agreement


def throughput(lab: Lab, n: int, rounds: int) -> dict[str, Any]:
    """Naive and full worker, ``rounds`` times each, alternating which goes first (a shared machine drifts)."""
    with lab.simulator("--no-rate-limits") as (url, _):
        agreements = setup_agreements(lab, url, 20, "tp")
        runs: dict[str, list[dict[str, float]]] = {"naive": [], "full": []}
        for r in range(rounds):
            for kind in ("naive", "full") if r % 2 == 0 else ("full", "naive"):
                runs[kind].append(_throughput_run(lab, url, kind, agreements, n, prefix=f"{kind}{r}"))
        out: dict[str, Any] = {kind: _median_run(results) for kind, results in runs.items()}
        ratios = [f["commands_per_s"] / v["commands_per_s"] for f, v in zip(runs["full"], runs["naive"], strict=True)]
        out["ratio"] = round(statistics.median(ratios), 3)
        out["ratio_per_round"] = [round(x, 3) for x in ratios]
        out["duplicate_effects"] = effects_done_twice(url)
        return out


def _throughput_run(lab: Lab, sim_url: str, kind: str, agreements: list[str], n: int,
                    prefix: str) -> dict[str, float]:
    target = lab.target
    target.reset_naive()
    done = target.naive_done if kind == "naive" else published_since(target)
    target.enqueue([charge_command(agreements[i % len(agreements)], i, prefix) for i in range(n)],
                   to_naive=kind == "naive")
    with lab.worker(kind, sim_url) as group:
        return measure(lab, group, done, n, timeout=max(600, n / 10), redis_cpu=True)


def _median_run(results: list[dict[str, float]]) -> dict[str, Any]:
    """Median commands/s and CPU per command over the rounds; the highest peak RSS."""
    return {"rounds": len(results),
            "commands": results[0]["commands"],
            "commands_per_s": round(statistics.median(r["commands_per_s"] for r in results), 1),
            "cpu_s_per_command": round(statistics.median(r["cpu_s_per_command"] for r in results), 5),
            "redis_cpu_s_per_command": round(statistics.median(r["redis_cpu_s_per_command"] for r in results), 5),
            "peak_rss_mb": max(r["peak_rss_mb"] for r in results),
            "commands_per_s_per_round": [r["commands_per_s"] for r in results]}


def latency(lab: Lab, n: int) -> dict[str, Any]:
    """Commands/s against the bound that threads and a fixed 100 ms Vipps latency set, one call per command
    (``CHARGE_BATCH=off``); then, paced at half that rate (so queueing is not what is measured),
    enqueue-to-event p50 and p99."""
    bound = lab.processes * lab.threads / 0.100
    with lab.simulator("--no-rate-limits", "--fault-latency", "fixed:100") as (url, _):
        agreements = setup_agreements(lab, url, 20, "lat")
        done = published_since(lab.target)
        # Each command's own call to Vipps is what this bounds: batches would make one call of many.
        with lab.worker("full", url, env={"CHARGE_BATCH": "off"}) as group:
            lab.target.enqueue([charge_command(agreements[i % 20], i, "lat") for i in range(n)])
            result = measure(lab, group, done, n, timeout=600)
            rate = bound / 2
            latencies = _paced_latencies(lab, agreements, max(200, n // 4), rate)
    return result | {"bound_per_s": bound, "share_of_bound": round(result["commands_per_s"] / bound, 3),
                     "paced_rate_per_s": rate, "paced_commands": len(latencies),
                     "p50_ms": round(1000 * statistics.median(latencies), 1),
                     "p99_ms": round(1000 * latencies[int(0.99 * (len(latencies) - 1))], 1)}


def _paced_latencies(lab: Lab, agreements: list[str], paced: int, rate: float) -> list[float]:
    """Seconds from enqueue to the charge.created event (its message timestamp), sorted."""
    target = lab.target
    done = published_since(target)
    sent: dict[str, float] = {}
    start = time.time()
    for i in range(paced):
        command = charge_command(agreements[i % 20], i, "paced")
        sent[command["command_id"]] = time.time()
        target.enqueue([command])
        time.sleep(max(0.0, start + (i + 1) / rate - time.time()))
    wait_until(lambda: done() >= paced, 120, "paced commands", every=0.05)
    latencies = []
    for message in target.published_messages():
        event = message["args"][0]
        if event.get("command_id") in sent and event["type"] == "charge.created":
            latencies.append(message["message_timestamp"] / 1000 - sent[event["command_id"]])
    return sorted(latencies)


def timeliness(lab: Lab, backlog: int) -> dict[str, Any]:
    """Seconds from an agreement stop, enqueued behind a backlog of queued charges, to agreement.stopped."""
    target = lab.target
    with lab.simulator("--no-rate-limits") as (url, _):
        agreements = setup_agreements(lab, url, 21, "tl")
        to_stop, charged = agreements[0], agreements[1:]
        target.enqueue([charge_command(charged[i % 20], i, "tl") for i in range(backlog)])
        group = lab.start_worker("full", url)
        try:
            wait_until(lambda: target.published() > 0 and target.queued_charges() < backlog, 60,
                       "the charge run to start", every=0.05)
            queued = target.queued_charges()
            start = time.monotonic()
            target.enqueue([{"command_id": "tl-stop", "type": "agreement.update", "agreement_id": to_stop,
                             "status": "STOPPED", "issued_at": now()}])
            wait_until(lambda: target.status("tl-stop") == "succeeded", 120, "the stop", every=0.01)
            stopped = next(e["event_id"] for e in target.events("tl-stop") if e["type"] == "agreement.stopped")
            wait_until(lambda: not target.in_outbox(stopped), 60, "agreement.stopped published", every=0.01)
            seconds = time.monotonic() - start
        finally:
            group.kill()  # the rest of the backlog is not part of this scenario
    return {"backlog": backlog, "queued_at_stop": queued, "seconds_to_agreement_stopped": round(seconds, 3)}


def recovery(lab: Lab, n: int) -> dict[str, Any]:
    """One of two worker groups SIGKILLed with commands in flight: seconds until they and all are done, and the
    effects done twice at Vipps."""
    target = lab.target
    with lab.simulator("--no-rate-limits", "--fault-latency", "fixed:200") as (url, _):
        agreements = setup_agreements(lab, url, 20, "rc")
        done = published_since(target)
        commands = [charge_command(agreements[i % 20], i, "rc") for i in range(n)]
        # Production heartbeat settings: the dead group's commands come back through the sweeper/heartbeats. One
        # call per command (CHARGE_BATCH=off), so that the killed group holds many; a sender killed mid-batch
        # is the chaos suite's and tests/integration/test_charge_runs.py's.
        env = {"HEARTBEAT_TIMEOUT_MS": "10000", "CHARGE_BATCH": "off"}
        with lab.worker("full", url, processes=1, env=env) as killed, lab.worker("full", url, processes=1, env=env):
            target.enqueue(commands)
            wait_until(lambda: done() >= n // 5, 120, "a fifth done", every=0.05)
            inflight = target.in_flight()
            killed.kill()
            at = time.monotonic()
            held = [c for c in inflight if target.status(c) == "in_progress"]
            wait_until(target.all_succeeded(held), 300, "held commands", every=0.1)
            held_s = time.monotonic() - at
            every = target.all_succeeded([c["command_id"] for c in commands])
            wait_until(lambda: every() and done() >= n, 300, "every command", every=0.1)
            all_s = time.monotonic() - at
        return {"commands": n, "in_flight_at_kill": len(held), "seconds_until_held_done": round(held_s, 2),
                "seconds_until_all_done": round(all_s, 2), "done_twice_at_vipps": effects_done_twice(url)}
