"""Webhook registrations at Vipps, as ``vipps-billing webhooks register|list|delete|rotate`` use them.

A registration is made with a merchant's keys and its MSN (a sales-unit registration), or with a partner set's
keys and no MSN (every merchant the partner manages). Vipps returns its secret once: it is written to the
receiver's secrets directory (one file per registration, named by its id, mode 0600) or printed once, and
never logged.
"""

from __future__ import annotations

import time

from worker.core.control import Control, OperationError
from worker.store.webhooks import WebhookQueue
from worker.vipps import VippsClient
from worker.vipps.merchants import Merchant


def client_for(ops: Control, msn: str | None, partner: str | None) -> VippsClient:
    """A client as the merchant ``msn`` (default: the only one), or as the partner set ``partner`` (no MSN)."""
    if partner is None:
        merchant = ops.merchant(msn)
        return VippsClient(merchant.settings.model_copy(update={"max_attempts": 1}))  # registering is no retry
    ours: list[Merchant] = [m for m in ops.merchants if m.credential_set == f"partner:{partner}"]
    if not ours:
        sets = sorted({m.credential_set.partition(":")[2] for m in ops.merchants if m.through_partner})
        raise OperationError(f"no partner set {partner!r} in the merchants file (partners: {', '.join(sets) or '-'})")
    return VippsClient(ours[0].settings.model_copy(update={"msn": None, "max_attempts": 1}))


def await_delivery(ops: Control, registration_id: str, timeout: float) -> bool:
    """Whether the receiver took a genuine delivery signed with this registration's secret within ``timeout``."""
    queue = WebhookQueue(ops.redis, ops.layout)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if queue.stats().get(f"last:{registration_id}"):
            return True
        time.sleep(1.0)
    return False
