"""A thin in-process client for the simulator: authenticates, sends the standard headers, mints
idempotency keys, and checks every Vipps response against the official spec."""

from __future__ import annotations

import asyncio
import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import sim_spec as spec

from tests.merchants import OWN, OWN_MSN, merchants_data
from worker.simulator.app import create_app
from worker.simulator.config import SimulatorConfig
from worker.simulator.webhook_events import EVENT_TYPES

_keys = itertools.count(1)
CREDENTIALS = {
    "client_id": "simulator-client-id",
    "client_secret": "simulator-client-secret",
    "Ocp-Apim-Subscription-Key": "simulator-subscription-key",
}
AGREEMENT_BODY: dict[str, Any] = {
    "pricing": {"type": "LEGACY", "amount": 10000, "currency": "NOK"},
    "interval": {"unit": "MONTH", "count": 1},
    "merchantRedirectUrl": "https://example.com/redirect",
    "merchantAgreementUrl": "https://example.com/agreement",
    "phoneNumber": "4791234567",
    "productName": "MyNews Digital",
}


def new_key() -> str:
    return f"test-key-{next(_keys)}"


class SyncASGIClient:
    """httpx over ASGITransport, driven synchronously on a private event loop."""

    def __init__(self, app: Any, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://api.vipps.no")

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return self.loop.run_until_complete(self.client.request(method, path, **kwargs))

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", path, **kwargs)

    def close(self) -> None:
        self.loop.run_until_complete(self.client.aclose())
        self.loop.close()


class Vipps:
    def __init__(
        self,
        config: SimulatorConfig | None = None,
        credentials: dict[str, str] | None = None,
        msn: str | None = "123456",
        **overrides: Any,
    ) -> None:
        self.config = config or SimulatorConfig(**overrides)
        # The token request's headers and the MSN header every call sends (None: none).
        self.credentials = credentials or CREDENTIALS
        self.msn = msn
        self.app = create_app(self.config)
        self.loop = asyncio.new_event_loop()
        self.http = SyncASGIClient(self.app, self.loop)
        self.token = self.fetch_token().json()["access_token"]

    @property
    def sim(self) -> Any:
        return self.app.state.simulator

    def fetch_token(self, **headers: str) -> httpx.Response:
        response = self.http.post("/accesstoken/get", headers={**self.credentials, **headers})
        self.check(response)
        return response

    def login(self, credentials: dict[str, str], msn: str | None) -> None:
        """Act with other keys (a token of theirs) for another MSN from now on."""
        self.credentials, self.msn = credentials, msn
        self.token = self.fetch_token().json()["access_token"]

    def headers(self, key: str | None = None) -> dict[str, str]:
        headers = {
            "Authorization": f"Bearer {self.token}",
            "Ocp-Apim-Subscription-Key": self.credentials["Ocp-Apim-Subscription-Key"],
            "Vipps-System-Name": "tests",
            "Vipps-System-Version": "1",
        }
        if self.msn is not None:
            headers["Merchant-Serial-Number"] = self.msn
        if key is not None:
            headers["Idempotency-Key"] = key
        return headers

    def check(self, response: httpx.Response) -> httpx.Response:
        """Every Vipps response must match the official spec."""
        spec.validate(
            response.request.method,
            response.request.url.path,
            response.status_code,
            response.content,
            response.headers.get("content-type"),
        )
        return response

    def call(
        self, method: str, path: str, body: Any = None, key: str | None = None, headers: dict[str, str] | None = None
    ) -> httpx.Response:
        mutating = method in ("POST", "PATCH", "DELETE")
        all_headers = self.headers(key or new_key() if mutating else None)
        all_headers.update(headers or {})
        response = self.http.request(method, path, json=body, headers=all_headers)
        return self.check(response)

    # ---- agreements

    def draft(self, key: str | None = None, **changes: Any) -> httpx.Response:
        return self.call("POST", "/recurring/v3/agreements", {**AGREEMENT_BODY, **changes}, key=key)

    def agreement_id(self, **changes: Any) -> str:
        response = self.draft(**changes)
        assert response.status_code == 201, response.text
        return str(response.json()["agreementId"])

    def accept(self, agreement_id: str, key: str | None = None) -> httpx.Response:
        return self.call(
            "PATCH", f"/recurring/v3/agreements/{agreement_id}/accept", {"phoneNumber": "4791234567"}, key=key
        )

    def active_agreement(self, **changes: Any) -> str:
        agreement_id = self.agreement_id(**changes)
        assert self.accept(agreement_id).status_code == 204
        return agreement_id

    def agreement(self, agreement_id: str) -> dict[str, Any]:
        response = self.call("GET", f"/recurring/v3/agreements/{agreement_id}")
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    def update(self, agreement_id: str, body: dict[str, Any], key: str | None = None) -> httpx.Response:
        return self.call("PATCH", f"/recurring/v3/agreements/{agreement_id}", body, key=key)

    # ---- charges

    def due(self, days: int = 1) -> str:
        today = datetime.fromtimestamp(self.sim.clock.timestamp(), UTC).date()
        return (today + timedelta(days=days)).isoformat()

    def create_charge(
        self, agreement_id: str, amount: int = 10000, key: str | None = None, **changes: Any
    ) -> httpx.Response:
        body = {
            "amount": amount,
            "description": "Monthly",
            "due": self.due(1),
            "retryDays": 0,
            "transactionType": "DIRECT_CAPTURE",
            **changes,
        }
        return self.call("POST", f"/recurring/v3/agreements/{agreement_id}/charges", body, key=key)

    def charge_id(self, agreement_id: str, amount: int = 10000, **changes: Any) -> str:
        response = self.create_charge(agreement_id, amount, **changes)
        assert response.status_code == 201, response.text
        return str(response.json()["chargeId"])

    def batch_item(self, agreement_id: str, order_id: str, amount: int = 10000, **changes: Any) -> dict[str, Any]:
        """One item of a batch (``create_charges``), due tomorrow."""
        return {
            "agreementId": agreement_id,
            "orderId": order_id,
            "amount": amount,
            "description": "Monthly",
            "due": self.due(1),
            "retryDays": 0,
            "transactionType": "DIRECT_CAPTURE",
            **changes,
        }

    def create_charges(self, items: Any, key: str | None = None) -> httpx.Response:
        """The batch endpoint (CHANGES §2)."""
        return self.call("POST", "/recurring/v3/agreements/charges", items, key=key)

    def charge(self, agreement_id: str, charge_id: str) -> dict[str, Any]:
        response = self.call("GET", f"/recurring/v3/agreements/{agreement_id}/charges/{charge_id}")
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    def capture(self, agreement_id: str, charge_id: str, amount: int, key: str | None = None) -> httpx.Response:
        return self.call(
            "POST",
            f"/recurring/v3/agreements/{agreement_id}/charges/{charge_id}/capture",
            {"amount": amount, "description": "Shipped"},
            key=key,
        )

    def refund(self, agreement_id: str, charge_id: str, amount: int, key: str | None = None) -> httpx.Response:
        return self.call(
            "POST",
            f"/recurring/v3/agreements/{agreement_id}/charges/{charge_id}/refund",
            {"amount": amount, "description": "Goodwill"},
            key=key,
        )

    def cancel(self, agreement_id: str, charge_id: str, key: str | None = None) -> httpx.Response:
        return self.call("DELETE", f"/recurring/v3/agreements/{agreement_id}/charges/{charge_id}", key=key)

    # ---- admin

    def admin(self, method: str, path: str, body: Any = None, params: dict[str, str] | None = None) -> Any:
        response = self.http.request(method, "/_simulator" + path, json=body, params=params)
        assert response.status_code == 200, response.text
        return response.json()

    def set_clock(self, iso: str) -> Any:
        return self.admin("PUT", "/clock", {"now": iso})

    def advance(self, seconds: float) -> Any:
        result = self.admin("POST", "/clock/advance", {"seconds": seconds})
        # Tokens follow the simulated clock; a long jump needs a fresh one, as in real life.
        self.token = self.fetch_token().json()["access_token"]
        return result

    def effects(self, **query: str) -> list[dict[str, Any]]:
        params = "&".join(f"{k}={v}" for k, v in query.items())
        result: list[dict[str, Any]] = self.admin("GET", "/effects" + (f"?{params}" if params else ""))
        return result

    def problem_type(self, response: httpx.Response) -> str:
        return str(response.json()["type"]).rsplit("#", 1)[1]

    # ---- webhooks

    def register_webhook(self, url: str, events: list[str], headers: dict[str, str] | None = None) -> httpx.Response:
        return self.call("POST", "/webhooks/v1/webhooks", {"url": url, "events": events}, headers=headers)

    def webhook(self, url: str, *events: str) -> dict[str, str]:
        """A registration (``{id, secret}``) of ``url`` for ``events`` (default: all ten)."""
        response = self.register_webhook(url, list(events or EVENT_TYPES))
        assert response.status_code == 201, response.text
        result: dict[str, str] = response.json()
        return result

    def deliveries(self, **query: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.admin("GET", "/webhooks/deliveries", params=query)
        return result

    def close(self) -> None:
        self.http.close()
        self.sim.close()


def many_merchants(**changes: dict[str, Any]) -> Vipps:
    """A simulator serving tests/merchants.py's three merchants (``changes`` by MSN), as Gym One, on 2030-01-01."""
    data = merchants_data()
    for merchant in data["merchants"]:
        merchant.update(changes.get(merchant["msn"], {}))
    vipps = Vipps(SimulatorConfig(merchants=data, rate_limits_enabled=False), OWN.token_headers(), OWN_MSN)
    vipps.set_clock("2030-01-01T10:00:00Z")
    vipps.login(OWN.token_headers(), OWN_MSN)
    return vipps
