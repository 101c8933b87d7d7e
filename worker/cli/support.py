"""Support commands: look up agreements and charges at Vipps, and change them through the queue.

Lookups read Vipps directly (they change nothing). A stop, capture, refund or cancel is a command
on the queue like any other: the worker carries it out exactly once and we wait for its outcome.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import typer
from rich.table import Table

from schemas.commands import ChargeStatus
from worker.cli.common import (
    JsonOption,
    TimeoutOption,
    YesOption,
    confirm,
    console,
    emit_json,
    err_console,
    fail,
    guard,
    money,
    open_ops,
    since_option,
    when,
)
from worker.core.control import Outcome, new_command_id
from worker.core.producer import prepare
from worker.vipps import VippsClient, models

T = TypeVar("T")

agreement_app = typer.Typer(no_args_is_help=True, help="Look up, list, change or stop agreements.\n\n"
                            "Example: vipps-billing agreement show agr_5kSeqz")
charge_app = typer.Typer(no_args_is_help=True, help="List, show, capture, refund or cancel charges.\n\n"
                         "Example: vipps-billing charge list agr_5kSeqz --status CHARGED")

AgreementId = Annotated[str, typer.Argument(help="Vipps agreement id, e.g. agr_5kSeqz")]
ChargeId = Annotated[str, typer.Argument(help="Vipps charge id, e.g. chr_WCVbcA")]


def _dump(model: Any) -> dict[str, Any]:
    data: dict[str, Any] = model.model_dump(mode="json", by_alias=True)
    return data


def _read(call: Callable[[VippsClient], T]) -> T:
    """One lookup at Vipps with the worker's shared token and rate budgets; errors become one line."""
    with guard():
        ops = open_ops()
        try:
            return call(ops.vipps())
        finally:
            ops.close()


def _act(command: dict[str, Any], timeout: float, as_json: bool, done_event: str) -> None:
    """Send a support command, wait for the worker's outcome, print it."""
    ops = open_ops()
    try:
        command_id = ops.send({"command_id": new_command_id(), **command})
        if as_json:
            outcome = ops.wait(command_id, timeout)
        else:
            with err_console.status(f"{command['type']} sent as {command_id}; waiting for the worker"):
                outcome = ops.wait(command_id, timeout)
    finally:
        ops.close()
    _show_outcome(outcome, as_json, done_event)


def _show_outcome(outcome: Outcome, as_json: bool, done_event: str) -> None:
    if as_json:
        emit_json({"command_id": outcome.command_id, "status": outcome.status, "events": outcome.events})
        return
    event = outcome.event(done_event) or {}
    completion = event.get("completion")
    note = " (Vipps accepted it and will carry it out shortly)" if completion == "accepted" else ""
    console.print(f"[green]{done_event}[/green] {event.get('agreement_id') or ''} {event.get('charge_id') or ''}"
                  f"{note}  command {outcome.command_id}")


# -- agreements ----------------------------------------------------------------------------------


@agreement_app.command("show")
def agreement_show(agreement_id: AgreementId, as_json: JsonOption = False) -> None:
    """Show an agreement as Vipps has it now.

    Example: vipps-billing agreement show agr_5kSeqz --json
    """
    agreement = _read(lambda vipps: vipps.fetch_agreement(agreement_id))
    data = _dump(agreement)
    if as_json:
        emit_json(data)
        return
    table = Table(title=f"Agreement {agreement.id}", show_header=False)
    pricing = agreement.pricing
    amount = getattr(pricing, "amount", None) if pricing else None
    interval = agreement.interval
    for name, value in (
        ("status", str(agreement.status)), ("product", agreement.productName),
        ("price", money(amount) if amount is not None else "-"),
        ("interval", f"every {interval.count} {interval.unit}" if interval else "-"),
        ("campaign", _campaign(agreement.campaign)),
        ("created", data.get("created")), ("start", data.get("start")), ("stop", data.get("stop")),
        ("external id", agreement.externalId), ("agreement page", agreement.merchantAgreementUrl)):
        table.add_row(name, str(value) if value is not None else "-")
    console.print(table)


def _campaign(campaign: models.CampaignResponseV3 | None) -> str:
    """What the customer pays while a campaign runs, in one line."""
    if campaign is None:
        return "-"
    parts = [str(campaign.type), money(campaign.price)]
    if campaign.interval:
        parts.append(f"every {campaign.interval.count} {campaign.interval.unit}")
    if campaign.period:
        parts.append(f"for {campaign.period.count} {campaign.period.unit}")
    if campaign.eventDate:
        parts.append(f"until {_when(campaign.eventDate)} ({campaign.eventText or '-'})")
    elif campaign.end:
        parts.append(f"until {_when(campaign.end)}")
    if campaign.explanation:
        parts.append(f"- {campaign.explanation}")
    return " ".join(parts)


def _when(value: dt.datetime | str) -> str:
    return value.isoformat() if isinstance(value, dt.datetime) else value


@agreement_app.command("list")
def agreement_list(
    status: Annotated[models.AgreementStatus, typer.Option(
        help="Agreements in this status (Vipps lists one status at a time).")] = models.AgreementStatus.ACTIVE,
    since: Annotated[int | None, since_option(
        "Only agreements created after this: a duration ago (30d, 12h) or a date-time.")] = None,
    external_id: Annotated[str | None, typer.Option(help="Only the agreement(s) with this externalId.")] = None,
    as_json: JsonOption = False,
) -> None:
    """List the merchant's agreements in one status, newest first.

    Vipps allows 5 listings a minute per merchant; narrow with --since on a large merchant.

    Example: vipps-billing agreement list --status PENDING --since 1d
    """
    agreements = _read(lambda vipps: vipps.list_agreements(status=status, created_after=since))
    if external_id is not None:
        agreements = [a for a in agreements if a.externalId == external_id]
    agreements.sort(key=lambda a: a.created.timestamp() if isinstance(a.created, dt.datetime) else 0, reverse=True)
    if as_json:
        emit_json([_dump(a) for a in agreements])
        return
    table = Table(title=f"{status.value} agreements" + (f" created after {when(since)}" if since else ""))
    for column in ("agreement", "product", "price", "interval", "created", "external id"):
        table.add_column(column, justify="right" if column == "price" else "left")
    for a in agreements:
        amount = getattr(a.pricing, "amount", None) if a.pricing else None
        table.add_row(a.id, a.productName or "-", money(amount) if amount is not None else "-",
                      f"{a.interval.count} {a.interval.unit}" if a.interval else "-",
                      _when(a.created)[:19] if a.created else "-", a.externalId or "-")
    console.print(table if agreements else f"no {status.value} agreements")


@agreement_app.command("stop")
def agreement_stop(agreement_id: AgreementId, yes: YesOption = False, timeout: TimeoutOption = 60.0,
                   as_json: JsonOption = False) -> None:
    """Stop an agreement (irreversible; RESERVED charges on it are cancelled by Vipps).

    Example: vipps-billing agreement stop agr_5kSeqz --yes
    """
    confirm(f"Stop agreement {agreement_id}? This cannot be undone", yes)
    with guard():
        _act({"type": "agreement.update", "agreement_id": agreement_id, "status": "STOPPED"}, timeout, as_json,
             "agreement.updated")


@agreement_app.command("update")
def agreement_update(
    agreement_id: AgreementId,
    product_name: Annotated[str | None, typer.Option(help="New product name (shown to the user).")] = None,
    product_description: Annotated[str | None, typer.Option(help="New product description.")] = None,
    price: Annotated[int | None, typer.Option(help="New price in øre (LEGACY pricing).")] = None,
    suggested_max_amount: Annotated[int | None, typer.Option(
        help="New suggested maximum in øre (VARIABLE pricing; the user is not alerted).")] = None,
    agreement_url: Annotated[str | None, typer.Option(help="New merchantAgreementUrl (https).")] = None,
    external_id: Annotated[str | None, typer.Option(help="New externalId.")] = None,
    yes: YesOption = False, timeout: TimeoutOption = 60.0, as_json: JsonOption = False,
) -> None:
    """Change an agreement's price, product or agreement page (through the queue; charges already made stay).

    Example: vipps-billing agreement update agr_5kSeqz --price 24900 --product-name "Gym, off-peak" --yes
    """
    changes = {"product_name": product_name, "product_description": product_description, "pricing_amount": price,
               "suggested_max_amount": suggested_max_amount, "merchant_agreement_url": agreement_url,
               "external_id": external_id}
    given = {name: value for name, value in changes.items() if value is not None}
    if not given:
        raise fail("name at least one change (see --help)", 2)
    with guard():  # an invalid change is refused before anyone is asked to confirm it
        command = prepare({"command_id": new_command_id(), "type": "agreement.update", "agreement_id": agreement_id,
                           **given})
    described = ", ".join(f"{name} = {money(value) if isinstance(value, int) else value}"
                          for name, value in given.items())
    confirm(f"Change agreement {agreement_id}: {described}?", yes)
    with guard():
        _act(command, timeout, as_json, "agreement.updated")


# -- charges -------------------------------------------------------------------------------------


def _charge_row(charge: models.ChargeResponseV3) -> list[str]:
    s = charge.summary
    return [charge.id, str(charge.type), str(charge.status), money(charge.amount, str(charge.currency)),
            str(charge.due)[:10] if charge.due else "-", money(s.captured), money(s.refunded)]


@charge_app.command("list")
def charge_list(
    agreement_id: AgreementId,
    status: Annotated[ChargeStatus | None, typer.Option(help="Only charges in this status.")] = None,
    as_json: JsonOption = False,
) -> None:
    """List an agreement's charges (Vipps returns all statuses unless --status is given).

    Example: vipps-billing charge list agr_5kSeqz --status CHARGED
    """
    wanted = models.ChargeStatus(status.value) if status else None
    charges = _read(lambda vipps: vipps.list_charges(agreement_id, status=wanted))
    if as_json:
        emit_json([_dump(c) for c in charges])
        return
    table = Table(title=f"Charges of {agreement_id}" + (f" ({status.value})" if status else ""))
    for column in ("charge", "type", "status", "amount", "due", "captured", "refunded"):
        table.add_column(column, justify="right" if column in ("amount", "captured", "refunded") else "left")
    for charge in charges:
        table.add_row(*_charge_row(charge))
    console.print(table if charges else "no charges")


@charge_app.command("show")
def charge_show(agreement_id: AgreementId, charge_id: ChargeId, as_json: JsonOption = False) -> None:
    """Show a charge with its history.

    Example: vipps-billing charge show agr_5kSeqz chr_WCVbcA
    """
    charge = _read(lambda vipps: vipps.fetch_charge(agreement_id, charge_id))
    _print_charge(charge, agreement_id, as_json)


@charge_app.command("find")
def charge_find(charge_id: ChargeId, as_json: JsonOption = False) -> None:
    """Find a charge by its id alone (a customer's claim names no agreement); shows its agreement too.

    A charge created with an order_id has that order_id as its charge id.

    Vipps limits this lookup more strictly than `charge show`: use it by hand, not in scripts.

    Example: vipps-billing charge find chr_WCVbcA
    """
    charge = _read(lambda vipps: vipps.fetch_charge_by_id(charge_id))
    _print_charge(charge, charge.agreementId, as_json)


def _print_charge(charge: models.ChargeResponseV3, agreement_id: str | None, as_json: bool) -> None:
    if as_json:
        emit_json(_dump(charge))
        return
    table = Table(title=f"Charge {charge.id} on {agreement_id or 'an unnamed agreement'}", show_header=False)
    s = charge.summary
    for name, value in (
        ("agreement", agreement_id), ("status", str(charge.status)), ("type", str(charge.type)),
        ("transaction", str(charge.transactionType) if charge.transactionType else None),
        ("amount", money(charge.amount, str(charge.currency))), ("description", charge.description),
        ("due", str(charge.due)[:10] if charge.due else None), ("retry days", charge.retryDays),
        ("captured", money(s.captured)), ("refunded", money(s.refunded)), ("cancelled", money(s.cancelled)),
        ("failure", str(charge.failureReason) if charge.failureReason else None),
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


def _left(agreement_id: str, charge_id: str, kind: str) -> int:
    """What is left to capture or refund, from Vipps now."""
    charge = _read(lambda vipps: vipps.fetch_charge(agreement_id, charge_id))
    s = charge.summary
    left = charge.amount - s.captured - s.cancelled if kind == "capture" else s.captured - s.refunded
    if left < 100:
        raise fail(f"charge {charge_id} is {charge.status} with {money(left)} left to {kind}")
    return left


AmountOption = Annotated[int | None, typer.Option(help="Amount in minor units (øre); default: all that is left.",
                                                   min=100)]


@charge_app.command("capture")
def charge_capture(agreement_id: AgreementId, charge_id: ChargeId, amount: AmountOption = None,
                   description: Annotated[str, typer.Option(help="Shown to the user.")] = "Captured",
                   yes: YesOption = False, timeout: TimeoutOption = 60.0, as_json: JsonOption = False) -> None:
    """Capture a RESERVED charge (all of it unless --amount).

    Example: vipps-billing charge capture agr_5kSeqz chr_WCVbcA --amount 4000 --yes
    """
    amount = amount or _left(agreement_id, charge_id, "capture")
    confirm(f"Capture {money(amount)} of charge {charge_id}?", yes)
    with guard():
        _act({"type": "charge.capture", "agreement_id": agreement_id, "charge_id": charge_id, "amount": amount,
              "description": description}, timeout, as_json, "charge.captured")


@charge_app.command("refund")
def charge_refund(agreement_id: AgreementId, charge_id: ChargeId, amount: AmountOption = None,
                  description: Annotated[str, typer.Option(help="Shown to the user.")] = "Refund",
                  yes: YesOption = False, timeout: TimeoutOption = 60.0, as_json: JsonOption = False) -> None:
    """Refund a captured charge (all that is left unless --amount).

    Example: vipps-billing charge refund agr_5kSeqz chr_WCVbcA --amount 19900 --yes
    """
    amount = amount or _left(agreement_id, charge_id, "refund")
    confirm(f"Refund {money(amount)} of charge {charge_id}?", yes)
    with guard():
        _act({"type": "charge.refund", "agreement_id": agreement_id, "charge_id": charge_id, "amount": amount,
              "description": description}, timeout, as_json, "charge.refunded")


@charge_app.command("cancel")
def charge_cancel(agreement_id: AgreementId, charge_id: ChargeId, yes: YesOption = False,
                  timeout: TimeoutOption = 60.0, as_json: JsonOption = False) -> None:
    """Cancel a pending, due or reserved charge.

    Example: vipps-billing charge cancel agr_5kSeqz chr_WCVbcA --yes
    """
    confirm(f"Cancel charge {charge_id}?", yes)
    with guard():
        _act({"type": "charge.cancel", "agreement_id": agreement_id, "charge_id": charge_id}, timeout, as_json,
             "charge.cancelled")
