"""What support's reads share, the CLI's and the console's: a resource's timeline as one merchant sees it,
and what is left of a charge to capture or refund."""

from __future__ import annotations

from typing import Any, Literal

from worker.store.ledger import Ledger
from worker.vipps import models

Move = Literal["capture", "refund"]


def left(charge: models.ChargeResponseV3, kind: Move) -> int:
    """What is left to capture (reserved) or to refund (captured)."""
    s = charge.summary
    return charge.amount - s.captured - s.cancelled if kind == "capture" else s.captured - s.refunded


# Vipps's failureReason values in plain words, and what the customer should do in the app (guide, "Charge
# failure reasons"; Vipps gives merchants no per-attempt details, so support sends the customer to the app).
FAILURE_REASONS: dict[str, tuple[str, str]] = {
    "user_action_required": ("the card could not pay: not enough money, blocked for online payments, or expired",
                             "ask the customer to update or change the payment card in the Vipps app"),
    "charge_amount_too_high": ("the amount is above the maximum the customer allowed for this agreement",
                               "ask the customer to raise the agreement's maximum amount in the Vipps app"),
    "non_technical_error": ("the customer cannot pay through Vipps now, e.g. their Vipps profile was deleted",
                            "ask the customer to check their Vipps profile in the app"),
    "technical_error": ("a technical failure at Vipps or further on",
                        "nothing for the customer to do: Vipps retries while the charge is not FAILED; for a "
                        "FAILED charge, contact Vipps with the charge id"),
}


def failure_in_words(reason: object) -> str | None:
    """A charge's failureReason as support reads it out: what happened, and what the customer should do."""
    if reason is None:
        return None
    code = str(getattr(reason, "value", reason))
    meaning = FAILURE_REASONS.get(code)
    return f"{code}: {meaning[0]}; {meaning[1]}" if meaning else code


def confirmation_url(events: list[dict[str, Any]]) -> str | None:
    """Where the user confirms a PENDING agreement: Vipps gives it only when the agreement is drafted, so it is
    read from the agreement's ``agreement.created`` event in its timeline."""
    created = [e for e in events if e.get("type") == "agreement.created" and e.get("vipps_confirmation_url")]
    return str(created[0]["vipps_confirmation_url"]) if created else None


def merchant_timeline(ledger: Ledger, agreement_id: str, charge_id: str | None,
                      msn: str | None) -> tuple[list[dict[str, Any]], list[str]]:
    """A resource's events, oldest first, of the merchant ``msn`` (None: of all), and the other MSNs that have
    events under the same id. Events that name no merchant are kept: they are no other merchant's."""
    events = ledger.timeline(agreement_id, charge_id)
    if msn is None:
        return events, []
    others = sorted({str(e["msn"]) for e in events if e.get("msn") not in (None, msn)})
    return [e for e in events if e.get("msn") in (None, msn)], others
