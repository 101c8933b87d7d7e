"""Waiting for something to become true, by asking again until a deadline."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(check: Callable[[], T], timeout: float, what: str, *, every: float = 0.1,
               error: Callable[[str], Exception] = TimeoutError) -> T:
    """Call ``check`` every ``every`` seconds until it returns something true, and return that.

    After ``timeout`` seconds raise ``error("timed out after N s waiting for <what>")``. ``check`` may
    raise to give up early (a child process that exited, say).
    """
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise error(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)
