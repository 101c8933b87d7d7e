"""The console's login limit, in Redis: failed attempts per name in a fixed window; checks count nothing, and
two console replicas share one count."""

from __future__ import annotations

import redis

from worker.store.keys import Keys
from worker.store.logins import FailedLogins


def limiter(client: redis.Redis, limit: int = 3) -> FailedLogins:
    return FailedLogins(client, Keys(), limit=limit, window_seconds=60)


def test_failures_block_a_name_and_any_check_that_names_it(redis_client: redis.Redis) -> None:
    logins = limiter(redis_client)
    for _ in range(3):
        assert not logins.blocked("user:a", "client:1")
        logins.failed("user:a", "client:1")
    assert logins.blocked("user:a") and logins.blocked("client:1") and not logins.blocked("user:b")
    assert logins.blocked("user:b", "client:1")  # any name over its limit blocks


def test_checking_counts_nothing(redis_client: redis.Redis) -> None:
    logins = limiter(redis_client, limit=1)
    for _ in range(10):
        assert not logins.blocked("user:a", "client:1")  # successful logins only check
    logins.failed("user:a")
    assert logins.blocked("user:a") and not logins.blocked("client:1")


def test_replicas_share_the_count_and_it_ends_with_its_window(redis_client: redis.Redis) -> None:
    one, other = limiter(redis_client), limiter(redis_client)
    one.failed("client:1")
    other.failed("client:1")
    assert not one.blocked("client:1")
    other.failed("client:1")
    assert one.blocked("client:1")
    [key] = redis_client.keys(Keys().login_failures("*"))
    assert 0 < redis_client.pttl(key) <= 60_000  # Redis forgets it when the window ends
    assert b"client" not in key  # names (a username is input) are hashed into the key
