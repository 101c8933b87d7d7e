"""The worker's HTTP endpoint: ``/metrics``, ``/healthz`` and ``/readyz``.

Runs as a dramatiq fork process. ``/metrics`` merges every worker process's
metrics (prometheus multiprocess files, dramatiq's included) with gauges read
from Redis at scrape time.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import redis
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from worker.runtime.settings import WorkerSettings, get_settings
from worker.store.state import read_state

HEALTH_STALE_SECONDS = 15.0


class RedisStateCollector(Collector):
    """Queue depths, outbox backlog, watchlist, dead letters and workers, read from Redis at scrape time."""

    def __init__(self, client: redis.Redis, settings: WorkerSettings) -> None:
        self.redis = client
        self.settings = settings

    def collect(self) -> Iterator[GaugeMetricFamily]:
        state = read_state(self.redis, self.settings)
        depth = GaugeMetricFamily("vipps_billing_queue_depth", "Messages in a queue by state.",
                                  labels=["queue", "state"])
        oldest = GaugeMetricFamily("vipps_billing_queue_oldest_age_seconds",
                                   "Age of the oldest ready message in a queue.", labels=["queue"])
        for name, q in state.queues.items():
            depth.add_metric([name, "ready"], q.ready)
            depth.add_metric([name, "delayed"], q.delayed)
            depth.add_metric([name, "dead"], q.dead)
            oldest.add_metric([name], q.oldest_age_seconds)
        yield depth
        yield oldest
        yield GaugeMetricFamily("vipps_billing_outbox_pending", "Events written but not yet published.",
                                value=state.outbox_pending)
        yield GaugeMetricFamily("vipps_billing_outbox_oldest_age_seconds", "Age of the oldest unpublished event.",
                                value=state.outbox_oldest_age_seconds)
        watch = GaugeMetricFamily("vipps_billing_watchlist_size", "Resources being polled until final.",
                                  labels=["kind"])
        watch.add_metric(["agreement"], state.watch_agreements)
        watch.add_metric(["charge"], state.watch_charges)
        yield watch
        yield GaugeMetricFamily("vipps_billing_dead_letters", "Records in the dead-letter store.",
                                value=state.dead_letters)
        workers = GaugeMetricFamily("vipps_billing_workers", "Worker processes by heartbeat.", labels=["state"])
        workers.add_metric(["live"], state.workers_live)
        workers.add_metric(["stale"], state.workers_stale)
        yield workers


def healthy(directory: Path | None) -> bool:
    """Every worker process beat recently (and there is at least one)."""
    if directory is None:
        return True
    beats = list(directory.glob("health-*"))
    return bool(beats) and all(time.time() - b.stat().st_mtime < HEALTH_STALE_SECONDS for b in beats)


def make_handler(client: redis.Redis, settings: WorkerSettings) -> type[BaseHTTPRequestHandler]:
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    redis_state = RedisStateCollector(client, settings)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                registry = CollectorRegistry()
                if directory:
                    MultiProcessCollector(registry, path=directory)
                registry.register(redis_state)
                try:
                    self._send(200, generate_latest(registry), CONTENT_TYPE_LATEST)
                except redis.RedisError as exc:
                    self._send(503, f"redis unavailable: {type(exc).__name__}\n".encode())
            elif path == "/healthz":
                ok = healthy(Path(directory) if directory else None)
                self._send(200 if ok else 503, b"ok\n" if ok else b"worker threads not beating\n")
            elif path == "/readyz":
                try:
                    client.ping()
                    self._send(200, b"ok\n")
                except redis.RedisError as exc:
                    self._send(503, f"redis unavailable: {type(exc).__name__}\n".encode())
            else:
                self._send(404, b"not found\n")

        def _send(self, status: int, body: bytes, content_type: str = "text/plain; charset=utf-8") -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


def serve(settings: WorkerSettings, redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url, socket_timeout=5, socket_connect_timeout=2)
    server = ThreadingHTTPServer((settings.metrics_host, settings.metrics_port), make_handler(client, settings))
    server.daemon_threads = True
    server.serve_forever()


def serve_from_env() -> int:
    """dramatiq fork entry point."""
    settings = get_settings()
    serve(settings, os.environ["REDIS_URL"])
    return 0
