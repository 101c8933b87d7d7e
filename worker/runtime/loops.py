"""The worker process's background loops (relay, sweeper, watch poller, health beat, orphans).

A loop that fails keeps going. While it fails, say, because Redis is down, its log stays short: the
first failure with its traceback, then one line a minute with how many failed since, and one line
when it works again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("worker.runtime.loops")

REPEAT_SECONDS = 60.0


@dataclass
class FailureLog:
    """What one loop says about its failures."""

    loop: str
    clock: Callable[[], float] = time.monotonic
    failing_since: float | None = None
    failures: int = 0            # since the last line written
    total: int = 0               # since it started failing
    _last_line: float = field(default=0.0, repr=False)

    def failed(self) -> None:
        now = self.clock()
        self.total += 1
        if self.failing_since is None:
            self.failing_since = self._last_line = now
            self.failures = 0
            log.exception("background loop failed", extra={"loop": self.loop})
            return
        self.failures += 1
        if now - self._last_line >= REPEAT_SECONDS:
            log.warning("background loop still failing", extra={
                "loop": self.loop, "failures": self.failures, "failing_seconds": round(now - self.failing_since)})
            self._last_line, self.failures = now, 0

    def succeeded(self) -> None:
        if self.failing_since is None:
            return
        log.warning("background loop recovered", extra={
            "loop": self.loop, "failures": self.total,
            "failing_seconds": round(self.clock() - self.failing_since)})
        self.failing_since, self.failures, self.total = None, 0, 0


@dataclass
class Loop:
    name: str
    interval: float
    step: Callable[[], Any]
    busy_again: bool = False     # when a step did work, run the next at once (relay, watch: drain a backlog)


class Loops:
    """Runs loops in daemon threads until ``stop``."""

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self, loops: list[Loop]) -> None:
        for loop in loops:
            thread = threading.Thread(target=self._run, args=(loop,), name=f"vipps-{loop.name}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def _run(self, loop: Loop) -> None:
        failures = FailureLog(loop.name)
        while not self._stop.is_set():
            busy = False
            try:
                busy = bool(loop.step()) and loop.busy_again
                failures.succeeded()
            except Exception:
                failures.failed()
            if not busy:
                self._stop.wait(loop.interval)

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=timeout)
