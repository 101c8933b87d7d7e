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


def merchant_timeline(ledger: Ledger, agreement_id: str, charge_id: str | None,
                      msn: str | None) -> tuple[list[dict[str, Any]], list[str]]:
    """A resource's events, oldest first, of the merchant ``msn`` (None: of all), and the other MSNs that have
    events under the same id. Events that name no merchant are kept: they are no other merchant's."""
    events = ledger.timeline(agreement_id, charge_id)
    if msn is None:
        return events, []
    others = sorted({str(e["msn"]) for e in events if e.get("msn") not in (None, msn)})
    return [e for e in events if e.get("msn") in (None, msn)], others
