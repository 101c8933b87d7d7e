"""``wait_until``: the one loop that waits for something to become true."""

from __future__ import annotations

import itertools
import time

import pytest

from worker.local.wait import wait_until


def test_it_returns_the_first_true_answer() -> None:
    answers = iter([0, None, "", 3, 4])
    assert wait_until(lambda: next(answers), 5, "an answer", every=0.001) == 3


def test_it_asks_at_least_once_even_with_no_time() -> None:
    assert wait_until(lambda: "now", 0, "now") == "now"


def test_after_the_timeout_it_raises_the_callers_error_naming_what_it_waited_for() -> None:
    class Late(Exception):
        pass

    calls = itertools.count()
    started = time.monotonic()
    with pytest.raises(Late, match="timed out after 0 s waiting for the worker"):
        wait_until(lambda: next(calls) < 0, 0.2, "the worker", every=0.01, error=Late)
    assert 0.2 <= time.monotonic() - started < 2
    assert next(calls) > 5  # it kept asking


def test_the_default_error_is_a_timeout_error() -> None:
    with pytest.raises(TimeoutError):
        wait_until(lambda: False, 0.01, "nothing", every=0.001)


def test_a_check_may_give_up_early() -> None:
    def exited() -> bool:
        raise RuntimeError("the child exited")

    with pytest.raises(RuntimeError, match="the child exited"):
        wait_until(exited, 60, "a child")
