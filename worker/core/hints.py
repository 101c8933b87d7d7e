"""Webhooks as hints: fetch what a delivery names and publish what the fetch shows, exactly as polling does.

A delivery is never taken as the truth: its payload only says which agreement or charge to look at (and,
for a stop, who stopped it). The fetch goes through the merchant's client and budgets; the watcher compares
what it finds with what was last seen, so a transition seen by a webhook and by a poll is one event with one
id, and a stale or repeated delivery (a "captured" after the refund) publishes nothing new. A resource we do
not follow is followed from then on.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from worker.core.events import Origin
from worker.core.observer import PipelineObserver
from worker.core.watch import Hint, Watcher
from worker.store.clock import now_ms
from worker.store.deadletters import DeadLetter, DeadLetterStore, dead_letter_id
from worker.store.ledger import Ledger
from worker.store.watchlist import REMOVE, SETTLE, WatchChange, agreement_member, charge_member
from worker.vipps import errors
from worker.vipps.merchant_clients import MerchantClients
from worker.vipps.webhook_events import CHARGE_CREATION_FAILED, known

log = logging.getLogger("worker.core.hints")

# How soon a watched resource is polled when the fetch a webhook asked for could not be made now.
POLL_SOON_SECONDS = 5.0


class Hints:
    def __init__(self, clients: MerchantClients, watcher: Watcher, ledger: Ledger, dead_letters: DeadLetterStore,
                 observer: PipelineObserver | None = None) -> None:
        self.clients = clients
        self.watcher = watcher
        self.ledger = ledger
        self.dead_letters = dead_letters
        self.observer = observer or PipelineObserver()

    def handle(self, delivery: dict[str, Any]) -> str:
        """Carry out one verified delivery; returns its outcome label (raises only to be tried again)."""
        payload = _payload(delivery)
        event_type = str(payload.get("eventType") or "")
        msn, agreement_id, charge_id = payload.get("msn"), payload.get("agreementId"), payload.get("chargeId")
        merchants = self.clients.merchants
        merchant = merchants.get(msn) if isinstance(msn, str) else merchants.only
        if merchant is None or not merchant.enabled:
            return self._letter(delivery, "webhook_unknown_merchant", f"no enabled merchant {msn!r} here")
        if not isinstance(agreement_id, str) or (charge_id is not None and not isinstance(charge_id, str)):
            return self._letter(delivery, "webhook_unreadable", "no agreementId (or a chargeId that is no string)")
        hint = Hint(merchant.msn, payload.get("actor") if isinstance(payload.get("actor"), str) else None)
        member = charge_member(agreement_id, charge_id) if charge_id else agreement_member(agreement_id)
        try:
            outcome = self._look(hint, agreement_id, charge_id, event_type == CHARGE_CREATION_FAILED)
        except (errors.TransientError, errors.AuthError) as exc:
            if self.watcher.watchlist.state(member) is None:
                raise  # not followed: only this delivery knows of it, so it is tried again
            self.watcher.watchlist.check_in(member, getattr(exc, "retry_after", None) or POLL_SOON_SECONDS)
            outcome = "poll_soon"
        except errors.PermanentError as exc:
            return self._letter(delivery, "webhook_fetch_refused", str(exc), msn=merchant.msn)
        received = delivery.get("received_ms")
        latency = max(0.0, time.time() - received / 1000) if isinstance(received, int) else None
        self.observer.hint_handled(known(event_type), outcome, latency)
        return outcome

    def _look(self, hint: Hint, agreement_id: str, charge_id: str | None, creation_failed: bool) -> str:
        client = self.clients.for_msn(hint.msn)
        if charge_id is None:
            agreement = client.fetch_agreement(agreement_id).model_dump(mode="json", by_alias=True)
            events, change = self.watcher.observe_agreement(agreement, hint=hint)
        else:
            try:
                charge = client.fetch_charge(agreement_id, charge_id).model_dump(mode="json", by_alias=True)
            except errors.PermanentError as exc:
                if not (creation_failed and exc.status == 404):
                    raise
                return self._creation_failed(hint, agreement_id, charge_id)
            events, change = self.watcher.observe_charge(agreement_id, charge, hint=hint)
        self.ledger.observe(events, [change] if change else [])
        return "published" if events else "no_change"

    def _creation_failed(self, hint: Hint, agreement_id: str, charge_id: str) -> str:
        """Vipps says the charge was not created, and it has no such charge: the command that asked for it
        learns so (the watch state names it)."""
        member = charge_member(agreement_id, charge_id)
        state = self.watcher.watchlist.state(member) or {}
        origin = Origin.from_state(state) if state else Origin(None, None, hint.msn)
        event = self.watcher.events.charge_creation_failed(agreement_id, charge_id, origin, "Vipps could not "
                                                           "create the charge (recurring.charge-creation-failed)")
        settle = WatchChange(member, SETTLE, state | {"status": "CREATION_FAILED"}) if state else \
            WatchChange(member, REMOVE)
        self.ledger.observe([event], [settle])
        self.observer.transition_seen("webhook")
        return "published"

    def _letter(self, delivery: dict[str, Any], reason: str, detail: str, msn: str | None = None) -> str:
        digest = str(delivery.get("digest") or "")
        if self.dead_letters.add(DeadLetter(id=dead_letter_id("webhook", digest), reason=reason,
                                            detail=detail[:500], at_ms=now_ms(), payload=delivery, msn=msn)):
            self.observer.dead_lettered(reason, msn)
        log.warning("webhook not carried out", extra={"reason": reason, "detail": detail[:200]})
        self.observer.hint_handled(known(_payload(delivery).get("eventType")), reason, None)
        return reason


def _payload(delivery: dict[str, Any]) -> dict[str, Any]:
    """The delivery's parsed body (the receiver queues only JSON objects; anything else reads as empty)."""
    payload = delivery.get("payload")
    return payload if isinstance(payload, dict) else {}
