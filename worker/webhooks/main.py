"""The webhook receiver's composition root: settings -> secrets, verifier, store, metrics, apps -> servers."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import redis
from starlette.types import ASGIApp

from worker.store.connection import connect_within
from worker.store.deadletters import DeadLetterStore
from worker.store.webhooks import WebhookQueue
from worker.webhooks import server
from worker.webhooks.app import Deliveries, operations_app
from worker.webhooks.intake import Intake
from worker.webhooks.metrics import ReceiverMetrics
from worker.webhooks.secrets import SecretsDir
from worker.webhooks.settings import WebhookSettings
from worker.webhooks.verify import Verifier

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
log = logging.getLogger("worker.webhooks")


@dataclass
class Receiver:
    deliveries: Deliveries
    operations: ASGIApp
    redis: redis.Redis
    secrets: SecretsDir
    metrics: ReceiverMetrics


def build(settings: WebhookSettings, *, client: redis.Redis | None = None,
          clock: Callable[[], float] = time.time) -> Receiver:
    client = client or connect_within(settings.redis_target(DEFAULT_REDIS_URL) or DEFAULT_REDIS_URL,
                                      settings.webhook_redis_timeout_seconds)
    layout = settings.layout()
    secrets = SecretsDir(settings.webhook_secrets_dir)
    verifier = Verifier(settings.webhook_public_url, secrets.current,
                        window_seconds=settings.webhook_date_window_seconds, clock=clock)
    intake = Intake(WebhookQueue(client, layout, replicas=settings.replicas()),
                    DeadLetterStore(client, layout.keys, retention_days=settings.dead_letter_retention_days))
    metrics = ReceiverMetrics(lambda: len(secrets.current()))
    deliveries = Deliveries(settings.webhook_path, verifier, intake, metrics,
                            max_body_bytes=settings.webhook_max_body_bytes,
                            read_timeout=settings.webhook_read_timeout_seconds)
    return Receiver(deliveries, operations_app(metrics, client.ping, secrets.registrations), client, secrets, metrics)


class JsonLines(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        body = {"ts": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
                "level": record.levelname.lower(), "logger": record.name, "msg": record.getMessage()}
        if record.exc_info:
            body["exc"] = self.formatException(record.exc_info)
        return json.dumps(body)


def configure_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLines())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


def run(settings: WebhookSettings) -> int:
    """Serve deliveries and operations until SIGTERM; 1 at once if a port is taken."""
    configure_logging(settings.log_level)
    try:
        hooks_socket = server.listen(settings.webhook_host, settings.webhook_port)
        ops_socket = server.listen(settings.webhook_host, settings.webhook_metrics_port)
    except OSError as exc:
        log.critical("webhook receiver cannot listen on %s (ports %s, %s): %s", settings.webhook_host,
                     settings.webhook_port, settings.webhook_metrics_port, exc.strerror)
        return 1
    receiver = build(settings)
    registrations = receiver.secrets.registrations()
    log.info("webhook receiver on %s:%s (path %s), metrics on port %s, %d registration(s)", settings.webhook_host,
             settings.webhook_port, settings.webhook_path, settings.webhook_metrics_port, len(registrations))
    hooks, ops = server.configs(receiver.deliveries, receiver.operations,
                                read_timeout=settings.webhook_read_timeout_seconds,
                                limit_concurrency=settings.webhook_limit_concurrency)
    asyncio.run(server.serve_both(hooks, hooks_socket, ops, ops_socket))
    return 0
