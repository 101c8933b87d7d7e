"""The effects record: every state change with the idempotency key that caused it, the merchant (MSN) it
landed on and the key set whose call made it (``merchant:123456``, ``partner:platform``; None for what no
call made: processing rounds, expiry, a user's action).

A test reads it to prove that no operation took effect twice, and none on another merchant; ``charges`` sums it
up per charge id (how often each was created), so a test proves that no charge was created twice.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any

from worker.simulator.clock import iso

# The effect of every operation that creates a charge starts so (``created:PENDING``, ``created:PROCESSING``).
CREATED = "created:"


@dataclass(frozen=True)
class Effect:
    seq: int
    at: str
    operation: str
    idempotency_key: str
    agreement_id: str
    charge_id: str | None
    effect: str
    amount: int | None
    msn: str
    credentials: str | None


class EffectLog:
    def __init__(self) -> None:
        self.items: list[Effect] = []

    def record(
        self,
        at: float,
        operation: str,
        key: str,
        effect: str,
        msn: str,
        credentials: str | None,
        agreement_id: str,
        charge_id: str | None = None,
        amount: int | None = None,
    ) -> None:
        seq = len(self.items) + 1
        self.items.append(
            Effect(seq, iso(at), operation, key, agreement_id, charge_id, effect, amount, msn, credentials)
        )

    def query(
        self,
        since: int = 0,
        operation: str | None = None,
        agreement_id: str | None = None,
        charge_id: str | None = None,
        duplicates: bool = False,
        msn: str | None = None,
        credentials: str | None = None,
    ) -> list[dict[str, Any]]:
        items = self.duplicates() if duplicates else self.items[since:]
        return [
            asdict(e)
            for e in items
            if e.seq > since
            and (operation is None or e.operation == operation)
            and (agreement_id is None or e.agreement_id == agreement_id)
            and (charge_id is None or e.charge_id == charge_id)
            and (msn is None or e.msn == msn)
            and (credentials is None or e.credentials == credentials)
        ]

    def duplicates(self) -> list[Effect]:
        """Effects whose (operation, idempotency_key, resource) was applied more than once.

        The resource is part of the identity because one request may change several resources
        (stopping an agreement cancels each of its open charges under the stop's key).
        """
        counts = Counter((e.operation, e.idempotency_key, e.agreement_id, e.charge_id) for e in self.items)
        return [e for e in self.items if counts[(e.operation, e.idempotency_key, e.agreement_id, e.charge_id)] > 1]

    def charges(
        self, msn: str | None = None, agreement_id: str | None = None, charge_id: str | None = None
    ) -> dict[str, Any]:
        """Per charge id, its creations: every effect that created a charge (``created:...``; the single create,
        a batch's charge when it is created, an initial charge) counts one."""
        report: dict[str, dict[str, Any]] = {}
        for e in self.items:
            if (
                e.charge_id is None
                or not e.effect.startswith(CREATED)
                or (msn is not None and e.msn != msn)
                or (agreement_id is not None and e.agreement_id != agreement_id)
                or (charge_id is not None and e.charge_id != charge_id)
            ):
                continue
            row = report.setdefault(
                e.charge_id,
                {
                    "msn": e.msn,
                    "agreement_id": e.agreement_id,
                    "creations": 0,
                    "operations": [],
                    "idempotency_keys": [],
                },
            )
            row["creations"] += 1
            row["operations"].append(e.operation)
            row["idempotency_keys"].append(e.idempotency_key)
        return {
            "charges": report,
            "created_more_than_once": [ident for ident, row in report.items() if row["creations"] > 1],
        }

    def clear(self) -> None:
        self.items.clear()
