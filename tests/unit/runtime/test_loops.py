from __future__ import annotations

import logging
import threading

import pytest

from worker.runtime.loops import REPEAT_SECONDS, FailureLog, Loop, Loops


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_failing_loop_logs_once_then_a_line_a_minute_then_its_recovery(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    failures = FailureLog("relay", clock=clock)
    caplog.set_level(logging.WARNING, logger="worker.runtime.loops")
    for _ in range(200):  # a Redis outage: the loop fails every 0.25 s for 50 s
        try:
            raise ConnectionError("redis down")
        except ConnectionError:
            failures.failed()
        clock.now += 0.25
    assert [r.getMessage() for r in caplog.records] == ["background loop failed"]
    assert caplog.records[0].exc_info is not None  # the first one carries its traceback
    clock.now += REPEAT_SECONDS
    try:
        raise ConnectionError("redis down")
    except ConnectionError:
        failures.failed()
    repeated = caplog.records[-1]
    assert repeated.getMessage() == "background loop still failing" and repeated.exc_info is None
    assert repeated.failures == 200  # type: ignore[attr-defined]
    failures.succeeded()
    failures.succeeded()
    assert [r.getMessage() for r in caplog.records][-1] == "background loop recovered"
    assert sum(r.getMessage() == "background loop recovered" for r in caplog.records) == 1
    assert caplog.records[-1].failures == 201  # type: ignore[attr-defined]


def test_loops_run_until_stopped_and_survive_a_failing_step() -> None:
    ran = threading.Event()
    calls = {"n": 0}

    def step() -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("first round fails")
        ran.set()

    loops = Loops()
    loops.start([Loop("test", 0.01, step)])
    assert ran.wait(5)
    loops.stop()
    after = calls["n"]
    assert after >= 2
