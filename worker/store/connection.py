"""Connections to the Redis that holds the queues and the store."""

from __future__ import annotations

import redis


def connect(url: str) -> redis.Redis:
    """A client with timeouts: a Redis that stops answering fails a call instead of hanging it."""
    return redis.Redis.from_url(url, socket_timeout=10, socket_connect_timeout=5, health_check_interval=30)


# The client type the store's classes take, for callers that hold one without importing redis themselves.
Client = redis.Redis
