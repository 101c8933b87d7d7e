"""Per-key rate limits of the Recurring API (calls per minute), with a Retry-After on 429."""

from __future__ import annotations

import math
from collections import deque

from worker.simulator.problems import Problem

WINDOW = 60.0

# operationId -> calls per minute per key (NOTES.md section 5.4).
LIMITS = {
    "CreateChargeV3": 2,
    "CancelChargeV3": 5,
    "CaptureChargeV3": 5,
    "RefundChargeV3": 5,
    "ListAgreementsV3": 5,
    "UpdateAgreementPatchV3": 5,
    "FetchChargeV3": 10,
    "FetchChargeByIdV3": 100,
    "ListChargesV3": 10,
    "FetchAgreementV3": 120,
    "DraftAgreementV3": 300,
}


class RateLimiter:
    def __init__(self) -> None:
        self.windows: dict[tuple[str, str], deque[float]] = {}
        self.limited = 0

    def hit(self, operation: str, key: str, now: float) -> None:
        limit = LIMITS.get(operation)
        if limit is None:
            return
        window = self.windows.get((operation, key))
        if window is None:
            window = self.windows[(operation, key)] = deque()
            if len(self.windows) > 50_000:
                self._prune(now)
        while window and window[0] <= now - WINDOW:
            window.popleft()
        if len(window) >= limit:
            self.limited += 1
            retry_after = max(1, math.ceil(window[0] + WINDOW - now))
            raise Problem(
                429,
                "too-many-requests",
                f"Rate limit of {limit} calls per minute exceeded for {operation}",
                headers={"Retry-After": str(retry_after)},
            )
        window.append(now)

    def _prune(self, now: float) -> None:
        self.windows = {k: w for k, w in self.windows.items() if w and w[-1] > now - WINDOW}

    def clear(self) -> None:
        self.windows.clear()
