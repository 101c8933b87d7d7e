"""One `VippsClient` per merchant, each made on first use with that merchant's MSN and keys.

The clients share what their maker gives them (the token store and the rate budgets), so
merchants of one partner set share one access token, and every budget is counted per MSN.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from worker.vipps.client import VippsClient
from worker.vipps.config import VippsSettings
from worker.vipps.merchants import Merchant, Merchants


class MerchantClients:
    def __init__(self, merchants: Merchants, make: Callable[[VippsSettings], VippsClient]) -> None:
        self.merchants = merchants
        self._make = make
        self._clients: dict[str, VippsClient] = {}
        self._lock = threading.Lock()

    def for_msn(self, msn: str) -> VippsClient:
        """The client of a configured merchant (KeyError for any other MSN: resolve it first)."""
        client = self._clients.get(msn)
        if client is None:
            merchant = self.merchants.get(msn)
            if merchant is None:
                raise KeyError(f"MSN {msn} is not configured")
            with self._lock:
                client = self._clients.get(msn)
                if client is None:
                    client = self._clients[msn] = self._make(merchant.settings)
        return client

    def for_merchant(self, merchant: Merchant) -> VippsClient:
        return self.for_msn(merchant.msn)

    def refused(self) -> list[str]:
        """MSNs whose credentials Vipps refused at the last token fetch or call."""
        return [msn for msn, client in self._clients.items() if client.credentials_refused]

    def close(self) -> None:
        with self._lock:
            for client in self._clients.values():
                client.close()
            self._clients.clear()
