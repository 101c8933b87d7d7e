"""What REDIS_WAIT_REPLICAS costs: N ledger outcomes (claim, then finish) with and without WAIT 1.

Starts a private primary and one replica on free loopback ports, and stops them after.
Run: ./uvw run python -m tests.bench.wait_cost [N]
"""

from __future__ import annotations

import statistics
import sys
import time

from tests.replicated import Node, nodes, replica_of
from worker.runtime.settings import WorkerSettings
from worker.store.ledger import Ledger, Terminal
from worker.store.replication import Replicas

LAYOUT = WorkerSettings(key_prefix="wait-cost", dramatiq_namespace="wait-cost").layout()


def finishes(ledger: Ledger, n: int, tag: str) -> list[float]:
    """Seconds each finish took (its claim made first, not timed)."""
    took = []
    for i in range(n):
        cmd = {"command_id": f"{tag}-{i}", "type": "charge.fetch", "agreement_id": "a", "charge_id": "c"}
        ledger.claim(cmd, owner="bench", broker_id="bench", lease_ms=60_000)
        started = time.perf_counter()
        ledger.finish(cmd, status="succeeded", events=[])
        took.append(time.perf_counter() - started)
    return took


def batch(ledger: Ledger, n: int, tag: str) -> float:
    """Seconds one finish_many of ``n`` outcomes took."""
    cmds = [{"command_id": f"{tag}-{i}", "type": "charge.fetch", "agreement_id": "a", "charge_id": "c"}
            for i in range(n)]
    for cmd in cmds:
        ledger.claim(cmd, owner="bench", broker_id="bench", lease_ms=60_000)
    started = time.perf_counter()
    ledger.finish_many([Terminal(cmd, "succeeded", []) for cmd in cmds])
    return time.perf_counter() - started


def main(n: int) -> None:
    primary = Node()
    replica = replica_of(primary)
    with nodes(primary, replica):
        for label, replicas in (("no WAIT", Replicas()), ("WAIT 1", Replicas(1, 1000))):
            ledger = Ledger(primary.client, LAYOUT, heartbeat_timeout_ms=10_000, retention_seconds=600,
                            replicas=replicas)
            finishes(ledger, 50, f"warm-{label}")
            took = finishes(ledger, n, label)
            ms = sorted(t * 1000 for t in took)
            print(f"{label:8} finish x{n}: mean {statistics.mean(ms):.3f} ms, p50 {ms[len(ms) // 2]:.3f} ms, "
                  f"p99 {ms[int(len(ms) * 0.99)]:.3f} ms, {n / sum(took):,.0f}/s one thread; "
                  f"finish_many of 2000: {batch(ledger, 2000, label + '-many') * 1000:.1f} ms")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 5000)
