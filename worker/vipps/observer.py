"""How callers learn about Vipps calls (metrics) without this package knowing Prometheus."""

from __future__ import annotations

from typing import Protocol


class VippsObserver(Protocol):
    def request_finished(
        self, operation: str, status: int | None, seconds: float, problem_type: str | None
    ) -> None: ...

    def retried(self, operation: str, reason: str) -> None: ...

    def rate_limited(self, operation: str, retry_after: float | None) -> None: ...

    def budget_exhausted(self, operation: str, wait: float) -> None: ...

    def token_refreshed(self, ok: bool) -> None: ...


class NullObserver:
    """Observes nothing."""

    def request_finished(self, operation: str, status: int | None, seconds: float, problem_type: str | None) -> None:
        return None

    def retried(self, operation: str, reason: str) -> None:
        return None

    def rate_limited(self, operation: str, retry_after: float | None) -> None:
        return None

    def budget_exhausted(self, operation: str, wait: float) -> None:
        return None

    def token_refreshed(self, ok: bool) -> None:
        return None
