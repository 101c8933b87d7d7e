"""A client for callers with a deadline fails within its timeout, whatever Redis does (no stacked retries)."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest
import redis

from worker.store.connection import connect_within


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A port that accepts connections and never answers (a Redis that hangs)."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        yield server.getsockname()[1]


def test_a_redis_that_never_answers_fails_a_call_within_the_timeout(silent_server: int) -> None:
    client = connect_within(f"redis://127.0.0.1:{silent_server}/0", 0.3)
    started = time.monotonic()
    with pytest.raises(redis.TimeoutError):
        client.ping()
    assert time.monotonic() - started < 1.5  # one timeout, not redis-py's default ten retries


def test_a_redis_that_is_not_there_fails_at_once() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = connect_within(f"redis://127.0.0.1:{port}/0", 2.0)
    started = time.monotonic()
    with pytest.raises(redis.ConnectionError):
        client.ping()
    assert time.monotonic() - started < 1.0


def test_a_live_redis_answers(redis_url: str) -> None:
    assert connect_within(redis_url, 2.0).ping() is True
