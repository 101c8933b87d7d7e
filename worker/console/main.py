"""The console process's composition root: settings, users, the worker's Redis and merchants, uvicorn."""

from __future__ import annotations

import logging

import uvicorn

from worker.console.app import Console, build
from worker.console.finder import Finder
from worker.console.oidc import HideCallbackQuery
from worker.console.ratelimit import LoginLimiter
from worker.console.settings import ConsoleSettings
from worker.console.users import Users
from worker.core.control import Control
from worker.vipps import load_settings as load_vipps_settings
from worker.vipps.merchants import load_merchants

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


def console(settings: ConsoleSettings, ops: Control | None = None) -> Console:
    """The console's parts; ``ops`` (the worker's Redis and merchants) from the settings when not given."""
    if ops is None:
        ops = Control(settings.redis_target(DEFAULT_REDIS_URL) or DEFAULT_REDIS_URL, settings,
                      load_merchants(load_vipps_settings()))
    users = Users.read(settings.console_users_file) if settings.console_users_file else Users({})
    return Console(settings, users, Finder(ops),
                   LoginLimiter(settings.console_login_attempts, settings.console_login_window_seconds))


def serve(settings: ConsoleSettings) -> None:
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("uvicorn.access").addFilter(HideCallbackQuery())
    parts = console(settings)
    try:
        uvicorn.run(build(parts), host=settings.console_host, port=settings.console_port,
                    log_level=settings.log_level.lower(), proxy_headers=False, server_header=False)
    finally:
        parts.finder.ops.close()
