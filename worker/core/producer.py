"""Enqueue commands from Python: ``Producer(redis_url).send({...})``.

Commands are validated before they are sent, so a bad one fails here with a
clear message instead of becoming a dead letter later.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Iterable
from typing import Any

from dramatiq import Message
from dramatiq.brokers.redis import RedisBroker
from pydantic import ValidationError

from schemas import CommandAdapter, actor_name
from schemas.events import EVENT_NAMESPACE
from schemas.problems import one_line
from worker.runtime.broker import make_broker, queue_for
from worker.runtime.settings import WorkerSettings, get_settings


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


def build_message(command: dict[str, Any], settings: WorkerSettings) -> Message[Any]:
    """The dramatiq message that carries a (validated) command."""
    return Message(queue_name=queue_for(command["type"], settings), actor_name=actor_name(command["type"]),
                   args=(command,), kwargs={}, options={},
                   message_id=str(uuid.uuid5(EVENT_NAMESPACE, f"command:{command['command_id']}:{uuid.uuid4()}")),
                   message_timestamp=int(time.time() * 1000))


class Producer:
    def __init__(self, redis_url: str, settings: WorkerSettings | None = None,
                 broker: RedisBroker | None = None) -> None:
        self.settings = settings or get_settings()
        self.broker = broker or make_broker(self.settings, redis_url)

    def send(self, command: dict[str, Any]) -> str:
        """Validate and enqueue one command; returns its dramatiq message id."""
        message = self.broker.enqueue(build_message(prepare(command), self.settings))
        return message.message_id

    def send_raw(self, command: dict[str, Any]) -> str:
        """Enqueue a command as it is, unchecked (the worker will judge it)."""
        ctype = str(command.get("type")) if isinstance(command.get("type"), str) else "charge.create"
        message: Message[Any] = Message(
            queue_name=queue_for(ctype, self.settings), actor_name=actor_name(ctype), args=(command,), kwargs={},
            options={}, message_id=str(uuid.uuid4()), message_timestamp=int(time.time() * 1000))
        return self.broker.enqueue(message).message_id

    def send_many(self, commands: Iterable[dict[str, Any]]) -> int:
        count = 0
        for command in commands:
            self.send(command)
            count += 1
        return count

    def close(self) -> None:
        self.broker.close()
