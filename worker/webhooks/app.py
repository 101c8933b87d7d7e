"""The receiver's two ASGI apps: deliveries (the only thing exposed to the internet) and operations.

Deliveries: ``POST <path of WEBHOOK_PUBLIC_URL>`` and nothing else (another path 404, another method 405,
neither reads the body). The body is read with a size cap while it streams (413 beyond it, Content-Length
checked first) and a deadline (408 for a client too slow to send it); then, before anything parses it,
content hash, date window and signature are checked (401). A genuine delivery is queued once per body
(200, also for a duplicate), kept as a dead letter when unreadable (200), or answered 503 when Redis
does not answer (Vipps retries). Operations: ``/metrics``, ``/healthz``, ``/readyz`` (Redis answers and
secrets are loaded), on their own port.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from worker.webhooks.intake import Intake
from worker.webhooks.metrics import ReceiverMetrics
from worker.webhooks.verify import Verdict, Verifier

log = logging.getLogger("worker.webhooks")
CLOSE = {"connection": "close"}


class BodyTooLarge(Exception):
    pass


async def read_body(request: Request, limit: int, timeout: float) -> bytes:
    """The body, or BodyTooLarge as soon as it is known to exceed ``limit``, or TimeoutError after ``timeout``."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge
    chunks: list[bytes] = []
    size = 0
    async with asyncio.timeout(timeout):
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise BodyTooLarge
            chunks.append(chunk)
    return b"".join(chunks)


class Throttle:
    """One log line per key a minute, with how many were left out."""

    def __init__(self, every_seconds: float = 60.0) -> None:
        self.every = every_seconds
        self._last: dict[str, float] = {}
        self._skipped: dict[str, int] = {}

    def due(self, key: str) -> int | None:
        """None while quiet; else how many were skipped since the last line."""
        now = time.monotonic()
        if now - self._last.get(key, -self.every) < self.every:
            self._skipped[key] = self._skipped.get(key, 0) + 1
            return None
        self._last[key] = now
        return self._skipped.pop(key, 0)


class Deliveries:
    """The deliveries app (raw ASGI: no router, so no redirects and no other paths)."""

    def __init__(self, path: str, verifier: Verifier, intake: Intake, metrics: ReceiverMetrics, *,
                 max_body_bytes: int, read_timeout: float) -> None:
        self.path = path
        self.verifier = verifier
        self.intake = intake
        self.metrics = metrics
        self.max_body_bytes = max_body_bytes
        self.read_timeout = read_timeout
        self.throttle = Throttle()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        response = await self.handle(Request(scope, receive))
        await response(scope, receive, send)

    async def handle(self, request: Request) -> Response:
        started = time.perf_counter()
        if request.scope["path"] != self.path:
            return self._reject("path", started, PlainTextResponse("not found\n", 404, headers=CLOSE))
        if request.method != "POST":
            return self._reject("method", started,
                                PlainTextResponse("method not allowed\n", 405, headers=CLOSE | {"allow": "POST"}))
        try:
            body = await read_body(request, self.max_body_bytes, self.read_timeout)
        except BodyTooLarge:
            return self._reject("size", started, PlainTextResponse("too large\n", 413, headers=CLOSE))
        except TimeoutError:
            return self._reject("timeout", started, PlainTextResponse("too slow\n", 408, headers=CLOSE))
        except ClientDisconnect:
            return PlainTextResponse("", 400)  # nobody is listening
        verdict = self.verifier.check(request.headers.getlist, body)
        if verdict.registration is None:
            await run_in_threadpool(self.intake.rejected, verdict.reason or "signature")
            return self._reject(verdict.reason or "signature", started, PlainTextResponse("rejected\n", 401),
                                verdict)
        taken = await run_in_threadpool(self.intake.take, body, verdict.registration)
        self.metrics.delivered(taken.event, taken.outcome, verdict.registration, started)
        if taken.outcome == "unavailable":
            self._log("unavailable", logging.ERROR, "webhook delivery answered 503: Redis did not answer, or "
                      "fewer replicas than REDIS_WAIT_REPLICAS held it in time; Vipps retries it")
            return PlainTextResponse("unavailable\n", 503, headers={"retry-after": "2"})
        return PlainTextResponse("ok\n")

    def _reject(self, reason: str, started: float, response: Response, verdict: Verdict | None = None) -> Response:
        self.metrics.rejected(reason)
        self.metrics.answered("rejected", started)
        skew = f" (x-ms-date {verdict.skew_seconds:+.0f} s from our clock)" \
            if verdict is not None and verdict.skew_seconds is not None else ""
        self._log(reason, logging.WARNING if verdict is not None else logging.INFO,
                  f"webhook request rejected: {reason}{skew}")
        return response

    def _log(self, key: str, level: int, message: str) -> None:
        skipped = self.throttle.due(key)
        if skipped is not None:
            log.log(level, message + (f"; {skipped} more like it in the last minute" if skipped else ""))


def operations_app(metrics: ReceiverMetrics, ping: Callable[[], object],
                   registrations: Callable[[], list[str]]) -> Starlette:
    def metrics_endpoint(request: Request) -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    def healthz(request: Request) -> Response:
        return PlainTextResponse("ok\n")

    def readyz(request: Request) -> Response:
        try:
            ping()
        except Exception as exc:  # any failure to answer is "not ready", whatever the client raised
            return PlainTextResponse(f"redis unavailable: {type(exc).__name__}\n", status_code=503)
        if not registrations():
            return PlainTextResponse("no webhook secrets in WEBHOOK_SECRETS_DIR\n", status_code=503)
        return PlainTextResponse("ok\n")

    # Sync endpoints run in starlette's thread pool: a slow Redis holds one thread, not the loop.
    return Starlette(routes=[Route("/metrics", metrics_endpoint, methods=["GET", "HEAD"]),
                             Route("/healthz", healthz, methods=["GET", "HEAD"]),
                             Route("/readyz", readyz, methods=["GET", "HEAD"])])
