"""The baseline of ``vipps-billing bench``: a naive dramatiq actor making the same single Vipps POST.

No ledger, outbox, events or metrics: one httpx POST per message, then a counter increment so the bench
can see it finish. The bench runs it as ``dramatiq worker.bench.naive:setup`` with the worker's processes
and threads; ``setup`` is the naive process's composition root (dramatiq calls it in every process).
"""

from __future__ import annotations

import os
import threading
from typing import Any

import dramatiq
import httpx
import redis
from dramatiq.brokers.redis import RedisBroker

from worker.local.redis import DEFAULT_URL
from worker.runtime.settings import get_settings
from worker.vipps import VippsSettings, load_settings

QUEUE = "bench.naive"
ACTOR = "naive_charge_create"
DONE_KEY = "bench:naive:done"


class NaiveCharger:
    """POST a charge with a token fetched once; count what is done."""

    def __init__(self, settings: VippsSettings, counter: redis.Redis) -> None:
        self.settings = settings
        self.counter = counter
        self.http = httpx.Client(base_url=settings.url, timeout=10, limits=httpx.Limits(max_connections=64))
        self._token: str | None = None
        self._lock = threading.Lock()

    def _headers(self) -> dict[str, str]:
        s = self.settings
        with self._lock:
            if self._token is None:
                response = self.http.post("/accesstoken/get", headers={
                    "client_id": s.secret("client_id"), "client_secret": s.secret("client_secret"),
                    "Ocp-Apim-Subscription-Key": s.secret("subscription_key")})
                self._token = str(response.raise_for_status().json()["access_token"])
        headers = {"Authorization": f"Bearer {self._token}", "Ocp-Apim-Subscription-Key": s.secret("subscription_key"),
                   "Vipps-System-Name": s.system_name, "Vipps-System-Version": s.system_version,
                   "Vipps-System-Plugin-Name": s.plugin_name, "Vipps-System-Plugin-Version": s.plugin_version}
        if s.msn:
            headers["Merchant-Serial-Number"] = s.msn
        return headers

    def charge_create(self, command: dict[str, Any]) -> None:
        body = {"amount": command["amount"], "description": command["description"], "due": command["due"],
                "retryDays": command["retry_days"], "transactionType": command["transaction_type"]}
        response = self.http.post(f"/recurring/v3/agreements/{command['agreement_id']}/charges", json=body,
                                  headers=self._headers() | {"Idempotency-Key": command["command_id"][:40]})
        response.raise_for_status()
        self.counter.incr(DONE_KEY)


def setup() -> None:
    """The broker and the one actor, from the environment the bench gave this process."""
    settings = get_settings()
    redis_url = settings.redis_url or DEFAULT_URL
    broker = RedisBroker(url=redis_url, namespace=settings.dramatiq_namespace)
    dramatiq.set_broker(broker)
    charger = NaiveCharger(load_settings(), redis.Redis.from_url(redis_url))
    # No retries where the simulator has no limits; under Vipps's limits, dramatiq's own retries with backoff,
    # as a hand-written actor would have them.
    retries = int(os.environ.get("NAIVE_MAX_RETRIES", "0"))
    dramatiq.actor(broker=broker, queue_name=QUEUE, actor_name=ACTOR, max_retries=retries, min_backoff=1000,
                   max_backoff=60_000)(charger.charge_create)
