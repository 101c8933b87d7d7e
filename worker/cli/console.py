"""``vipps-billing console``: serve the support console, and make a password hash for its users file."""

from __future__ import annotations

import getpass
import sys
from typing import Annotated

import typer

from worker.cli.common import fail, guard
from worker.console import main as console_main
from worker.console.settings import SettingsError, load_settings
from worker.console.users import UsersError, hash_password

app = typer.Typer(no_args_is_help=True, help="The support console: web pages for support staff.\n\n"
                  "Example: vipps-billing console serve --port 8090")


@app.command("serve")
def serve(host: Annotated[str | None, typer.Option(help="Address to listen on. Default: CONSOLE_HOST.")] = None,
          port: Annotated[int | None, typer.Option(help="Port to listen on. Default: CONSOLE_PORT.")] = None) -> None:
    """Serve the support console (needs CONSOLE_SESSION_SECRET, and CONSOLE_USERS_FILE or CONSOLE_OIDC_*;
    see the README), and /metrics, /healthz, /readyz on CONSOLE_METRICS_PORT.

    Example: CONSOLE_USERS_FILE=users.yaml CONSOLE_SESSION_SECRET_FILE=secret vipps-billing console serve
    """
    overrides = {k: v for k, v in (("console_host", host), ("console_port", port)) if v is not None}
    try:
        settings = load_settings(**overrides)
        with guard():
            console_main.serve(settings)
    except (SettingsError, UsersError, console_main.CannotListen) as exc:
        raise fail(str(exc)) from None


@app.command("hash-password")
def hash_password_command() -> None:
    """Print an argon2 hash of a password read from stdin (asked for, unechoed, at a terminal), for the
    users file's password_hash.

    Example: vipps-billing console hash-password < password.txt
    """
    password = getpass.getpass("Password: ") if sys.stdin.isatty() else sys.stdin.readline().rstrip("\r\n")
    if not password:
        raise fail("no password given on stdin")
    typer.echo(hash_password(password))
