"""The baseline of ``vipps-billing bench``: a naive dramatiq actor making the same single Vipps POST.

No ledger, outbox, events or metrics: one httpx POST per message, then a counter increment so the bench
can see it finish. Run by the bench as ``dramatiq worker.bench.naive`` with the worker's processes and threads.
"""

from __future__ import annotations

import os
import threading
from typing import Any

import dramatiq
import httpx
import redis
from dramatiq.brokers.redis import RedisBroker

from worker.vipps import load_settings

QUEUE = "bench.naive"
DONE_KEY = "bench:naive:done"

redis_url = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"
broker = RedisBroker(url=redis_url)
dramatiq.set_broker(broker)
counter = redis.Redis.from_url(redis_url)
settings = load_settings()
http = httpx.Client(base_url=settings.url, timeout=10, limits=httpx.Limits(max_connections=64))
_token: dict[str, str] = {}
_lock = threading.Lock()


def _headers() -> dict[str, str]:
    with _lock:
        if "value" not in _token:
            response = http.post("/accesstoken/get", headers={
                "client_id": settings.secret("client_id"), "client_secret": settings.secret("client_secret"),
                "Ocp-Apim-Subscription-Key": settings.secret("subscription_key")})
            _token["value"] = response.raise_for_status().json()["access_token"]
    headers = {"Authorization": f"Bearer {_token['value']}",
               "Ocp-Apim-Subscription-Key": settings.secret("subscription_key"),
               "Vipps-System-Name": settings.system_name, "Vipps-System-Version": settings.system_version,
               "Vipps-System-Plugin-Name": settings.plugin_name,
               "Vipps-System-Plugin-Version": settings.plugin_version}
    if settings.msn:
        headers["Merchant-Serial-Number"] = settings.msn
    return headers


@dramatiq.actor(queue_name=QUEUE, actor_name="naive_charge_create", max_retries=0)
def naive_charge_create(command: dict[str, Any]) -> None:
    body = {"amount": command["amount"], "description": command["description"], "due": command["due"],
            "retryDays": command["retry_days"], "transactionType": command["transaction_type"]}
    response = http.post(f"/recurring/v3/agreements/{command['agreement_id']}/charges", json=body,
                         headers=_headers() | {"Idempotency-Key": command["command_id"][:40]})
    response.raise_for_status()
    counter.incr(DONE_KEY)
