"""``vipps-billing simulator``: serve the simulator, or control a running one (``cli_admin``).

This is the simulator's composition root: its configuration is read from the environment here, once
(``SimulatorConfig.from_env`` with the command's options on top), and handed to ``create_app``.
"""

from __future__ import annotations

import errno
import socket
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

import typer
from typer.core import TyperGroup

from worker.simulator import cli_admin
from worker.simulator.cli_options import (
    BatchCreationDelay,
    BatchFailureRate,
    ChargesPerMinute,
    DropAfterCommitRate,
    DropRate,
    Latency,
    Operations,
    Rate5xx,
    Rate429,
    RetryAfter,
    TimeoutAfterCommitRate,
    TimeoutSeconds,
    TokenEndpoint,
    UnscheduledCharges,
    WebhookHttpsOnly,
    WebhookOrder,
    WebhookRetryWait,
    WebhookTimeout,
    accept_old_fault_flags,
    fault_config,
)
from worker.simulator.cli_output import error, fail
from worker.simulator.config import SimulatorConfig, SimulatorConfigError

try:  # typer 0.2x carries its own click
    from typer._click.exceptions import ClickException, UsageError
except ImportError:  # pragma: no cover - older typer on the click package
    from click.exceptions import ClickException, UsageError  # type: ignore[assignment]


class OneLineErrors(TyperGroup):
    """As the root command (in tests, or run on its own), mistakes follow the project's error contract: one line
    on stderr, exit code 2 for a mistyped command, option or value, 1 for anything else. Mounted under
    ``vipps-billing``, that command's own handler does the same."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: Any,
    ) -> Any:
        try:
            code = super().main(args, prog_name, complete_var, False, windows_expand_args, **extra)
        except ClickException as exc:
            hint = f" (see '{exc.ctx.command_path} --help')" if isinstance(exc, UsageError) and exc.ctx else ""
            error(exc.format_message() + hint)
            code = exc.exit_code
        except typer.Abort:
            error("aborted")
            code = 1
        code = code if isinstance(code, int) else 0
        if standalone_mode:
            sys.exit(code)
        return code


app = typer.Typer(
    cls=OneLineErrors,
    help="Run the Vipps simulator, or control a running one.\n\n"
    "Example: vipps-billing simulator --port 8070 --seed 7 --5xx-rate 0.05",
    invoke_without_command=True,
    no_args_is_help=False,
    # Scripts written before the fault flags were unified still say --fault-5xx-rate and so on.
    context_settings={"token_normalize_func": accept_old_fault_flags},
)
app.add_typer(cli_admin.clock_app, name="clock")
app.add_typer(cli_admin.faults_app, name="faults")
app.command("effects")(cli_admin.effects)
app.command("webhooks")(cli_admin.webhooks)
app.command("script")(cli_admin.script)
app.command("stats")(cli_admin.stats)
app.command("reset")(cli_admin.reset)

LogLevel = Literal["critical", "error", "warning", "info", "debug", "trace"]


@app.callback()
def serve(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="TCP port.")] = 8070,
    seed: Annotated[int | None, typer.Option(help="Seed for ids and faults (reproducible runs).")] = None,
    rate_5xx: Rate5xx = 0.0,
    rate_429: Rate429 = 0.0,
    retry_after: RetryAfter = 1,
    drop_rate: DropRate = 0.0,
    drop_after_commit_rate: DropAfterCommitRate = 0.0,
    timeout_after_commit_rate: TimeoutAfterCommitRate = 0.0,
    timeout_seconds: TimeoutSeconds = 15.0,
    latency: Latency = None,
    operation: Operations = None,
    token_endpoint: TokenEndpoint = False,
    token_lifetime: Annotated[int | None, typer.Option(min=1, help="Access token lifetime in seconds.")] = None,
    min_due_lead_days: Annotated[int | None, typer.Option(min=0, help="Earliest charge due date, in days.")] = None,
    rate_limits: Annotated[
        bool | None, typer.Option("--rate-limits/--no-rate-limits", help="Enforce the per-key Vipps rate limits.")
    ] = None,
    charges_per_minute: ChargesPerMinute = None,
    batch_creation_delay: BatchCreationDelay = None,
    batch_failure_rate: BatchFailureRate = None,
    unscheduled_charges: UnscheduledCharges = None,
    auto_accept_after: Annotated[
        float | None, typer.Option(min=0, help="Users approve drafts after this many seconds.")
    ] = None,
    merchants: Annotated[
        Path | None,
        typer.Option(metavar="PATH", help="Merchants file (JSON or YAML): many merchants, partner keys."),
    ] = None,
    webhook_timeout: WebhookTimeout = None,
    webhook_retry_wait: WebhookRetryWait = None,
    webhook_order: WebhookOrder = None,
    webhook_https_only: WebhookHttpsOnly = None,
    log_level: Annotated[LogLevel, typer.Option(help="uvicorn log level.")] = "warning",
) -> None:
    """Serve the simulator (when no subcommand is given). Fault options are those of 'faults set'.

    Example: vipps-billing simulator --host 127.0.0.1 --port 8070 --seed 42 --429-rate 0.02
    """
    if ctx.invoked_subcommand is not None:
        return
    try:
        config = configure(ctx.params)
    except SimulatorConfigError as exc:
        raise fail(str(exc)) from None
    listener = listen(host, port)
    typer.echo(f"Vipps simulator on http://{host}:{port} (admin API under /_simulator/)")
    run(config, listener, log_level)


def configure(params: Mapping[str, Any]) -> SimulatorConfig:
    """The environment's configuration with the options given on top; fault options replace SIMULATOR_FAULTS
    when they turn any fault on."""
    given = {
        "seed": params["seed"],
        "token_lifetime_seconds": params["token_lifetime"],
        "min_due_lead_days": params["min_due_lead_days"],
        "rate_limits_enabled": params["rate_limits"],
        "charges_per_minute": params["charges_per_minute"],
        "batch_creation_delay_seconds": params["batch_creation_delay"],
        "batch_creation_failure_rate": params["batch_failure_rate"],
        "unscheduled_charges_allowed": params["unscheduled_charges"],
        "auto_accept_after_seconds": params["auto_accept_after"],
        "merchants": params["merchants"],
        "webhook_timeout_seconds": params["webhook_timeout"],
        "webhook_retry_seconds": params["webhook_retry_wait"],
        "webhook_order": params["webhook_order"],
        "webhook_https_only": params["webhook_https_only"],
    }
    config = SimulatorConfig.from_env(**{name: value for name, value in given.items() if value is not None})
    requested = fault_config(params)
    if requested.active() or not config.faults.active():
        config = config.model_copy(update={"faults": requested})
    return config


def listen(host: str, port: int) -> socket.socket:
    """The bound socket, before anything is printed: a busy port is one line and exit code 1."""
    listener = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    # As uvicorn does: a restart need not wait for the old connections' TIME_WAIT.
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((host, port))
    except OSError as exc:
        listener.close()
        if exc.errno == errno.EADDRINUSE:
            raise fail(f"port {port} is in use") from None
        raise fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return listener


def run(config: SimulatorConfig, listener: socket.socket, log_level: str) -> None:
    import uvicorn  # only when serving: the admin commands do not need it

    from worker.simulator.app import create_app

    server = uvicorn.Server(
        uvicorn.Config(create_app(config), loop="uvloop", http="httptools", access_log=False, log_level=log_level)
    )
    server.run(sockets=[listener])
    if not server.started:
        raise typer.Exit(1)
