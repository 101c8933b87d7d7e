"""Enqueue commands from Python: ``Producer(redis_url).send({...})``.

Commands are validated before they are sent, so a bad one fails here with a
clear message instead of becoming a dead letter later. Producing needs no dramatiq:
the messages are written as dramatiq's Redis broker stores them (see the README's
wire format), and the producer changes no global state.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from pydantic import ValidationError

from schemas import CommandAdapter
from schemas.problems import one_line
from worker.store.commands import CommandQueue
from worker.store.connection import Client, connect
from worker.store.keys import Layout


class InvalidCommand(ValueError):
    """A command that would be rejected; the message says which fields and why."""


def prepare(command: dict[str, Any]) -> dict[str, Any]:
    """Validate a command (filling ``issued_at`` if absent) and return its wire form."""
    if not isinstance(command, dict):
        raise InvalidCommand("a command is a JSON object")
    body = dict(command)
    body.setdefault("issued_at", dt.datetime.now(dt.UTC).isoformat())
    try:
        model = CommandAdapter.validate_python(body)
    except ValidationError as exc:
        raise InvalidCommand(f"invalid command {body.get('command_id')!r}: {one_line(exc)}") from None
    wire: dict[str, Any] = model.model_dump(mode="json", exclude_none=True)
    return wire


class Producer:
    """Sends commands to the worker's queues. ``layout`` names them (the defaults match the worker's)."""

    def __init__(self, redis_url: str | None = None, *, layout: Layout | None = None,
                 client: Client | None = None) -> None:
        if client is None and redis_url is None:
            raise ValueError("a Producer needs a redis_url or a client")
        self._own = client is None
        self.redis = client if client is not None else connect(str(redis_url))
        self.queue = CommandQueue(self.redis, layout or Layout())

    def send(self, command: dict[str, Any]) -> str:
        """Validate and enqueue one command; returns its dramatiq message id."""
        return self.queue.enqueue([prepare(command)])[0]

    def send_many(self, commands: Iterable[dict[str, Any]]) -> int:
        """Validate every command first, then enqueue them all; none is sent if one is invalid."""
        wire = [prepare(command) for command in commands]
        return len(self.queue.enqueue(wire)) if wire else 0

    def send_raw(self, command: dict[str, Any]) -> str:
        """Enqueue a command as it is, unchecked (the worker will judge it)."""
        return self.queue.enqueue([command])[0]

    def close(self) -> None:
        if self._own:
            self.redis.close()

    def __enter__(self) -> Producer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
