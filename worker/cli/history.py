"""``vipps-billing agreement history`` and ``charge history``: a resource's timeline of events.

Read from the timeline the worker keeps in Redis with every event it publishes (the last 500 of each
agreement and charge, for ``LEDGER_RETENTION_DAYS``): commands' outcomes, the transitions polling and
fetches saw, and who asked for a support action and why. With several merchants, the events of the
merchant ``--msn`` names.
"""

from __future__ import annotations

from typing import Any

from rich.table import Table

from worker.cli.common import JsonOption, MsnOption, console, control, emit_json, guard, known_msn
from worker.core.lookups import merchant_timeline
from worker.runtime.settings import get_settings


def show_timeline(agreement_id: str, charge_id: str | None, as_json: bool, msn: str | None = None) -> None:
    with guard(), control(get_settings(), redis_only=True) as ops:
        merchant = known_msn(ops, msn)
        events, others = merchant_timeline(ops.ledger, agreement_id, charge_id, merchant)
    if as_json:
        emit_json(events)
        return
    what = f"charge {charge_id} of {agreement_id}" if charge_id else f"agreement {agreement_id}"
    if not events:
        elsewhere = f"; it has events of MSN {', '.join(others)}" if others else ""
        console.print(f"no events recorded for {what}{f' of MSN {merchant}' if merchant else ''} "
                      f"(kept for LEDGER_RETENTION_DAYS){elsewhere}")
        return
    table = Table(title=f"History of {what}")
    for column in ("when", "event", "change", "command", "who / why"):
        table.add_column(column, overflow="fold")
    for event in events:
        table.add_row(str(event.get("occurred_at") or "")[:19].replace("T", " "), str(event.get("type")),
                      _change(event), str(event.get("command_id") or "(seen by polling)"), _audit(event))
    console.print(table)


def _change(event: dict[str, Any]) -> str:
    transition = event.get("transition") or {}
    if transition:
        return f"{transition.get('from') or '-'} → {transition.get('to')}"
    problem = event.get("problem") or {}
    return str(problem.get("type") or problem.get("reason") or "")


def _audit(event: dict[str, Any]) -> str:
    audit = event.get("audit") or {}
    return " / ".join(str(audit[k]) for k in ("operator", "reason") if audit.get(k))


def agreement_history(agreement_id: str, msn: MsnOption = None, as_json: JsonOption = False) -> None:
    """An agreement's events, oldest first: created, activated, updated, stopped, ...

    Example: vipps-billing agreement history agr_5kSeqz
    """
    show_timeline(agreement_id, None, as_json, msn)


def charge_history(agreement_id: str, charge_id: str, msn: MsnOption = None, as_json: JsonOption = False) -> None:
    """A charge's events, oldest first: created, each status change, captures, refunds, cancel.

    Example: vipps-billing charge history agr_5kSeqz chr-afU1zT0
    """
    show_timeline(agreement_id, charge_id, as_json, msn)
