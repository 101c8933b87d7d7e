"""Who may act for which sales unit: the merchants by MSN, and the key sets tokens are issued to (a merchant's
own keys, which act for that merchant only, or a partner's, which act for every MSN the partner lists).

Built from the merchants file (``merchants_file``), or from the one merchant of the settings without one.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Any

from worker.simulator.merchants_file import MerchantEntry, MerchantsFile
from worker.simulator.problems import Problem


def same(given: str | None, expected: str) -> bool:
    """Constant-time comparison; bytes, because compare_digest refuses non-ASCII str (a header may hold any)."""
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


@dataclass(frozen=True)
class Merchant:
    msn: str
    name: str
    active: bool
    recurring_allowed: bool
    capture_type: str
    skip_landing_page_allowed: bool
    organization_number: str
    bank_account: str
    # May create UNSCHEDULED charges (Vipps allow-lists MSNs for them).
    unscheduled_allowed: bool = False

    def summary(self) -> dict[str, str]:
        return {"msn": self.msn, "name": self.name}

    def sales_unit_json(self) -> dict[str, Any]:
        """``GET /management/v1/sales-units/{msn}``."""
        return {
            **self.summary(),
            "businessIdentifier": {"scheme": "business:NO:ORG", "id": self.organization_number},
            "settlementBankAccount": {"scheme": "BBAN:NO", "id": self.bank_account},
            "configuration": {
                "paymentAllowed": True,
                "captureType": self.capture_type,
                "skipLandingPageAllowed": self.skip_landing_page_allowed,
                "recurringAllowed": self.recurring_allowed,
                "partialCaptureAllowed": True,
                "lateCaptureAllowed": True,
                "landingPagePhoneNumberLocked": False,
                "longLivingPaymentAllowed": False,
                "creditCardPaymentAllowed": True,
            },
        }


@dataclass(frozen=True)
class KeySet:
    """One set of API keys. ``label`` names it in the effects and request records (``merchant:123456``,
    ``partner:platform``); it is never a secret."""

    label: str
    client_id: str
    client_secret: str
    subscription_key: str
    # The MSNs it may act for, in the file's order.
    msns: tuple[str, ...]
    # A merchant's own keys: its MSN, used when a call sends none. Partner keys: None (the header is required).
    own_msn: str | None

    def msn_for(self, header: str | None) -> str | None:
        """The MSN a call with these keys is for: the header, else the merchant's own."""
        return header if header is not None else self.own_msn


@dataclass(frozen=True)
class Caller:
    """The sales unit a Recurring call acts for and the key set that made it."""

    msn: str
    credentials: str


def _merchant(entry: MerchantEntry, skip_landing_page_allowed: bool, unscheduled_allowed: bool) -> Merchant:
    digits = entry.msn.rjust(8, "0")[-8:]
    skip = entry.skip_landing_page_allowed
    unscheduled = entry.unscheduled_allowed
    return Merchant(
        msn=entry.msn,
        name=entry.name,
        active=entry.active,
        recurring_allowed=entry.recurring_allowed,
        capture_type=entry.capture_type,
        skip_landing_page_allowed=skip_landing_page_allowed if skip is None else skip,
        organization_number=entry.organization_number or "9" + digits,
        bank_account=entry.bank_account or "860" + digits,
        unscheduled_allowed=unscheduled_allowed if unscheduled is None else unscheduled,
    )


class Merchants:
    def __init__(
        self, file: MerchantsFile, skip_landing_page_allowed: bool = False, unscheduled_allowed: bool = False
    ) -> None:
        self.merchants = {
            entry.msn: _merchant(entry, skip_landing_page_allowed, unscheduled_allowed) for entry in file.merchants
        }
        key_sets = []
        for entry in file.merchants:
            keys = entry.keys()
            if keys is not None:
                key_sets.append(KeySet(f"merchant:{entry.msn}", *keys, msns=(entry.msn,), own_msn=entry.msn))
        for partner in file.partners:
            keys = partner.keys()
            assert keys is not None  # a partner's keys are required
            key_sets.append(KeySet(f"partner:{partner.name}", *keys, msns=tuple(partner.msns), own_msn=None))
        self.key_sets = tuple(key_sets)

    def login(self, client_id: str | None, client_secret: str | None) -> KeySet | None:
        # Every set is compared, so the time taken does not tell which one nearly matched.
        found = [k for k in self.key_sets if same(client_id, k.client_id) & same(client_secret, k.client_secret)]
        return found[0] if found else None

    def knows_subscription_key(self, key: str) -> bool:
        # A list, not a generator: every key is compared.
        return any([same(key, k.subscription_key) for k in self.key_sets])

    def msn_of_call(self, keys: KeySet, header: str | None) -> str:
        """The MSN a Recurring call acts for, by the rules of NOTES §5.2: 403 for a missing or foreign one."""
        msn = keys.msn_for(header)
        if msn is None:
            raise Problem(403, "invalid-sale-unit", "Merchant-Serial-Number is required with partner keys")
        if msn not in keys.msns:
            if keys.own_msn is not None:
                raise Problem(403, "invalid-sale-unit", "The Merchant-Serial-Number does not match the access token")
            raise Problem(403, "invalid-sale-unit", f"Sales unit {msn} is not linked to these partner keys")
        return msn

    def webhooks_sales_unit(self, keys: KeySet, header: str | None) -> Merchant | None:
        """The sales unit a Webhooks API call acts for: as for a Recurring call, except that partner keys may
        leave the MSN out (None: the call acts for every MSN the partner manages). It must be active."""
        if header is None and keys.own_msn is None:
            return None
        merchant = self.merchants[self.msn_of_call(keys, header)]
        if not merchant.active:
            raise Problem(403, "invalid-sale-unit", f"Sales unit {merchant.msn} is not active")
        return merchant

    def recurring(self, msn: str) -> Merchant:
        """The merchant, if it may use the Recurring API now; 403 ``invalid-sale-unit`` otherwise."""
        merchant = self.merchants[msn]
        if not merchant.active:
            raise Problem(403, "invalid-sale-unit", f"Sales unit {msn} is not active")
        if not merchant.recurring_allowed:
            raise Problem(403, "invalid-sale-unit", f"Sales unit {msn} is not allowed to use the Recurring API")
        return merchant

    def visible(self, keys: KeySet) -> list[Merchant]:
        """The active sales units these keys act for (the Management API shows no other)."""
        return [self.merchants[msn] for msn in keys.msns if self.merchants[msn].active]

    def sales_unit(self, keys: KeySet, msn: str) -> Merchant:
        for merchant in self.visible(keys):
            if merchant.msn == msn:
                return merchant
        raise Problem(404, "resource-not-found", f"Sales unit {msn} not found")
