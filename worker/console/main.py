"""The console process's composition root: settings, users, the worker's Redis and merchants, and uvicorn
serving the pages on CONSOLE_PORT and the operations app on CONSOLE_METRICS_PORT."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from typing import Any

import uvicorn
from starlette.types import ASGIApp

from worker.console.app import Console, build
from worker.console.finder import Finder
from worker.console.oidc import HideCallbackQuery
from worker.console.operations import operations_app, readiness_client
from worker.console.settings import ConsoleSettings
from worker.console.users import Users
from worker.core.control import Control
from worker.vipps import load_settings as load_vipps_settings
from worker.vipps.merchants import load_merchants
from worker.webhooks.server import BoundedH11Protocol, listen, serve_both

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
log = logging.getLogger("worker.console")


class CannotListen(Exception):
    """A port of the console cannot be bound; the message names it."""


def console(settings: ConsoleSettings, ops: Control | None = None) -> Console:
    """The console's parts; ``ops`` (the worker's Redis and merchants) from the settings when not given."""
    if ops is None:
        ops = Control(settings.redis_target(DEFAULT_REDIS_URL) or DEFAULT_REDIS_URL, settings,
                      load_merchants(load_vipps_settings()))
    users = Users.read(settings.console_users_file) if settings.console_users_file else Users({})
    return Console(settings, users, Finder(ops))


class OperationsProtocol(BoundedH11Protocol):
    """The receiver's h11 protocol (a deadline for each request head) without access-log lines: probes and
    scrapes every few seconds would bury the pages' own."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.access_log = False


def configs(pages: ASGIApp, operations: ASGIApp, log_level: str,
            trusted_proxies: str = "") -> tuple[uvicorn.Config, uvicorn.Config]:
    pages_config = uvicorn.Config(pages, lifespan="off", log_level=log_level.lower(),
                                  proxy_headers=bool(trusted_proxies), forwarded_allow_ips=trusted_proxies or None,
                                  server_header=False, timeout_graceful_shutdown=10)
    # log_config None: the pages' config has set up uvicorn's loggers for the process already.
    ops_config = uvicorn.Config(operations, http=OperationsProtocol, lifespan="off", log_config=None,
                                server_header=False, limit_concurrency=32, timeout_graceful_shutdown=5)
    return pages_config, ops_config


def _listen(settings: ConsoleSettings) -> tuple[socket.socket, socket.socket | None]:
    bound: list[socket.socket] = []
    # CONSOLE_METRICS_PORT=0: no operations endpoint
    for port in (settings.console_port, *([settings.console_metrics_port] if settings.console_metrics_port else [])):
        try:
            bound.append(listen(settings.console_host, port))
        except OSError as exc:
            for sock in bound:
                sock.close()
            raise CannotListen(f"the console cannot listen on {settings.console_host}:{port}: {exc.strerror}") \
                from None
    return bound[0], bound[1] if len(bound) > 1 else None


def serve(settings: ConsoleSettings) -> None:
    """Serve the pages, and the operations app beside them, until SIGTERM or SIGINT."""
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("uvicorn.access").addFilter(HideCallbackQuery())
    pages_socket, ops_socket = _listen(settings)
    with contextlib.ExitStack() as stack:
        for sock in (pages_socket, ops_socket):
            if sock is not None:
                stack.callback(sock.close)
        parts = console(settings)
        stack.callback(parts.finder.ops.close)
        ready = readiness_client(settings.redis_target(DEFAULT_REDIS_URL) or DEFAULT_REDIS_URL)
        stack.callback(ready.close)
        pages, ops = configs(build(parts), operations_app(parts.metrics, ready.ping), settings.log_level,
                             settings.console_trusted_proxies)
        log.info("console pages on %s:%s, operations (/metrics, /healthz, /readyz) %s", settings.console_host,
                 settings.console_port, f"on port {settings.console_metrics_port}" if ops_socket else "off")
        if ops_socket is None:
            asyncio.run(uvicorn.Server(pages).serve(sockets=[pages_socket]))
        else:
            asyncio.run(serve_both(pages, pages_socket, ops, ops_socket))
