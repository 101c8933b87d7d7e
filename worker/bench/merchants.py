"""The bench's two-merchant scenario: one merchant's charge run must not hold back another's work.

Merchant A has its own keys at the simulator (its default credentials), merchant B other keys; the worker
serves both from one merchants file, so each has its own command queues.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from worker.bench.lab import Lab, setup_agreements
from worker.bench.load import charge_command, now
from worker.local.wait import wait_until
from worker.vipps.config import SIMULATOR_DEFAULTS

A = SIMULATOR_DEFAULTS["msn"]
B = "223344"
B_KEYS = {"client_id": "bench-b-id", "client_secret": "bench-b-secret", "subscription_key": "bench-b-key"}


def merchants_files(scratch: Path) -> tuple[Path, Path]:
    """(the simulator's merchants file, the worker's) for merchants A and B."""
    a_keys = {name: SIMULATOR_DEFAULTS[name] for name in B_KEYS}
    merchants = [{"msn": A, "name": "Merchant A", **a_keys}, {"msn": B, "name": "Merchant B", **B_KEYS}]
    simulator, worker = scratch / "sim-merchants.json", scratch / "merchants.json"
    simulator.write_text(json.dumps({"merchants": merchants}))
    worker.write_text(json.dumps({"merchants": merchants}))
    return simulator, worker


def fairness(lab: Lab, backlog: int, share: int) -> dict[str, Any]:
    """Seconds until merchant B's charge.create and agreement stop are done while ``backlog`` charge.create of
    merchant A are queued; then ``share`` charges each at once: each merchant's commands/s."""
    target = lab.target
    sim_file, worker_file = merchants_files(lab.scratch)
    env = {"MERCHANTS_FILE": str(worker_file)}
    target.route_merchants((A, B))
    with lab.simulator("--no-rate-limits", "--merchants", str(sim_file)) as (url, _):
        a_agreements = setup_agreements(lab, url, 20, "fa", msn=A, env=env)
        b_agreements = setup_agreements(lab, url, 2, "fb", msn=B, env=env)
        target.enqueue([charge_command(a_agreements[i % 20], i, "fa-run") | {"msn": A} for i in range(backlog)])
        with lab.worker("full", url, env=env):
            wait_until(lambda: target.status("fa-run-0", A) == "succeeded", 60, "A's charge run to start",
                       every=0.05)
            start = time.monotonic()
            b_commands = [charge_command(b_agreements[0], 0, "fb-charge") | {"msn": B},
                          {"command_id": "fb-stop", "type": "agreement.update", "agreement_id": b_agreements[1],
                           "status": "STOPPED", "issued_at": now(), "msn": B}]
            target.enqueue(b_commands)
            seconds: dict[str, float] = {}
            for command in b_commands:
                wait_until(target.all_succeeded([command["command_id"]], B), 120, f"B's {command['type']}",
                           every=0.01)
                seconds[command["type"]] = round(time.monotonic() - start, 3)
            a_done_by_then = len(target.finished_ms([f"fa-run-{i}" for i in range(backlog)], A))
        shares = _shares(lab, url, env, a_agreements, b_agreements, share)
    return {"backlog": backlog, "b_seconds": seconds, "a_done_when_b_was_done": a_done_by_then,
            "b_seconds_max": max(seconds.values()), **shares}


def _shares(lab: Lab, url: str, env: dict[str, str], a_agreements: list[str], b_agreements: list[str],
            share: int) -> dict[str, Any]:
    """Both merchants' charge runs at once (A's backlog drained first): each one's commands/s."""
    target = lab.target
    queues = target.commands.layout.command_queues
    target.client.delete(*[target.dramatiq.queue(q) for q in queues], *[target.dramatiq.messages(q) for q in queues])
    runs = {A: [charge_command(a_agreements[i % 20], i, "fs-a") | {"msn": A} for i in range(share)],
            B: [charge_command(b_agreements[0], i, "fs-b") | {"msn": B} for i in range(share)]}
    target.enqueue([c for pair in zip(runs[A], runs[B], strict=True) for c in pair])
    with lab.worker("full", url, env=env):
        for msn, commands in runs.items():
            wait_until(target.all_succeeded([c["command_id"] for c in commands], msn), 600, f"{msn}'s run",
                       every=0.5)
    out: dict[str, Any] = {"share_commands": share}
    for msn, commands in runs.items():
        finished = sorted(target.finished_ms([c["command_id"] for c in commands], msn))
        out[f"commands_per_s_{msn}"] = round(len(finished) / max(0.001, (finished[-1] - finished[0]) / 1000), 1)
    return out
