"""A bench run: the worker measured against the simulator, scenario by scenario, on one Redis.

Every scenario starts its own simulator and worker processes on one Redis (an embedded one unless
a URL is given; that database is flushed between scenarios). Results are written as JSON after
each scenario.

- charge-run: a month's charge run under Vipps's limits (the simulator's on): 100,000 charge.create over
  20,000 ACTIVE agreements until every charge exists at Vipps with its charge.created, against the naive
  actor's rate over a fixed window, extrapolated (``worker.bench.runs``);
- calls-per-charge: with webhooks on, the worker's Vipps calls per charge from creation to CHARGED;
- simulator: the simulator's own capacity for the same POST, from as many client threads as the worker has;
- throughput (an extra, the simulator without limits): N charge.create through the full worker vs. a naive
  dramatiq actor doing only the POST (``worker.bench.naive``), same processes and threads; commands/s,
  CPU-seconds per command, peak RSS;
- latency: simulator latency fixed at 100 ms; commands/s against threads / latency, and enqueue-to-event
  p50/p99 at half that rate;
- timeliness: an agreement stop enqueued behind a backlog of queued charges; seconds to agreement.stopped;
- recovery: one of two worker groups SIGKILLed with commands in flight; seconds until all are done, and the
  effects done twice at Vipps;
- fairness: two merchants; seconds until B's charge.create and stop are done behind A's queued charge run,
  then both merchants' runs at once: each one's commands/s;
- webhooks: a customer's stop in the app to agreement.stopped, p50/p99, by polling only and with webhooks.

Only charge-run, calls-per-charge and timeliness keep the simulator's limits on; the others start it with
``--no-rate-limits`` (labelled so in their results), as they measure the worker itself.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from worker.bench import hooks, merchants, scenarios
from worker.bench import runs as charge_runs
from worker.bench.lab import Lab
from worker.bench.load import Target
from worker.bench.report import machine
from worker.local.redis import find_redis
from worker.runtime.settings import WorkerSettings

SCENARIOS = ("charge-run", "calls-per-charge", "simulator", "throughput", "latency", "timeliness", "recovery",
             "fairness", "webhooks")


@dataclass(frozen=True)
class Sizes:
    charges: int            # throughput (and a quarter of it: the simulator's requests)
    rounds: int             # throughput rounds of each side
    backlog: int            # timeliness, and merchant A's charge run in fairness
    latency_commands: int
    recovery_commands: int
    processes: int          # worker processes
    threads: int            # threads per worker process
    share: int = 5_000      # fairness: charges of each merchant run at once
    stops: int = 200        # webhooks: stops in the app, each way
    poll_every: float = 30.0  # webhooks: the ACTIVE re-check of the polling-only side (default: daily)
    run_charges: int = 100_000   # charge-run
    run_agreements: int = 20_000
    naive_window: float = 120.0  # charge-run: the naive actor's rate is measured over this many seconds
    calls_charges: int = 2_000   # calls-per-charge


def run_bench(chosen: list[str], sizes: Sizes, *, redis_url: str | None, settings: WorkerSettings, output: Path,
              say: Callable[[str], None]) -> dict[str, Any]:
    """Run the ``chosen`` scenarios in turn; the results, also written to ``output`` after each one."""
    results: dict[str, Any] = {"machine": machine(),
                               "settings": {"processes": sizes.processes, "threads": sizes.threads}}
    with find_redis(redis_url, force_embedded=redis_url is None, configured_as="--redis-url") as found, \
            tempfile.TemporaryDirectory(prefix="vipps-billing-bench-") as scratch:
        target = Target(found.url, settings)
        lab = Lab(target, Path(scratch), sizes.processes, sizes.threads)
        runs: dict[str, Callable[[], dict[str, Any]]] = {
            "charge-run": lambda: charge_runs.charge_run(lab, sizes.run_charges, sizes.run_agreements,
                                                         sizes.naive_window),
            "calls-per-charge": lambda: charge_runs.calls_per_charge(lab, sizes.calls_charges,
                                                                     max(1, sizes.calls_charges // 5)),
            "simulator": lambda: scenarios.simulator(lab, sizes.processes * sizes.threads, sizes.charges // 4),
            "throughput": lambda: scenarios.throughput(lab, sizes.charges, sizes.rounds),
            "latency": lambda: scenarios.latency(lab, sizes.latency_commands),
            "timeliness": lambda: scenarios.timeliness(lab, sizes.backlog),
            "recovery": lambda: scenarios.recovery(lab, sizes.recovery_commands),
            "fairness": lambda: merchants.fairness(lab, sizes.backlog, sizes.share),
            "webhooks": lambda: hooks.webhooks(lab, sizes.stops, sizes.poll_every),
        }
        try:
            for name in chosen:
                target.client.flushdb()
                say(f"running {name} ...")
                results[name] = runs[name]()
                output.write_text(json.dumps(results, indent=2))
        finally:
            target.close()
    return results

