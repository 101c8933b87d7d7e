"""``vipps-billing webhooks``: the webhook receiver, and (later) the registrations at Vipps."""

from __future__ import annotations

from typing import Annotated

import typer

from worker.cli.common import fail

app = typer.Typer(no_args_is_help=True, help="Vipps webhooks: run the receiver that verifies and queues "
                  "deliveries.\n\nExample: vipps-billing webhooks serve --port 8080")


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
