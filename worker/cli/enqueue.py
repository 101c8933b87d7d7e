"""``vipps-billing enqueue``: validate commands from a JSON or JSONL file and put them on the queues."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from worker.cli.common import JsonOption, configured_merchants, emit_json, err_console, fail, guard
from worker.core.control import Control, OperationError
from worker.core.producer import InvalidCommand, prepare
from worker.local.redis import RedisUnavailable, find_redis
from worker.runtime.settings import get_settings
from worker.vipps.merchants import Merchants, UnknownMerchant

FINISHED = ("succeeded", "failed", "rejected", "dead_lettered")
Entry = tuple[str, Any]  # where it was ("line 3", "command 2") and what was there


def enqueue(
    file: Annotated[str, typer.Argument(help="JSON or JSONL file of commands, or - for standard input")],
    msn: Annotated[str | None, typer.Option(
        "--msn", help="The merchant (MSN) of commands that name none; with several merchants, each command "
        "needs one.")] = None,
    dry_run: Annotated[bool, typer.Option(help="Validate and report; send nothing.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Validate and enqueue commands (one JSON object, a JSON array, or one object per line).

    Every invalid command is reported with its line; if one is invalid, none is sent. A command naming an
    MSN this deployment does not serve (or a disabled one) is invalid, and so is one naming none when
    there are several merchants. Each goes to its merchant's own queues. Prints the
    command ids sent, one per line. Warns (stderr) about a command_id given twice (sent once) and
    about one the worker already finished (sent all the same: the worker carries it out only once and
    publishes its recorded events again, for a consumer that lost them).

    Example: vipps-billing enqueue charges-december.jsonl --dry-run
    """
    try:
        text = sys.stdin.read() if file == "-" else Path(file).read_text()
    except OSError as exc:
        raise fail(f"cannot read {file}: {exc.strerror}") from None
    entries, errors = read_entries(text)
    merchants = configured_merchants()
    prepared = _validate(entries, errors, merchants, _default_msn(merchants, msn))
    if errors:
        raise fail(f"{len(errors)} invalid command(s), nothing was sent: " + "; ".join(errors))
    unique = _unique(prepared, merchants)
    settings = get_settings()
    with guard():
        try:
            with find_redis(settings.redis_target(), configured_as=settings.redis_variable) as found:
                ops = Control(found.where, settings, merchants)
                try:
                    todo = unique
                    finished = _finished(ops, unique)
                    if todo and not dry_run:
                        ops.producer.queue.enqueue([wire for _, wire in todo])
                finally:
                    ops.close()
        except (RedisUnavailable, OSError) as exc:
            raise fail(f"cannot reach Redis: {exc}") from None
    ids = [str(wire["command_id"]) for _, wire in todo]
    if as_json:
        emit_json({"dry_run": dry_run, "sent" if not dry_run else "would_send": ids,
                   "skipped": len(prepared) - len(ids), "already_finished": finished})
        return
    for command_id in ids:
        typer.echo(command_id)
    again = f" ({len(finished)} already finished: their events are published again)" if finished else ""
    err_console.print(f"{'would enqueue' if dry_run else 'enqueued'} {len(ids)} command(s){again}")


def _default_msn(merchants: Merchants, msn: str | None) -> str | None:
    """The ``--msn`` given, once it names a merchant commands may be sent for."""
    if msn is None:
        return None
    try:
        return merchants.resolve(msn).msn
    except UnknownMerchant as exc:
        raise fail(f"--msn: {exc}") from None


def _validate(entries: list[Entry], errors: list[str], merchants: Merchants, msn: str | None) -> list[Entry]:
    """The commands in wire form (those naming no MSN with ``msn``); each problem, with where it was, in
    ``errors``. A command's merchant must be one this deployment serves, enabled, as the worker checks."""
    prepared = []
    for where, item in entries:
        try:
            wire = prepare(item if msn is None or item.get("msn") is not None else item | {"msn": msn})
            merchants.resolve(wire.get("msn"))
        except (InvalidCommand, UnknownMerchant) as exc:
            errors.append(f"{where}: {exc}")
            continue
        prepared.append((where, wire))
    return prepared


def _unique(prepared: list[Entry], merchants: Merchants) -> list[Entry]:
    """Each command once (the first): a command_id per merchant, as the ledger knows it; a warning names the
    others."""
    first: dict[tuple[str, str], str] = {}
    out = []
    for where, wire in prepared:
        command_id = str(wire["command_id"])
        key = (merchants.resolve(wire.get("msn")).msn, command_id)
        if key in first:
            err_console.print(f"warning: {where}: command_id {command_id} repeats {first[key]}; sent once",
                              soft_wrap=True)
            continue
        first[key] = where
        out.append((where, wire))
    return out


def _finished(ops: Control, prepared: list[Entry]) -> list[str]:
    """Ids the ledger has finished, each with a warning: the worker will not carry it out again."""
    out = []
    for where, wire in prepared:
        try:
            record = ops.record(str(wire["command_id"]), wire.get("msn"))
        except OperationError:  # a merchant the worker will reject: there is nothing finished to warn of
            continue
        if record and record.get("status") in FINISHED:
            err_console.print(f"warning: {where}: command_id {wire['command_id']} already {record['status']}; "
                              "the worker only publishes its events again", soft_wrap=True)
            out.append(str(wire["command_id"]))
    return out


def read_entries(text: str) -> tuple[list[Entry], list[str]]:
    """Commands from JSON (object or array) or JSONL, each with where it was, and every problem found."""
    stripped = text.strip()
    if not stripped:
        return [], ["no commands in input"]
    entries: list[Entry] = []
    errors: list[str] = []
    try:
        whole = json.loads(stripped)
        if isinstance(whole, list):
            entries = [(f"command {n}", item) for n, item in enumerate(whole, 1)]
        else:
            entries = [("command 1", whole)]
    except json.JSONDecodeError:
        for number, line in enumerate(stripped.splitlines(), 1):
            if not line.strip():
                continue
            try:
                entries.append((f"line {number}", json.loads(line)))
            except json.JSONDecodeError as exc:
                errors.append(f"line {number}: not valid JSON ({exc.msg})")
    good = []
    for where, item in entries:
        if isinstance(item, dict):
            good.append((where, item))
        else:
            errors.append(f"{where}: expected a JSON object")
    return good, errors


def parse_commands(text: str) -> list[dict[str, Any]]:
    """Commands from JSON (object or array) or JSONL; raises ValueError naming every bad line."""
    entries, errors = read_entries(text)
    if errors:
        raise ValueError("; ".join(errors))
    return [item for _, item in entries]
