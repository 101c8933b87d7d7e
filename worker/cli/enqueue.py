"""``vipps-billing enqueue``: validate commands from a JSON or JSONL file and put them on the queues."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from worker.cli.common import fail
from worker.core.producer import InvalidCommand, Producer, prepare
from worker.local.redis import RedisUnavailable, find_redis
from worker.runtime.settings import get_settings


def enqueue(
    file: Annotated[str, typer.Argument(help="JSON or JSONL file of commands, or - for standard input")],
) -> None:
    """Validate and enqueue commands (one JSON object, a JSON array, or one object per line).

    Example: vipps-billing enqueue charges-december.jsonl
    """
    try:
        text = sys.stdin.read() if file == "-" else Path(file).read_text()
    except OSError as exc:
        raise fail(f"cannot read {file}: {exc.strerror}") from None
    try:
        commands = parse_commands(text)
        prepared = [prepare(c) for c in commands]
    except (ValueError, InvalidCommand) as exc:
        raise fail(str(exc)) from None
    settings = get_settings()
    try:
        with find_redis(settings.redis_url) as found, Producer(found.url, layout=settings.layout()) as producer:
            producer.send_many(prepared)
    except (RedisUnavailable, OSError) as exc:
        raise fail(f"cannot reach Redis: {exc}") from None
    typer.echo(f"enqueued {len(prepared)} command(s)")


def parse_commands(text: str) -> list[dict[str, Any]]:
    """Commands from JSON (object or array) or JSONL; every line number is checked before anything is sent."""
    stripped = text.strip()
    if not stripped:
        raise ValueError("no commands in input")
    try:
        whole = json.loads(stripped)
        items = whole if isinstance(whole, list) else [whole]
    except json.JSONDecodeError:
        items = []
        for number, line in enumerate(stripped.splitlines(), 1):
            if not line.strip():
                continue
            try:
                items.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise ValueError(f"line {number}: not valid JSON ({exc.msg})") from None
    for number, item in enumerate(items, 1):
        if not isinstance(item, dict):
            raise ValueError(f"command {number}: expected a JSON object")
    return items
