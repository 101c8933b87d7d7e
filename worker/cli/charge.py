"""``vipps-billing charge``: list, show, find, capture, refund or cancel charges."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

import typer
from rich.table import Table

from schemas.commands import ChargeStatus
from worker.cli import history
from worker.cli.common import (
    JsonOption,
    MsnOption,
    TimeoutOption,
    YesOption,
    console,
    emit_json,
)
from worker.cli.support import AgreementId, OperatorOption, ReasonOption, act, checked, operator_name, read
from worker.core import actions, lookups
from worker.core.handlers import snapshot
from worker.core.lookups import Move
from worker.core.money import money
from worker.vipps import models

app = typer.Typer(no_args_is_help=True, help="List, show, capture, refund or cancel charges.\n\n"
                  "Example: vipps-billing charge list agr_5kSeqz --status CHARGED")

ChargeId = Annotated[str, typer.Argument(help="Vipps charge id, e.g. chr_WCVbcA")]
AmountOption = Annotated[int | None, typer.Option(help="Amount in minor units (øre); default: all that is left.",
                                                   min=100)]


def _charge_row(charge: models.ChargeResponseV3) -> list[str]:
    s = charge.summary
    return [charge.id, str(charge.type), str(charge.status), money(charge.amount, str(charge.currency)),
            str(charge.due)[:10] if charge.due else "-", money(s.captured), money(s.refunded)]


@app.command("list")
def charge_list(
    agreement_id: AgreementId,
    status: Annotated[ChargeStatus | None, typer.Option(help="Only charges in this status.")] = None,
    msn: MsnOption = None,
    as_json: JsonOption = False,
) -> None:
    """List an agreement's charges (Vipps returns all statuses unless --status is given).

    Example: vipps-billing charge list agr_5kSeqz --status CHARGED
    """
    wanted = models.ChargeStatus(status.value) if status else None
    charges = read(lambda vipps: vipps.list_charges(agreement_id, status=wanted), msn)
    if as_json:
        emit_json([snapshot(c) for c in charges])
        return
    table = Table(title=f"Charges of {agreement_id}" + (f" ({status.value})" if status else ""))
    for column in ("charge", "type", "status", "amount", "due", "captured", "refunded"):
        table.add_column(column, justify="right" if column in ("amount", "captured", "refunded") else "left")
    for charge in charges:
        table.add_row(*_charge_row(charge))
    console.print(table if charges else "no charges")


@app.command("show")
def charge_show(agreement_id: AgreementId, charge_id: ChargeId, msn: MsnOption = None,
                as_json: JsonOption = False) -> None:
    """Show a charge with its history.

    Example: vipps-billing charge show agr_5kSeqz chr_WCVbcA
    """
    charge = read(lambda vipps: vipps.fetch_charge(agreement_id, charge_id), msn)
    _print_charge(charge, agreement_id, as_json)


@app.command("find")
def charge_find(charge_id: ChargeId, msn: MsnOption = None, as_json: JsonOption = False) -> None:
    """Find a charge by its id alone (a customer's claim names no agreement); shows its agreement too.

    A charge created with an order_id has that order_id as its charge id.

    Vipps limits this lookup more strictly than `charge show`: use it by hand, not in scripts.

    Example: vipps-billing charge find chr_WCVbcA
    """
    charge = read(lambda vipps: vipps.fetch_charge_by_id(charge_id), msn)
    _print_charge(charge, charge.agreementId, as_json)


def _print_charge(charge: models.ChargeResponseV3, agreement_id: str | None, as_json: bool) -> None:
    if as_json:
        emit_json(snapshot(charge))
        return
    table = Table(title=f"Charge {charge.id} on {agreement_id or 'an unnamed agreement'}", show_header=False)
    s = charge.summary
    for name, value in (
        ("agreement", agreement_id), ("status", str(charge.status)), ("type", str(charge.type)),
        ("transaction", str(charge.transactionType) if charge.transactionType else None),
        ("amount", money(charge.amount, str(charge.currency))), ("description", charge.description),
        ("due", str(charge.due)[:10] if charge.due else None), ("retry days", charge.retryDays),
        ("captured", money(s.captured)), ("refunded", money(s.refunded)), ("cancelled", money(s.cancelled)),
        ("failure", lookups.failure_in_words(charge.failureReason)),
        ("external id", charge.externalId), ("transaction id", charge.transactionId)):
        table.add_row(name, str(value) if value is not None else "-")
    console.print(table)
    history = Table(title="History")
    for column in ("when", "event", "amount", "success", "idempotency key"):
        history.add_column(column)
    for item in charge.history:
        history.add_row(str(item.occurred), str(getattr(item.event, "value", item.event)), money(item.amount),
                        "yes" if item.success else "no", item.idempotencyKey or "-")
    console.print(history)


def _move_money(kind: Move, default_description: str, doc: str) -> Callable[..., None]:
    """The ``charge capture`` or ``charge refund`` command: the same but for the verb and its texts."""
    def command(agreement_id: AgreementId, charge_id: ChargeId, reason: ReasonOption, amount: AmountOption = None,
                description: Annotated[str, typer.Option(help="Shown to the user.")] = default_description,
                operator: OperatorOption = None, msn: MsnOption = None, yes: YesOption = False,
                timeout: TimeoutOption = 60.0, as_json: JsonOption = False) -> None:
        action = checked(lambda vipps: actions.move_money(vipps, kind, agreement_id, charge_id, amount,
                                                          operator_name(operator), reason, description), msn, yes)
        act(action.command, timeout, as_json, action.done_event, msn)

    command.__name__ = f"charge_{kind}"
    command.__doc__ = doc
    return command


charge_capture = app.command("capture")(_move_money(
    "capture", "Captured", "Capture a RESERVED charge (all of it unless --amount).\n\n"
    "Example: vipps-billing charge capture agr_5kSeqz chr_WCVbcA --amount 4000 --reason \"ticket 4711\" --yes"))
charge_refund = app.command("refund")(_move_money(
    "refund", "Refund", "Refund a captured charge (all that is left unless --amount).\n\n"
    "Example: vipps-billing charge refund agr_5kSeqz chr_WCVbcA --amount 19900 --reason \"ticket 4711\" --yes"))


@app.command("cancel")
def charge_cancel(agreement_id: AgreementId, charge_id: ChargeId, reason: ReasonOption,
                  operator: OperatorOption = None, msn: MsnOption = None, yes: YesOption = False,
                  timeout: TimeoutOption = 60.0, as_json: JsonOption = False) -> None:
    """Cancel a pending, due or reserved charge.

    Example: vipps-billing charge cancel agr_5kSeqz chr_WCVbcA --reason "ticket 4711" --yes
    """
    action = checked(lambda vipps: actions.cancel_charge(vipps, agreement_id, charge_id, operator_name(operator),
                                                         reason), msn, yes)
    act(action.command, timeout, as_json, action.done_event, msn)


app.command("history")(history.charge_history)
