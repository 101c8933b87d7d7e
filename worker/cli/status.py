"""``vipps-billing status``: queues, in flight, retries, watchlist, dead letters, outbox and workers.

With several merchants, also each merchant's own queues and dead letters (``merchants`` in ``--json``); once
webhooks arrive, what the receivers counted (``webhooks``).
"""

from __future__ import annotations

import time
from typing import Any

from rich.table import Table

from worker.cli.common import JsonOption, console, control, emit_json, guard, several_merchants
from worker.core.control import Control
from worker.runtime.settings import get_settings
from worker.store.webhooks import WebhookQueue


def status(as_json: JsonOption = False) -> None:
    """Queues, in flight, retries, watchlist, dead letters, outbox and live workers, from Redis; with several
    merchants, each merchant's queues and dead letters.

    Example: REDIS_URL=redis://127.0.0.1:6379/0 vipps-billing status --json
    """
    with guard(), control(get_settings(), redis_only=True) as ops:
        data = ops.status()
        if several_merchants(ops):
            data["merchants"] = per_merchant(ops, data)
        shared = (ops.layout.agreements_queue, ops.layout.charges_queue)
        hooks = webhooks(ops)
        if hooks is not None:
            data["webhooks"] = hooks
    if as_json:
        emit_json(data)
        return
    console.print(_queues(data))
    if "merchants" in data:
        console.print(_merchants(data, shared))
    console.print(_state(data))
    if "webhooks" in data:
        console.print(_webhooks(data["webhooks"]))


def webhooks(ops: Control) -> dict[str, Any] | None:
    """What the receivers counted (None if no webhook ever reached one): deliveries, refusals by reason, the
    age of the last one, per registration, and the deliveries waiting for a worker."""
    stats = WebhookQueue(ops.redis, ops.layout).stats()
    if not stats:
        return None
    now = time.time() * 1000

    def age(ms: int | None) -> float | None:
        return round((now - ms) / 1000, 1) if ms else None

    return {"received": stats.get("received", 0), "duplicates": stats.get("duplicate", 0),
            "rejected": {k.split(":", 1)[1]: v for k, v in stats.items() if k.startswith("rejected:")},
            "last_age_seconds": age(stats.get("last_ms")),
            "registrations": {k.split(":", 1)[1]: {"last_age_seconds": age(v)} for k, v in stats.items()
                              if k.startswith("last:")},
            "waiting": int(ops.redis.llen(ops.layout.dramatiq.queue(ops.layout.webhooks_queue)))}


def _webhooks(hooks: dict[str, Any]) -> Table:
    table = Table(title="Webhooks (as the receivers took them)", show_header=False)
    table.add_column(justify="left")
    table.add_column(justify="right")
    rejected = ", ".join(f"{reason} {n}" for reason, n in sorted(hooks["rejected"].items())) or "0"
    rows = [("deliveries received", hooks["received"]), ("duplicates (answered, not queued again)",
            hooks["duplicates"]), ("refused", rejected), ("waiting for a worker", hooks["waiting"]),
            ("last delivery", _ago(hooks["last_age_seconds"]))]
    registrations = sorted(hooks["registrations"].items())
    rows += [(f"  registration {rid}", _ago(r["last_age_seconds"])) for rid, r in registrations]
    for label, value in rows:
        table.add_row(label, str(value))
    return table


def _ago(seconds: float | None) -> str:
    return "never" if seconds is None else f"{seconds:.0f} s ago"


def per_merchant(ops: Control, data: dict[str, Any]) -> dict[str, Any]:
    """Per MSN: its name, its own queues' depths and its dead letters."""
    letters = ops.dead_letters.count_by_msn()
    out: dict[str, Any] = {m.msn: {"name": m.name, "enabled": m.enabled, "queues": {},
                                   "dead_letters": letters.get(m.msn, 0)} for m in ops.merchants}
    for name, depth in data["queues"].items():
        msn = ops.layout.merchant_of(name)
        if msn in out:
            out[msn]["queues"][name] = {"ready": depth["ready"], "delayed": depth["delayed"]}
    return out


def _queues(data: dict[str, Any]) -> Table:
    queues = Table(title="Queues")
    for column in ("queue", "ready", "delayed", "dead", "oldest"):
        queues.add_column(column, justify="left" if column == "queue" else "right")
    for name, depth in data["queues"].items():
        queues.add_row(name, str(depth["ready"]), str(depth["delayed"]), str(depth["dead"]),
                       f"{depth['oldest_age_seconds']} s")
    return queues


def _merchants(data: dict[str, Any], shared_queues: tuple[str, ...]) -> Table:
    """One row per merchant; a last one for what names none of them (on the shared queues, which the worker
    rejects), when there is any."""
    table = Table(title="Merchants")
    for column in ("msn", "name", "ready", "delayed", "dead letters"):
        table.add_column(column, justify="left" if column in ("msn", "name") else "right")
    for msn, merchant in data["merchants"].items():
        depths = merchant["queues"].values()
        name = merchant["name"] if merchant["enabled"] else f"{merchant['name']} (disabled)"
        table.add_row(msn, name, str(sum(d["ready"] for d in depths)), str(sum(d["delayed"] for d in depths)),
                      str(merchant["dead_letters"]))
    shared = [data["queues"][q] for q in shared_queues if q in data["queues"]]
    letters = data["dead_letters"] - sum(m["dead_letters"] for m in data["merchants"].values())
    ready, delayed = sum(d["ready"] for d in shared), sum(d["delayed"] for d in shared)
    if ready or delayed or letters:
        table.add_row("-", "no merchant of ours", str(ready), str(delayed), str(letters))
    return table


def _state(data: dict[str, Any]) -> Table:
    state = Table(title="Worker state", show_header=False)
    state.add_column(justify="left")
    state.add_column(justify="right")
    for label, value in (
        ("workers alive", data["workers_alive"]), ("commands in flight", data["in_flight"]),
        ("retries scheduled", data["retry_scheduled"]),
        ("charges waiting for a batch", sum(data["charge_batches"].values())),
        ("watched agreements", data["watchlist"]["agreements"]),
        ("watched charges", data["watchlist"]["charges"]), ("dead letters", data["dead_letters"]),
        ("outbox backlog", data["outbox"]["pending"]),
        ("oldest unpublished event", f"{data['outbox']['oldest_age_seconds']} s"),
        ("events waiting for your consumer", data["events"]["waiting"]),
        ("oldest waiting event", f"{data['events']['oldest_age_seconds']} s")):
        state.add_row(label, str(value))
    return state
