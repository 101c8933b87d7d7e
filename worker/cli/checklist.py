"""``vipps-billing checklist``: the go-live checklist through a running worker; and how a run is shown.

The steps themselves are in ``worker.cli.golive``; ``demo`` shows its run the same way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from worker.cli.common import (
    JsonOption,
    MsnOption,
    configured_merchants,
    console,
    control,
    emit_json,
    err_console,
    fail,
    guard,
    resolve_merchant,
)
from worker.cli.golive import SIMULATOR_PHONE, STEPS, Checklist, Report, RunState, SimulatorClock
from worker.core.control import Control
from worker.local.wait import wait_until
from worker.runtime.settings import get_settings
from worker.vipps import VippsSettings, load_settings
from worker.vipps.config import VippsEnvironment


def progress_bar(as_json: bool) -> Progress:
    return Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), console=err_console, disable=as_json)


def run_steps(ops: Control, state: RunState, path: Path, clock: SimulatorClock | None, progress: Progress,
              task: object, *, offset: int, timeout: float) -> Report:
    """The checklist's steps, each shown on the progress bar after the ``offset`` steps before them."""
    def on_step(text: str, index: int) -> None:
        progress.update(task, description=text, completed=offset + index)  # type: ignore[arg-type]

    def on_notice(text: str) -> None:
        progress.console.print(f"  {text}")  # above the bar; on stderr, so --json output stays clean

    report = Checklist(ops, state, path, clock=clock, progress=on_step, timeout=timeout, notice=on_notice).run()
    progress.update(task, completed=offset + len(STEPS))  # type: ignore[arg-type]
    return report


def show_report(report: Report, as_json: bool, extra: dict[str, object] | None = None) -> None:
    if as_json:
        emit_json({"status": report.status, "message": report.message, "run_id": report.state.run_id,
                   "env": report.state.env, "msn": report.state.msn, "agreements": report.state.agreements,
                   "charges": report.state.charges, "due": report.state.due, "results": report.rows} | (extra or {}))
        return
    if report.rows:
        merchant = f", MSN {report.state.msn}" if report.state.msn else ""
        table = Table(title=f"Go-live checklist ({report.state.env}{merchant}, run {report.state.run_id})")
        for column in ("state", "holds", "agreement", "charge", "observed", "events seen"):
            table.add_column(column, overflow="fold")
        for row in report.rows:
            table.add_row(row["state"], "[green]yes[/green]" if row["holds"] else "[red]no[/red]",
                          row["agreement_id"], row["charge_id"] or "-", row["observed"],
                          _events(row["events"], row.get("seen_by")))
        console.print(table)
    colour = {"passed": "green", "waiting": "yellow"}.get(report.status, "red")
    console.print(f"[{colour}]{report.status}[/{colour}]: {report.message}")


def _events(kinds: list[str], seen_by: dict[str, str] | None = None) -> str:
    """Compact: the outcome and transition events, without the snapshots our own checks asked for; a
    transition says what saw it first (webhook, poll, or the command's own fetch)."""
    by = seen_by or {}
    shown = [k.split(".", 1)[1].replace("status_changed", "") + (f" ({by[k]})" if k in by else "") for k in kinds
             if not k.endswith((".snapshot", ".charges"))]
    return ", ".join(shown)


def exit_code(report: Report) -> int:
    return {"passed": 0, "waiting": 3}.get(report.status, 1)


def default_state_file(env: str, msn: str | None = None) -> Path:
    """``checklist-<env>.json``; with several merchants one per merchant, ``checklist-<env>-<msn>.json``."""
    return Path.home() / ".vipps-billing" / (f"checklist-{env}-{msn}.json" if msn else f"checklist-{env}.json")


def checklist(
    resume: Annotated[bool, typer.Option(help="Finish the run recorded in the state file.")] = False,
    restart: Annotated[bool, typer.Option(help="Start a new run even if an unfinished one is recorded.")] = False,
    state_file: Annotated[Path | None, typer.Option(
        help="Where the run records what it created. Default: ~/.vipps-billing/checklist-<env>.json")] = None,
    phone: Annotated[str | None, typer.Option(
        help="Test user's phone number for force-accept (required for the Vipps test environment).")] = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for each step.")] = 60.0,
    msn: MsnOption = None,
    as_json: JsonOption = False,
) -> None:
    """Run the go-live checklist through a running worker: the simulator by default, Vipps test with VIPPS_ENV=test.

    Needs a worker consuming the queues of REDIS_URL. On the simulator it moves the clock and
    finishes at once. At Vipps, charges complete on their due date (tomorrow): the run records
    what it created and exits 3; run it again with --resume after 08:00 UTC on the due date.
    A run is for one merchant (--msn with several; each has its own default state file).

    Example: VIPPS_ENV=test vipps-billing checklist --phone 4712345678 && vipps-billing checklist --resume
    """
    with guard():
        settings = load_settings()
        if settings.env is VippsEnvironment.PRODUCTION:
            raise fail("the checklist runs in the test environment or on the simulator, not in production")
        merchants = configured_merchants()
        merchant = resolve_merchant(merchants, msn).msn
        path = state_file or default_state_file(settings.env.value, merchant if merchants.only is None else None)
        state = _run_state(settings, path, resume=resume, restart=restart, phone=phone, msn=merchant)
        clock = SimulatorClock(settings.url) if settings.env is VippsEnvironment.SIMULATOR else None
        try:
            with control(get_settings()) as ops:
                # A worker beats on its queues; one started a moment ago gets a few seconds.
                wait_until(ops.workers_alive, 15.0, "a worker", every=0.25, error=lambda _: fail(
                    "no worker is consuming the queues (start one with `vipps-billing worker`, "
                    "or try `vipps-billing demo`)"))
                with progress_bar(as_json) as progress:
                    task = progress.add_task("checklist", total=len(STEPS))
                    report = run_steps(ops, state, path, clock, progress, task, offset=0, timeout=timeout)
        finally:
            if clock is not None:
                clock.close()
    show_report(report, as_json, {"state_file": str(path)})
    if not as_json:
        console.print(f"state: {path}")
    raise typer.Exit(exit_code(report))


def _run_state(settings: VippsSettings, path: Path, *, resume: bool, restart: bool, phone: str | None,
               msn: str | None = None) -> RunState:
    """The recorded run to resume (of the merchant ``msn``), or a new one for it (refusing to overwrite an
    unfinished run unless ``restart``)."""
    env = settings.env.value
    if resume:
        state = RunState.load(path)
        if state.env != env:
            raise fail(f"the run in {path} was made against {state.env}, but VIPPS_ENV is {env}")
        if msn and state.msn not in (None, msn):
            raise fail(f"the run in {path} is for MSN {state.msn}, not {msn}")
        state.msn = state.msn or msn
        return state
    if path.exists() and not restart:
        previous = RunState.load(path)
        if not previous.finished:
            raise fail(f"an unfinished run ({previous.run_id}, started {previous.started_at}) is recorded "
                       f"in {path}: finish it with --resume, or start over with --restart")
    if settings.env is VippsEnvironment.TEST and not phone:
        raise fail("--phone is required in the Vipps test environment (a test user's number)")
    return Checklist.new_state(env, phone or SIMULATOR_PHONE, msn)
