"""The Recurring state machines: agreements and charges, their rules, and time-driven transitions.

Everything here is synchronous and runs on the event loop between awaits, so one request's checks
and effects are atomic with respect to every other request.

Time-driven transitions (PENDING agreement expiry, charge PENDING -> DUE, processing rounds at the
configured UTC hours) sit in a heap and are applied in time order whenever time is moved or a
request is handled (``advance_to``).
"""

from __future__ import annotations

import heapq
import random
import string
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

from worker.simulator.config import SimulatorConfig
from worker.simulator.effects import EffectLog
from worker.simulator.models import Agreement, Charge, ChargeEvent
from worker.simulator.problems import Problem
from worker.simulator.scripts import FAILURE_REASONS, Scripts

ALNUM = string.ascii_letters + string.digits
DAY = 86400.0


def midnight(day: date) -> float:
    return datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()


def utc_date(ts: float) -> date:
    return datetime.fromtimestamp(ts, UTC).date()


def not_found(what: str, ident: str) -> Problem:
    return Problem(404, "resource-not-found", f"{what} {ident} not found")


class Engine:
    def __init__(self, config: SimulatorConfig, now: float) -> None:
        self.config = config
        self.hours = sorted(set(config.processing_hours_utc))
        self.rng = random.Random(config.seed)
        self.agreements: dict[str, Agreement] = {}
        self.charges: dict[str, Charge] = {}
        self.effects = EffectLog()
        self.scripts = Scripts()
        self._timers: list[tuple[float, int, str, str]] = []
        self._timer_seq = 0
        self.now = now
        self.userinfo_base = "https://api.vipps.no"

    # ----------------------------------------------------------------- time

    def advance_to(self, ts: float) -> None:
        """Apply every timed transition up to ``ts``, in time order."""
        timers = self._timers
        while timers and timers[0][0] <= ts:
            at, _, kind, ref = heapq.heappop(timers)
            self.now = max(self.now, at)
            if kind == "expire":
                self._expire(ref)
            elif kind == "auto_accept":
                self._auto_accept(ref)
            elif kind == "due":
                self._make_due(ref)
            elif kind == "attempt":
                self._attempt(ref)
        self.now = max(self.now, ts)

    def _schedule(self, at: float, kind: str, ref: str) -> None:
        self._timer_seq += 1
        heapq.heappush(self._timers, (at, self._timer_seq, kind, ref))

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

    # ----------------------------------------------------------------- ids

    def _token(self, n: int) -> str:
        return "".join(self.rng.choice(ALNUM) for _ in range(n))

    def _new_agreement_id(self) -> str:
        while True:
            candidate = "agr_" + self._token(7)
            if candidate not in self.agreements:
                return candidate

    def _new_charge_id(self) -> str:
        while True:
            candidate = "chr-" + self._token(7)
            if candidate not in self.charges:
                return candidate

    def _uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    # ----------------------------------------------------------------- lookups

    def agreement(self, agreement_id: str) -> Agreement:
        agreement = self.agreements.get(agreement_id)
        if agreement is None:
            raise not_found("Agreement", agreement_id)
        return agreement

    def charge(self, agreement_id: str | None, charge_id: str) -> Charge:
        charge = self.charges.get(charge_id)
        if charge is None or (agreement_id is not None and charge.agreement_id != agreement_id):
            raise not_found("Charge", charge_id)
        return charge

    def charge_json(self, charge: Charge) -> dict[str, Any]:
        return charge.to_json(self.agreements[charge.agreement_id].external_id)

    def agreement_json(self, agreement: Agreement) -> dict[str, Any]:
        return agreement.to_json(self.userinfo_base)

    # ----------------------------------------------------------------- agreements

    def draft_agreement(self, data: dict[str, Any], key: str, confirmation_base: str) -> tuple[Agreement, str | None]:
        agreement_id = self._new_agreement_id()
        token = self._token(24)
        if data["is_app"]:
            url = f"vippsMT://recurring?token={token}"
        else:
            url = f"{confirmation_base}/dwo-api-application/v1/deeplink/vippsgateway?v=2/token={token}"
        interval = data["interval"]
        agreement = Agreement(
            id=agreement_id,
            uuid=self._uuid(),
            created=self.now,
            product_name=data["product_name"],
            pricing_type=data["pricing_type"],
            interval_unit=interval["unit"],
            interval_count=interval["count"],
            merchant_agreement_url=data["merchant_agreement_url"],
            merchant_redirect_url=data["merchant_redirect_url"],
            confirmation_url=url,
            amount=data.get("amount"),
            suggested_max_amount=data.get("suggested_max_amount"),
            product_description=data.get("product_description"),
            phone_number=data.get("phone_number"),
            scope=data.get("scope"),
            external_id=data.get("external_id"),
            campaign=data.get("campaign"),
        )
        initial = data.get("initial_charge")
        if initial is not None and initial["order_id"] and initial["order_id"] in self.charges:
            raise Problem(409, "conflict", f"orderId {initial['order_id']} is already in use")
        self.agreements[agreement_id] = agreement
        self.effects.record(self.now, "agreement.draft", key, "created:PENDING", agreement_id)
        charge_id: str | None = None
        if initial is not None:
            charge = Charge(
                id=initial["order_id"] or self._new_charge_id(),
                agreement_id=agreement_id,
                amount=initial["amount"],
                description=initial["description"],
                due=utc_date(self.now),
                retry_days=0,
                transaction_type=initial["transaction_type"],
                type="INITIAL",
                created=self.now,
                external_id=initial["external_id"],
            )
            charge.history.append(ChargeEvent(self.now, "CREATE", charge.amount, key, True))
            self.charges[charge.id] = charge
            agreement.charge_ids.append(charge.id)
            agreement.initial_charge_id = charge_id = charge.id
            self.effects.record(
                self.now, "agreement.draft", key, "created:PENDING", agreement_id, charge.id, charge.amount
            )
        self._schedule(self.now + self.config.pending_agreement_ttl_seconds, "expire", agreement_id)
        if self.config.auto_accept_after_seconds is not None:
            self._schedule(self.now + self.config.auto_accept_after_seconds, "auto_accept", agreement_id)
        return agreement, charge_id

    def force_accept(self, agreement_id: str, phone: str, key: str) -> None:
        agreement = self.agreement(agreement_id)
        if agreement.status != "PENDING":
            raise Problem(409, "conflict", f"Agreement is {agreement.status}, only a PENDING agreement can be accepted")
        if self.scripts.refuses(agreement) or phone in self.scripts.never_accepts:
            raise Problem(400, "operation-failed", "The user did not accept the agreement")
        agreement.phone_number = phone
        self.accept(agreement, "agreement.accept", key)

    def accept(self, agreement: Agreement, operation: str, key: str, max_amount: int | None = None) -> None:
        """The user approves: ACTIVE, and the initial charge is processed at once."""
        if agreement.pricing_type == "VARIABLE":
            agreement.max_amount = max_amount if max_amount is not None else agreement.suggested_max_amount
        if agreement.scope:
            agreement.sub = self._uuid()
        if agreement.initial_charge_id is not None:
            charge = self.charges[agreement.initial_charge_id]
            reason = self.scripts.attempt_failure(charge, agreement)
            charge.attempts += 1
            system_key = f"{charge.id}-{agreement.id}-ProcessPayment"
            if reason is not None:
                self._fail(charge, reason, system_key)
                agreement.status = "EXPIRED"
                self.effects.record(self.now, operation, key, "PENDING->EXPIRED", agreement.id)
                return
            self._succeed(charge, system_key)
        agreement.status = "ACTIVE"
        agreement.start = self.now
        self.effects.record(self.now, operation, key, "PENDING->ACTIVE", agreement.id)

    def user_rejects(self, agreement_id: str) -> None:
        agreement = self.agreement(agreement_id)
        if agreement.status != "PENDING":
            raise Problem(409, "conflict", f"Agreement is {agreement.status}, not PENDING")
        self._end_pending(agreement, "STOPPED", "user.reject", f"{agreement.id}-UserReject")

    def _expire(self, agreement_id: str) -> None:
        agreement = self.agreements.get(agreement_id)
        if agreement is not None and agreement.status == "PENDING":
            self._end_pending(agreement, "EXPIRED", "agreement.expire", f"{agreement.id}-Expire")

    def _auto_accept(self, agreement_id: str) -> None:
        agreement = self.agreements.get(agreement_id)
        if agreement is None or agreement.status != "PENDING" or self.scripts.refuses(agreement):
            return
        if self.scripts.auto_rejects(agreement):
            self._end_pending(agreement, "STOPPED", "user.reject", f"{agreement.id}-UserReject")
        else:
            self.accept(agreement, "user.accept", f"{agreement.id}-UserAccept")

    def _end_pending(self, agreement: Agreement, status: str, operation: str, key: str) -> None:
        agreement.status = status
        agreement.stop = self.now
        self.effects.record(self.now, operation, key, f"PENDING->{status}", agreement.id)
        if agreement.initial_charge_id is not None:
            self._cancel(self.charges[agreement.initial_charge_id], operation, key)

    def update_agreement(self, agreement_id: str, changes: dict[str, Any], key: str) -> None:
        agreement = self.agreement(agreement_id)
        if changes.get("status") == "STOPPED":
            if agreement.status == "STOPPED" and self.config.idempotent_stop:
                return
            if agreement.status != "ACTIVE":
                raise _illegal_update(agreement)
            self.stop_agreement(agreement, "agreement.stop", key, by_user=False)
            return
        if agreement.status != "ACTIVE":
            raise _illegal_update(agreement)
        if "amount" in changes and agreement.pricing_type != "LEGACY":
            raise Problem(
                400,
                "illegal-agreement-update",
                "pricing.amount can only be updated on a LEGACY agreement",
                extra=[{"field": "pricing.amount", "text": "agreement pricing type is VARIABLE"}],
            )
        if "suggestedMaxAmount" in changes and agreement.pricing_type != "VARIABLE":
            raise Problem(
                400,
                "illegal-agreement-update",
                "pricing.suggestedMaxAmount can only be updated on a VARIABLE agreement",
                extra=[{"field": "pricing.suggestedMaxAmount", "text": "agreement pricing type is LEGACY"}],
            )
        fields = {
            "productName": "product_name",
            "productDescription": "product_description",
            "merchantAgreementUrl": "merchant_agreement_url",
            "externalId": "external_id",
            "amount": "amount",
            "suggestedMaxAmount": "suggested_max_amount",
        }
        changed = []
        for name, attr in fields.items():
            if name in changes:
                setattr(agreement, attr, changes[name])
                changed.append(name)
        if changes.get("interval") is not None:
            agreement.interval_unit = changes["interval"]["unit"]
            agreement.interval_count = changes["interval"]["count"]
            changed.append("interval")
        self.effects.record(
            self.now,
            "agreement.update",
            key,
            "updated:" + ",".join(changed),
            agreement.id,
            amount=changes.get("amount", changes.get("suggestedMaxAmount")),
        )

    def stop_agreement(self, agreement: Agreement, operation: str, key: str, by_user: bool) -> None:
        """STOPPED; open charges are cancelled (a user's stop leaves RESERVED charges to the merchant)."""
        agreement.status = "STOPPED"
        agreement.stop = self.now
        self.effects.record(self.now, operation, key, "ACTIVE->STOPPED", agreement.id)
        closable = ("PENDING", "DUE") if by_user else ("PENDING", "DUE", "RESERVED")
        for charge_id in agreement.charge_ids:
            charge = self.charges[charge_id]
            if charge.status in closable:
                self._cancel(charge, operation, key)

    def set_max_amount(self, agreement_id: str, max_amount: int) -> None:
        agreement = self.agreement(agreement_id)
        if agreement.pricing_type != "VARIABLE":
            raise Problem(409, "conflict", "maxAmount applies to VARIABLE agreements only")
        agreement.max_amount = max_amount
        self.effects.record(
            self.now,
            "user.max_amount",
            f"{agreement.id}-MaxAmount-{max_amount}",
            "maxAmount",
            agreement.id,
            amount=max_amount,
        )

    # ----------------------------------------------------------------- charges

    def create_charge(self, agreement_id: str, data: dict[str, Any], key: str) -> Charge:
        agreement = self.agreement(agreement_id)
        if agreement.status != "ACTIVE":
            raise Problem(
                400,
                "charge-creation-failed",
                f"Cannot create a charge for an agreement which is not active (status {agreement.status})",
            )
        amount = data["amount"]
        if agreement.pricing_type == "LEGACY":
            assert agreement.amount is not None
            limit = agreement.amount * self.config.legacy_max_multiplier
        else:
            limit = max(agreement.suggested_max_amount or 0, agreement.max_amount or 0)
        if amount > limit:
            raise Problem(
                400,
                "charge-amount-too-high",
                f"The charge amount {amount} is higher than the limit {limit}",
                extra=[{"field": "amount", "text": f"must be less than or equal to {limit}"}],
            )
        order_id = data["order_id"]
        if order_id is not None and order_id in self.charges:
            raise Problem(409, "conflict", f"orderId {order_id} is already in use")
        charge = Charge(
            id=order_id or self._new_charge_id(),
            agreement_id=agreement_id,
            amount=amount,
            description=data["description"],
            due=data["due"],
            retry_days=data["retry_days"],
            transaction_type=data["transaction_type"],
            type="RECURRING",
            created=self.now,
            external_id=data["external_id"],
        )
        charge.history.append(ChargeEvent(self.now, "CREATE", amount, key, True))
        self.charges[charge.id] = charge
        agreement.charge_ids.append(charge.id)
        self.effects.record(self.now, "charge.create", key, "created:PENDING", agreement_id, charge.id, amount)
        due_start = midnight(charge.due)
        visible = due_start - self.config.due_visibility_days * DAY
        if visible <= self.now:
            self._make_due(charge.id)
        else:
            self._schedule(visible, "due", charge.id)
        self._schedule(self.next_round(max(self.now, due_start)), "attempt", charge.id)
        return charge

    def _make_due(self, charge_id: str) -> None:
        charge = self.charges[charge_id]
        if charge.status == "PENDING":
            charge.status = "DUE"
            self.effects.record(
                self.now,
                "charge.due",
                f"{charge.id}-{charge.agreement_id}-Due",
                "PENDING->DUE",
                charge.agreement_id,
                charge.id,
            )

    def _attempt(self, charge_id: str) -> None:
        charge = self.charges[charge_id]
        if charge.status == "PENDING":
            self._make_due(charge_id)
        if charge.status != "DUE":
            return
        agreement = self.agreements[charge.agreement_id]
        charge.attempts += 1
        system_key = f"{charge.id}-{agreement.id}-ProcessPayment"
        reason = self.scripts.attempt_failure(charge, agreement)
        if reason is None:
            self._succeed(charge, system_key)
            return
        last_day = midnight(charge.due) + charge.retry_days * DAY
        following = self.next_round(self.now + 1)
        if following >= last_day + DAY:
            self._fail(charge, reason, system_key)
        else:
            self._schedule(following, "attempt", charge.id)

    def _succeed(self, charge: Charge, system_key: str) -> None:
        before = charge.status
        if charge.transaction_type == "DIRECT_CAPTURE":
            charge.status = "CHARGED"
            charge.captured = charge.amount
            charge.captured_at = self.now
            charge.transaction_id = self._transaction_id()
            charge.history.append(ChargeEvent(self.now, "CAPTURE", charge.amount, system_key, True))
        else:
            charge.status = "RESERVED"
            charge.reserved_at = self.now
            charge.history.append(ChargeEvent(self.now, "RESERVE", charge.amount, system_key, True))
        self.effects.record(
            self.now,
            "charge.process",
            system_key,
            f"{before}->{charge.status}",
            charge.agreement_id,
            charge.id,
            charge.amount,
        )

    def _fail(self, charge: Charge, reason: str, system_key: str) -> None:
        before = charge.status
        charge.status = "FAILED"
        charge.failure_reason = reason
        charge.failure_description = FAILURE_REASONS[reason]
        charge.history.append(ChargeEvent(self.now, "FAIL", charge.amount, system_key, False))
        self.effects.record(
            self.now, "charge.process", system_key, f"{before}->FAILED", charge.agreement_id, charge.id, charge.amount
        )

    def _transaction_id(self) -> str:
        return str(self.rng.randrange(10**9, 10**10))

    def _cancel(self, charge: Charge, operation: str, key: str) -> None:
        before = charge.status
        released = charge.reservable
        if before == "PARTIALLY_CAPTURED":
            charge.status = "CHARGED"
        else:
            charge.status = "CANCELLED"
        charge.cancelled += released
        charge.history.append(ChargeEvent(self.now, "CANCEL", released, key, True))
        self.effects.record(
            self.now, operation, key, f"{before}->{charge.status}", charge.agreement_id, charge.id, released
        )

    def cancel_charge(self, agreement_id: str, charge_id: str, key: str) -> None:
        self.agreement(agreement_id)
        charge = self.charge(agreement_id, charge_id)
        if charge.status not in ("PENDING", "DUE", "RESERVED", "PARTIALLY_CAPTURED"):
            raise Problem(400, "cancel-charge-failed", f"Cannot cancel a charge with status {charge.status}")
        self._cancel(charge, "charge.cancel", key)

    def capture_charge(self, agreement_id: str, charge_id: str, amount: int, key: str) -> None:
        self.agreement(agreement_id)
        charge = self.charge(agreement_id, charge_id)
        if charge.transaction_type != "RESERVE_CAPTURE":
            raise Problem(400, "charge-capture-failed", "Only RESERVE_CAPTURE charges can be captured")
        if charge.status not in ("RESERVED", "PARTIALLY_CAPTURED"):
            raise Problem(400, "charge-capture-failed", f"Cannot capture a charge with status {charge.status}")
        assert charge.reserved_at is not None
        if self.now - charge.reserved_at > self.config.capture_window_days * DAY:
            raise Problem(
                400,
                "charge-capture-failed",
                f"Capture is only possible up to {self.config.capture_window_days} days after reservation",
            )
        if amount > charge.reservable:
            raise Problem(
                400,
                "charge-capture-failed",
                f"Cannot capture {amount}: only {charge.reservable} remains reserved",
                extra=[{"field": "amount", "text": f"must be less than or equal to {charge.reservable}"}],
            )
        before = charge.status
        charge.captured += amount
        charge.captured_at = self.now
        charge.status = "CHARGED" if charge.reservable == 0 else "PARTIALLY_CAPTURED"
        if charge.transaction_id is None:
            charge.transaction_id = self._transaction_id()
        charge.history.append(ChargeEvent(self.now, "CAPTURE", amount, key, True))
        self.effects.record(
            self.now, "charge.capture", key, f"{before}->{charge.status}", agreement_id, charge_id, amount
        )

    def refund_charge(self, agreement_id: str, charge_id: str, amount: int, key: str) -> None:
        self.agreement(agreement_id)
        charge = self.charge(agreement_id, charge_id)
        if charge.status not in ("CHARGED", "PARTIALLY_REFUNDED"):
            raise Problem(400, "operation-failed", f"Cannot refund a charge with status {charge.status}")
        assert charge.captured_at is not None
        if self.now - charge.captured_at > self.config.refund_window_days * DAY:
            raise Problem(
                400,
                "operation-failed",
                f"Refund is only possible up to {self.config.refund_window_days} days after capture",
            )
        if amount > charge.refundable:
            raise Problem(
                400,
                "operation-failed",
                f"Cannot refund more than captured amount: {charge.refundable} is refundable",
                extra=[{"field": "amount", "text": f"must be less than or equal to {charge.refundable}"}],
            )
        before = charge.status
        charge.refunded += amount
        charge.status = "REFUNDED" if charge.refundable == 0 else "PARTIALLY_REFUNDED"
        charge.history.append(ChargeEvent(self.now, "REFUND", amount, key, True))
        self.effects.record(
            self.now, "charge.refund", key, f"{before}->{charge.status}", agreement_id, charge_id, amount
        )


def _illegal_update(agreement: Agreement) -> Problem:
    return Problem(
        400,
        "illegal-agreement-update",
        "Illegal update",
        extra=[{"field": "status", "text": f"Cannot modify an agreement which is not active ({agreement.status})"}],
    )
