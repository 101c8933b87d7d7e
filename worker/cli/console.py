"""``vipps-billing console``: serve the support console, make a password hash for its users file, and end a
user's sessions."""

from __future__ import annotations

import getpass
import sys
from typing import Annotated

import typer

from worker.cli.common import console, control, fail, guard
from worker.console import main as console_main
from worker.console.settings import MAX_SESSION_MINUTES, SettingsError, load_settings
from worker.console.users import UsersError, hash_password
from worker.runtime.settings import get_settings
from worker.store.clock import now_ms
from worker.store.revocations import Revocations

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


@app.command("revoke")
def revoke(user: Annotated[str, typer.Argument(help="The console user whose sessions end: the name the "
                                              "console shows (login name; with SSO preferred_username, else email, "
                                              "else sub).")]) -> None:
    """End every console session USER has now, at once and in every browser (someone who left, a lost laptop);
    a later login works. Remove them from the users file or the identity provider to keep them out.

    Example: vipps-billing console revoke alice
    """
    if not user.strip() or len(user) > 256:
        raise fail("give the user's name (1 to 256 characters)")
    with guard(), control(get_settings(), redis_only=True) as ops:
        Revocations(ops.redis, ops.keys, session_seconds=MAX_SESSION_MINUTES * 60).end_user(user, now_ms())
    console.print(f"Every console session of {user} issued until now is refused.", soft_wrap=True, markup=False)
