"""Connections to the Redis that holds the queues and the store."""

from __future__ import annotations

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry


def connect(url: str) -> redis.Redis:
    """A client with timeouts: a Redis that stops answering fails a call instead of hanging it."""
    return redis.Redis.from_url(url, socket_timeout=10, socket_connect_timeout=5, health_check_interval=30)


def connect_within(url: str, seconds: float) -> redis.Redis:
    """A client for callers that must answer someone soon (the webhook receiver has 10 s): each call fails
    after about ``seconds`` of silence. redis-py's default retries (10, with backoff) would add up far
    beyond that; this one reconnects once on a dropped connection (fast) and never retries a timeout."""
    return redis.Redis.from_url(url, socket_timeout=seconds, socket_connect_timeout=seconds,
                                retry=Retry(NoBackoff(), 1, supported_errors=(redis.ConnectionError,)),
                                health_check_interval=30)


# The client type the store's classes take, for callers that hold one without importing redis themselves.
Client = redis.Redis
