"""Every v3 request of the official Postman collection, replayed as written against the simulator.

Each request gets the state it needs (an agreement to fetch, a reserved charge to capture, ...),
then goes out with the collection's own method, URL, headers and body, variables filled in the way
its pre-request scripts would. Bodies keep the collection's string-typed numbers.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from sim_harness import Vipps, new_key
from sim_spec import FIXTURES

COLLECTION = json.loads((FIXTURES / "recurring-v3-postman-collection.json").read_text())
VARIABLE = re.compile(r"\{\{([^}]+)\}\}")


def _requests(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for item in items:
        out += _requests(item["item"]) if "item" in item else [item]
    return out


ALL = _requests(COLLECTION["item"])
# The userinfo call belongs to the Userinfo API, not Recurring v3.
V3 = [r for r in ALL if "userinfo" not in r["request"]["url"]["raw"]]


def test_the_collection_has_the_expected_requests() -> None:
    assert len(ALL) == 31 and len(V3) == 30


def _variables(vipps: Vipps) -> dict[str, str]:
    return {
        "base_url": "https://api.vipps.no",
        "client_id": "simulator-client-id",
        "client_secret": "simulator-client-secret",
        "Ocp-Apim-Subscription-Key": "simulator-subscription-key",
        "merchantSerialNumber": "123456",
        "vipps_system_name": "postman",
        "vipps_system_version": "1.0",
        "vipps_system_plugin_name": "postman-collection",
        "vipps_system_plugin_version": "1.0",
        "access_token": vipps.token,
        "interval": "MONTH",
        "intervalCount": "1",
        "price": "10000",
        "campaignPrice": "100",
        "amount_initial": "10000",
        "description_initial": "Initial charge",
        "mobileNumber": "4791234567",
        "productName": "Postman product",
        "productName_updated": "Postman product 2",
        "productDescription_updated": "Longer description",
        "merchantRedirectUrl": "https://example.com/redirect",
        "merchantAgreementUrl": "https://example.com/agreement",
        "amount_charge": "10000",
        "description_charge": "Postman charge",
        "amount_refund": "5000",
        "description_refund": "Postman refund",
        "retryDays": "2",
        "due": vipps.due(1),
        "continuation_token": "",
        "idempotency_key": new_key(),
        "Idempotency-Key-Create": new_key(),
        "Idempotency-Key-Capture": new_key(),
        "Idempotency-Key-Refund": new_key(),
        "merchantOrderId": new_key().replace("test-key", "postman-order"),
    }


def _prepare(vipps: Vipps, name: str, values: dict[str, str]) -> None:
    """Give the request the state its place in a real session would have."""
    if name.startswith(("Get Access Token", "Draft Agreement", "List Agreements")):
        return
    if name == "(Test only) Force accept agreement":
        values["agreementId"] = vipps.agreement_id()
        return
    if name == "Update Agreement - Suggested max amount":
        values["agreementId"] = vipps.active_agreement(
            pricing={"type": "VARIABLE", "suggestedMaxAmount": 30000, "currency": "NOK"}
        )
        return
    agreement_id = values["agreementId"] = vipps.active_agreement()
    if name == "Capture reserved charge":
        values["chargeId"] = vipps.charge_id(agreement_id, 10000, transactionType="RESERVE_CAPTURE")
        vipps.advance(86400)
    elif name == "Refund Charge":
        values["chargeId"] = vipps.charge_id(agreement_id, 10000)
        vipps.advance(86400)
    elif name in ("Cancel Charge", "Get Charge", "List Charges"):
        values["chargeId"] = vipps.charge_id(agreement_id, 10000)
    values["access_token"] = vipps.token


def _fill(text: str, values: dict[str, str]) -> str:
    return VARIABLE.sub(lambda m: values[m.group(1)], text)


@pytest.mark.parametrize("item", V3, ids=[r["name"] for r in V3])
def test_postman_request_succeeds(vipps: Vipps, item: dict[str, Any]) -> None:
    values = _variables(vipps)
    _prepare(vipps, item["name"], values)
    request = item["request"]
    url = _fill(request["url"]["raw"], values).removeprefix("https://api.vipps.no")
    headers = {h["key"]: _fill(h["value"], values) for h in request.get("header", []) if not h.get("disabled")}
    headers = {k: v for k, v in headers.items() if v != ""}
    raw = request.get("body", {}).get("raw")
    content = _fill(raw, values).encode() if raw else None
    response = vipps.check(vipps.http.request(request["method"], url, headers=headers, content=content))
    assert 200 <= response.status_code < 300, response.text
