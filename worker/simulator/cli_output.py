"""What the simulator's admin commands print: tables for people (rich), JSON with ``--json``, and
errors as one line on stderr."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

import typer
from rich.console import Console, RenderableType
from rich.table import Table
from rich.text import Text

Render = Callable[[Any], Iterable[RenderableType]]


def error(message: str) -> None:
    # Newlines from a server or an exception would break the one-line contract.
    typer.secho(f"error: {' '.join(message.split())}", err=True, fg=typer.colors.RED)


def fail(message: str) -> typer.Exit:
    """Print the error; raise the returned Exit (code 1: not a usage mistake)."""
    error(message)
    return typer.Exit(1)


def emit(data: Any, as_json: bool, render: Render) -> None:
    if as_json:
        typer.echo(json.dumps(data, indent=2))
        return
    # Made per call, not at import: a Console reads the terminal it is attached to.
    console = Console(highlight=False)
    for part in render(data):
        console.print(part)


def _pairs(title: str, rows: Iterable[tuple[str, Any]]) -> Table:
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    for label, value in rows:
        table.add_row(label, str(value))
    return table


def _columns(title: str, headers: Iterable[str], rows: Iterable[Iterable[Any]]) -> Table:
    table = Table(title=title, title_justify="left")
    for header in headers:
        # Fold, not cut: an id or key shortened with an ellipsis is of no use in a narrow terminal.
        table.add_column(header, overflow="fold")
    for row in rows:
        table.add_row(*("-" if cell is None else str(cell) for cell in row))
    return table


def _span(seconds: float) -> str:
    """``+1d 2h 3m 4s`` for a clock offset."""
    rest = round(abs(seconds))
    sign = "-" if seconds < 0 and rest else "+"
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if rest >= size:
            parts.append(f"{rest // size}{unit}")
            rest %= size
    if rest or not parts:
        parts.append(f"{rest}s")
    return sign + " ".join(parts)


def clock(data: dict[str, Any]) -> Iterable[RenderableType]:
    yield _pairs(
        "Simulated clock",
        [
            ("simulated now", data["now"]),
            ("ahead of real time", _span(data["offset_seconds"])),
            ("next processing round", data["next_round"]),
            ("transitions run by this call", data["transitions"]),
        ],
    )


def _latency(latency: dict[str, Any]) -> str:
    kind = latency["distribution"]
    if kind == "fixed":
        return f"fixed {latency['ms']:g} ms"
    if kind == "uniform":
        return f"uniform {latency['min_ms']:g}-{latency['max_ms']:g} ms"
    if kind == "lognormal":
        return f"lognormal, median {latency['median_ms']:g} ms, sigma {latency['sigma']:g}"
    return "none"


def faults(data: dict[str, Any]) -> Iterable[RenderableType]:
    config = data["config"]
    statuses = ", ".join(str(s) for s in config["error_5xx_statuses"])
    yield _pairs(
        "Fault injection",
        [
            ("--5xx-rate", f"{config['error_5xx_rate']:g} (statuses {statuses})"),
            ("--429-rate", f"{config['error_429_rate']:g} (Retry-After {config['retry_after_seconds']} s)"),
            ("--drop-rate", f"{config['connection_drop_rate']:g}"),
            ("--drop-after-commit-rate", f"{config['drop_after_commit_rate']:g}"),
            ("--timeout-after-commit-rate", f"{config['timeout_after_commit_rate']:g}"),
            ("--timeout-seconds", f"{config['timeout_seconds']:g}"),
            ("--latency", _latency(config["latency"])),
            ("--operation", ", ".join(config["operations"]) if config["operations"] else "every Vipps operation"),
            ("--token-endpoint", "yes" if config["include_token_endpoint"] else "no"),
            ("--seed", "the simulator's" if config["seed"] is None else config["seed"]),
        ],
    )
    injected = data["injected"]
    if injected:
        yield _columns("Injected so far", ["fault", "count"], sorted(injected.items()))
    else:
        yield Text("No faults injected so far.")


def effects(items: list[dict[str, Any]]) -> Iterable[RenderableType]:
    if not items:
        yield Text("No effects.")
        return
    headers = ["#", "at", "msn", "operation", "agreement", "charge", "effect", "amount (øre)", "idempotency key"]
    fields = ["seq", "at", "msn", "operation", "agreement_id", "charge_id", "effect", "amount", "idempotency_key"]
    yield _columns("Effects", headers, ([effect[name] for name in fields] for effect in items))


def charge_effects(report: dict[str, Any]) -> Iterable[RenderableType]:
    """``/effects/charges``: how often each charge id was created."""
    charges = report["charges"]
    if not charges and not report["queued"]:
        yield Text("No charges created.")
        return
    rows = (
        [ident, row["msn"], row["agreement_id"], row["creations"], ", ".join(row["idempotency_keys"])]
        for ident, row in charges.items()
    )
    yield _columns("Charge creations", ["charge", "msn", "agreement", "creations", "idempotency keys"], rows)
    twice = report["created_more_than_once"]
    yield Text(f"Created more than once: {', '.join(twice)}" if twice else "No charge was created more than once.")
    if report["queued"]:
        yield Text(f"Queued by a batch, not created yet: {', '.join(report['queued'])}")


def deliveries(items: list[dict[str, Any]]) -> Iterable[RenderableType]:
    if not items:
        yield Text("No webhook deliveries.")
        return
    headers = ["#", "sent at", "delivery", "attempt", "event", "agreement", "charge", "answer", "result"]
    rows = []
    for item in items:
        event = str(item["event_type"]).removeprefix("recurring.").removesuffix(".v1")
        answer = item["status"] if item["status"] is not None else item["error"]
        copy = " (copy)" if item["duplicate"] else ""
        rows.append(
            [
                item["seq"],
                item["sent_at"],
                item["delivery_id"],
                f"{item['attempt']}{copy}",
                event,
                item["agreement_id"],
                item["charge_id"],
                answer,
                item["result"],
            ]
        )
    yield _columns("Webhook deliveries", headers, rows)


def scripts(snapshot: dict[str, Any]) -> Iterable[RenderableType]:
    rows: list[tuple[str, str, str]] = []
    rows += [
        ("charge_amount_fails", f"amount {amount} øre", r) for amount, r in snapshot["charge_amount_fails"].items()
    ]
    rows += [("agreement_fails", ident, reason) for ident, reason in snapshot["agreement_fails"].items()]
    for ident, rule in snapshot["charge_fails"].items():
        times = "every attempt" if rule["remaining"] is None else f"{rule['remaining']} more attempt(s)"
        rows.append(("charge_fails", ident, f"{rule['reason']}, {times}"))
    rows += [("agreement_never_accepts", target, "never accepts") for target in snapshot["agreement_never_accepts"]]
    rows += [("agreement_rejects", target, "rejects") for target in snapshot["agreement_rejects"]]
    if rows:
        yield _columns("Scripted outcomes", ["rule", "for", "outcome"], rows)
    else:
        yield Text("No scripted outcomes.")


def stats(data: dict[str, Any]) -> Iterable[RenderableType]:
    requests = [
        (operation, "dropped" if status == "0" else status, count)
        for operation, by_status in data["requests"].items()
        for status, count in by_status.items()
    ]
    if requests:
        yield _columns("Requests", ["operation", "status", "count"], requests)
    injected = ", ".join(f"{k} {v}" for k, v in sorted(data["faults_injected"].items())) or "none"
    yield _pairs(
        "Totals",
        [
            ("requests", data["total"]),
            ("idempotent replays", data["idempotent_replays"]),
            ("idempotency conflicts", data["idempotency_conflicts"]),
            ("rate limited (429)", data["rate_limited"]),
            ("faults injected", injected),
            ("agreements", data["agreements"]),
            ("charges", data["charges"]),
            ("effects", data["effects"]),
            ("pending timers", data["pending_timers"]),
        ],
    )
    hooks = data.get("webhooks")
    if hooks:
        hook_faults = ", ".join(f"{k} {v}" for k, v in sorted(hooks["faults_injected"].items())) or "none"
        rows = [(name.replace("_", " "), hooks[name]) for name in ("registrations", "pending", "attempts", "delivered")]
        yield _pairs("Webhooks", [*rows, ("dropped", hooks["dropped"]), ("delivery faults injected", hook_faults)])


def reset(data: dict[str, Any]) -> Iterable[RenderableType]:
    yield Text(f"Simulator reset; simulated now {data['now']}.")
