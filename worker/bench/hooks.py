"""The bench's webhook scenario: a customer's stop in the app to ``agreement.stopped`` on the events queue.

Measured twice on the same simulator: with polling only (the ACTIVE re-check shortened to ``poll_every``
seconds, since the default re-checks daily), and with a webhook registration, the receiver and the worker's
default polling.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from worker.bench.lab import Lab, setup_agreements
from worker.local.processes import receiver_url, start_receiver, stop_group
from worker.local.wait import wait_until
from worker.vipps import VippsClient, load_settings
from worker.vipps.webhook_events import RECURRING_EVENTS
from worker.webhooks.secrets import keep_secret


def webhooks(lab: Lab, stops: int, poll_every: float) -> dict[str, Any]:
    out: dict[str, Any] = {"stops": stops, "poll_every_seconds": poll_every}
    with lab.simulator("--no-rate-limits") as (url, _):
        polled = {"AGREEMENT_ACTIVE_POLL_SECONDS": str(poll_every)}  # the ACTIVE re-check is set when activated
        # The webhook side first: a worker re-schedules every ACTIVE agreement it re-checks with its own
        # interval, so the polled side's 30 s re-checks must not meet a daily-re-checking worker.
        by_webhook = setup_agreements(lab, url, stops, "whw")  # re-checked daily: only the webhook is quick
        by_polling = setup_agreements(lab, url, stops, "whp", env=polled)
        with lab.worker("full", url, env=polled):
            _ready(lab)
            out["polling"] = _stops(lab, url, by_polling, rate=20.0, timeout=poll_every * 3 + 60)
        with webhook_receiver(lab, url), lab.worker("full", url):
            _ready(lab)
            out["webhooks"] = _stops(lab, url, by_webhook, rate=20.0, timeout=60)
    return out


@contextmanager
def webhook_receiver(lab: Lab, url: str) -> Iterator[None]:
    """A webhook registration at the simulator for every Recurring event, and the receiver it delivers to."""
    secrets = Path(tempfile.mkdtemp(prefix="hooks-", dir=lab.scratch))
    public = receiver_url()
    with VippsClient(load_settings(base_url=url)) as client:
        made = client.register_webhook(public, list(RECURRING_EVENTS))
    keep_secret(secrets, made.id, made.secret.get_secret_value())
    with tempfile.NamedTemporaryFile(prefix="receiver-", suffix=".log", delete=False, dir=lab.scratch) as log:
        receiver = start_receiver(log, public, redis_url=lab.target.url, secrets_dir=secrets,
                                  settings=lab.target.settings)
    try:
        yield
    finally:
        stop_group(receiver, 5.0)


def _stops(lab: Lab, sim_url: str, agreements: list[str], *, rate: float, timeout: float) -> dict[str, float]:
    """Stop each agreement as its user would, ``rate`` a second; seconds to each one's agreement.stopped."""
    stopped_at: dict[str, float] = {}
    with httpx.Client(base_url=f"{sim_url}/_simulator", timeout=10) as admin:
        start = time.time()
        for i, agreement_id in enumerate(agreements):
            stopped_at[agreement_id] = time.time()
            admin.post(f"/agreements/{agreement_id}/user-stop").raise_for_status()
            time.sleep(max(0.0, start + (i + 1) / rate - time.time()))
    seen: dict[str, float] = {}

    def all_seen() -> bool:
        for message in lab.target.published_messages():
            event = message["args"][0]
            if event["type"] == "agreement.stopped" and event.get("agreement_id") in stopped_at:
                seen[event["agreement_id"]] = message["message_timestamp"] / 1000
        return len(seen) == len(stopped_at)

    wait_until(all_seen, timeout, "every agreement.stopped", every=0.5,
               error=lambda what: TimeoutError(f"{what}: {len(seen)} of {len(stopped_at)} seen"))
    latencies = sorted(seen[a] - stopped_at[a] for a in stopped_at)
    return {"p50_s": round(statistics.median(latencies), 3),
            "p99_s": round(latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))], 3),
            "max_s": round(latencies[-1], 3)}



def _ready(lab: Lab) -> None:
    """Every worker process consumes (beats its heartbeat): a stop made before would time the start-up too."""
    client, key = lab.target.client, lab.target.dramatiq.heartbeats
    client.delete(key)
    wait_until(lambda: client.zcard(key) >= lab.processes, 60, "the worker processes", every=0.1)
