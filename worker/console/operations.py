"""The console's operations app, on CONSOLE_METRICS_PORT only: ``/metrics`` (the console's registry),
``/healthz`` (the process answers) and ``/readyz`` (Redis answers a PING within ``READY_TIMEOUT_SECONDS``).

The pages' port is the one an Ingress exposes, so nothing here is ever routed on it.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from worker.console.metrics import ConsoleMetrics
from worker.store.connection import Client, Where, connect_within

# Under the readiness probe's own timeout (3 s in deploy/), so a slow Redis reads as "not ready", not as a
# probe that timed out.
READY_TIMEOUT_SECONDS = 2.0


def readiness_client(where: Where) -> Client:
    """A Redis client of its own for /readyz: the pages' client waits up to 10 s, a probe cannot."""
    return connect_within(where, READY_TIMEOUT_SECONDS)


def operations_app(metrics: ConsoleMetrics, ping: Callable[[], object]) -> Starlette:
    def metrics_endpoint(request: Request) -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    def healthz(request: Request) -> Response:
        return PlainTextResponse("ok\n")

    def readyz(request: Request) -> Response:
        try:
            ping()
        except Exception as exc:  # any failure to answer is "not ready", whatever the client raised
            return PlainTextResponse(f"redis unavailable: {type(exc).__name__}\n", status_code=503)
        return PlainTextResponse("ok\n")

    # Sync endpoints run in starlette's thread pool: a slow Redis holds one thread, not the loop.
    return Starlette(routes=[Route("/metrics", metrics_endpoint, methods=["GET", "HEAD"]),
                             Route("/healthz", healthz, methods=["GET", "HEAD"]),
                             Route("/readyz", readyz, methods=["GET", "HEAD"])])
