"""Everything one simulator instance holds, in memory: clock, engine, tokens, idempotency, limits,
faults, request counts."""

from __future__ import annotations

from collections import Counter

from worker.simulator.auth import TokenStore
from worker.simulator.clock import SimClock
from worker.simulator.config import SimulatorConfig
from worker.simulator.engine import Engine
from worker.simulator.faults import Faults
from worker.simulator.idempotency import IdempotencyStore
from worker.simulator.ratelimit import RateLimiter


class Simulator:
    def __init__(self, config: SimulatorConfig) -> None:
        self.config = config
        self.clock = SimClock()
        self.tokens = TokenStore(config)
        self.faults = Faults(config.faults, config.seed)
        self._fresh()

    def _fresh(self) -> None:
        self.engine = Engine(self.config, self.clock.timestamp())
        self.idempotency = IdempotencyStore(self.config.idempotency_ttl_seconds)
        self.limiter = RateLimiter()
        self.continuations: dict[str, tuple[str, int, int, float]] = {}
        self.requests: Counter[tuple[str, int]] = Counter()

    def now(self) -> float:
        """Simulated now, with every timed transition up to it applied."""
        ts = self.clock.timestamp()
        self.engine.advance_to(ts)
        return ts

    def count(self, operation: str, status: int) -> None:
        self.requests[(operation, status)] += 1

    def reset(self, tokens: bool = False) -> None:
        self.clock.reset()
        self.faults.configure(self.config.faults, self.config.seed)
        self.faults.counts.clear()
        if tokens:
            self.tokens.tokens.clear()
        self._fresh()
