"""Fault injection: latency, 5xx, 429, connection drops and timeouts after commit, from a seeded RNG; and on
webhook deliveries, delays, duplicates and failures (``DeliveryFaults``).

Every planned request (or delivery attempt) draws the same number of random values whatever fires, so a seed
and a sequence of requests (attempts) always give the same faults.
"""

from __future__ import annotations

import asyncio
import math
import random
from collections import Counter
from dataclasses import dataclass
from typing import Any

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from worker.simulator.config import FaultConfig, WebhookFaultConfig


@dataclass(frozen=True)
class FaultPlan:
    delay: float = 0.0
    status_5xx: int | None = None
    status_429: bool = False
    drop_before: bool = False
    drop_after: bool = False
    timeout_after: bool = False


NO_FAULT = FaultPlan()


class Faults:
    def __init__(self, config: FaultConfig, fallback_seed: int) -> None:
        self.counts: Counter[str] = Counter()
        self.configure(config, fallback_seed)

    def configure(self, config: FaultConfig, fallback_seed: int) -> None:
        self.config = config
        self.rng = random.Random(config.seed if config.seed is not None else fallback_seed)
        self.enabled = config.active()

    def plan(self, operation: str) -> FaultPlan:
        config = self.config
        if not self.enabled or (config.operations is not None and operation not in config.operations):
            return NO_FAULT
        u = [self.rng.random() for _ in range(5)]
        delay = self._latency()
        plan = FaultPlan(delay=delay)
        if u[0] < config.connection_drop_rate:
            plan = FaultPlan(delay=delay, drop_before=True)
        elif u[1] < config.error_5xx_rate:
            statuses = config.error_5xx_statuses or [500]
            plan = FaultPlan(delay=delay, status_5xx=statuses[int(u[1] * 1e9) % len(statuses)])
        elif u[2] < config.error_429_rate:
            plan = FaultPlan(delay=delay, status_429=True)
        elif u[3] < config.drop_after_commit_rate:
            plan = FaultPlan(delay=delay, drop_after=True)
        elif u[4] < config.timeout_after_commit_rate:
            plan = FaultPlan(delay=delay, timeout_after=True)
        for name in ("drop_before", "status_5xx", "status_429", "drop_after", "timeout_after"):
            if getattr(plan, name):
                self.counts[name] += 1
        if delay:
            self.counts["delayed"] += 1
        return plan

    def _latency(self) -> float:
        latency = self.config.latency
        draw = self.rng.random()
        ms = 0.0
        if latency.distribution == "fixed":
            ms = latency.ms
        elif latency.distribution == "uniform":
            ms = latency.min_ms + draw * max(0.0, latency.max_ms - latency.min_ms)
        elif latency.distribution == "lognormal" and latency.median_ms > 0:
            # Inverse-CDF from the same single draw keeps the sequence aligned.
            z = _normal_ppf(min(max(draw, 1e-12), 1 - 1e-12))
            ms = latency.median_ms * math.exp(latency.sigma * z)
        return min(ms, latency.cap_ms) / 1000.0

    def snapshot(self) -> dict[str, Any]:
        return self.config.model_dump()


@dataclass(frozen=True)
class DeliveryPlan:
    """What happens to one webhook delivery attempt."""

    delay: float = 0.0
    duplicate: bool = False
    fail: bool = False


NO_DELIVERY_FAULT = DeliveryPlan()


class DeliveryFaults:
    def __init__(self, config: WebhookFaultConfig, fallback_seed: int) -> None:
        self.counts: Counter[str] = Counter()
        self.configure(config, fallback_seed)

    def configure(self, config: WebhookFaultConfig, fallback_seed: int) -> None:
        self.config = config
        self.rng = random.Random(config.seed if config.seed is not None else fallback_seed)
        self.enabled = config.active()

    def plan(self, event_type: str) -> DeliveryPlan:
        config = self.config
        if not self.enabled or (config.events is not None and event_type not in config.events):
            return NO_DELIVERY_FAULT
        u = [self.rng.random() for _ in range(3)]
        plan = DeliveryPlan(
            delay=config.delay_seconds if u[0] < config.delay_rate else 0.0,
            duplicate=u[1] < config.duplicate_rate,
            fail=u[2] < config.fail_rate,
        )
        for name, fired in (("delayed", plan.delay > 0), ("duplicated", plan.duplicate), ("failed", plan.fail)):
            if fired:
                self.counts[name] += 1
        return plan

    def snapshot(self) -> dict[str, Any]:
        return self.config.model_dump()


def _normal_ppf(p: float) -> float:
    """Acklam's rational approximation of the standard normal quantile."""
    a = (
        -39.69683028665376,
        220.9460984245205,
        -275.9285104469687,
        138.357751867269,
        -30.66479806614716,
        2.506628277459239,
    )
    b = (-54.47609879822406, 161.5858368580409, -155.6989798598866, 66.80131188771972, -13.28068155288572)
    c = (
        -0.007784894002430293,
        -0.3223964580411365,
        -2.400758277161838,
        -2.549732539343734,
        4.374664141464968,
        2.938163982698783,
    )
    d = (0.007784695709041462, 0.3224671290700398, 2.445134137142996, 3.754408661907416)
    low = 0.02425
    if p < low:
        q = math.sqrt(-2 * math.log(p))
        return (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) / (
            (((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1
        )
    if p > 1 - low:
        q = math.sqrt(-2 * math.log(1 - p))
        return -(((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) / (
            (((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1
        )
    q = p - 0.5
    r = q * q
    return (
        (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5])
        * q
        / (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1)
    )


class ConnectionDropped(Exception):
    """In-process stand-in for a closed connection when there is no socket to close."""


class DropConnection(Response):
    """An ASGI 'response' that closes the client's TCP connection and sends nothing.

    Under uvicorn the ``receive`` callable is bound to the request cycle, which holds the
    transport; closing it gives the client a connection closed with no response. In-process
    (httpx.ASGITransport) there is no socket, so the client gets httpx's own
    ``RemoteProtocolError``, the same exception a real dropped connection raises.
    """

    def __init__(self) -> None:
        super().__init__(status_code=499)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        transport = getattr(getattr(receive, "__self__", None), "transport", None)
        if transport is not None:
            transport.close()
            # Let connection_lost run so the server knows not to send its own 500.
            for _ in range(3):
                await asyncio.sleep(0)
            return
        try:
            import httpx
        except ImportError:  # pragma: no cover - httpx is a project dependency
            raise ConnectionDropped("connection dropped") from None
        raise httpx.RemoteProtocolError("Server disconnected without sending a response.")
