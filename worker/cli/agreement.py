"""``vipps-billing agreement``: look up, list, change or stop agreements."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import typer
from rich.table import Table

from worker.cli import history
from worker.cli.common import (
    JsonOption,
    MsnOption,
    TimeoutOption,
    YesOption,
    console,
    control,
    emit_json,
    fail,
    guard,
    since_option,
    when,
)
from worker.cli.support import AgreementId, OperatorOption, ReasonOption, act, checked, operator_name, read
from worker.core import actions, lookups
from worker.core.handlers import snapshot
from worker.core.money import money
from worker.runtime.settings import get_settings
from worker.vipps import models

app = typer.Typer(no_args_is_help=True, help="Look up, list, change or stop agreements.\n\n"
                  "Example: vipps-billing agreement show agr_5kSeqz")


@app.command("show")
def agreement_show(agreement_id: AgreementId, msn: MsnOption = None, as_json: JsonOption = False) -> None:
    """Show an agreement as Vipps has it now.

    Example: vipps-billing agreement show agr_5kSeqz --json
    """
    agreement = read(lambda vipps: vipps.fetch_agreement(agreement_id), msn)
    data = snapshot(agreement)
    if str(agreement.status) == "PENDING" and not data.get("vippsConfirmationUrl"):
        data["vippsConfirmationUrl"] = confirmation_url(agreement_id)
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
        ("external id", agreement.externalId), ("agreement page", agreement.merchantAgreementUrl),
        ("confirmation URL", data.get("vippsConfirmationUrl"))):
        table.add_row(name, str(value) if value is not None else "-")
    console.print(table)


def confirmation_url(agreement_id: str) -> str | None:
    with guard(), control(get_settings()) as ops:
        return lookups.confirmation_url(ops.ledger.timeline(agreement_id))


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


@app.command("list")
def agreement_list(
    status: Annotated[models.AgreementStatus | None, typer.Option(
        case_sensitive=False, show_default=False,
        help="Agreements in this status (any case). Default: ACTIVE, or every status with --external-id.")] = None,
    since: Annotated[int | None, since_option(
        "Only agreements created after this: a duration ago (30d, 12h) or a date-time.")] = None,
    external_id: Annotated[str | None, typer.Option(help="Only the agreement(s) with this externalId.")] = None,
    msn: MsnOption = None,
    as_json: JsonOption = False,
) -> None:
    """List the merchant's agreements, newest first.

    Vipps lists one status at a time and allows 5 listings a minute per merchant: an --external-id search
    without --status makes one listing per status. Narrow with --since on a large merchant.

    Example: vipps-billing agreement list --status pending --since 1d
    """
    statuses = ([status] if status is not None else list(models.AgreementStatus) if external_id is not None
                else [models.AgreementStatus.ACTIVE])
    agreements = read(lambda vipps: [a for s in statuses for a in vipps.list_agreements(status=s, created_after=since)],
                      msn)
    if external_id is not None:
        agreements = [a for a in agreements if a.externalId == external_id]
    agreements.sort(key=lambda a: a.created.timestamp() if isinstance(a.created, dt.datetime) else 0, reverse=True)
    if as_json:
        emit_json([snapshot(a) for a in agreements])
        return
    what = f"{statuses[0].value} agreements" if len(statuses) == 1 else "agreements in any status"
    title = what + (f" with external id {external_id}" if external_id is not None else "") + (
        f" created after {when(since)}" if since else "")
    table = Table(title=title)
    for column in ("agreement", "status", "product", "price", "interval", "created", "external id"):
        table.add_column(column, justify="right" if column == "price" else "left")
    for a in agreements:
        amount = getattr(a.pricing, "amount", None) if a.pricing else None
        table.add_row(a.id, str(a.status), a.productName or "-", money(amount) if amount is not None else "-",
                      f"{a.interval.count} {a.interval.unit}" if a.interval else "-",
                      _when(a.created)[:19] if a.created else "-", a.externalId or "-")
    console.print(table if agreements else f"no {title}")


@app.command("stop")
def agreement_stop(agreement_id: AgreementId, reason: ReasonOption, operator: OperatorOption = None,
                   msn: MsnOption = None, yes: YesOption = False, timeout: TimeoutOption = 60.0,
                   as_json: JsonOption = False) -> None:
    """Stop an agreement (irreversible; RESERVED charges on it are cancelled by Vipps).

    Example: vipps-billing agreement stop agr_5kSeqz --reason "customer asked, ticket 4711" --yes
    """
    action = checked(lambda vipps: actions.stop_agreement(vipps, agreement_id, operator_name(operator), reason),
                     msn, yes)
    act(action.command, timeout, as_json, action.done_event, msn)


@app.command("update")
def agreement_update(
    agreement_id: AgreementId,
    reason: ReasonOption,
    product_name: Annotated[str | None, typer.Option(help="New product name (shown to the user).")] = None,
    product_description: Annotated[str | None, typer.Option(help="New product description.")] = None,
    price: Annotated[int | None, typer.Option(help="New price in øre (LEGACY pricing).")] = None,
    suggested_max_amount: Annotated[int | None, typer.Option(
        help="New suggested maximum in øre (VARIABLE pricing; the user is not alerted).")] = None,
    agreement_url: Annotated[str | None, typer.Option(help="New merchantAgreementUrl (https).")] = None,
    external_id: Annotated[str | None, typer.Option(help="New externalId.")] = None,
    operator: OperatorOption = None, msn: MsnOption = None,
    yes: YesOption = False, timeout: TimeoutOption = 60.0, as_json: JsonOption = False,
) -> None:
    """Change an agreement's price, product or agreement page (through the queue; charges already made stay).

    Example: vipps-billing agreement update agr_5kSeqz --price 24900 --product-name "Gym, off-peak" \\
    --reason "new price list" --yes
    """
    changes = {"product_name": product_name, "product_description": product_description, "pricing_amount": price,
               "suggested_max_amount": suggested_max_amount, "merchant_agreement_url": agreement_url,
               "external_id": external_id}
    given = {name: value for name, value in changes.items() if value is not None}
    if not given:
        raise fail("name at least one change (see --help)", 2)
    action = checked(lambda vipps: actions.update_agreement(vipps, agreement_id, given, operator_name(operator),
                                                            reason), msn, yes)
    act(action.command, timeout, as_json, action.done_event, msn)


app.command("history")(history.agreement_history)
