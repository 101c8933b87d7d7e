"""The worker's HTTP endpoint: ``/metrics``, ``/healthz`` and ``/readyz`` (starlette on uvicorn).

Runs as a dramatiq fork process. ``/metrics`` merges every worker process's
metrics (prometheus multiprocess files, dramatiq's included) with gauges read
from Redis at scrape time. While Redis does not answer, the in-process metrics are
still served (they matter most then) and ``vipps_billing_redis_up`` is 0.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
from collections.abc import Iterator
from pathlib import Path

import redis
import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from worker.runtime import health, metrics
from worker.runtime.failover import PrimaryWatch
from worker.runtime.loops import Loops
from worker.runtime.metrics import NO_MERCHANT
from worker.runtime.settings import WorkerSettings, get_settings
from worker.store.connection import Where, connect_within
from worker.store.keys import Layout
from worker.store.state import RedisState, read_state
from worker.vipps import load_settings
from worker.vipps.merchants import load_merchants

log = logging.getLogger("worker.runtime.http")


class RedisStateCollector(Collector):
    """Queue depths, outbox backlog, watchlist, dead letters and workers, read from Redis at scrape time."""

    def __init__(self, client: redis.Redis, layout: Layout, heartbeat_timeout_ms: int) -> None:
        self.redis = client
        self.layout = layout
        self.heartbeat_timeout_ms = heartbeat_timeout_ms

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            state = read_state(self.redis, self.layout, heartbeat_timeout_ms=self.heartbeat_timeout_ms)
        except redis.RedisError:
            yield GaugeMetricFamily("vipps_billing_redis_up", "1 if Redis answered this scrape.", value=0)
            return
        yield GaugeMetricFamily("vipps_billing_redis_up", "1 if Redis answered this scrape.", value=1)
        yield from state_gauges(state, self.layout)


def state_gauges(state: RedisState, layout: Layout) -> Iterator[GaugeMetricFamily]:
    # `msn`: the merchant whose own queue it is, "-" for the shared queues (so a dashboard can sum per merchant).
    depth = GaugeMetricFamily("vipps_billing_queue_depth", "Messages in a queue by state.",
                              labels=["queue", "state", "msn"])
    oldest = GaugeMetricFamily("vipps_billing_queue_oldest_age_seconds",
                               "Age of the oldest ready message in a queue.", labels=["queue", "msn"])
    for name, q in state.queues.items():
        msn = layout.merchant_of(name) or NO_MERCHANT
        depth.add_metric([name, "ready", msn], q.ready)
        depth.add_metric([name, "delayed", msn], q.delayed)
        depth.add_metric([name, "dead", msn], q.dead)
        oldest.add_metric([name, msn], q.oldest_age_seconds)
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
    batched = GaugeMetricFamily("vipps_billing_charge_batch_waiting",
                                "charge.create commands parked for the batch endpoint, per merchant.", labels=["msn"])
    for msn, waiting in state.charge_batches.items():
        batched.add_metric([msn], waiting)
    yield batched
    workers = GaugeMetricFamily("vipps_billing_workers", "Worker processes by heartbeat.", labels=["state"])
    workers.add_metric(["live"], state.workers_live)
    workers.add_metric(["stale"], state.workers_stale)
    yield workers


def make_app(client: redis.Redis, settings: WorkerSettings, metrics_dir: Path | None,
             layout: Layout | None = None) -> Starlette:
    redis_state = RedisStateCollector(client, layout or settings.layout(), settings.heartbeat_timeout_ms)

    def metrics(request: Request) -> Response:
        registry = CollectorRegistry()
        if metrics_dir is not None:
            MultiProcessCollector(registry, path=str(metrics_dir))
        registry.register(redis_state)
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    def healthz(request: Request) -> Response:
        ok = metrics_dir is None or health.alive(health.read_beats(metrics_dir))
        return PlainTextResponse("ok\n" if ok else "worker threads not beating\n", status_code=200 if ok else 503)

    def readyz(request: Request) -> Response:
        try:
            client.ping()
        except redis.RedisError as exc:
            return PlainTextResponse(f"redis unavailable: {type(exc).__name__}\n", status_code=503)
        refused = [b.pid for b in health.read_beats(metrics_dir) if b.credentials_refused] if metrics_dir else []
        if refused:
            return PlainTextResponse(f"Vipps refused the credentials (worker processes {refused})\n", status_code=503)
        return PlainTextResponse("ok\n")

    # Sync endpoints run in starlette's thread pool: a slow Redis read holds one thread, not the loop.
    return Starlette(routes=[Route("/metrics", metrics, methods=["GET", "HEAD"]),
                             Route("/healthz", healthz, methods=["GET", "HEAD"]),
                             Route("/readyz", readyz, methods=["GET", "HEAD"])])


def serve(settings: WorkerSettings, redis_url: Where, metrics_dir: Path | None, layout: Layout | None = None) -> int:
    """Serve until stopped; 1 at once if the port is taken (then the whole worker is stopped too)."""
    try:
        sock = socket.create_server((settings.metrics_host, settings.metrics_port), reuse_port=False)
    except OSError as exc:
        # dramatiq does not watch its fork processes: without this, the worker would go on consuming with
        # no metrics and no health endpoint, and its pod would never become ready.
        log.critical("metrics port %s:%s is not free (%s); stopping the worker", settings.metrics_host,
                     settings.metrics_port, exc.strerror)
        os.kill(os.getppid(), signal.SIGTERM)
        return 1
    client = connect_within(redis_url, 5.0)
    loops = Loops()
    watch = PrimaryWatch(client, metrics.redis_failovers.inc).loop()
    loops.start([watch] if watch else [])
    config = uvicorn.Config(make_app(client, settings, metrics_dir, layout), log_level="warning", access_log=False,
                            lifespan="off")
    try:
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        loops.stop()
    return 0


def serve_from_env() -> int:
    """dramatiq fork entry point: this process's composition root."""
    from worker.runtime.main import DEFAULT_REDIS_URL

    settings = get_settings()
    layout = settings.layout(load_merchants(load_settings()).msns)
    target = settings.redis_target(DEFAULT_REDIS_URL) or DEFAULT_REDIS_URL
    return serve(settings, target, settings.prometheus_multiproc_dir, layout)
