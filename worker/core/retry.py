"""How a failed Vipps call is classified, and when a transient one is tried again.

Transient (network, timeout, 5xx, 429, our own rate budget, a 401 after a token refresh):
retried with exponential backoff and jitter, never sooner than Vipps's ``Retry-After``,
bounded in attempts and in total time. Permanent (other 4xx): never retried with the same
idempotency key, since Vipps replays the same answer for it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from worker.vipps import errors


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 10
    max_seconds: float = 1800.0
    min_backoff: float = 1.0
    max_backoff: float = 300.0

    def delay(self, attempt: int, exc: errors.VippsError) -> float:
        """Seconds until the next attempt: the backoff, or Vipps's (or our budget's) wait if longer."""
        wait = backoff(attempt, self.min_backoff, self.max_backoff)
        retry_after = getattr(exc, "retry_after", None)
        return max(wait, float(retry_after)) if retry_after else wait

    def exhausted(self, attempts: int, elapsed: float, delay: float) -> bool:
        """No further attempt: as many as allowed were made, or the next would come too late."""
        return attempts >= self.max_attempts or elapsed + delay > self.max_seconds


def backoff(attempt: int, low: float, high: float) -> float:
    """Exponential backoff with jitter: half fixed, half random, capped."""
    ceiling = min(high, low * 2 ** max(0, attempt - 1))
    return ceiling / 2 + random.uniform(0, ceiling / 2)


def retry_reason(exc: errors.VippsError) -> str:
    if isinstance(exc, errors.BudgetExhaustedError):
        return "budget"
    if isinstance(exc, errors.RateLimitedError):
        return "rate_limited"
    if isinstance(exc, errors.AuthError):
        return "auth"
    return "transient"


def vipps_problem(exc: errors.VippsError, reason: str) -> dict[str, Any]:
    """What Vipps said (or what went wrong on the way), as an event's and a dead letter's ``problem``."""
    p = exc.problem
    return {"reason": reason, "type": p.type if p else None, "title": p.title if p else None,
            "detail": (p.detail if p and p.detail else str(exc))[:500], "status": exc.status,
            "context_id": p.context_id if p else None, "errors": list(p.extra_details) if p else []}
