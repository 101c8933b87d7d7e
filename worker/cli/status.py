"""``vipps-billing status``: queues, in flight, retries, watchlist, dead letters, outbox and workers."""

from __future__ import annotations

from typing import Any

from rich.table import Table

from worker.cli.common import JsonOption, console, control, emit_json, guard
from worker.runtime.settings import get_settings


def status(as_json: JsonOption = False) -> None:
    """Queues, in flight, retries, watchlist, dead letters, outbox and live workers, from Redis.

    Example: REDIS_URL=redis://127.0.0.1:6379/0 vipps-billing status --json
    """
    with guard(), control(get_settings()) as ops:
        data = ops.status()
    if as_json:
        emit_json(data)
        return
    console.print(_queues(data))
    console.print(_state(data))


def _queues(data: dict[str, Any]) -> Table:
    queues = Table(title="Queues")
    for column in ("queue", "ready", "delayed", "dead", "oldest"):
        queues.add_column(column, justify="left" if column == "queue" else "right")
    for name, depth in data["queues"].items():
        queues.add_row(name, str(depth["ready"]), str(depth["delayed"]), str(depth["dead"]),
                       f"{depth['oldest_age_seconds']} s")
    return queues


def _state(data: dict[str, Any]) -> Table:
    state = Table(title="Worker state", show_header=False)
    state.add_column(justify="left")
    state.add_column(justify="right")
    for label, value in (
        ("workers alive", data["workers_alive"]), ("commands in flight", data["in_flight"]),
        ("retries scheduled", data["retry_scheduled"]), ("watched agreements", data["watchlist"]["agreements"]),
        ("watched charges", data["watchlist"]["charges"]), ("dead letters", data["dead_letters"]),
        ("outbox backlog", data["outbox"]["pending"]),
        ("oldest unpublished event", f"{data['outbox']['oldest_age_seconds']} s"),
        ("events waiting for your consumer", data["events"]["waiting"]),
        ("oldest waiting event", f"{data['events']['oldest_age_seconds']} s")):
        state.add_row(label, str(value))
    return state
