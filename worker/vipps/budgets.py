"""Per-key rate budgets mirroring Vipps's published limits (NOTES §5.4).

A sliding-window log per key, kept by a `BudgetBackend`: in memory here, or shared by every
pod in Redis (`worker.store.vipps_state.RedisBudgetBackend`). A call that would exceed its
budget is not sent, and the caller learns how long until a slot frees.

A caller that already makes a Redis round trip before the call (the worker's ledger claim)
can take the slot in that same script (``Budgets.slot``) and tell the client so
(``Budgets.prepaid``): the first send then takes no slot of its own.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol


@dataclass(frozen=True)
class BudgetRule:
    limit: int
    scope: tuple[str, ...]  # names of the values that make up the key, e.g. ("agreementId", "chargeId")
    window: float = 60.0


# Published limits. CreateCharge is keyed on the idempotency key because the charge id is
# not known before the call; "per merchant" limits are keyed on the MSN.
DEFAULT_RULES: Mapping[str, BudgetRule] = {
    "DraftAgreementV3": BudgetRule(300, ("msn",)),
    "ListAgreementsV3": BudgetRule(5, ("msn",)),
    "FetchAgreementV3": BudgetRule(120, ("msn", "agreementId")),
    "UpdateAgreementPatchV3": BudgetRule(5, ("msn", "agreementId")),
    "ListChargesV3": BudgetRule(10, ("msn", "agreementId")),
    "CreateChargeV3": BudgetRule(2, ("msn", "agreementId", "idempotencyKey")),
    "FetchChargeV3": BudgetRule(10, ("msn", "agreementId", "chargeId")),
    "FetchChargeByIdV3": BudgetRule(100, ("msn", "chargeId")),
    "CancelChargeV3": BudgetRule(5, ("msn", "agreementId", "chargeId")),
    "CaptureChargeV3": BudgetRule(5, ("msn", "agreementId", "chargeId")),
    "RefundChargeV3": BudgetRule(5, ("msn", "agreementId", "chargeId")),
    # acceptUsingPATCHV3 (force accept, test only): no published limit.
}


@dataclass(frozen=True)
class BudgetSlot:
    """One send's worth of a budget: where it is kept and its rule."""

    key: str
    limit: int
    window_ms: int


class BudgetBackend(Protocol):
    def take(self, key: str, limit: int, window: float) -> float:
        """Take one slot; 0 if taken, else the seconds until one frees (nothing taken)."""
        ...


class MemoryBudgetBackend:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sent: dict[str, deque[float]] = {}

    def take(self, key: str, limit: int, window: float) -> float:
        now = time.monotonic()
        with self._lock:
            sent = self._sent.setdefault(key, deque())
            while sent and sent[0] <= now - window:
                sent.popleft()
            if len(sent) < limit:
                sent.append(now)
                return 0.0
            return max(0.001, sent[0] + window - now)


class Budgets:
    def __init__(self, backend: BudgetBackend, prefix: str, rules: Mapping[str, BudgetRule]) -> None:
        self._backend = backend
        self._prefix = prefix
        self._rules = dict(rules)
        self._prepaid: ContextVar[str | None] = ContextVar(f"prepaid-{id(self)}", default=None)

    def rule(self, operation: str) -> BudgetRule | None:
        return self._rules.get(operation)

    def key(self, operation: str, values: Mapping[str, str]) -> str | None:
        rule = self._rules.get(operation)
        if rule is None:
            return None
        return ":".join([self._prefix, "vipps", "budget", operation, *(values[name] for name in rule.scope)])

    def slot(self, operation: str, values: Mapping[str, str]) -> BudgetSlot | None:
        rule = self._rules.get(operation)
        key = self.key(operation, values)
        if rule is None or key is None:
            return None
        return BudgetSlot(key, rule.limit, int(rule.window * 1000))

    @contextmanager
    def prepaid(self, slot: BudgetSlot | None) -> Iterator[None]:
        """Within this block (this thread), the first take of ``slot`` is already paid for."""
        token = self._prepaid.set(slot.key if slot else None)
        try:
            yield
        finally:
            self._prepaid.reset(token)

    def take(self, operation: str, values: Mapping[str, str]) -> float:
        """0 when the call may go out; otherwise seconds to wait (and nothing is consumed)."""
        rule = self._rules.get(operation)
        key = self.key(operation, values)
        if rule is None or key is None:
            return 0.0
        if key == self._prepaid.get():
            self._prepaid.set(None)
            return 0.0
        return self._backend.take(key, rule.limit, rule.window)


# Until the ledger takes the script from worker.store: the same file, read when first asked for.
_TAKE_SLOT_LUA = Path(__file__).resolve().parents[1] / "store" / "lua" / "take_slot.lua"


def __getattr__(name: str) -> str:
    if name == "TAKE_SLOT":  # the Lua function take_slot(key, limit, window_ms, unique), for scripts that embed it
        return _TAKE_SLOT_LUA.read_text(encoding="utf-8")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
