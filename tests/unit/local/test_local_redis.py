"""Finding a Redis (REDIS_URL, localhost, or a private one) and showing its URL safely."""

from __future__ import annotations

import os

import pytest

from worker.local.redis import (
    DEFAULT_URL,
    EmbeddedRedis,
    RedisUnavailable,
    find_redis,
    redact_url,
    redis_answers,
    redis_server_binary,
)

needs_redis_server = pytest.mark.skipif(redis_server_binary() is None, reason="no redis-server binary")
NOBODY = "redis://127.0.0.1:1/0"


@pytest.mark.parametrize(("url", "shown"), [
    ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
    ("redis://:s3cret@cache:6379/0", "redis://***@cache:6379/0"),
    ("rediss://user:p@ss@cache:6380/1", "rediss://***@cache:6380/1")])
def test_a_password_is_never_shown(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_a_configured_redis_that_answers_is_used(redis_url: str) -> None:
    with find_redis(redis_url) as found:
        assert (found.url, found.origin) == (redis_url, "REDIS_URL")


def test_a_configured_redis_that_does_not_answer_is_an_error_naming_it_without_its_password() -> None:
    shown = r"Redis at REDIS_URL does not answer \(redis://\*\*\*@127.0.0.1:1/0\)"
    with pytest.raises(RedisUnavailable, match=shown), find_redis("redis://:s3cret@127.0.0.1:1/0"):
        pass
    with pytest.raises(RedisUnavailable, match="Redis at --redis-url does not answer"), \
            find_redis(NOBODY, configured_as="--redis-url"):
        pass


def test_without_embedding_nothing_is_probed_and_nothing_started() -> None:
    with find_redis(NOBODY, embed=False) as found:
        assert (found.url, found.origin) == (NOBODY, "REDIS_URL")
    with find_redis(None, embed=False) as found:
        assert (found.url, found.origin) == (DEFAULT_URL, "localhost:6379")


@needs_redis_server
def test_a_private_redis_is_started_for_the_block_and_stopped_after() -> None:
    with find_redis(NOBODY, force_embedded=True) as found:
        assert found.origin == "embedded" and found.url != NOBODY
        assert redis_answers(found.url)
    assert not redis_answers(found.url)


@needs_redis_server
def test_an_embedded_redis_is_a_context_manager_that_removes_its_data() -> None:
    with EmbeddedRedis() as server:
        assert redis_answers(server.url)
        data_dir = server.data_dir
    assert not redis_answers(server.url)
    assert not os.path.exists(data_dir)
