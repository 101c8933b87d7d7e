"""``vipps-billing merchants``: the merchants (MSNs) this deployment serves, and whether Vipps accepts their keys.

``list`` reads the configuration only (``MERCHANTS_FILE``, else the one merchant of ``VIPPS_MSN``).
``check`` calls Vipps as each merchant: a fresh access token with its key set (never one cached in Redis,
so it proves the keys work now; no Redis is needed), then its sales unit from the Management API. No
secret and no token is ever printed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import httpx
import typer
from rich.table import Table

from worker.cli.common import (
    JsonOption,
    MsnOption,
    configured_merchants,
    console,
    describe,
    emit_json,
    guard,
    resolve_merchant,
)
from worker.vipps import VippsClient, errors
from worker.vipps.config import VippsEnvironment
from worker.vipps.merchants import Merchant, Merchants
from worker.vipps.store import MemoryKeyValue

app = typer.Typer(no_args_is_help=True, help="The merchants (MSNs) this deployment serves, and a check of their "
                  "keys at Vipps.\n\nExample: vipps-billing merchants check")

MANAGEMENT_PRODUCTION_ONLY = "not checked: Vipps serves the Management API in production only"


@app.command("list")
def merchants_list(as_json: JsonOption = False) -> None:
    """List the merchants: MSN, name, enabled, and which key set calls Vipps for each (never a secret).

    Without MERCHANTS_FILE there is one merchant, that of VIPPS_MSN.

    Example: vipps-billing merchants list --json
    """
    with guard():
        merchants = configured_merchants()
    if as_json:
        emit_json([{"msn": m.msn, "name": m.name, "enabled": m.enabled, "credential_set": m.credential_set}
                   for m in merchants])
        return
    table = Table(title=f"Merchants ({len(merchants)})")
    for column in ("msn", "name", "enabled", "credential set"):
        table.add_column(column, overflow="fold")
    for m in merchants:
        table.add_row(m.msn, m.name, "yes" if m.enabled else "[yellow]no[/yellow]", m.credential_set)
    console.print(table)


@dataclass
class Check:
    """What Vipps said for one merchant; ``problems`` empty when every check holds."""

    msn: str
    name: str
    credential_set: str
    token: str = "not checked"                # ok, refused (HTTP 401), failed: ...
    sales_unit: str = "not checked"           # found, not found (HTTP 404), failed: ..., or why not checked
    sales_unit_name: str | None = None
    recurring_allowed: bool | None = None
    capture_type: str | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {"ok": self.ok}


def check_merchant(client: VippsClient, merchant: Merchant, *, management: bool = True) -> Check:
    """An access token with the merchant's keys, then its sales unit (unless not ``management``)."""
    check = Check(merchant.msn, merchant.name, merchant.credential_set)
    try:
        client.current_token()  # the token itself is never shown
        check.token = "ok"
    except errors.AuthError as exc:
        check.token = f"refused (HTTP {exc.status})" if exc.status else "refused"
    except (errors.VippsError, httpx.HTTPError) as exc:
        check.token = f"failed: {describe(exc)}"
    if check.token != "ok":
        check.problems.append(f"token {check.token}")
        return check
    if not management:
        check.sales_unit = MANAGEMENT_PRODUCTION_ONLY
        return check
    _sales_unit(client, check)
    return check


def _sales_unit(client: VippsClient, check: Check) -> None:
    try:
        unit = client.sales_unit(check.msn)
    except errors.VippsError as exc:
        check.sales_unit = "not found (HTTP 404)" if exc.status == 404 else (
            f"refused (HTTP {exc.status})" if exc.status in (401, 403) else f"failed: {describe(exc)}")
        check.problems.append(f"sales unit {check.sales_unit}")
        return
    except httpx.HTTPError as exc:
        check.sales_unit = f"failed: {describe(exc)}"
        check.problems.append(f"sales unit {check.sales_unit}")
        return
    check.sales_unit = "found"
    check.sales_unit_name = unit.name
    check.recurring_allowed = unit.configuration.recurringAllowed
    capture = unit.configuration.captureType
    check.capture_type = str(getattr(capture, "value", capture)) if capture is not None else None
    if unit.msn != check.msn:
        check.problems.append(f"Vipps answered for MSN {unit.msn}")
    if check.recurring_allowed is False:
        check.problems.append("the sales unit may not take recurring payments (recurringAllowed is false)")


def _chosen(merchants: Merchants, msn: str | None) -> list[Merchant]:
    """The merchant ``--msn`` names (a disabled one too, to check its keys before enabling it), or every
    enabled one."""
    if msn is None:
        return [m for m in merchants if m.enabled]
    chosen = merchants.get(msn)
    return [chosen if chosen is not None else resolve_merchant(merchants, msn)]


@app.command("check")
def merchants_check(msn: MsnOption = None, as_json: JsonOption = False) -> None:
    """Check each merchant at Vipps (or the one --msn names): an access token with its keys, and its sales unit
    (name, recurringAllowed, captureType) from the Management API. Exits 1 if any check fails.

    Disabled merchants are left out unless named with --msn. Vipps serves the Management API in
    production only: in its test environment only the token is checked.

    Example: vipps-billing merchants check --msn 123456
    """
    with guard():
        merchants = configured_merchants()
        chosen = _chosen(merchants, msn)
        tokens = MemoryKeyValue()  # one per key set: the merchants of a partner set share its token
        checks = []
        for merchant in chosen:
            with VippsClient(merchant.settings, token_store=tokens) as client:
                checks.append(check_merchant(client, merchant,
                                             management=merchant.settings.env is not VippsEnvironment.TEST))
    if as_json:
        emit_json({"ok": all(c.ok for c in checks), "merchants": [c.as_dict() for c in checks]})
    else:
        console.print(_table(checks))
        for c in checks:
            for problem in c.problems:
                console.print(f"[red]{c.msn}[/red]: {problem}")
    if not all(c.ok for c in checks):
        raise typer.Exit(1)


def _table(checks: list[Check]) -> Table:
    table = Table(title="Merchant checks")
    for column in ("msn", "name", "token", "sales unit", "recurring", "capture type", "result"):
        table.add_column(column, overflow="fold")
    for c in checks:
        recurring = "-" if c.recurring_allowed is None else "allowed" if c.recurring_allowed else "not allowed"
        unit = f"found: {c.sales_unit_name}" if c.sales_unit == "found" and c.sales_unit_name else c.sales_unit
        table.add_row(c.msn, c.name, c.token, unit, recurring, c.capture_type or "-",
                      "[green]ok[/green]" if c.ok else "[red]fails[/red]")
    return table
