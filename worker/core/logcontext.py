"""The command a log line is about: set around each command, added to every line by the runtime's formatter."""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator

_context: contextvars.ContextVar[dict[str, str | None] | None] = contextvars.ContextVar("command_context",
                                                                                       default=None)


@contextlib.contextmanager
def command_context(command_id: str | None, correlation_id: str | None, command_type: str | None,
                    msn: str | None = None) -> Iterator[None]:
    token = _context.set({"command_id": command_id, "correlation_id": correlation_id, "command_type": command_type,
                          "msn": msn})
    try:
        yield
    finally:
        _context.reset(token)


def current() -> dict[str, str]:
    """The fields of the command being carried out, if any."""
    return {k: v for k, v in (_context.get() or {}).items() if v is not None}
