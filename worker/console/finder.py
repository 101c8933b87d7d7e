"""Find and see: the console's reads, through the CLI's `Control` (the worker's Redis, and Vipps as the
merchant with the people's reserved share of the read budgets)."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from typing import Any

from worker.core.control import Control, OperationError
from worker.core.lookups import left, merchant_timeline
from worker.vipps import VippsClient, errors, models

# Agreement, charge, order and command ids: no id we look up at Vipps or in the ledger has other characters.
ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,63}$")
# The longest id of any kind (an externalId is 1..64 characters of any kind).
MAX_QUERY = 64


class LookupFailed(Exception):
    """A lookup that failed for a reason the user can read (one line, no secret)."""


@dataclass(frozen=True)
class Match:
    kind: str                     # agreement, charge or command
    id: str
    status: str
    agreement_id: str | None = None
    charge_id: str | None = None


@dataclass
class AgreementView:
    agreement: models.AgreementResponseV3
    charges: list[models.ChargeResponseV3]
    timeline: list[dict[str, Any]]
    fetched_at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))


@dataclass
class ChargeView:
    charge: models.ChargeResponseV3
    agreement_id: str
    left_to_capture: int
    left_to_refund: int
    timeline: list[dict[str, Any]]
    fetched_at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))


def describe_error(exc: Exception) -> str:
    """A lookup's failure in one line for a person: Vipps's problem with its contextId, or a rate limit."""
    if isinstance(exc, errors.BudgetExhaustedError):
        return f"{exc} (Vipps's published rate limit for this call, shared with the workers): try again shortly"
    if isinstance(exc, errors.VippsError):
        return f"Vipps said no: {exc}" + (f" (Vipps contextId {exc.context_id})" if exc.context_id else "")
    return str(exc)


def _not_found(exc: errors.VippsError) -> bool:
    return exc.status in (400, 404)


class Finder:
    def __init__(self, ops: Control) -> None:
        self.ops = ops

    def msn(self, msn: str | None) -> str:
        """The merchant a lookup is for: ``msn``, or the only one; else the error naming the merchants."""
        try:
            return self.ops.merchant(msn or None).msn
        except OperationError as exc:
            raise LookupFailed(str(exc)) from None

    def search(self, query: str, msn: str | None) -> list[Match]:
        """What ``query`` names for the merchant: agreements with that externalId (the worker's index, no Vipps
        call to find them), a command of the ledger, an agreement (``agr_...``), else a charge by its id (an
        order id is its charge's id)."""
        query = query.strip()
        if not query or len(query) > MAX_QUERY or not query.isprintable():
            raise LookupFailed(f"type an agreement, charge, order, command or external id (1 to {MAX_QUERY} "
                               "printable characters)")
        merchant = self.msn(msn)
        try:
            vipps = self.ops.vipps(msn=merchant)
            found = [self._agreement_match(vipps, agreement_id)
                     for agreement_id in self.ops.externals.find(merchant, query)]
            if not ID.match(query):
                return found
            found += [m for m in (self._command(query, merchant),) if m is not None]
            if query.startswith("agr_"):
                found.append(self._agreement_match(vipps, query))
            else:
                charge = vipps.fetch_charge_by_id(query)
                found.append(Match("charge", charge.id, str(charge.status), charge.agreementId, charge.id))
        except errors.VippsError as exc:
            if not _not_found(exc):
                raise LookupFailed(describe_error(exc)) from None
        return found

    @staticmethod
    def _agreement_match(vipps: VippsClient, agreement_id: str) -> Match:
        agreement = vipps.fetch_agreement(agreement_id)
        return Match("agreement", agreement.id, str(agreement.status), agreement.id)

    def _command(self, command_id: str, msn: str) -> Match | None:
        record = self.ops.record(command_id, msn)
        if record is None:
            return None
        events = record.get("events") or []
        payload = record.get("payload") if isinstance(record.get("payload"), dict) else {}
        named = next((e for e in events if e.get("agreement_id")), payload or {})
        return Match("command", command_id, str(record.get("status")), named.get("agreement_id"),
                     named.get("charge_id"))

    def agreement(self, agreement_id: str, msn: str | None) -> AgreementView:
        merchant = self.msn(msn)
        try:
            vipps = self.ops.vipps(msn=merchant)
            agreement = vipps.fetch_agreement(agreement_id)
            charges = vipps.list_charges(agreement_id)
            self.ops.externals.remember(merchant, agreement.externalId, agreement.id)
        except errors.VippsError as exc:
            raise LookupFailed(describe_error(exc)) from None
        events, _ = merchant_timeline(self.ops.ledger, agreement_id, None, merchant)
        return AgreementView(agreement, charges, events)

    def charge(self, agreement_id: str, charge_id: str, msn: str | None) -> ChargeView:
        merchant = self.msn(msn)
        try:
            charge = self.ops.vipps(msn=merchant).fetch_charge(agreement_id, charge_id)
        except errors.VippsError as exc:
            raise LookupFailed(describe_error(exc)) from None
        events, _ = merchant_timeline(self.ops.ledger, agreement_id, charge_id, merchant)
        return ChargeView(charge, agreement_id, max(0, left(charge, "capture")), max(0, left(charge, "refund")),
                          events)
