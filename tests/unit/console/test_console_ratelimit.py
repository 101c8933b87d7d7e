"""The login limit: failed attempts per key in a fixed window; successes are not counted."""

from __future__ import annotations

from worker.console.ratelimit import LoginLimiter


def test_failures_block_a_key_until_the_window_ends() -> None:
    now = [0.0]
    limiter = LoginLimiter(3, 60, clock=lambda: now[0])
    for _ in range(3):
        assert not limiter.blocked("user:a", "client:1")
        limiter.failed("user:a", "client:1")
    assert limiter.blocked("user:a") and limiter.blocked("client:1") and not limiter.blocked("user:b")
    assert limiter.blocked("user:b", "client:1")  # any key over its limit blocks
    now[0] = 60.0
    assert not limiter.blocked("user:a", "client:1")


def test_checking_counts_nothing() -> None:
    limiter = LoginLimiter(1, 60)
    for _ in range(10):
        assert not limiter.blocked("user:a", "client:1")  # successful logins only check
    limiter.failed("user:a")
    assert limiter.blocked("user:a") and not limiter.blocked("client:1")
