"""``vipps-billing command show``: what the worker did with one of your commands, from its ledger."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from worker.cli.common import JsonOption, MsnOption, console, control, emit_json, fail, guard
from worker.core.commands import lookup
from worker.runtime.settings import get_settings

app = typer.Typer(no_args_is_help=True, help="Look up a command the worker was given.\n\n"
                  "Example: vipps-billing command show inv-2024-12-0042")

@app.command("show")
def command_show(command_id: Annotated[str, typer.Argument(help="Your command_id, e.g. inv-2024-12-0042")],
                 msn: MsnOption = None, as_json: JsonOption = False) -> None:
    """Show a command's status, attempts, last error, the events it produced, its dead letter and replays.

    A command rejected as invalid is shown from its dead letter. One found in neither is still queued,
    was never sent, or finished longer ago than LEDGER_RETENTION_DAYS.

    Example: vipps-billing command show inv-2024-12-0042 --json
    """
    with guard(), control(get_settings()) as ops:
        found = lookup(ops, command_id, msn)
    if found is None:
        raise fail(f"no command {command_id} in the ledger or the dead letters: still queued, never sent, or "
                   "older than LEDGER_RETENTION_DAYS")
    if as_json:
        emit_json(found)
        return
    table = Table(title=f"Command {command_id}", show_header=False)
    error = found["error"] or {}
    for name, value in (
        ("type", found["type"]), ("status", found["status"]), ("operator", found.get("operator")),
        ("reason", found.get("reason")), ("attempts", found["attempts"]),
        ("first attempt", found["first_attempt"]), ("finished", found["finished"]),
        ("next attempt", found["next_attempt"]), ("held until", found["lease_until"]),
        ("last error", _error_line(error) if error else None),
        ("waiting for", _error_line(found["waiting"]) if found.get("waiting") else None),
        ("dead letter", found["dead_letter"]),
        ("replayed as", ", ".join(f"{r['command_id']} ({r['status']})" for r in found["replays"]) or None)):
        if value is not None:
            table.add_row(name, str(value))
    fields = [e for e in error.get("errors") or [] if isinstance(e, dict) and e.get("field")]
    for problem in fields:
        table.add_row(f"  {problem['field']}", str(problem.get("text") or "-"))
    console.print(table)
    for title, shown in (("Events", found["events"]), ("Since then", found.get("later") or [])):
        if not shown:
            continue
        events = Table(title=title)
        for column in ("type", "change", "agreement", "charge", "occurred", "event id"):
            events.add_column(column, overflow="fold")
        for e in shown:
            change = e.get("transition") or {}
            events.add_row(str(e.get("type")), f"{change.get('from') or '-'} → {change.get('to')}" if change else "",
                           e.get("agreement_id") or "-", e.get("charge_id") or "-",
                           str(e.get("occurred_at") or "-")[:19], str(e.get("event_id")))
        console.print(events)


def _error_line(error: dict[str, Any]) -> str:
    text = error.get("detail") or error.get("title") or error.get("reason") or "-"
    parts = [str(text)]
    if error.get("type"):
        parts.append(f"[{error['type']}]")
    if error.get("status"):
        parts.append(f"HTTP {error['status']}")
    if error.get("context_id"):
        parts.append(f"contextId {error['context_id']}")
    return " ".join(parts)
