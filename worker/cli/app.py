"""The ``vipps-billing`` command line: the root command, and ``main``, the CLI's composition root."""

from __future__ import annotations

import logging
import sys

import typer

from worker.cli import (
    agreement,
    bench,
    charge,
    checklist,
    command,
    console,
    demo,
    dlq,
    enqueue,
    merchants,
    status,
    webhooks,
)
from worker.cli import worker as worker_command
from worker.cli.common import KNOWN_ERRORS, describe, err_console
from worker.simulator import cli as simulator_cli

try:  # typer 0.2x carries its own click
    from typer._click.exceptions import ClickException, NoArgsIsHelpError, UsageError
except ImportError:  # pragma: no cover - older typer on the click package
    from click.exceptions import ClickException, NoArgsIsHelpError, UsageError  # type: ignore[assignment]

app = typer.Typer(no_args_is_help=True,
                  help="Vipps MobilePay recurring billing worker: commands in, exactly-once effects, events out.\n\n"
                  "Example: vipps-billing demo")
app.add_typer(simulator_cli.app, name="simulator")
app.add_typer(agreement.app, name="agreement")
app.add_typer(charge.app, name="charge")
app.add_typer(command.app, name="command")
app.add_typer(dlq.app, name="dlq")
app.add_typer(merchants.app, name="merchants")
app.add_typer(bench.app, name="bench")
app.add_typer(webhooks.app, name="webhooks")
app.add_typer(console.app, name="console")
for single in (demo.demo, checklist.checklist, worker_command.worker, enqueue.enqueue, status.status):
    app.command()(single)


def _plain_help(command: object) -> None:
    """Click's own help for a command tree: its long option names (the simulator's fault knobs) stay whole
    at 80 columns, where rich's option table cuts them short."""
    if hasattr(command, "rich_markup_mode"):
        command.rich_markup_mode = None
    for sub in getattr(command, "commands", {}).values():
        _plain_help(sub)


def main() -> None:
    # The client's own log lines would repeat what the one-line error says.
    logging.getLogger("worker").addHandler(logging.NullHandler())
    cli = typer.main.get_command(app)
    _plain_help(cli.commands["simulator"])  # type: ignore[attr-defined]
    try:
        code = cli.main(standalone_mode=False)
    except NoArgsIsHelpError as exc:
        if exc.format_message().strip():  # a group named alone: its help (rich has printed it already)
            exc.show()
        sys.exit(exc.exit_code)
    except ClickException as exc:  # mistyped options and arguments: one line, as every other error
        hint = f" (see '{exc.ctx.command_path} --help')" if isinstance(exc, UsageError) and exc.ctx else ""
        err_console.print(f"[red]error: {exc.format_message()}{hint}[/red]", soft_wrap=True)
        sys.exit(exc.exit_code)
    except typer.Abort:
        err_console.print("[red]error: aborted[/red]")
        sys.exit(1)
    except KNOWN_ERRORS as exc:  # last resort: a known error is never a traceback
        err_console.print(f"[red]error: {describe(exc)}[/red]", soft_wrap=True)
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
