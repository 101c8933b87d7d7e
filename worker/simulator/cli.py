"""``vipps-billing simulator``: serve the simulator, or talk to a running one."""

from __future__ import annotations

import typer

app = typer.Typer(help="Run the Vipps simulator or control a running one.", invoke_without_command=True)
