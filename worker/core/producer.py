"""Enqueue commands from Python: ``Producer(redis_url).send({...})``.

Commands are validated before they are sent, so a bad one fails here with a
clear message instead of becoming a dead letter later. Producing needs no dramatiq:
the messages are written as dramatiq's Redis broker stores them (see the README's
wire format), and the producer changes no global state.

Receipt: Redis replicates asynchronously, so an enqueue the primary acknowledged can be lost in a
failover. With ``confirm_replicas=N`` (or ``send(..., confirm=True)``) each send also waits until N
replicas hold the messages, and raises ``NotConfirmed`` when fewer did within ``confirm_timeout_ms``:
then send the same commands again (same ``command_id``; the worker carries a command out once). Only
the outcome event proves a command arrived; a producer that must not lose one resends until it sees it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from pydantic import ValidationError

from schemas import CommandAdapter
from schemas.problems import one_line
from worker.store.commands import CommandQueue
from worker.store.connection import Client, Where, connect
from worker.store.keys import Layout
from worker.store.replication import NotReplicated, Replicas


class InvalidCommand(ValueError):
    """A command that would be rejected; the message says which fields and why."""


class NotConfirmed(NotReplicated):
    """The commands are on the primary, but fewer replicas than asked acknowledged them in time: a failover
    now could lose them. Send them again (same ``command_id``s). ``message_ids`` are those just written."""

    def __init__(self, cause: NotReplicated) -> None:
        super().__init__(cause.wanted, cause.acknowledged, cause.timeout_ms, cause.written)
        self.message_ids = cause.written


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
    """Sends commands to the worker's queues. ``layout`` names them (the defaults match the worker's).

    ``redis_url``: any form ``REDIS_URL`` takes (``redis+sentinel://...`` too) or a ``RedisTarget``.
    ``confirm_replicas``: replicas every send waits for (0: none, unless a send asks with ``confirm=True``,
    which waits for at least one); ``confirm_timeout_ms``: how long at most (then ``NotConfirmed``).
    """

    def __init__(self, redis_url: Where | None = None, *, layout: Layout | None = None,
                 client: Client | None = None, confirm_replicas: int = 0, confirm_timeout_ms: int = 1000) -> None:
        if client is None:
            if redis_url is None:
                raise ValueError("a Producer needs a redis_url or a client")
            client = connect(redis_url)
            self._own = True
        else:
            self._own = False
        self.redis = client
        self.replicas = Replicas(confirm_replicas, confirm_timeout_ms)
        self.queue = CommandQueue(self.redis, layout or Layout())

    def send(self, command: dict[str, Any], *, confirm: bool | None = None) -> str:
        """Validate and enqueue one command; returns its dramatiq message id."""
        return self._enqueue([prepare(command)], confirm)[0]

    def send_many(self, commands: Iterable[dict[str, Any]], *, confirm: bool | None = None) -> int:
        """Validate every command first, then enqueue them all; none is sent if one is invalid."""
        wire = [prepare(command) for command in commands]
        return len(self._enqueue(wire, confirm)) if wire else 0

    def send_raw(self, command: dict[str, Any], *, confirm: bool | None = None) -> str:
        """Enqueue a command as it is, unchecked (the worker will judge it)."""
        return self._enqueue([command], confirm)[0]

    def _enqueue(self, wire: list[dict[str, Any]], confirm: bool | None) -> list[str]:
        replicas = self.replicas
        if confirm is False:
            replicas = Replicas(0)
        elif confirm and not replicas.count:
            replicas = Replicas(1, replicas.timeout_ms)
        try:
            return self.queue.enqueue(wire, replicas)
        except NotReplicated as exc:
            raise NotConfirmed(exc) from None

    def close(self) -> None:
        if self._own:
            self.redis.close()

    def __enter__(self) -> Producer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
