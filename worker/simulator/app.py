"""``create_app``: the simulator as one Starlette ASGI app (Recurring and Management endpoints + admin API)."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response

from worker.simulator import admin_api, management_api, pipeline, vipps_api
from worker.simulator.config import SimulatorConfig
from worker.simulator.problems import Problem
from worker.simulator.state import Simulator


async def _not_found(request: Request, exc: Exception) -> Response:
    return Problem(404, "resource-not-found", f"No resource at {request.url.path}").response(request.url.path)


async def _method_not_allowed(request: Request, exc: Exception) -> Response:
    return Problem(405, "invalid-method", f"{request.method} is not allowed here").response(request.url.path)


def create_app(config: SimulatorConfig | None = None) -> Starlette:
    config = config or SimulatorConfig.from_env()
    # The Management API comes with a merchants file: the single merchant of the settings stands for the test
    # environment, where the real one is absent (it is production-only).
    management = pipeline.routes(management_api.OPERATIONS) if config.merchants is not None else []
    app = Starlette(
        routes=[*vipps_api.routes(), *management, *admin_api.routes()],
        exception_handlers={404: _not_found, 405: _method_not_allowed},
    )
    app.state.simulator = Simulator(config)
    return app
