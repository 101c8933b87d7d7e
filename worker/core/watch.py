"""The watchlist: agreements and charges followed until they are final.

A Redis sorted set holds each watched resource scored by its next check time (ms),
and a hash holds what was last seen. Any observation (a poll or a fetch command)
is compared with that; a change yields exactly one transition event, with an id
that depends only on the resource and its new state.

Polling follows Vipps's guidance: a PENDING agreement first after ~5 s, then every
few seconds, backing off; an ACTIVE one about daily, to see a stop by the user; a
charge around the processing rounds (07:00 and 15:00 UTC, about an hour each) from
its due date until ``due + retryDays``.
"""

from __future__ import annotations

import datetime as dt
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from schemas import Event
from schemas import commands as c
from worker.core.events import AGREEMENT_EVENTS, EventBuilder, Origin
from worker.core.observer import PipelineObserver
from worker.store.externals import ExternalIds
from worker.store.ledger import Ledger
from worker.store.watchlist import REMOVE, SETTLE, WatchChange, Watchlist, agreement_member, charge_member
from worker.vipps import VippsClient, errors
from worker.vipps.merchant_clients import MerchantClients
from worker.vipps.merchants import UnknownMerchant
from worker.vipps.models import CHANGING_CHARGE_STATUSES, FINAL_AGREEMENT_STATUSES, stop_actor

log = logging.getLogger("worker.core.watch")

ROUND_HOURS = (7, 15)
ROUND_SETTLE = dt.timedelta(hours=1)
LEASE_MS = 60_000


@dataclass(frozen=True)
class Hint:
    """What a webhook said about a resource, besides its id: whose it is, and (on a stop) who stopped it."""

    msn: str
    actor: str | None = None


@dataclass(frozen=True)
class PollPolicy:
    agreement_start: float = 5.0
    agreement_every: float = 2.0
    agreement_max: float = 30.0
    agreement_give_up: float = 1800.0
    agreement_active: float = 86_400.0     # re-check ACTIVE agreements this often; 0: forget them
    charge_every: float | None = None     # fixed interval instead of the processing rounds
    charge_give_up_days: int = 20
    # While webhooks arrive (one within the last ``webhooks_healthy`` seconds), a PENDING agreement is polled
    # at most every ``agreement_max_with_webhooks`` seconds: the webhook tells first. When they go quiet, the
    # next check is back on the normal schedule.
    webhooks_healthy: float = 3600.0
    agreement_max_with_webhooks: float = 120.0
    # A charge the batch endpoint accepted is created by Vipps later: first looked for after
    # ``charge_created_check`` seconds (backing off), and reported as not created (``charge.creation_failed``)
    # if it has not appeared after ``charge_creation_give_up`` seconds. Vipps states no time for this.
    charge_created_check: float = 60.0
    charge_creation_give_up: float = 3600.0


def charge_signature(charge: dict[str, Any]) -> str:
    summary = charge.get("summary") or {}
    return f"{charge.get('status')}:{summary.get('captured', 0)}:{summary.get('refunded', 0)}:" \
           f"{summary.get('cancelled', 0)}"


def next_charge_check(now: dt.datetime, due: dt.date, retry_days: int) -> dt.datetime | None:
    """The next time a charge due on ``due`` can have changed: after a processing round, or the final check."""
    last_day = due + dt.timedelta(days=retry_days)
    day = max(due, now.date())
    while day <= last_day:
        for hour in ROUND_HOURS:
            at = dt.datetime.combine(day, dt.time(hour), tzinfo=dt.UTC) + ROUND_SETTLE
            if at > now:
                return at
        day += dt.timedelta(days=1)
    final = dt.datetime.combine(last_day + dt.timedelta(days=1), dt.time(0, 5), tzinfo=dt.UTC)
    return final if final > now else None


class Watcher:
    def __init__(self, clients: MerchantClients, watchlist: Watchlist, ledger: Ledger, events: EventBuilder, *,
                 policy: PollPolicy, clock: Callable[[], float] = time.time,
                 last_webhook_ms: Callable[[], int | None] = lambda: None,
                 observer: PipelineObserver | None = None, externals: ExternalIds | None = None) -> None:
        self.clients = clients
        self.externals = externals  # None: the externalIds of agreements seen are not indexed for support
        self.watchlist = watchlist
        self.ledger = ledger
        self.events = events
        self.msn = events.msn
        self.policy = policy
        self.clock = clock
        self.last_webhook_ms = last_webhook_ms
        self.observer = observer or PipelineObserver()

    # -- what commands ask for -------------------------------------------------------------------

    def start_agreement(self, agreement_id: str, cmd: c.CommandBase, *, last_status: str | None,
                        soon: bool = False) -> WatchChange:
        now = self._ms()
        state = self._origin(cmd) | {"kind": "agreement", "agreement_id": agreement_id, "status": last_status,
                                     "started_ms": now, "interval": self.policy.agreement_every}
        first = 500 if soon else int(self.policy.agreement_start * 1000)
        return WatchChange(agreement_member(agreement_id), now + first, state)

    def settle_agreement(self, agreement_id: str, status: str) -> WatchChange:
        # Kept (not forgotten), so a late webhook or fetch of the final status is no second transition.
        return WatchChange(agreement_member(agreement_id), SETTLE, {"kind": "agreement", "agreement_id": agreement_id,
                                                                    "status": status})

    def start_charge(self, agreement_id: str, charge_id: str, cmd: c.CommandBase, *, due: dt.date | None,
                     retry_days: int, accepted: bool = False) -> WatchChange:
        """Follow a charge we created; ``accepted``: Vipps has yet to create it (the batch endpoint)."""
        now = self._ms()
        state = self._origin(cmd) | {"kind": "charge", "agreement_id": agreement_id, "charge_id": charge_id,
                                     "status": "PENDING", "sig": "PENDING:0:0:0", "started_ms": now,
                                     "due": due.isoformat() if due else None, "retry_days": retry_days,
                                     "interval": self.policy.agreement_start}
        if accepted:
            check = min(self.policy.charge_created_check, self.policy.charge_every or float("inf"))
            state |= {"status": None, "sig": None, "interval": check,
                      "creation_until": now + int(self.policy.charge_creation_give_up * 1000)}
            return WatchChange(charge_member(agreement_id, charge_id), now + int(check * 1000), state)
        return WatchChange(charge_member(agreement_id, charge_id), self._next_charge_ms(state) or now, state)

    def recheck_charge(self, agreement_id: str, charge_id: str, cmd: c.CommandBase, *,
                       await_change: bool) -> WatchChange:
        """After we changed a charge: look at once, and (for a 202) until the change shows."""
        member = charge_member(agreement_id, charge_id)
        known = self._state(member) or {"kind": "charge", "agreement_id": agreement_id, "charge_id": charge_id,
                                        "status": None, "sig": None, "due": None, "retry_days": 0}
        known |= self._origin(cmd) | {"await_change": await_change, "started_ms": self._ms(),
                                      "interval": self.policy.agreement_every}
        return WatchChange(member, self._ms(), known)

    # -- observations ----------------------------------------------------------------------------

    def observe_agreement(self, agreement: dict[str, Any], origin: c.CommandBase | None = None,
                          hint: Hint | None = None) -> tuple[list[Event], WatchChange | None]:
        """What a poll, a fetch command (``origin``) or a webhook's fetch (``hint``) found."""
        member = agreement_member(agreement["id"])
        state = self._state(member)
        self._index_external_id(agreement, hint.msn if hint else origin.msn if origin else (state or {}).get("msn"))
        status = str(agreement.get("status"))
        if state is None and hint is not None:
            # A webhook about an agreement we do not follow: follow it from now on; what it reports is news.
            state = {"kind": "agreement", "agreement_id": agreement["id"], "status": None, "msn": hint.msn,
                     "command_id": None, "started_ms": self._ms(), "interval": self.policy.agreement_every}
        if state is None:
            if origin is None or status != "ACTIVE" or not self.policy.agreement_active:
                return [], None
            # An ACTIVE agreement we did not follow (made elsewhere, or before this version): a fetch enrols
            # it, so a later stop by the user is seen too. First sight is no transition.
            state = self._origin(origin) | {"kind": "agreement", "agreement_id": agreement["id"], "status": status,
                                            "started_ms": self._ms(), "interval": self.policy.agreement_every}
        events: list[Event] = []
        if status != state.get("status") and status in AGREEMENT_EVENTS:
            via = _via(origin, hint)
            events.append(self.events.agreement_status(agreement["id"], state.get("status"), status,
                                                       self._cause(origin, state), agreement,
                                                       via=via,
                                                       actor=(hint.actor if hint else None) or stop_actor(agreement)))
            self.observer.transition_seen(via)
        if status in FINAL_AGREEMENT_STATUSES:
            return events, WatchChange(member, SETTLE, state | {"status": status})
        if status == "ACTIVE" and not self.policy.agreement_active:
            return events, WatchChange(member, REMOVE)
        if status == "ACTIVE":
            # ACTIVE lasts until a stop: ours comes as a command, the user's in the Vipps app shows only in a
            # fetch. Re-check now and then (jittered, so agreements activated together spread out); a change
            # seen then was caused by no command of ours.
            again = state | {"status": status, "command_id": None}
            every = self.policy.agreement_active * random.uniform(0.9, 1.1)
            return events, WatchChange(member, self._ms() + int(every * 1000), again)
        state["status"] = status
        started = int(state.get("started_ms", self._ms()))
        if self._ms() - started > self.policy.agreement_give_up * 1000:
            log.warning("giving up watching agreement", extra={"agreement_id": agreement["id"], "status": status})
            return events, WatchChange(member, REMOVE)
        interval = min(float(state.get("interval", self.policy.agreement_every)) * 1.2, self._agreement_max())
        state["interval"] = interval
        return events, WatchChange(member, self._ms() + int(interval * 1000), state)

    def observe_charge(self, agreement_id: str, charge: dict[str, Any], origin: c.CommandBase | None = None,
                       hint: Hint | None = None) -> tuple[list[Event], WatchChange | None]:
        """What a poll, a fetch command (``origin``) or a webhook's fetch (``hint``) found."""
        member = charge_member(agreement_id, charge["id"])
        state = self._state(member)
        if state is None:
            if origin is None and hint is None:
                return [], None
            state = {"msn": hint.msn} if hint is not None else {}
            state |= {"kind": "charge", "agreement_id": agreement_id, "charge_id": charge["id"], "status": None,
                     "sig": None, "started_ms": self._ms(), "retry_days": charge.get("retryDays") or 0}
        state.pop("creation_until", None)  # it exists
        sig = charge_signature(charge)
        status = str(charge.get("status"))
        events: list[Event] = []
        if sig != state.get("sig"):
            via = _via(origin, hint)
            events.append(self.events.charge_state(agreement_id, charge, state.get("status"), sig,
                                                   self._cause(origin, state), via=via))
            self.observer.transition_seen(via)
            state["await_change"] = False
        state["status"], state["sig"] = status, sig
        due = charge.get("due")
        if due and not state.get("due"):
            state["due"] = str(due)[:10]
        if status in CHANGING_CHARGE_STATUSES or state.get("await_change"):
            next_ms = self._next_charge_ms(state)
            if next_ms is not None:
                return events, WatchChange(member, next_ms, state)
        return events, WatchChange(member, SETTLE, state)

    # -- the poller ------------------------------------------------------------------------------

    def poll_once(self, limit: int = 50) -> int:
        """Check every watched resource that is due; returns how many were checked."""
        members = self.watchlist.take_due(limit=limit, lease_ms=LEASE_MS)
        for member in members:
            try:
                self._check(member)
            except errors.RateLimitedError as exc:
                self._reschedule(member, exc.retry_after or 5.0)
            except errors.TransientError as exc:
                self._reschedule(member, exc.retry_after or 10.0)
            except errors.AuthError:
                self._reschedule(member, 30.0)
            except UnknownMerchant as exc:  # its merchant left the configuration: keep it for when it returns
                log.warning("cannot check: %s", exc, extra={"member": member})
                self._reschedule(member, 3600.0)
            except errors.PermanentError as exc:
                log.warning("stopped watching: Vipps refused the fetch",
                            extra={"member": member, "status": exc.status, "problem_type": exc.problem_type})
                self.ledger.observe([], [WatchChange(member, REMOVE)])
        return len(members)

    def _check(self, member: str) -> None:
        state = self._state(member)
        if state is None:
            self.watchlist.drop(member)
            return
        client = self._client(state)
        if state["kind"] == "agreement":
            agreement = client.fetch_agreement(state["agreement_id"])
            events, change = self.observe_agreement(agreement.model_dump(mode="json", by_alias=True))
        else:
            try:
                charge = client.fetch_charge(state["agreement_id"], state["charge_id"])
            except errors.PermanentError as exc:
                if exc.status != 404 or "creation_until" not in state:
                    raise
                events, change = self._not_created_yet(member, state)
            else:
                events, change = self.observe_charge(state["agreement_id"],
                                                     charge.model_dump(mode="json", by_alias=True))
        self.ledger.observe(events, [change] if change else [])

    def _not_created_yet(self, member: str, state: dict[str, Any]) -> tuple[list[Event], WatchChange]:
        """A charge the batch endpoint accepted is not there (yet): look again later, or, past the deadline,
        tell the command that asked for it that Vipps did not create it."""
        now = self._ms()
        if now < int(state["creation_until"]):
            interval = min(float(state.get("interval") or self.policy.charge_created_check) * 2, 900.0,
                           self.policy.charge_every or float("inf"))
            state["interval"] = interval
            return [], WatchChange(member, min(now + int(interval * 1000), int(state["creation_until"])), state)
        event = self.events.charge_creation_failed(
            state["agreement_id"], state["charge_id"], Origin.from_state(state),
            f"Vipps accepted the charge for creation but had not created it {self.policy.charge_creation_give_up:g} s "
            "later", via="poll")
        self.observer.transition_seen("poll")
        return [event], WatchChange(member, SETTLE, state | {"status": "CREATION_FAILED"})

    def _index_external_id(self, agreement: dict[str, Any], msn: str | None) -> None:
        """Every agreement seen (polled, fetched, or told of by a webhook) is findable by its externalId, also
        one made outside the worker (store.externals)."""
        if self.externals is not None and agreement.get("externalId"):
            self.externals.remember(msn or self.msn, agreement["externalId"], agreement["id"])

    def _reschedule(self, member: str, seconds: float) -> None:
        self.watchlist.check_in(member, seconds)

    # -- helpers ---------------------------------------------------------------------------------

    def _next_charge_ms(self, state: dict[str, Any]) -> int | None:
        now = self._ms()
        if self.policy.charge_every is not None or not state.get("due") or state.get("await_change"):
            every = self.policy.charge_every or float(state.get("interval") or self.policy.agreement_every)
            if now - int(state.get("started_ms", now)) > self.policy.charge_give_up_days * 86_400_000:
                return None
            return now + int(every * 1000)
        at = next_charge_check(dt.datetime.fromtimestamp(now / 1000, dt.UTC),
                               dt.date.fromisoformat(state["due"]), int(state.get("retry_days") or 0))
        return int(at.timestamp() * 1000) if at else None

    def _agreement_max(self) -> float:
        last = self.last_webhook_ms()
        healthy = last is not None and self._ms() - last < self.policy.webhooks_healthy * 1000
        return max(self.policy.agreement_max, self.policy.agreement_max_with_webhooks) if healthy else \
            self.policy.agreement_max

    def _client(self, state: dict[str, Any]) -> VippsClient:
        """The client of the merchant the watch was started for (watches from before merchants: the only one)."""
        return self.clients.for_merchant(self.clients.merchants.resolve(state.get("msn")))

    def _state(self, member: str) -> dict[str, Any] | None:
        return self.watchlist.state(member)

    def _origin(self, cmd: c.CommandBase) -> dict[str, Any]:
        return Origin.of(cmd, self.msn).recorded()

    def _cause(self, origin: c.CommandBase | None, state: dict[str, Any]) -> Origin:
        """The command that asked for this observation, else the one that started the watch (if any)."""
        return Origin.of(origin, self.msn) if origin is not None else Origin.from_state(state)

    def _ms(self) -> int:
        return int(self.clock() * 1000)


def _via(origin: c.CommandBase | None, hint: Hint | None) -> str:
    """What saw a transition first: a webhook's fetch, a fetch command, or the poller."""
    return "webhook" if hint is not None else "command" if origin is not None else "poll"
