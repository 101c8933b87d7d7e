"""The ``vipps-billing`` command line."""

from __future__ import annotations

import typer

from worker.simulator import cli as simulator_cli

app = typer.Typer(no_args_is_help=True)
app.add_typer(simulator_cli.app, name="simulator")


def main() -> None:
    app()
