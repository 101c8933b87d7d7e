"""Shared fixtures: a real Redis (the machine's, or an embedded one) for every test that asks."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import redis

from worker.local.redis import DEFAULT_URL, EmbeddedRedis, _answers

# Tests own one logical database so they never touch a developer's data in db 0.
TEST_DB = int(os.environ.get("TEST_REDIS_DB", "9"))


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    base = os.environ.get("REDIS_URL") or DEFAULT_URL
    if _answers(base):
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
