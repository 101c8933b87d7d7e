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
import json
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis

from schemas import EventType, event_id
from schemas import commands as c
from worker.store.keys import Keys
from worker.store.ledger import Ledger, Schedules, WatchChange
from worker.vipps import VippsClient, errors

log = logging.getLogger("worker.core.watch")

REMOVE = -1        # forget the resource
SETTLE = -2        # stop polling, but remember what was seen (later commands compare against it)

AGREEMENT_FINAL = {"STOPPED", "EXPIRED"}
CHARGE_OPEN = {"PENDING", "DUE", "PROCESSING", "UNKNOWN"}
AGREEMENT_EVENTS = {"ACTIVE": EventType.AGREEMENT_ACTIVATED, "STOPPED": EventType.AGREEMENT_STOPPED,
                    "EXPIRED": EventType.AGREEMENT_EXPIRED}
ROUND_HOURS = (7, 15)
ROUND_SETTLE = dt.timedelta(hours=1)
LEASE_MS = 60_000


@dataclass(frozen=True)
class PollPolicy:
    agreement_start: float = 5.0
    agreement_every: float = 2.0
    agreement_max: float = 30.0
    agreement_give_up: float = 1800.0
    agreement_active: float = 86_400.0     # re-check ACTIVE agreements this often; 0: forget them
    charge_every: float | None = None     # fixed interval instead of the processing rounds
    charge_give_up_days: int = 20


def agreement_member(agreement_id: str) -> str:
    return f"agreement:{agreement_id}"


def charge_member(agreement_id: str, charge_id: str) -> str:
    return f"charge:{agreement_id}:{charge_id}"


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
    def __init__(self, client: VippsClient, redis_client: redis.Redis, keys: Keys, ledger: Ledger, *,
                 msn: str, policy: PollPolicy, clock: Callable[[], float] = time.time) -> None:
        self.client = client
        self.redis = redis_client
        self.keys = keys
        self.ledger = ledger
        self.msn = msn
        self.policy = policy
        self.clock = clock
        self.schedules = Schedules(redis_client)

    # -- what commands ask for -------------------------------------------------------------------

    def start_agreement(self, agreement_id: str, cmd: c.CommandBase, *, last_status: str | None,
                        soon: bool = False) -> WatchChange:
        now = self._ms()
        state = self._origin(cmd) | {"kind": "agreement", "agreement_id": agreement_id, "status": last_status,
                                     "started_ms": now, "interval": self.policy.agreement_every}
        first = 500 if soon else int(self.policy.agreement_start * 1000)
        return WatchChange(agreement_member(agreement_id), now + first, state)

    def settle_agreement(self, agreement_id: str, status: str) -> WatchChange:
        return WatchChange(agreement_member(agreement_id), REMOVE, {"status": status})

    def start_charge(self, agreement_id: str, charge_id: str, cmd: c.CommandBase, *, due: dt.date | None,
                     retry_days: int) -> WatchChange:
        now = self._ms()
        state = self._origin(cmd) | {"kind": "charge", "agreement_id": agreement_id, "charge_id": charge_id,
                                     "status": "PENDING", "sig": "PENDING:0:0:0", "started_ms": now,
                                     "due": due.isoformat() if due else None, "retry_days": retry_days,
                                     "interval": self.policy.agreement_start}
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

    def agreement_transition_event(self, agreement_id: str, old: str | None, new: str,
                                   origin: c.CommandBase | dict[str, Any] | None,
                                   agreement: dict[str, Any] | None = None) -> dict[str, Any]:
        return self._event(AGREEMENT_EVENTS[new], event_id(agreement_id, "agreement-status", new), origin,
                           agreement_id=agreement_id, transition={"from": old, "to": new},
                           agreement=agreement or {"id": agreement_id, "status": new})

    # -- observations ----------------------------------------------------------------------------

    def observe_agreement(self, agreement: dict[str, Any], origin: c.CommandBase | None = None
                          ) -> tuple[list[dict[str, Any]], WatchChange | None]:
        member = agreement_member(agreement["id"])
        state = self._state(member)
        status = str(agreement.get("status"))
        if state is None:
            if origin is None or status != "ACTIVE" or not self.policy.agreement_active:
                return [], None
            # An ACTIVE agreement we did not follow (made elsewhere, or before this version): a fetch enrols
            # it, so a later stop by the user is seen too. First sight is no transition.
            state = self._origin(origin) | {"kind": "agreement", "agreement_id": agreement["id"], "status": status,
                                            "started_ms": self._ms(), "interval": self.policy.agreement_every}
        events: list[dict[str, Any]] = []
        if status != state.get("status") and status in AGREEMENT_EVENTS:
            events.append(self.agreement_transition_event(agreement["id"], state.get("status"), status,
                                                          origin or state, agreement))
        if status in AGREEMENT_FINAL or (status == "ACTIVE" and not self.policy.agreement_active):
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
        interval = min(float(state.get("interval", self.policy.agreement_every)) * 1.2, self.policy.agreement_max)
        state["interval"] = interval
        return events, WatchChange(member, self._ms() + int(interval * 1000), state)

    def observe_charge(self, agreement_id: str, charge: dict[str, Any], origin: c.CommandBase | None = None
                       ) -> tuple[list[dict[str, Any]], WatchChange | None]:
        member = charge_member(agreement_id, charge["id"])
        state = self._state(member)
        if state is None:
            if origin is None:
                return [], None
            state = {"kind": "charge", "agreement_id": agreement_id, "charge_id": charge["id"], "status": None,
                     "sig": None, "started_ms": self._ms(), "retry_days": charge.get("retryDays") or 0}
        sig = charge_signature(charge)
        status = str(charge.get("status"))
        events: list[dict[str, Any]] = []
        if sig != state.get("sig"):
            events.append(self._event(EventType.CHARGE_STATUS_CHANGED,
                                      event_id(charge["id"], agreement_id, "charge-state", sig), origin or state,
                                      agreement_id=agreement_id, charge_id=charge["id"],
                                      transition={"from": state.get("status"), "to": status}, charge=charge))
            state["await_change"] = False
        state["status"], state["sig"] = status, sig
        due = charge.get("due")
        if due and not state.get("due"):
            state["due"] = str(due)[:10]
        if status in CHARGE_OPEN or state.get("await_change"):
            next_ms = self._next_charge_ms(state)
            if next_ms is not None:
                return events, WatchChange(member, next_ms, state)
        return events, WatchChange(member, SETTLE, state)

    # -- the poller ------------------------------------------------------------------------------

    def poll_once(self, limit: int = 50) -> int:
        """Check every watched resource that is due; returns how many were checked."""
        members = [m for key in (self.keys.watch, self.keys.watch_charges)
                   for m in self.schedules.take_due(key, now=self._ms(), limit=limit, push_ms=LEASE_MS)]
        for member in members:
            try:
                self._check(member)
            except errors.RateLimitedError as exc:
                self._reschedule(member, exc.retry_after or 5.0)
            except errors.TransientError as exc:
                self._reschedule(member, exc.retry_after or 10.0)
            except errors.AuthError:
                self._reschedule(member, 30.0)
            except errors.PermanentError as exc:
                log.warning("stopped watching: Vipps refused the fetch",
                            extra={"member": member, "status": exc.status, "problem_type": exc.problem_type})
                self.ledger.observe([], [WatchChange(member, REMOVE)])
        return len(members)

    def _check(self, member: str) -> None:
        state = self._state(member)
        if state is None:
            self.redis.zrem(self.keys.watch_for(member), member)
            return
        if state["kind"] == "agreement":
            agreement = self.client.fetch_agreement(state["agreement_id"])
            events, change = self.observe_agreement(agreement.model_dump(mode="json", by_alias=True))
        else:
            charge = self.client.fetch_charge(state["agreement_id"], state["charge_id"])
            events, change = self.observe_charge(state["agreement_id"],
                                                 charge.model_dump(mode="json", by_alias=True))
        self.ledger.observe(events, [change] if change else [])

    def _reschedule(self, member: str, seconds: float) -> None:
        self.redis.zadd(self.keys.watch_for(member), {member: self._ms() + int(seconds * 1000)}, xx=True)

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

    def _state(self, member: str) -> dict[str, Any] | None:
        raw = self.redis.hget(self.keys.watch_state, member)
        if not raw:
            return None
        state: dict[str, Any] = json.loads(raw)
        return state

    def _origin(self, cmd: c.CommandBase) -> dict[str, Any]:
        return {"command_id": cmd.command_id, "correlation_id": cmd.correlation_id, "msn": cmd.msn or self.msn}

    def _event(self, kind: EventType, eid: str, origin: c.CommandBase | dict[str, Any] | None,
               **fields: Any) -> dict[str, Any]:
        if isinstance(origin, c.CommandBase):
            origin = self._origin(origin)
        origin = origin or {}
        body: dict[str, Any] = {
            "event_id": eid, "type": kind.value, "command_id": origin.get("command_id"),
            "correlation_id": origin.get("correlation_id"), "msn": origin.get("msn") or self.msn,
            "occurred_at": dt.datetime.fromtimestamp(self.clock(), dt.UTC).isoformat(),
        }
        body.update(fields)
        return body

    def _ms(self) -> int:
        return int(self.clock() * 1000)

