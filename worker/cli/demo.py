"""``vipps-billing demo``: the go-live checklist on a local stack (Redis, the simulator and a worker)."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import Progress
from rich.table import Table

from worker.cli.checklist import _events, exit_code, progress_bar, run_steps, show_report
from worker.cli.common import JsonOption, console, err_console, guard
from worker.cli.golive import SIMULATOR_PHONE, STEPS, Checklist, Report, SimulatorClock
from worker.core.control import Control, OperationError
from worker.local.stack import Stack, local_stack, tail
from worker.runtime.settings import get_settings

STACK_STEPS = ("starting Redis", "starting the Vipps simulator", "starting the webhook receiver",
               "starting the support console", "starting the worker")


def demo(
    embedded_redis: Annotated[bool, typer.Option(
        help="Always start a private Redis, even if REDIS_URL is set or one answers on localhost:6379.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Start Redis (or use yours), the simulator and a worker; run the go-live checklist through the queues.

    Redis: REDIS_URL if set, else localhost:6379 if it answers, else a private redis-server on a free
    port. The demo uses its own key namespace and removes its keys afterwards. Vipps is always the
    simulator here (use `vipps-billing checklist` for the Vipps test environment). Exits 0 only if
    all four go-live states hold; everything started is stopped, also on Ctrl-C.

    Example: vipps-billing demo
    """
    started = time.monotonic()
    if any(os.environ.get(f"VIPPS_{n}") for n in ("CLIENT_ID", "CLIENT_SECRET", "SUBSCRIPTION_KEY")) \
            and not as_json:
        err_console.print("Vipps credentials are set, but the demo always runs against the simulator; "
                          "`vipps-billing checklist` uses them.")
    with tempfile.TemporaryDirectory(prefix="vipps-billing-demo-state-") as state_dir, guard(), \
            progress_bar(as_json) as progress:
        task = progress.add_task("starting", total=len(STACK_STEPS) + len(STEPS))

        def on_stack(text: str) -> None:
            progress.update(task, description=text, completed=STACK_STEPS.index(text))

        with local_stack(redis_url=get_settings().redis_url, force_embedded=embedded_redis,
                         on_step=on_stack) as stack:
            extra: dict[str, object] = {"redis": stack.redis.origin, "simulator_url": stack.simulator_url,
                                        "metrics_url": stack.metrics_url}
            if not as_json:
                progress.console.print(f"Redis     {stack.redis.shown} ({stack.redis.origin})")
                progress.console.print(f"Simulator {stack.simulator_url}")
                progress.console.print(f"Metrics   {stack.metrics_url}  (health: {stack.metrics_url[:-8]}/healthz)")
            report = _checklist(stack, Path(state_dir) / "checklist.json", progress, task)
            if not as_json:
                progress.update(task, description="stopping everything")
    extra["seconds"] = round(time.monotonic() - started, 1)
    _show(report, as_json, extra)
    if not as_json:
        console.print(f"demo took {extra['seconds']} s; Redis, simulator, webhook receiver and worker are stopped")
    raise typer.Exit(exit_code(report))


def _checklist(stack: Stack, state_file: Path, progress: Progress, task: object) -> Report:
    """The checklist through the stack's worker; a failure shows the end of the worker's log."""
    ops = Control(stack.redis.url, stack.settings)
    clock = SimulatorClock(stack.simulator_url)
    try:
        return run_steps(ops, Checklist.new_state("simulator", SIMULATOR_PHONE), state_file, clock, progress,
                         task, offset=len(STACK_STEPS), timeout=45.0)
    except OperationError as exc:
        raise OperationError(f"{exc}\nworker log (last lines):\n{tail(stack.worker_log)}") from None
    finally:
        clock.close()
        ops.close()


def _show(report: Report, as_json: bool, extra: dict[str, object]) -> None:
    """The checklist's report; in a narrow terminal without the observed column (`holds` says it) and with a
    charge under its agreement, so the ids stay whole and event names are not broken."""
    if as_json or not report.rows or console.width >= 120:
        show_report(report, as_json, extra)
        return
    table = Table(title=f"Go-live checklist ({report.state.env}, run {report.state.run_id})")
    for column in ("state", "holds", "agreement / charge"):
        table.add_column(column, no_wrap=True)
    table.add_column("events seen", min_width=15, overflow="fold")
    for row in report.rows:
        resource = row["agreement_id"] + (f"\n{row['charge_id']}" if row["charge_id"] else "")
        table.add_row(row["state"], "[green]yes[/green]" if row["holds"] else "[red]no[/red]", resource,
                      _events(row["events"], row.get("seen_by")))
    console.print(table)
    colour = {"passed": "green", "waiting": "yellow"}.get(report.status, "red")
    console.print(f"[{colour}]{report.status}[/{colour}]: {report.message}")
