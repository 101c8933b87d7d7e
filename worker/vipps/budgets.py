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
from dataclasses import dataclass, field
from typing import Protocol

from worker.vipps import operations as ops
from worker.vipps.operations import Operation


@dataclass(frozen=True)
class BudgetRule:
    limit: int
    scope: tuple[str, ...]  # names of the values that make up the key, e.g. ("agreementId", "chargeId")
    window: float = 60.0
    bucket: str | None = None  # where the count is kept, when several operations share one limit

    def describe(self, operation: Operation) -> str:
        """The published limit in words: ``Vipps allows 2 CreateChargeV3 a minute per charge``."""
        per = "charge" if {"chargeId", "idempotencyKey"} & set(self.scope) else \
            "agreement" if "agreementId" in self.scope else "merchant"
        window = "a minute" if self.window == 60 else f"in {self.window:g} s"
        return f"Vipps allows {self.limit} {operation.id} {window} per {per}"


# Published limits. CreateCharge is keyed on the idempotency key because the charge id is
# not known before the call; "per merchant" limits are keyed on the MSN.
DEFAULT_RULES: Mapping[Operation, BudgetRule] = {
    ops.DRAFT_AGREEMENT: BudgetRule(300, ("msn",)),
    ops.LIST_AGREEMENTS: BudgetRule(5, ("msn",)),
    ops.FETCH_AGREEMENT: BudgetRule(120, ("msn", "agreementId")),
    ops.UPDATE_AGREEMENT: BudgetRule(5, ("msn", "agreementId")),
    ops.LIST_CHARGES: BudgetRule(10, ("msn", "agreementId")),
    ops.CREATE_CHARGE: BudgetRule(2, ("msn", "agreementId", "idempotencyKey")),
    ops.FETCH_CHARGE: BudgetRule(10, ("msn", "agreementId", "chargeId")),
    ops.FETCH_CHARGE_BY_ID: BudgetRule(100, ("msn", "chargeId")),
    ops.CANCEL_CHARGE: BudgetRule(5, ("msn", "agreementId", "chargeId")),
    ops.CAPTURE_CHARGE: BudgetRule(5, ("msn", "agreementId", "chargeId")),
    ops.REFUND_CHARGE: BudgetRule(5, ("msn", "agreementId", "chargeId")),
    # FORCE_ACCEPT (test only): no published limit.
}

# Since 2025 Vipps also caps charge creation at 500 a minute per merchant (CHANGES §5). A batch request counts
# once in the same count: Vipps recommends the batch endpoint for when 500 a minute is too few, which only
# helps if its charges do not count one by one (unconfirmed: CHANGES §2 leaves the counting open).
CHARGES_PER_MINUTE = 500
CHARGE_CREATION = f"{ops.CREATE_CHARGE.id}:all"


def merchant_charge_cap(charges_per_minute: int) -> BudgetRule | None:
    """The per-merchant cap on charge creation; ``0``: none (a simulator without limits)."""
    return BudgetRule(charges_per_minute, ("msn",), bucket=CHARGE_CREATION) if charges_per_minute else None


def extra_rules(charges_per_minute: int = CHARGES_PER_MINUTE) -> dict[Operation, tuple[BudgetRule, ...]]:
    """Limits an operation has besides its first one, each counted on its own; the ledger's claim prepays
    only the first."""
    cap = merchant_charge_cap(charges_per_minute)
    return {ops.CREATE_CHARGE: (cap,)} if cap else {}


def batch_rules(charges_per_minute: int = CHARGES_PER_MINUTE) -> dict[Operation, BudgetRule]:
    """The batch endpoint's limit: one request in the merchant's charge-creation count."""
    cap = merchant_charge_cap(charges_per_minute)
    return {ops.CREATE_CHARGES_ASYNC: cap} if cap else {}


@dataclass(frozen=True)
class BudgetSlot:
    """One send's worth of a budget: where it is kept and its rule."""

    key: str
    limit: int
    window_ms: int
    rule: str = field(default="", compare=False)  # the published limit in words, for people


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


def people_share(operation: Operation, rule: BudgetRule) -> int:
    """Slots of a read's budget that only people (support tools) may use: a fifth, so that a support agent's
    lookup is not refused while workers poll at full speed. Writes go through the workers: no share."""
    return rule.limit // 5 if operation.method == "GET" else 0


class Budgets:
    def __init__(self, backend: BudgetBackend, prefix: str, rules: Mapping[Operation, BudgetRule], *,
                 for_people: bool = False, extra: Mapping[Operation, tuple[BudgetRule, ...]] | None = None) -> None:
        self._backend = backend
        self._prefix = prefix
        self._rules = dict(rules)
        self._extra = dict(extra or {})
        self._for_people = for_people  # people may use the whole budget; workers leave people's share
        self._prepaid: ContextVar[str | None] = ContextVar(f"prepaid-{id(self)}", default=None)

    def slot(self, operation: Operation, values: Mapping[str, str]) -> BudgetSlot | None:
        """Where a call of ``operation`` with these values counts, and its rule (None: no published limit)."""
        rule = self._rules.get(operation)
        if rule is None:
            return None
        key = self._key(operation, rule, values)
        limit = rule.limit if self._for_people else rule.limit - people_share(operation, rule)
        return BudgetSlot(key, limit, int(rule.window * 1000), rule.describe(operation))

    def describe(self, operation: Operation) -> str:
        """The published limit of ``operation`` in words ('' if it has none)."""
        rules = [r for r in (self._rules.get(operation), *self._extra.get(operation, ())) if r is not None]
        return "; ".join(rule.describe(operation) for rule in rules)

    @contextmanager
    def prepaid(self, slot: BudgetSlot | None) -> Iterator[None]:
        """Within this block (this thread), the first take of ``slot`` is already paid for."""
        token = self._prepaid.set(slot.key if slot else None)
        try:
            yield
        finally:
            self._prepaid.reset(token)

    def take(self, operation: Operation, values: Mapping[str, str]) -> float:
        """0 when the call may go out; otherwise seconds to wait. A slot taken before another limit said
        wait stays taken: that only makes us more careful than Vipps."""
        slot = self.slot(operation, values)
        if slot is None:
            return 0.0
        if slot.key == self._prepaid.get():
            self._prepaid.set(None)
        else:
            wait = self._backend.take(slot.key, slot.limit, slot.window_ms / 1000)
            if wait:
                return wait
        for rule in self._extra.get(operation, ()):
            wait = self._backend.take(self._key(operation, rule, values), rule.limit, rule.window)
            if wait:
                return wait
        return 0.0

    def _key(self, operation: Operation, rule: BudgetRule, values: Mapping[str, str]) -> str:
        return ":".join([self._prefix, "vipps", "budget", rule.bucket or operation.id,
                         *(values[name] for name in rule.scope)])

