"""Connections to the Redis that holds the queues and the store: the one place a client is made.

A target is a plain URL or a primary found through Sentinel (``worker.store.target``). Either way a
primary that was demoted under us (a failover) answers a write with READONLY: the connection is then
dropped and the call fails as a ``ConnectionError``, like a Redis that went away, so callers hold and
retry (the actors do) instead of taking it for the command's error, and the next connection finds the
new primary (through Sentinel, or the failover endpoint's DNS name).
"""

from __future__ import annotations

from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.connection import Connection, SSLConnection
from redis.exceptions import ReadOnlyError
from redis.retry import Retry
from redis.sentinel import Sentinel, SentinelConnectionPool

from worker.store.target import RedisTarget, parse

# A Redis location: a URL (any form `worker.store.target.parse` accepts) or a target built by the settings.
Where = str | RedisTarget


class _DropsDemotedPrimary:
    """Turns READONLY (we are talking to a replica: a demoted primary) into a dropped connection."""

    def read_response(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().read_response(*args, **kwargs)  # type: ignore[misc]
        except ReadOnlyError:
            self.disconnect()  # type: ignore[attr-defined]
            raise redis.ConnectionError("the Redis primary was demoted to a replica (failover)") from None


class PrimaryConnection(_DropsDemotedPrimary, Connection):
    pass


class PrimarySSLConnection(_DropsDemotedPrimary, SSLConnection):
    pass


def target_of(where: Where) -> RedisTarget:
    return where if isinstance(where, RedisTarget) else parse(where)


def connect(where: Where) -> redis.Redis:
    """A client with timeouts: a Redis that stops answering fails a call instead of hanging it."""
    return client_for(target_of(where), socket_timeout=10, socket_connect_timeout=5, health_check_interval=30)


def connect_within(where: Where, seconds: float) -> redis.Redis:
    """A client for callers that must answer someone soon (the webhook receiver has 10 s): each call fails
    after about ``seconds`` of silence. redis-py's default retries (10, with backoff) would add up far
    beyond that; this one reconnects once on a dropped connection (fast) and never retries a timeout."""
    return client_for(target_of(where), socket_timeout=seconds, socket_connect_timeout=seconds,
                      retry=Retry(NoBackoff(), 1, supported_errors=(redis.ConnectionError,)),
                      health_check_interval=30)


def client_for(target: RedisTarget, **options: Any) -> redis.Redis:
    """A client of ``target``'s primary with redis-py ``options`` (timeouts, retry, ...)."""
    tls = {"ssl_ca_certs": target.tls_ca_file} if target.tls and target.tls_ca_file else {}
    auth = {name: value for name, value in (("username", target.username), ("password", target.password)) if value}
    if target.sentinel is None:
        if not target.url.lower().startswith("unix"):
            options["connection_class"] = PrimarySSLConnection if target.tls else PrimaryConnection
        return redis.Redis.from_url(target.url, **options, **auth, **tls)
    # Asking the sentinels: each tried once, quickly, so a dead one does not hold up finding the primary.
    asking = {"socket_timeout": min(float(options.get("socket_timeout") or 5), 5.0),
              "socket_connect_timeout": min(float(options.get("socket_connect_timeout") or 2), 2.0),
              "retry": Retry(NoBackoff(), 0)}
    if target.sentinel_password:
        asking["password"] = target.sentinel_password
    if target.tls:
        asking |= {"ssl": True, **tls}
    manager = Sentinel(list(target.sentinel.hosts), sentinel_kwargs=asking)
    # SentinelManagedConnection already drops a connection that answers READONLY and asks again.
    return manager.master_for(target.sentinel.master, db=target.sentinel.db, ssl=target.tls, **options,
                              **auth, **tls)


def through_sentinel(client: redis.Redis) -> bool:
    return isinstance(client.connection_pool, SentinelConnectionPool)


def primary_address(client: redis.Redis) -> tuple[str, int] | None:
    """Where Sentinel says ``client``'s primary is now (asking it); None for a client of a plain URL."""
    pool = client.connection_pool
    if not isinstance(pool, SentinelConnectionPool):
        return None
    host, port = pool.get_master_address()
    return str(host), int(port)


# The client type the store's classes take, for callers that hold one without importing redis themselves.
Client = redis.Redis
