"""Everything one simulator instance holds, in memory: merchants, clock, engine, tokens, idempotency, limits,
faults, request counts, the request record and the webhooks (registrations, deliveries, the sending thread)."""

from __future__ import annotations

from collections import Counter
from typing import Any

from worker.simulator.auth import TokenStore
from worker.simulator.clock import SimClock
from worker.simulator.config import SimulatorConfig
from worker.simulator.engine import Engine
from worker.simulator.faults import Faults
from worker.simulator.idempotency import IdempotencyStore
from worker.simulator.merchants import Merchants
from worker.simulator.ratelimit import RateLimiter
from worker.simulator.requestlog import RequestLog
from worker.simulator.webhook_delivery import Webhooks


class Simulator:
    def __init__(self, config: SimulatorConfig) -> None:
        self.config = config
        self.merchants = Merchants(
            config.merchants_file(), config.skip_landing_page_allowed, config.unscheduled_charges_allowed
        )
        self.clock = SimClock()
        self.tokens = TokenStore(self.merchants, config.token_lifetime_seconds)
        self.faults = Faults(config.faults, config.seed)
        self.webhooks = Webhooks(config, self.clock)
        self._fresh()

    def _fresh(self) -> None:
        self.engine = Engine(self.config, self.clock.timestamp())
        self.engine.listener = self.webhooks.publish
        self.idempotency = IdempotencyStore(self.config.idempotency_ttl_seconds)
        self.limiter = RateLimiter()
        self.continuations: dict[str, tuple[str, str, int, int, float]] = {}
        self.requests: Counter[tuple[str, int]] = Counter()
        self.request_log = RequestLog()

    def now(self) -> float:
        """Simulated now, with every timed transition up to it applied."""
        ts = self.clock.timestamp()
        self.engine.advance_to(ts)
        return ts

    def count(self, operation: str, status: int) -> None:
        self.requests[(operation, status)] += 1

    def log_request(self, operation: str, headers: Any, status: int, replay: bool = False) -> None:
        """One Recurring or Management call in the request record (``requestlog``)."""
        keys = self.tokens.holder(headers)
        header = headers.get("merchant-serial-number")
        self.request_log.record(
            self.clock.timestamp(),
            operation,
            status,
            header,
            keys.msn_for(header) if keys is not None else header,
            keys.label if keys is not None else None,
            headers.get("idempotency-key"),
            replay,
        )

    def reset(self, tokens: bool = False) -> None:
        self.clock.reset()
        self.faults.configure(self.config.faults, self.config.seed)
        self.faults.counts.clear()
        if tokens:
            self.tokens.tokens.clear()
        self.webhooks.reset()
        self._fresh()

    def close(self) -> None:
        """Stop the webhook sending thread."""
        self.webhooks.close()
