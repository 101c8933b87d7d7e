"""The worker's dramatiq middleware: the process runtime's life cycle, and dramatiq's metrics without its fork."""

from __future__ import annotations

import gc
import logging
from collections.abc import Callable
from typing import Any

import dramatiq
from dramatiq import Broker, Middleware
from dramatiq.errors import ActorNotFound
from dramatiq.middleware.prometheus import Prometheus

from worker.runtime.broker import UNDECODABLE_ACTOR
from worker.runtime.process import RuntimeHolder

log = logging.getLogger("worker.runtime.middleware")


class PrometheusMetrics(Prometheus):
    """dramatiq's metrics, served by our own endpoint (worker.runtime.http) instead of its fork."""

    @property
    def forks(self) -> list[Callable[[], int]]:
        return []


class RuntimeMiddleware(Middleware):
    """Starts the process's runtime with the worker, stops it at shutdown, dead-letters what dramatiq drops."""

    def __init__(self, runtime: RuntimeHolder) -> None:
        self.runtime = runtime

    @property
    def forks(self) -> list[Callable[[], int]]:
        from worker.runtime.http import serve_from_env

        return [serve_from_env]

    def after_worker_boot(self, broker: Broker, worker: dramatiq.Worker) -> None:
        runtime = self.runtime.get(broker)

        def alive() -> bool:
            threads = list(getattr(worker, "workers", [])) + list(getattr(worker, "consumers", {}).values())
            return all(t.is_alive() for t in threads)

        runtime.start_loops(alive, consumers=lambda: dict(getattr(worker, "consumers", {})))
        # Everything built so far (modules, schemas, clients) lives as long as the process: keep it out of
        # the collector's full passes, which otherwise rescan it while commands run.
        gc.freeze()

    def after_worker_shutdown(self, broker: Broker, worker: dramatiq.Worker) -> None:
        self.runtime.stop()

    def after_nack(self, broker: Broker, message: Any) -> None:
        exc = getattr(message, "_exception", None)
        if message.actor_name == UNDECODABLE_ACTOR:
            reason = "undecodable"
        elif isinstance(exc, ActorNotFound):
            reason = "unknown_actor"
        else:
            reason = "worker_error"
        detail = f"{type(exc).__name__}: {exc}" if exc is not None else reason
        try:
            self.runtime.get(broker).dead_letter_message(message, reason, detail)
        except Exception:
            log.exception("could not record a dead letter", extra={"message_id": message.message_id})
