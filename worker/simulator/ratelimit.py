"""Per-key rate limits of the Recurring API (calls per minute), with a Retry-After on 429.

Besides each operation's own limit, charge creation has one per MSN (CHANGES §5: 500 a minute), shared by the
single create and the batch endpoint; ``hit_all`` checks every bucket a call falls in before counting it in any,
so a refused call uses none of them."""

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
# The per-MSN bucket of charge creation (single and batch); its limit is a setting (``charges_per_minute``).
CREATE_CHARGE_PER_MSN = "CreateCharge per MSN"


class RateLimiter:
    def __init__(self) -> None:
        self.windows: dict[tuple[str, str], deque[float]] = {}
        self.limited = 0

    def hit(self, operation: str, key: str, now: float) -> None:
        self.hit_all([(operation, key, LIMITS.get(operation))], now)

    def hit_all(self, buckets: list[tuple[str, str, int | None]], now: float) -> None:
        """Count one call in each ``(bucket, key, limit)`` (None: no limit), or in none when one is full."""
        windows = []
        for bucket, key, limit in buckets:
            if limit is None:
                continue
            window = self._window(bucket, key, now)
            if len(window) >= limit:
                self.limited += 1
                retry_after = max(1, math.ceil(window[0] + WINDOW - now))
                raise Problem(
                    429,
                    "too-many-requests",
                    f"Rate limit of {limit} calls per minute exceeded for {bucket}",
                    headers={"Retry-After": str(retry_after)},
                )
            windows.append(window)
        for window in windows:
            window.append(now)

    def _window(self, bucket: str, key: str, now: float) -> deque[float]:
        window = self.windows.get((bucket, key))
        if window is None:
            window = self.windows[(bucket, key)] = deque()
            if len(self.windows) > 50_000:
                self._prune(now)
                self.windows[(bucket, key)] = window
        while window and window[0] <= now - WINDOW:
            window.popleft()
        return window

    def _prune(self, now: float) -> None:
        self.windows = {k: w for k, w in self.windows.items() if w and w[-1] > now - WINDOW}

    def clear(self) -> None:
        self.windows.clear()
