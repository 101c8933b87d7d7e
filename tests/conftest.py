"""Shared fixtures: a real Redis (the machine's, or an embedded one) for every test that asks.

The suite is hermetic: whatever the caller's shell holds for the worker's and the webhook receiver's
settings (``VIPPS_*``, ``REDIS_URL``, ``KEY_PREFIX``, ``WEBHOOK_*``, ...), it is removed before any test
runs, so every worker, receiver, simulator and CLI the tests start gets only what the test gives it; and
the test process itself refuses to connect anywhere but loopback, so no test can reach the real Vipps.
``TEST_REDIS_URL`` (default ``redis://127.0.0.1:6379``) names the Redis server the tests may use,
``TEST_REDIS_DB`` its database (one more per pytest-xdist worker).
"""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from worker.local.redis import DEFAULT_URL, EmbeddedRedis, redis_answers
from worker.runtime.settings import WorkerSettings
from worker.webhooks.settings import WebhookSettings


def owned_db() -> int:
    """The logical database this test process owns, so the tests never touch a developer's data in db 0.

    Under pytest-xdist each worker (gw0, gw1, ...) takes the next one up, as each flushes its own."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    return int(os.environ.get("TEST_REDIS_DB", "9")) + int(worker.removeprefix("gw") or 0)


TEST_DB = owned_db()
TEST_REDIS_URL = os.environ.get("TEST_REDIS_URL") or DEFAULT_URL


def caller_settings() -> list[str]:
    """Environment variables that would configure a worker, a CLI or the simulator started by a test."""
    names = {name.upper() for model in (WorkerSettings, WebhookSettings) for name in model.model_fields}
    names |= {"PROMETHEUS_MULTIPROC_DIR"}
    return sorted(k for k in os.environ if k in names or k.startswith(("VIPPS_", "SIMULATOR_", "MERCHANTS_")))


def pytest_configure(config: pytest.Config) -> None:
    for name in caller_settings():
        del os.environ[name]
    # A terminal size in the environment (pytest-xdist's workers have COLUMNS=80) would fix the width of the
    # CLI's consoles when they are made, at import; without it, in-process CLI tests set the width per call.
    for name in ("COLUMNS", "LINES"):
        os.environ.pop(name, None)
    _loopback_only()


def _loopback_only() -> None:
    """Refuse connections from the test process to any address that is not loopback."""
    connect = socket.socket.connect

    def guarded(self: socket.socket, address: Any) -> Any:
        if self.family in (socket.AF_INET, socket.AF_INET6):
            host = address[0]
            try:
                loopback = ipaddress.ip_address(host).is_loopback
            except ValueError:
                loopback = host == "localhost"
            if not loopback:
                raise ConnectionRefusedError(f"tests connect only to loopback, not {host}")
        return connect(self, address)

    socket.socket.connect = guarded  # type: ignore[method-assign]


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    base = TEST_REDIS_URL
    if redis_answers(base):
        yield base.rsplit("/", 1)[0] + f"/{TEST_DB}"
        return
    server = EmbeddedRedis().start()
    try:
        yield server.url.rsplit("/", 1)[0] + f"/{TEST_DB}"
    finally:
        server.stop()


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    try:
        yield client
    finally:
        client.flushdb()
        client.close()
