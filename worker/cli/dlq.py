"""``vipps-billing dlq``: list, show, replay and purge dead letters."""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from worker.cli.common import (
    JsonOption,
    MsnFilterOption,
    YesOption,
    confirm,
    console,
    control,
    emit_json,
    err_console,
    fail,
    guard,
    known_msn,
    several_merchants,
    since_option,
    when,
)
from worker.core.control import Control
from worker.core.replay import Decision
from worker.runtime.settings import get_settings
from worker.store.deadletters import DeadLetter

app = typer.Typer(no_args_is_help=True, help="Dead letters: commands the worker will not carry out by itself.\n\n"
                  "Example: vipps-billing dlq replay --reason retries_exhausted --dry-run")

ReasonOption = Annotated[str | None, typer.Option(help="Only this reason, e.g. vipps_problem, retries_exhausted.")]
TypeOption = Annotated[str | None, typer.Option("--type", help="Only this command type, e.g. charge.capture.")]
SinceOption = Annotated[int | None, since_option("Only newer than this: 2h, 1d, or an ISO date-time.")]
LimitOption = Annotated[int, typer.Option(help="At most this many.", min=1)]
IdsArgument = Annotated[list[str] | None, typer.Argument(help="Dead-letter ids (from `dlq list`).")]


def _select(ops: Control, ids: list[str] | None, reason: str | None, ctype: str | None, since: int | None,
            limit: int, msn: str | None = None) -> list[DeadLetter]:
    """The dead letters named by id, or those matching the filters; with ``msn``, only that merchant's."""
    msn = known_msn(ops, msn, required=False)
    if ids:
        return [_get(ops, letter_id, msn) for letter_id in ids]
    return ops.dead_letters.find(limit=limit, reason=reason, command_type=ctype, since_ms=since, msn=msn)


def _get(ops: Control, letter_id: str, msn: str | None = None) -> DeadLetter:
    letter = ops.dead_letters.get(letter_id)
    if letter is None:
        raise fail(f"no dead letter {letter_id}")
    if msn is not None and letter.msn != msn:
        raise fail(f"dead letter {letter_id} is not of MSN {msn} (it is of {letter.msn or 'no merchant'})")
    return letter


def _summary(letter: DeadLetter) -> dict[str, object]:
    return {"id": letter.id, "at": when(letter.at_ms), "reason": letter.reason, "command_id": letter.command_id,
            "type": letter.command_type, "msn": letter.msn, "detail": letter.detail,
            "replayed_as": letter.replayed_as}


@app.command("list")
def dlq_list(reason: ReasonOption = None, ctype: TypeOption = None, since: SinceOption = None,
             msn: MsnFilterOption = None, limit: LimitOption = 50, as_json: JsonOption = False) -> None:
    """List dead letters, newest first (with several merchants, each with its MSN).

    Example: vipps-billing dlq list --type charge.capture --since 1d
    """
    with guard(), control(get_settings(), redis_only=True) as ops:
        letters = _select(ops, None, reason, ctype, since, limit, msn)
        total = ops.dead_letters.count()
        by_merchant = several_merchants(ops)
    if as_json:
        emit_json([_summary(x) for x in letters])
        return
    console.print(_list_table(letters, total, by_merchant))


def _list_table(letters: list[DeadLetter], total: int, by_merchant: bool) -> Table:
    """Narrower than 140 columns, the two ids stay whole; when, type and detail are in `dlq show`. With several
    merchants, each letter's MSN."""
    wide = console.width >= 140
    columns = {"id": {"no_wrap": True, "min_width": 24}, "at": {"overflow": "fold"}, "msn": {"no_wrap": True},
               "reason": {"overflow": "fold"}, "command": {"no_wrap": not wide, "overflow": "fold"},
               "type": {"overflow": "fold"}, "detail": {"overflow": "fold"}, "replayed as": {"overflow": "fold"}}
    shown = [name for name in columns if (wide or name in ("id", "msn", "reason", "command"))
             and (by_merchant or name != "msn")]
    table = Table(title=f"Dead letters ({len(letters)} shown of {total})")
    for name in shown:
        table.add_column(name, **columns[name])  # type: ignore[arg-type]
    for x in letters:
        row = {"id": x.id, "at": when(x.at_ms), "msn": x.msn or "-", "reason": x.reason,
               "command": x.command_id or "-", "type": x.command_type or "-", "detail": x.detail[:80],
               "replayed as": ", ".join(x.replayed_as) or "-"}
        table.add_row(*(row[name] for name in shown))
    return table


@app.command("show")
def dlq_show(letter_id: Annotated[str, typer.Argument(help="Dead-letter id.")], msn: MsnFilterOption = None,
             as_json: JsonOption = False) -> None:
    """Show one dead letter in full: the command, the problem, and any replays.

    Example: vipps-billing dlq show 3f2a9c0d1e4b5a6978c0d1e2
    """
    with guard(), control(get_settings(), redis_only=True) as ops:
        letter = _get(ops, letter_id, known_msn(ops, msn, required=False))
    data = asdict(letter)
    if as_json:
        emit_json(data)
        return
    table = Table(title=f"Dead letter {letter.id}", show_header=False)
    for name in ("reason", "detail", "command_id", "command_type", "msn", "attempts", "queue", "actor"):
        table.add_row(name, str(data[name]) if data[name] is not None else "-")
    table.add_row("at", when(letter.at_ms))
    table.add_row("replayed as", ", ".join(f"{cid} ({when(ms)})" for cid, ms in
                                           zip(letter.replayed_as, letter.replayed_ms, strict=False)) or "-")
    console.print(table)
    if letter.problem:
        console.print("problem:")
        console.print_json(data=letter.problem)
    console.print("payload:")
    console.print_json(data=letter.payload)


@app.command("replay")
def dlq_replay(
    ids: IdsArgument = None,
    reason: ReasonOption = None,
    ctype: TypeOption = None,
    since: SinceOption = None,
    msn: MsnFilterOption = None,
    limit: LimitOption = 100,
    all_letters: Annotated[bool, typer.Option("--all", help="Every dead letter (up to --limit) if no filter.")] = False,
    dry_run: Annotated[bool, typer.Option(help="Check Vipps and show what would be replayed; send nothing.")] = False,
    rate: Annotated[float, typer.Option(help="At most this many commands per second.", min=0.1)] = 5.0,
    changes: Annotated[list[str] | None, typer.Option(
        "--set", help="FIELD=VALUE to change in the replayed command (repeatable), e.g. --set due=2026-12-05; "
        "validated like a new command.")] = None,
    yes: YesOption = False,
    as_json: JsonOption = False,
) -> None:
    """Replay dead commands that are still needed, each under a new id <command_id>.rN.

    Vipps is asked first, as each letter's merchant (is the charge still RESERVED, is money left to
    refund, does the charge already exist, ...); only what is still needed is sent again.

    Example: vipps-billing dlq replay --type charge.capture --since 1d --dry-run
    """
    if not ids and not (reason or ctype or since is not None or msn or all_letters):
        raise fail("name dead-letter ids, or select with --reason/--type/--since/--msn, or pass --all")
    fields = _changes(changes or [])
    with guard(), control(get_settings()) as ops:
        letters = _select(ops, ids, reason, ctype, since, limit, msn)
        decisions = _decide_all(ops, letters, as_json, fields)
        todo = [d for d in decisions if d.replay]
        if todo and not dry_run:
            confirm(f"Replay {len(todo)} of {len(decisions)} dead letter(s)?", yes)
            _send_all(ops, todo, rate, as_json)
    if as_json:
        emit_json({"dry_run": dry_run, "decisions": [d.as_dict() for d in decisions]})
        return
    table = Table(title=("Would replay" if dry_run else "Replay") + f": {len(todo)} of {len(decisions)}")
    for column in ("dead letter", "command", "type", "replay", "why", "new command id"):
        table.add_column(column, overflow="fold")
    for d in decisions:
        table.add_row(d.letter.id, d.letter.command_id or "-", d.letter.command_type or "-",
                      "[green]yes[/green]" if d.replay else "no", d.why, d.new_command_id or "-")
    console.print(table)


def _progress(as_json: bool) -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=err_console, disable=as_json, transient=True)


def _changes(pairs: list[str]) -> dict[str, Any]:
    """``FIELD=VALUE`` pairs; a value that reads as JSON (a number, true, null, an object) is taken as such."""
    fields: dict[str, Any] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise typer.BadParameter(f"{pair!r} is not FIELD=VALUE", param_hint="--set")
        try:
            fields[name.strip()] = json.loads(value)
        except ValueError:
            fields[name.strip()] = value
    if {"command_id", "type"} & fields.keys():
        raise typer.BadParameter("command_id and type cannot be changed", param_hint="--set")
    return fields


def _decide_all(ops: Control, letters: list[DeadLetter], as_json: bool,
                changes: dict[str, Any] | None = None) -> list[Decision]:
    out = []
    with _progress(as_json) as progress:
        task = progress.add_task("checking Vipps", total=len(letters))
        for letter in letters:
            out.append(ops.decide_replay(letter, changes))
            progress.advance(task)
    return out


def _send_all(ops: Control, todo: list[Decision], rate: float, as_json: bool) -> None:
    gap = 1.0 / rate
    with _progress(as_json) as progress:
        task = progress.add_task("replaying", total=len(todo))
        for d in todo:
            started = time.monotonic()
            ops.replay(d)
            progress.advance(task)
            time.sleep(max(0.0, gap - (time.monotonic() - started)))


@app.command("purge")
def dlq_purge(
    ids: IdsArgument = None,
    reason: ReasonOption = None,
    ctype: TypeOption = None,
    older_than: Annotated[int | None, since_option("Only older than this: 30d, 12h, or an ISO date-time.")] = None,
    msn: MsnFilterOption = None,
    all_letters: Annotated[bool, typer.Option("--all", help="Every dead letter matching the filters.")] = False,
    force: Annotated[bool, typer.Option(
        "--force", help="Also delete dead letters younger than DEAD_LETTER_RETENTION_DAYS.")] = False,
    yes: YesOption = False,
    as_json: JsonOption = False,
) -> None:
    """Delete dead letters for good.

    Dead letters younger than DEAD_LETTER_RETENTION_DAYS (30 days at least) are kept unless --force.

    Example: vipps-billing dlq purge --reason invalid_command --older-than 7d --yes
    """
    if not ids and not (reason or ctype or older_than is not None or msn or all_letters):
        raise fail("name dead-letter ids, or select with --reason/--type/--older-than/--msn, or pass --all")
    with guard(), control(get_settings(), redis_only=True) as ops:
        letters = _select(ops, ids, reason, ctype, None, 1_000_000, msn)
        if older_than is not None:
            letters = [x for x in letters if x.at_ms < older_than]
        _refuse_young(letters, ops.dead_letters.retention_ms, force)
        if letters:
            confirm(f"Delete {len(letters)} dead letter(s) for good?", yes)
        removed = ops.dead_letters.remove([x.id for x in letters])
    if as_json:
        emit_json({"removed": removed, "ids": [x.id for x in letters]})
    else:
        console.print(f"removed {removed} dead letter(s)")


def _refuse_young(letters: list[DeadLetter], retention_ms: int, force: bool) -> None:
    """The README promises dead letters are kept for the retention period: deleting younger ones needs --force."""
    cutoff = int(time.time() * 1000) - retention_ms
    young = sum(1 for x in letters if x.at_ms > cutoff)
    if young and not force:
        days = retention_ms // 86_400_000
        raise fail(f"{young} of {len(letters)} dead letter(s) are younger than DEAD_LETTER_RETENTION_DAYS "
                   f"({days} days); pass --force to delete all {len(letters)}")
