"""``vipps-billing demo``: the go-live checklist on a local stack (Redis, the simulator, a worker and the support
console)."""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from worker.cli.checklist import _events, exit_code, progress_bar, run_steps, show_report
from worker.cli.common import JsonOption, console, err_console, guard
from worker.cli.golive import SIMULATOR_PHONE, STEPS, Checklist, Report, SimulatorClock
from worker.core.control import Control, OperationError
from worker.local.console import ConsoleLogin
from worker.local.stack import Stack, local_stack, tail
from worker.runtime.settings import get_settings

STACK_STEPS = ("starting Redis", "starting the Vipps simulator", "starting the webhook receiver",
               "starting the support console", "starting the worker")


def demo(
    embedded_redis: Annotated[bool, typer.Option(
        help="Always start a private Redis, even if REDIS_URL is set or one answers on localhost:6379.")] = False,
    keep_running: Annotated[bool, typer.Option(
        help="After the report, keep everything up (console, worker, simulator) until Ctrl-C or SIGTERM.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Start Redis (or use yours), the simulator, a worker and the support console; run the go-live checklist
    through the queues.

    Redis: REDIS_URL if set, else localhost:6379 if it answers, else a private redis-server on a free
    port. The demo uses its own key namespace and removes its keys afterwards. Vipps is always the
    simulator here (use `vipps-billing checklist` for the Vipps test environment). The support console's
    URL and a one-time login for this run are printed first; with --keep-running it stays up after the
    report, to look at the demo's agreements and charges. Exits 0 only if all four go-live states hold;
    everything started is stopped, also on Ctrl-C.

    Example: vipps-billing demo --keep-running
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
                                        "metrics_url": stack.metrics_url, "console": {
                                            "url": stack.console.url, "username": stack.console.username}}
            _show_stack(stack, progress.console, as_json, keep_running)
            report = _checklist(stack, Path(state_dir) / "checklist.json", progress, task)
            if keep_running:
                progress.stop()
                extra["seconds"] = round(time.monotonic() - started, 1)
                _show(report, as_json, extra)
                _stay_up(stack.console)
            elif not as_json:
                progress.update(task, description="stopping everything")
    if not keep_running:
        extra["seconds"] = round(time.monotonic() - started, 1)
        _show(report, as_json, extra)
    if not as_json:
        took = "" if keep_running else f"demo took {extra['seconds']} s; "
        console.print(f"{took}Redis, simulator, webhook receiver, worker and support console are stopped")
    raise typer.Exit(exit_code(report))


def _show_stack(stack: Stack, out: Console, as_json: bool, keep_running: bool) -> None:
    """Where the parts answer, and the console's one-time login (on stderr, never in the JSON report; with
    --json only when the console stays up to be used)."""
    if not as_json:
        out.print(f"Redis     {stack.redis.shown} ({stack.redis.origin})")
        out.print(f"Simulator {stack.simulator_url}")
        out.print(f"Metrics   {stack.metrics_url}  (health: {stack.metrics_url[:-8]}/healthz)")
    if as_json and not keep_running:
        return
    lasts = "stays up after the report until Ctrl-C" if keep_running else "while the demo runs; --keep-running " \
        "keeps it up"
    out.print(f"Console   {stack.console.url}  ({lasts})", soft_wrap=True)
    # The one deliberate place the password is shown: it is made for this run and only its hash is on disk.
    out.print(f"Login     {stack.console.username} / {stack.console.password}  (one-time, this run only)",
              soft_wrap=True)


def _stay_up(login: ConsoleLogin) -> None:
    """Until Ctrl-C or SIGTERM (the local stack turns both into KeyboardInterrupt); then the stack stops as
    after any run, and the demo exits as its report says."""
    err_console.print(f"The support console stays up at {login.url} (login above); Ctrl-C or SIGTERM stops "
                      "everything.", soft_wrap=True)
    with contextlib.suppress(KeyboardInterrupt):
        while True:
            time.sleep(3600)
    err_console.print("stopping everything")


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
