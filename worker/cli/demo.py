"""``vipps-billing demo`` and ``vipps-billing checklist``: the go-live checklist, locally or against Vipps."""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from worker.cli.common import JsonOption, console, emit_json, err_console, fail, guard, open_ops
from worker.cli.golive import STEPS, Checklist, Report, RunState, SimulatorClock
from worker.core.control import Control, OperationError
from worker.local.stack import local_stack, tail
from worker.runtime.settings import get_settings

SIMULATOR_PHONE = "4791234567"
STACK_STEPS = ("starting Redis", "starting the Vipps simulator", "starting the worker")


def _progress(as_json: bool) -> Progress:
    return Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), console=err_console, disable=as_json)


def show_report(report: Report, as_json: bool, extra: dict[str, object] | None = None) -> None:
    if as_json:
        emit_json({"status": report.status, "message": report.message, "run_id": report.state.run_id,
                   "env": report.state.env, "agreements": report.state.agreements, "charges": report.state.charges,
                   "due": report.state.due, "results": report.rows} | (extra or {}))
        return
    if report.rows:
        table = Table(title=f"Go-live checklist ({report.state.env}, run {report.state.run_id})")
        for column in ("state", "holds", "agreement", "charge", "observed", "events seen"):
            table.add_column(column, overflow="fold")
        for row in report.rows:
            table.add_row(row["state"], "[green]yes[/green]" if row["holds"] else "[red]no[/red]",
                          row["agreement_id"], row["charge_id"] or "-", row["observed"], _events(row["events"]))
        console.print(table)
    colour = {"passed": "green", "waiting": "yellow"}.get(report.status, "red")
    console.print(f"[{colour}]{report.status}[/{colour}]: {report.message}")


def _events(kinds: list[str]) -> str:
    """Compact: the outcome and transition events, without the snapshots our own checks asked for."""
    shown = [k.split(".", 1)[1].replace("status_changed", "") for k in kinds
             if not k.endswith((".snapshot", ".charges"))]
    return ", ".join(shown)


def _exit_code(report: Report) -> int:
    return {"passed": 0, "waiting": 3}.get(report.status, 1)


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
    state_dir = tempfile.TemporaryDirectory(prefix="vipps-billing-demo-state-")
    state_file = Path(state_dir.name) / "checklist.json"
    report: Report | None = None
    extra: dict[str, object] = {}
    with guard(), _progress(as_json) as progress:
        task = progress.add_task("starting", total=len(STACK_STEPS) + len(STEPS))

        def on_stack(text: str) -> None:
            progress.update(task, description=text, completed=STACK_STEPS.index(text))

        with local_stack(redis_url=get_settings().redis_url, force_embedded=embedded_redis,
                         on_step=on_stack) as stack:
            extra = {"redis": stack.redis.origin, "simulator_url": stack.simulator_url,
                     "metrics_url": stack.metrics_url}
            if not as_json:
                progress.console.print(f"Redis     {stack.redis.shown} ({stack.redis.origin})")
                progress.console.print(f"Simulator {stack.simulator_url}")
                progress.console.print(f"Metrics   {stack.metrics_url}  (health: {stack.metrics_url[:-8]}/healthz)")
            ops = Control(stack.redis.url, stack.settings)
            clock = SimulatorClock(stack.simulator_url)
            try:
                report = _run(ops, Checklist.new_state("simulator", SIMULATOR_PHONE), state_file, clock, progress,
                              task, offset=len(STACK_STEPS), timeout=45.0)
            except OperationError as exc:
                raise OperationError(f"{exc}\nworker log (last lines):\n{tail(stack.worker_log)}") from None
            finally:
                clock.close()
                ops.close()
            if not as_json:
                progress.update(task, description="stopping everything")
    assert report is not None
    extra["seconds"] = round(time.monotonic() - started, 1)
    show_report(report, as_json, extra)
    if not as_json:
        console.print(f"demo took {extra['seconds']} s; Redis, simulator and worker are stopped")
    raise typer.Exit(_exit_code(report))


def _run(ops: Control, state: RunState, path: Path, clock: SimulatorClock | None, progress: Progress,
         task: object, *, offset: int, timeout: float) -> Report:
    def on_step(text: str, index: int) -> None:
        progress.update(task, description=text, completed=offset + index)  # type: ignore[arg-type]

    report = Checklist(ops, state, path, clock=clock, progress=on_step, timeout=timeout).run()
    progress.update(task, completed=offset + len(STEPS))  # type: ignore[arg-type]
    return report


def _worker_appears(ops: Control, within: float) -> bool:
    """A worker beats on its queues; one started a moment ago gets a few seconds."""
    deadline = time.monotonic() + within
    while ops.workers_alive() == 0:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.25)
    return True


def default_state_file(env: str) -> Path:
    return Path.home() / ".vipps-billing" / f"checklist-{env}.json"


def checklist(
    resume: Annotated[bool, typer.Option(help="Finish the run recorded in the state file.")] = False,
    restart: Annotated[bool, typer.Option(help="Start a new run even if an unfinished one is recorded.")] = False,
    state_file: Annotated[Path | None, typer.Option(
        help="Where the run records what it created. Default: ~/.vipps-billing/checklist-<env>.json")] = None,
    phone: Annotated[str | None, typer.Option(
        help="Test user's phone number for force-accept (required for the Vipps test environment).")] = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for each step.")] = 60.0,
    as_json: JsonOption = False,
) -> None:
    """Run the go-live checklist through a running worker: the simulator by default, Vipps test with VIPPS_ENV=test.

    Needs a worker consuming the queues of REDIS_URL. On the simulator it moves the clock and
    finishes at once. At Vipps, charges complete on their due date (tomorrow): the run records
    what it created and exits 3; run it again with --resume after 08:00 UTC on the due date.

    Example: VIPPS_ENV=test vipps-billing checklist --phone 4712345678 && vipps-billing checklist --resume
    """
    from worker.vipps import load_settings
    from worker.vipps.config import VippsEnvironment

    with guard():
        settings = load_settings()
        if settings.env is VippsEnvironment.PRODUCTION:
            raise fail("the checklist runs in the test environment or on the simulator, not in production")
        env = settings.env.value
        path = state_file or default_state_file(env)
        if resume:
            state = RunState.load(path)
            if state.env != env:
                raise fail(f"the run in {path} was made against {state.env}, but VIPPS_ENV is {env}")
        else:
            if path.exists() and not restart:
                previous = RunState.load(path)
                if not previous.finished:
                    raise fail(f"an unfinished run ({previous.run_id}, started {previous.started_at}) is recorded "
                               f"in {path}: finish it with --resume, or start over with --restart")
            if settings.env is VippsEnvironment.TEST and not phone:
                raise fail("--phone is required in the Vipps test environment (a test user's number)")
            state = Checklist.new_state(env, phone or SIMULATOR_PHONE)
        ops = open_ops()
        clock = SimulatorClock(settings.url) if settings.env is VippsEnvironment.SIMULATOR else None
        try:
            if not _worker_appears(ops, 15.0):
                raise fail("no worker is consuming the queues (start one with `vipps-billing worker`, "
                           "or try `vipps-billing demo`)")
            with _progress(as_json) as progress:
                task = progress.add_task("checklist", total=len(STEPS))
                report = _run(ops, state, path, clock, progress, task, offset=0, timeout=timeout)
        finally:
            if clock is not None:
                clock.close()
            ops.close()
    show_report(report, as_json, {"state_file": str(path)})
    if not as_json:
        console.print(f"state: {path}")
    raise typer.Exit(_exit_code(report))


def register(app: typer.Typer) -> None:
    command: Callable[..., None]
    for command in (demo, checklist):
        app.command()(command)
