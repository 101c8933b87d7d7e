"""Webhook registrations (CHANGES §1.3): who registered which URL for which events, and which MSNs it covers.

A registration is made with one key set and, usually, one MSN:

* a merchant's own keys: a sales-unit registration for that merchant's MSN;
* partner keys with ``Merchant-Serial-Number``: a partner registration for that MSN;
* partner keys without it: a partner registration for every MSN the partner manages.

At most ``limit`` registrations (Vipps: 25) per event type in each bucket: (key set, MSN), the MSN being
"every MSN" for a partner's registration without one. So a merchant's own registrations, a partner's for that
merchant and a partner's for all its merchants are three separate buckets of 25.

Callers hold the webhooks lock (``webhook_delivery``): registrations are read by the delivery thread too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from worker.simulator.clock import iso
from worker.simulator.problems import Problem


@dataclass
class Registration:
    id: str
    url: str
    events: tuple[str, ...]
    secret: str
    # The key set that registered it (``merchant:123456``, ``partner:platform``).
    owner: str
    # The MSN it was registered for; None: a partner's registration for every MSN it manages.
    msn: str | None
    # The MSNs whose events it receives.
    msns: tuple[str, ...]
    created: float
    # The first failed attempt since the last delivered one (None: none failing).
    failing_since: float | None = None

    def summary(self) -> dict[str, Any]:
        """As ``GET /webhooks/v1/webhooks`` shows it."""
        return {"id": self.id, "url": self.url, "events": list(self.events)}

    def admin_json(self) -> dict[str, Any]:
        """As the admin API shows it: everything but the secret."""
        return {
            **self.summary(),
            "owner": self.owner,
            "msn": self.msn,
            "msns": list(self.msns),
            "created": iso(self.created),
            "failing_since": iso(self.failing_since) if self.failing_since is not None else None,
        }


class Registry:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        # By id, in the order made (deliveries to several registrations go out in this order).
        self.items: dict[str, Registration] = {}

    def visible(self, owner: str, msn: str | None) -> list[Registration]:
        """What a call with these keys and this MSN lists and may delete: the registrations made with the same
        keys for the same MSN; a partner calling without an MSN sees all of its own."""
        return [r for r in self.items.values() if r.owner == owner and (msn is None or r.msn == msn)]

    def add(self, registration: Registration) -> None:
        for event in registration.events:
            taken = sum(
                1
                for r in self.items.values()
                if r.owner == registration.owner and r.msn == registration.msn and event in r.events
            )
            if taken >= self.limit:
                raise Problem(
                    400,
                    "limit",
                    f"At most {self.limit} webhooks can be registered per event",
                    extra=[{"field": "events", "text": f"{event} already has {taken} registrations"}],
                )
        self.items[registration.id] = registration

    def remove(self, registration_id: str) -> Registration | None:
        return self.items.pop(registration_id, None)

    def matching(self, msn: str, event_type: str) -> list[Registration]:
        return [r for r in self.items.values() if event_type in r.events and msn in r.msns]
