"""What every bench scenario runs on: one Redis, the workers' size, simulators and workers, a stopwatch."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from worker.bench.load import AGREEMENT, Target, now
from worker.bench.processes import Group, Sampler, start_simulator, start_worker
from worker.local.wait import wait_until


@dataclass
class Lab:
    target: Target
    scratch: Path      # logs and metrics files of every process started; removed when the bench ends
    processes: int     # worker processes
    threads: int       # threads per worker process

    @contextlib.contextmanager
    def simulator(self, *args: str) -> Iterator[tuple[str, Group]]:
        """A simulator with these options for the block: (its base URL, its process)."""
        group, url = start_simulator(self.scratch, *args)
        try:
            yield url, group
        finally:
            group.stop()

    def start_worker(self, kind: str, sim_url: str, *, processes: int | None = None, threads: int | None = None,
                     env: dict[str, str] | None = None) -> Group:
        """A full worker (``kind="full"``) or the naive baseline, of the lab's size unless told otherwise."""
        return start_worker(kind, self.target.url, sim_url, self.target.settings, self.scratch,
                            processes=processes or self.processes, threads=threads or self.threads, env=env)

    @contextlib.contextmanager
    def worker(self, kind: str, sim_url: str, **size: Any) -> Iterator[Group]:
        """``start_worker`` for the block; stopped at its end (unless killed before)."""
        group = self.start_worker(kind, sim_url, **size)
        try:
            yield group
        finally:
            group.stop()


def setup_agreements(lab: Lab, sim_url: str, count: int, prefix: str, *, msn: str | None = None,
                     env: dict[str, str] | None = None) -> list[str]:
    """Active agreements, made through the worker itself (as the merchant ``msn``, with the worker ``env``)."""
    target = lab.target
    mine = {"msn": msn} if msn else {}
    with lab.worker("full", sim_url, processes=1, threads=8, env=env):
        commands = [{"command_id": f"{prefix}-agr-{i}", **AGREEMENT, "issued_at": now()} | mine
                    for i in range(count)]
        target.enqueue(commands)
        wait_until(target.all_succeeded([c["command_id"] for c in commands], msn), 120, "agreements created",
                   every=0.05)
        ids = [next(e["agreement_id"] for e in target.events(c["command_id"], msn) if e["type"] == "agreement.created")
               for c in commands]
        accepts = [{"command_id": f"{prefix}-acc-{i}", "type": "agreement.force_accept", "agreement_id": a,
                    "phone_number": "4791234567", "issued_at": now()} | mine for i, a in enumerate(ids)]
        target.enqueue(accepts)
        wait_until(target.all_succeeded([c["command_id"] for c in accepts], msn), 120, "agreements accepted",
                   every=0.05)
        return ids


def measure(lab: Lab, group: Group, done: Callable[[], int], total: int, timeout: float, *,
            redis_cpu: bool = False) -> dict[str, float]:
    """From the first completion to the last: commands/s, CPU-seconds per command, peak RSS (and Redis's CPU)."""
    target = lab.target
    sampler = Sampler(group)
    try:
        first = wait_until(done, timeout, "a first completion", every=0.01)
        redis0 = target.cpu_seconds()
        t0, (cpu0, _) = time.monotonic(), group.usage()
        last = [first]

        def all_done() -> bool:
            last[0] = done()
            return last[0] >= total

        wait_until(all_done, timeout, "the last completion", every=0.05,
                   error=lambda _: RuntimeError(f"only {last[0]} of {total} done within {timeout:.0f} s"))
        t1, (cpu1, _) = time.monotonic(), group.usage()
    finally:
        peak = sampler.close()
    n = total - first
    out = {"commands": n, "seconds": round(t1 - t0, 2), "commands_per_s": round(n / (t1 - t0), 1),
           "cpu_s_per_command": round((cpu1 - cpu0) / n, 5), "peak_rss_mb": round(peak / 2**20, 1)}
    if redis_cpu:
        out["redis_cpu_s_per_command"] = round((target.cpu_seconds() - redis0) / n, 5)
    return out


def published_since(target: Target) -> Callable[[], int]:
    """Events published from now on (a count that ``measure`` can watch)."""
    offset = target.published()
    return lambda: target.published() - offset


def effects_done_twice(sim_url: str) -> int:
    """Side effects the simulator saw twice for one idempotency key: what exactly-once must keep at 0."""
    return len(httpx.get(f"{sim_url}/_simulator/effects", params={"duplicates": "true"}, timeout=30).json())
