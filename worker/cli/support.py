"""What the ``agreement`` and ``charge`` commands share: a lookup at Vipps, an action through the queue.

Lookups read Vipps directly (they change nothing), as the merchant ``--msn`` names (default: the only one).
A stop, update, capture, refund or cancel is a command on the queue like any other, carrying that
merchant's MSN: the worker carries it out exactly once and we wait for its outcome.
"""

from __future__ import annotations

import getpass
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import typer

from worker.cli.common import confirm, console, control, emit_json, err_console, guard
from worker.core.actions import Action
from worker.core.control import Outcome, new_command_id
from worker.runtime.settings import get_settings
from worker.vipps import VippsClient

T = TypeVar("T")

AgreementId = Annotated[str, typer.Argument(help="Vipps agreement id, e.g. agr_5kSeqz")]
ReasonOption = Annotated[str, typer.Option("--reason", help="Why (kept with the command and its outcome event).")]
OperatorOption = Annotated[str | None, typer.Option(
    "--operator", help="Who is doing this (kept with the command). Default: your login name.")]


def operator_name(operator: str | None) -> str:
    """Who is acting: ``--operator``, else the login name."""
    if operator is not None:
        return operator
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no login name (a container without a passwd entry)
        return "unknown"


def checked(plan: Callable[[VippsClient], Action], msn: str | None, yes: bool) -> Action:
    """A support action checked against Vipps now (refused with nothing sent), then confirmed."""
    action = read(plan, msn)
    confirm(f"{action.summary}?", yes)
    return action


def read(call: Callable[[VippsClient], T], msn: str | None = None) -> T:
    """One lookup at Vipps as the merchant ``msn``, with the worker's shared token and rate budgets; errors
    become one line."""
    with guard(), control(get_settings()) as ops:
        return call(ops.vipps(msn=msn))


def act(command: dict[str, Any], timeout: float, as_json: bool, done_event: str, msn: str | None = None) -> None:
    """Send a support command as the merchant ``msn``, wait for the worker's outcome, print it; errors become
    one line."""
    with guard(), control(get_settings()) as ops:
        merchant = ops.merchant(msn).msn
        command_id = ops.send({"command_id": new_command_id(), **command, "msn": merchant})
        if as_json:
            outcome = ops.wait(command_id, timeout, msn=merchant)
        else:
            with err_console.status(f"{command['type']} sent as {command_id}; waiting for the worker") as spinner:
                outcome = ops.wait(command_id, timeout, msn=merchant, on_progress=lambda p: spinner.update(
                    f"{command['type']} {command_id}: {p.describe()}"))
    _show_outcome(outcome, as_json, done_event)


def _show_outcome(outcome: Outcome, as_json: bool, done_event: str) -> None:
    if as_json:
        emit_json({"command_id": outcome.command_id, "status": outcome.status, "events": outcome.events})
        return
    event = outcome.event(done_event) or {}
    completion = event.get("completion")
    note = " (Vipps accepted it and will carry it out shortly)" if completion == "accepted" else ""
    console.print(f"[green]{done_event}[/green] {event.get('agreement_id') or ''} {event.get('charge_id') or ''}"
                  f"{note}  command {outcome.command_id}")
