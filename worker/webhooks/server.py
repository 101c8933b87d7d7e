"""Serving the receiver: uvicorn (h11) on the deliveries port, and a second server on the metrics port.

Slow clients are bounded at every step. uvicorn itself bounds the header size
(``h11_max_incomplete_event_size``), idle keep-alive connections (``timeout_keep_alive``) and the
connections served at once (``limit_concurrency``, 503 beyond); it has no deadline for a request that
arrives slowly. So a connection that has not sent a whole request head within ``WEBHOOK_READ_TIMEOUT_SECONDS``
(from its opening, or from the previous answer) is closed here, and the app gives the body the same time
(408). Operations have their own server, so a flood on the deliveries port never fails a health probe.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator
from typing import Any

import uvicorn
from starlette.types import ASGIApp
from uvicorn.protocols.http.h11_impl import H11Protocol

MAX_HEAD_BYTES = 16 * 1024


class BoundedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a deadline for each request head."""

    head_timeout: float = 5.0
    _head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def handle_events(self) -> None:
        super().handle_events()
        if self.cycle is not None and not self.cycle.response_complete:
            self._disarm()  # a request's head is in: the app bounds its body

    def on_response_complete(self) -> None:
        self._arm()  # before the next head, which the call below may already handle (pipelining)
        super().on_response_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._disarm()
        self._head_timer = self.loop.call_later(self.head_timeout, self._too_slow)

    def _disarm(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _too_slow(self) -> None:
        self._head_timer = None
        if not self.transport.is_closing():
            self.transport.close()


def bounded_protocol(head_timeout: float) -> type[BoundedH11Protocol]:
    return type("BoundedH11Protocol", (BoundedH11Protocol,), {"head_timeout": head_timeout})


class _Follower(uvicorn.Server):
    """A server that leaves signals to the main one, and stops when told."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def listen(host: str, port: int) -> socket.socket:
    return socket.create_server((host, port), reuse_port=False)


def configs(deliveries: ASGIApp, operations: ASGIApp, *, read_timeout: float,
            limit_concurrency: int) -> tuple[uvicorn.Config, uvicorn.Config]:
    # log_config None: uvicorn's loggers go through the process's own handler (JSON lines).
    common: dict[str, Any] = {"lifespan": "off", "access_log": False, "log_config": None, "log_level": "warning",
                              "server_header": False, "timeout_graceful_shutdown": 5}
    hooks = uvicorn.Config(deliveries, http=bounded_protocol(read_timeout),
                           timeout_keep_alive=max(1, round(read_timeout)), limit_concurrency=limit_concurrency,
                           h11_max_incomplete_event_size=MAX_HEAD_BYTES, **common)
    ops = uvicorn.Config(operations, http=bounded_protocol(read_timeout), limit_concurrency=32, **common)
    return hooks, ops


async def serve_both(hooks: uvicorn.Config, hooks_socket: socket.socket, ops: uvicorn.Config,
                     ops_socket: socket.socket) -> None:
    """Serve until the deliveries server stops (SIGTERM, SIGINT); the operations server stops with it."""
    follower = _Follower(ops)
    ops_task = asyncio.create_task(follower.serve(sockets=[ops_socket]))
    try:
        await uvicorn.Server(hooks).serve(sockets=[hooks_socket])
    finally:
        follower.should_exit = True
        await ops_task
