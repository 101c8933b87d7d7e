"""The charge-run scenarios, on a simulator with Vipps's published limits on.

- ``charge_run``: a month's charges (``charge.create`` over many ACTIVE agreements, queued at once): the time
  until every charge exists at Vipps and has its ``charge.created``, against the naive actor, whose rate under
  the same limits is measured over a fixed window and extrapolated to the same number of charges;
- ``calls_per_charge``: with webhooks on, the Vipps calls the worker makes per charge, from its creation to
  CHARGED.

Agreements are made straight at the simulator with its limits off (300 drafts a minute would make that the
longest part); the limits are on again before anything is measured.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import httpx

from worker.bench.hooks import webhook_receiver
from worker.bench.lab import Lab, published_since
from worker.bench.load import charge_command
from worker.bench.processes import Sampler
from worker.bench.scenarios import active_agreement, simulator_headers
from worker.local.wait import wait_until

# The worker keeps Vipps's per-merchant cap on charge creation, as in production.
LIMITED = {"VIPPS_CHARGES_PER_MINUTE": "500"}
# Vipps calls about charges: what "calls per charge" counts.
CHARGE_CALLS = ("CreateChargesAsyncV3", "CreateChargeV3", "FetchChargeV3", "FetchChargeByIdV3", "ListChargesV3")


def charge_run(lab: Lab, n: int, agreements: int, window: float) -> dict[str, Any]:
    target = lab.target
    with lab.simulator() as (url, _), httpx.Client(base_url=f"{url}/_simulator", timeout=120) as admin:
        ids = _agreements(url, admin, agreements, "cr")
        naive = _naive_window(lab, url, ids, window)
        target.client.flushdb()  # the naive side's leftovers (failed messages) are not the full side's
        admin.put("/limits", json={"enabled": True}).raise_for_status()  # and its used limits neither: fresh windows
        target.enqueue([charge_command(ids[i % len(ids)], i, "run") for i in range(n)])
        before = admin.get("/stats").json()
        done = published_since(target)
        # The accepted charges are not looked at while the run is measured (that is calls_per_charge).
        env = LIMITED | {"CHARGE_CREATED_CHECK_SECONDS": "3600"}
        with _peak_redis(target.client) as redis_peak, lab.worker("full", url, env=env) as group:
            sampler = Sampler(group)
            start, (cpu0, _) = time.monotonic(), group.usage()
            try:
                wait_until(lambda: done() >= n and _charges(admin) - before["charges"] >= n, n / 20 + 600,
                           "every charge created at Vipps, with its charge.created", every=0.5)
                seconds = time.monotonic() - start
                cpu = group.usage()[0] - cpu0
            finally:
                peak_rss = sampler.close()
        after = admin.get("/stats").json()
    batches = _count(after, "CreateChargesAsyncV3") - _count(before, "CreateChargesAsyncV3")
    singles = _count(after, "CreateChargeV3") - _count(before, "CreateChargeV3")
    full_rate = n / seconds
    return {"charges": n, "agreements": agreements, "seconds": round(seconds, 1),
            "charges_per_s": round(full_rate, 1), "naive": naive,
            "naive_extrapolated_seconds": round(n / naive["charges_per_s"], 0) if naive["charges_per_s"] else None,
            "ratio": round(full_rate / naive["charges_per_s"], 1) if naive["charges_per_s"] else None,
            "batch_requests": batches, "single_requests": singles,
            "vipps_429": after["rate_limited"] - before["rate_limited"],
            "cpu_s_per_charge": round(cpu / n, 5), "peak_rss_mb": round(peak_rss / 2**20, 1),
            "peak_redis_mb": round(redis_peak() / 2**20, 1)}


def _naive_window(lab: Lab, url: str, ids: list[str], window: float) -> dict[str, Any]:
    """The naive actor's charges created in ``window`` seconds from its first one, under the same limits
    (it retries a refused POST with dramatiq's backoff, as a hand-written actor would)."""
    target = lab.target
    target.reset_naive()
    target.enqueue([charge_command(ids[i % len(ids)], i, "naive") for i in range(5_000)], to_naive=True)
    with lab.worker("naive", url, env={"NAIVE_MAX_RETRIES": "20"}):
        wait_until(lambda: target.naive_done() > 0, 120, "the naive actor's first charge", every=0.01)
        first = target.naive_done()
        time.sleep(window)
        count = target.naive_done() - first
    return {"window_s": window, "charges_in_window": count, "charges_per_s": round(count / window, 2)}


def calls_per_charge(lab: Lab, n: int, agreements: int) -> dict[str, Any]:
    """From creation to CHARGED, with webhooks on: the worker's Vipps calls about charges, per charge."""
    target = lab.target
    with lab.simulator() as (url, _), httpx.Client(base_url=f"{url}/_simulator", timeout=120) as admin:
        ids = _agreements(url, admin, agreements, "cc")
        with webhook_receiver(lab, url):
            # Charge polling as in production (none until the processing rounds of the due date, an hour
            # here); a charge the batch endpoint accepted is first looked for after 5 s instead of 60.
            env = LIMITED | {"CHARGE_POLL_SECONDS": "3600", "CHARGE_CREATED_CHECK_SECONDS": "5"}
            with lab.worker("full", url, env=env):
                before = admin.get("/stats").json()
                commands = [charge_command(ids[i % len(ids)], i, "cc") for i in range(n)]
                target.enqueue(commands)
                seen = _transitions(lab)
                wait_until(lambda: len(seen(None)) >= n, 300, "every charge seen at Vipps", every=0.5)
                admin.post("/clock/advance", json={"seconds": 8 * 86_400}).raise_for_status()  # past the due date
                wait_until(lambda: len(seen("CHARGED")) >= n, 300, "every charge CHARGED", every=0.5)
                after = admin.get("/stats").json()
    calls = {op: _count(after, op) - _count(before, op) for op in CHARGE_CALLS}
    return {"charges": n, "calls": {op: count for op, count in calls.items() if count},
            "calls_per_charge": round(sum(calls.values()) / n, 3)}


def _transitions(lab: Lab) -> Callable[[str | None], set[str]]:
    """Charges with a ``charge.status_changed`` from ``None`` (first seen), or to the given status."""

    def charges(status: str | None) -> set[str]:
        found = set()
        for message in lab.target.published_messages():
            event = message["args"][0]
            if event["type"] == "charge.status_changed":
                transition = event.get("transition") or {}
                if (transition.get("from") is None) if status is None else transition.get("to") == status:
                    found.add(event["charge_id"])
        return found

    return charges


def _agreements(url: str, admin: httpx.Client, count: int, prefix: str, threads: int = 8) -> list[str]:
    """``count`` ACTIVE agreements, made straight at the simulator with its limits off: the worker's own budget
    keeps Vipps's 300 drafts a minute, which would make the set-up the longest part of the run."""
    admin.put("/limits", json={"enabled": False}).raise_for_status()
    headers = simulator_headers(url)

    def make(part: int) -> list[str]:
        with httpx.Client(base_url=url, timeout=30) as client:
            return [active_agreement(client, headers, f"{prefix}-{i}") for i in range(part, count, threads)]

    try:
        with ThreadPoolExecutor(threads) as pool:
            return [agreement for made in pool.map(make, range(threads)) for agreement in made]
    finally:
        admin.put("/limits", json={"enabled": True}).raise_for_status()


@contextmanager
def _peak_redis(client: Any, every: float = 0.25) -> Iterator[Callable[[], int]]:
    """Redis's largest ``used_memory`` while the block runs."""
    peak = [int(client.info("memory")["used_memory"])]
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(every):
            peak[0] = max(peak[0], int(client.info("memory")["used_memory"]))

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield lambda: peak[0]
    finally:
        stop.set()
        thread.join()


def _charges(admin: httpx.Client) -> int:
    return int(admin.get("/stats").json()["charges"])


def _count(stats: dict[str, Any], operation: str) -> int:
    """Requests of ``operation`` the simulator answered, whatever the status."""
    return sum(stats["requests"].get(operation, {}).values())
