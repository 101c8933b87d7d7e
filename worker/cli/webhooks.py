"""``vipps-billing webhooks``: the webhook receiver, and the registrations at Vipps."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from worker.cli.common import JsonOption, YesOption, confirm, console, control, emit_json, fail, guard
from worker.cli.registrations import await_delivery, client_for
from worker.runtime.settings import get_settings
from worker.vipps.webhook_events import RECURRING_EVENTS
from worker.webhooks.secrets import forget_secret, keep_secret

app = typer.Typer(no_args_is_help=True, help="Vipps webhooks: run the receiver that verifies and queues "
                  "deliveries, and manage the registrations at Vipps.\n\n"
                  "Example: vipps-billing webhooks register --url https://hooks.example.com/vipps")


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="address to listen on (env WEBHOOK_HOST, default 0.0.0.0)")] = None,
    port: Annotated[int | None, typer.Option(help="deliveries port (env WEBHOOK_PORT, default 8080)")] = None,
) -> None:
    """Run the webhook receiver until SIGTERM.

    Deliveries are POSTs on the path of WEBHOOK_PUBLIC_URL (port WEBHOOK_PORT); /metrics, /healthz and
    /readyz are on WEBHOOK_METRICS_PORT. Secrets: one file per registration in WEBHOOK_SECRETS_DIR.

    Example: WEBHOOK_PUBLIC_URL=https://hooks.example.com/vipps WEBHOOK_SECRETS_DIR=/var/run/secrets/vipps-webhooks
    REDIS_URL=redis://127.0.0.1:6379/0 vipps-billing webhooks serve
    """
    from worker.webhooks.main import run  # loads uvicorn and starlette: only for this command
    from worker.webhooks.settings import SettingsError, load_settings

    overrides = {name: value for name, value in (("webhook_host", host), ("webhook_port", port)) if value is not None}
    try:
        settings = load_settings(**overrides)
    except SettingsError as exc:
        raise fail(str(exc)) from None
    raise typer.Exit(run(settings))


MsnPick = Annotated[str | None, typer.Option("--msn", help="register as this merchant (its keys and MSN); "
                                                           "default: the only one")]
PartnerPick = Annotated[str | None, typer.Option("--partner", help="register with this partner set's keys and "
                                                                   "no MSN: every merchant it manages")]
SecretsDirOption = Annotated[Path | None, typer.Option("--secrets-dir", envvar="WEBHOOK_SECRETS_DIR",
                                                       help="write the secret here, as the receiver reads it")]


def _pick(msn: str | None, partner: str | None) -> None:
    if msn is not None and partner is not None:
        raise fail("give --msn or --partner, not both")


@app.command()
def register(
    url: Annotated[str, typer.Option(help="the receiver's public HTTPS URL (WEBHOOK_PUBLIC_URL)")],
    events: Annotated[str | None, typer.Option(help="comma-separated event types; default: all ten")] = None,
    msn: MsnPick = None, partner: PartnerPick = None, secrets_dir: SecretsDirOption = None,
    print_secret: Annotated[bool, typer.Option("--print-secret", help="print the secret once (for a Kubernetes "
                                                                      "Secret) instead of writing it")] = False,
) -> None:
    """Register a webhook at Vipps; its secret goes to the receiver's secrets directory (or is printed once).

    Example: vipps-billing webhooks register --url https://hooks.example.com/vipps --secrets-dir /run/hooks
    """
    _pick(msn, partner)
    if secrets_dir is None and not print_secret:
        raise fail("say where the secret goes: --secrets-dir DIR (or WEBHOOK_SECRETS_DIR), or --print-secret")
    chosen = [e.strip() for e in events.split(",") if e.strip()] if events else list(RECURRING_EVENTS)
    unknown = [e for e in chosen if e not in RECURRING_EVENTS]
    if unknown:
        raise fail(f"unknown event type(s) {', '.join(unknown)}; known: {', '.join(RECURRING_EVENTS)}")
    with guard(), control(get_settings()) as ops, client_for(ops, msn, partner) as client:
        made = client.register_webhook(url, chosen)
        secret = made.secret.get_secret_value()
        if secrets_dir is not None:
            where = keep_secret(secrets_dir, made.id, secret)
            typer.echo(f"registered {made.id} for {len(chosen)} event(s); secret written to {where}")
        else:
            typer.echo(f"registered {made.id} for {len(chosen)} event(s)")
            typer.echo(f"secret (shown once, put it in the receiver's secret as file {made.id}): {secret}")


@app.command("list")
def list_(msn: MsnPick = None, partner: PartnerPick = None, as_json: JsonOption = False) -> None:
    """The webhooks registered at Vipps for a merchant (or a partner set).

    Example: vipps-billing webhooks list --msn 123456
    """
    _pick(msn, partner)
    with guard(), control(get_settings()) as ops, client_for(ops, msn, partner) as client:
        found = client.list_webhooks()
    if as_json:
        emit_json([{"id": w.id, "url": w.url, "events": w.events} for w in found])
        return
    table = Table(title="Webhook registrations")
    for column in ("id", "url", "events"):
        table.add_column(column)
    for w in found:
        table.add_row(w.id, w.url, "all ten" if set(w.events) == set(RECURRING_EVENTS) else ", ".join(w.events))
    console.print(table)


@app.command()
def delete(
    registration_id: Annotated[str, typer.Argument(metavar="ID", help="the registration to delete")],
    msn: MsnPick = None, partner: PartnerPick = None, secrets_dir: SecretsDirOption = None, yes: YesOption = False,
) -> None:
    """Delete a registration at Vipps (and its secret file): Vipps stops delivering to it.

    Example: vipps-billing webhooks delete 5f5b6f1c-... --msn 123456 --yes
    """
    _pick(msn, partner)
    confirm(f"Delete webhook registration {registration_id}?", yes)
    with guard(), control(get_settings()) as ops, client_for(ops, msn, partner) as client:
        client.delete_webhook(registration_id)
    removed = forget_secret(secrets_dir, registration_id)
    typer.echo(f"deleted {registration_id}" + ("; its secret file removed" if removed else ""))


@app.command()
def rotate(
    url: Annotated[str, typer.Option(help="the receiver's public HTTPS URL")],
    events: Annotated[str | None, typer.Option(help="comma-separated event types; default: all ten")] = None,
    msn: MsnPick = None, partner: PartnerPick = None, secrets_dir: SecretsDirOption = None,
    wait: Annotated[float, typer.Option(help="seconds to wait for a delivery with the new secret")] = 600.0,
) -> None:
    """Replace the registrations of URL: register a new one, wait until the receiver verified a delivery signed
    with its secret, then delete the old ones. Without a delivery in time both stay, and it exits 1.

    Example: vipps-billing webhooks rotate --url https://hooks.example.com/vipps --secrets-dir /run/hooks
    """
    _pick(msn, partner)
    if secrets_dir is None:
        raise fail("rotate writes the new secret for the receiver: give --secrets-dir (or WEBHOOK_SECRETS_DIR)")
    chosen = [e.strip() for e in events.split(",") if e.strip()] if events else list(RECURRING_EVENTS)
    with guard(), control(get_settings()) as ops, client_for(ops, msn, partner) as client:
        old = [w.id for w in client.list_webhooks() if w.url == url]
        made = client.register_webhook(url, chosen)
        keep_secret(secrets_dir, made.id, made.secret.get_secret_value())
        typer.echo(f"registered {made.id}; waiting up to {wait:.0f} s for a delivery signed with its secret ...")
        if not await_delivery(ops, made.id, wait):
            raise fail(f"no delivery for {made.id} within {wait:.0f} s: kept it and {', '.join(old) or 'none'}; "
                       "delete the old ones with `webhooks delete` once deliveries arrive")
        for registration_id in old:
            client.delete_webhook(registration_id)
            forget_secret(secrets_dir, registration_id)
    typer.echo(f"rotated: {made.id} verified; deleted {', '.join(old) or 'no old registration'}")
