"""The state the Recurring rules work on: agreements, charges, the effects record, scripted outcomes,
ids, and the timers behind time-driven transitions.

Every agreement belongs to one merchant (its MSN). While a Recurring call is served (``serving``), lookups
see only the caller's agreements and charges, so another merchant's are not found, exactly as ids that do
not exist; ids stay unique across merchants, and the admin API (no caller) sees them all.

The rules themselves are in ``agreements`` (PENDING -> ACTIVE / EXPIRED / STOPPED, updates, user
actions) and ``charges`` (creation, PENDING -> DUE, processing rounds, capture, refund, cancel).
Everything is synchronous and runs on the event loop between awaits, so one request's checks and
effects are atomic with respect to every other request.

Time-driven transitions (PENDING agreement expiry, charge PENDING -> DUE, processing rounds at the
configured UTC hours) sit in a heap and are applied in time order whenever time is moved or a
request is handled (``advance_to``).
"""

from __future__ import annotations

import heapq
import random
import string
import uuid
from collections.abc import Callable, Container, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from worker.simulator.clock import midnight, utc_date
from worker.simulator.config import SimulatorConfig
from worker.simulator.effects import EffectLog
from worker.simulator.merchants import Caller
from worker.simulator.models import Agreement, Charge, QueuedCharge
from worker.simulator.problems import Problem
from worker.simulator.scripts import Scripts

if TYPE_CHECKING:
    from worker.simulator.webhook_events import WebhookEvent

ALNUM = string.ascii_letters + string.digits
DAY = 86400.0

# A timed transition: called with the engine and the id it was scheduled for.
Transition = Callable[["Engine", str], None]


def not_found(what: str, ident: str) -> Problem:
    return Problem(404, "resource-not-found", f"{what} {ident} not found")


class Engine:
    def __init__(self, config: SimulatorConfig, now: float) -> None:
        self.config = config
        self.hours = sorted(set(config.processing_hours_utc))
        self.rng = random.Random(config.seed)
        self.agreements: dict[str, Agreement] = {}
        self.charges: dict[str, Charge] = {}
        # Charges a batch accepted and has not created yet, by orderId (``batch``).
        self.queued: dict[str, QueuedCharge] = {}
        self.effects = EffectLog()
        self.scripts = Scripts()
        # (when, sequence, transition, id); the sequence keeps equal times in scheduling order.
        self._timers: list[tuple[float, int, Transition, str]] = []
        self._timer_seq = 0
        self.now = now
        self.userinfo_base = "https://api.vipps.no"
        # The Recurring call being served; None between calls (timers, admin API).
        self.caller: Caller | None = None
        # Where webhook events go (``webhook_events``); the simulator connects its webhooks.
        self.listener: Callable[[WebhookEvent], None] | None = None
        # Webhook transaction ids come from their own RNG, so the ids above stay as they were without webhooks.
        self.event_rng = random.Random(f"{config.seed}:webhook-events")
        # Which batch charges fail to be created: its own RNG too.
        self.batch_rng = random.Random(f"{config.seed}:batch")

    @contextmanager
    def serving(self, caller: Caller) -> Iterator[None]:
        before, self.caller = self.caller, caller
        try:
            yield
        finally:
            self.caller = before

    def caller_msn(self) -> str:
        if self.caller is None:
            raise RuntimeError("no Recurring call is being served")
        return self.caller.msn

    def visible(self, agreement: Agreement) -> bool:
        return self.caller is None or agreement.msn == self.caller.msn

    def record(
        self,
        operation: str,
        key: str,
        effect: str,
        agreement_id: str,
        charge_id: str | None = None,
        amount: int | None = None,
    ) -> None:
        """An effect on ``agreement_id``'s merchant, made now by the caller (if a call made it)."""
        msn = self.agreements[agreement_id].msn
        credentials = self.caller.credentials if self.caller is not None else None
        self.effects.record(self.now, operation, key, effect, msn, credentials, agreement_id, charge_id, amount)

    def publish(self, event: WebhookEvent) -> None:
        """A webhook event, made by a state change now."""
        if self.listener is not None:
            self.listener(event)

    # ----------------------------------------------------------------- time

    def advance_to(self, ts: float) -> None:
        """Apply every timed transition up to ``ts``, in time order."""
        timers = self._timers
        while timers and timers[0][0] <= ts:
            at, _, transition, ref = heapq.heappop(timers)
            self.now = max(self.now, at)
            transition(self, ref)
        self.now = max(self.now, ts)

    def schedule(self, at: float, transition: Transition, ref: str) -> None:
        self._timer_seq += 1
        heapq.heappush(self._timers, (at, self._timer_seq, transition, ref))

    def next_round(self, ts: float) -> float:
        """The first processing round at or after ``ts``."""
        day = utc_date(ts)
        while True:
            base = midnight(day)
            for hour in self.hours:
                if base + hour * 3600 >= ts:
                    return base + hour * 3600
            day += timedelta(days=1)

    def pending_timers(self) -> int:
        return len(self._timers)

    # ----------------------------------------------------------------- ids (all from the seeded RNG)

    def new_token(self, n: int) -> str:
        return "".join(self.rng.choice(ALNUM) for _ in range(n))

    def new_agreement_id(self) -> str:
        return self._new_id("agr_", self.agreements)

    def new_charge_id(self) -> str:
        return self._new_id("chr-", self.charges)

    def _new_id(self, prefix: str, taken: Container[str]) -> str:
        while True:
            candidate = prefix + self.new_token(7)
            if candidate not in taken:
                return candidate

    def new_uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def new_transaction_id(self) -> str:
        return str(self.rng.randrange(10**9, 10**10))

    def new_event_transaction_id(self) -> str:
        """The ``transactionId`` of one payment operation in a webhook (CHANGES §1.2)."""
        return str(self.event_rng.randrange(10**9, 10**10))

    # ----------------------------------------------------------------- lookups

    def agreement(self, agreement_id: str) -> Agreement:
        agreement = self.agreements.get(agreement_id)
        if agreement is None or not self.visible(agreement):
            raise not_found("Agreement", agreement_id)
        return agreement

    def charge(self, agreement_id: str | None, charge_id: str) -> Charge:
        charge = self.charges.get(charge_id)
        if (
            charge is None
            or (agreement_id is not None and charge.agreement_id != agreement_id)
            or not self.visible(self.agreements[charge.agreement_id])
        ):
            raise not_found("Charge", charge_id)
        return charge

    def charge_json(self, charge: Charge) -> dict[str, Any]:
        return charge.to_json(self.agreements[charge.agreement_id].external_id)

    def agreement_json(self, agreement: Agreement) -> dict[str, Any]:
        return agreement.to_json(self.userinfo_base)
