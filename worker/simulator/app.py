"""``create_app``: the simulator as one Starlette ASGI app (Recurring, Management and Webhooks endpoints + admin
API).

Served with a lifespan (uvicorn), the app also runs the clock's timed transitions every 0.1 s while webhooks are
registered or batch charges wait to be created, so an expiry or a processing round sends its webhook on time and a
batch's charges appear even when no call comes in, and it stops the webhook thread at shutdown. In process
(httpx.ASGITransport, no lifespan) transitions run at each call.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response

from worker.simulator import admin_api, management_api, pipeline, vipps_api, webhook_admin, webhook_api
from worker.simulator.config import SimulatorConfig
from worker.simulator.problems import Problem
from worker.simulator.state import Simulator


async def _not_found(request: Request, exc: Exception) -> Response:
    return Problem(404, "resource-not-found", f"No resource at {request.url.path}").response(request.url.path)


async def _method_not_allowed(request: Request, exc: Exception) -> Response:
    return Problem(405, "invalid-method", f"{request.method} is not allowed here").response(request.url.path)


# Short, so a batch's charges are created well within a second of its answer.
TICK_SECONDS = 0.1


async def _tick(sim: Simulator) -> None:
    while True:
        await asyncio.sleep(TICK_SECONDS)
        if sim.webhooks.active() or sim.engine.queued:
            sim.now()


@contextlib.asynccontextmanager
async def _lifespan(app: Starlette) -> AsyncIterator[None]:
    sim: Simulator = app.state.simulator
    ticker = asyncio.create_task(_tick(sim))
    try:
        yield
    finally:
        ticker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await ticker
        sim.close()


def create_app(config: SimulatorConfig | None = None) -> Starlette:
    config = config or SimulatorConfig.from_env()
    # The Management API comes with a merchants file: the single merchant of the settings stands for the test
    # environment, where the real one is absent (it is production-only).
    management = pipeline.routes(management_api.OPERATIONS) if config.merchants is not None else []
    app = Starlette(
        routes=[
            *vipps_api.routes(),
            *management,
            *pipeline.routes(webhook_api.OPERATIONS),
            *admin_api.routes(),
            *webhook_admin.routes(),
        ],
        exception_handlers={404: _not_found, 405: _method_not_allowed},
        lifespan=_lifespan,
    )
    app.state.simulator = Simulator(config)
    return app
