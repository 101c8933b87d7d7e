"""Every v3 operation of the official spec is served, and responses match the spec's schemas
(the harness validates each response it sees)."""

from __future__ import annotations

import re

import yaml
from sim_harness import Vipps
from sim_spec import FIXTURES
from starlette.routing import Route


def test_every_v3_operation_of_the_spec_is_routed(vipps: Vipps) -> None:
    spec = yaml.safe_load((FIXTURES / "recurring-v3-openapi.yaml").read_text())
    wanted = {
        (method.upper(), path)
        for path, item in spec["paths"].items()
        if path.startswith("/recurring/v3/")
        for method in item
        if method in ("get", "post", "put", "patch", "delete")
    }
    served = {
        (method, route.path) for route in vipps.app.routes if isinstance(route, Route) for method in route.methods or ()
    }
    assert len(wanted) == 12
    assert wanted <= served
    # Added after the spec was published (CHANGES §2).
    assert ("POST", "/recurring/v3/agreements/charges") in served


def test_admin_routes_never_collide_with_vipps_paths(vipps: Vipps) -> None:
    for route in vipps.app.routes:
        assert isinstance(route, Route)
        assert route.path.startswith(
            ("/recurring/v3/", "/webhooks/v1/", "/_simulator/", "/accesstoken/", "/accessToken/")
        )


def test_every_operation_of_the_webhooks_spec_is_routed(vipps: Vipps) -> None:
    spec = yaml.safe_load((FIXTURES / "webhooks-v1-openapi.yaml").read_text())
    wanted = {
        (method.upper(), "/webhooks" + path)
        for path, item in spec["paths"].items()
        for method in item
        if method in ("get", "post", "put", "patch", "delete")
    }
    served = {
        (method, route.path) for route in vipps.app.routes if isinstance(route, Route) for method in route.methods or ()
    }
    assert wanted == {("GET", "/webhooks/v1/webhooks"), ("POST", "/webhooks/v1/webhooks"),
                      ("DELETE", "/webhooks/v1/webhooks/{id}")}
    assert wanted <= served


def test_full_lifecycle_responses_match_the_spec(vipps: Vipps) -> None:
    token = vipps.fetch_token()
    assert token.json()["token_type"] == "Bearer"
    assert token.json()["expires_in"] == "3600"
    initial = {"amount": 4900, "description": "First month", "transactionType": "RESERVE_CAPTURE", "orderId": "ord-1"}
    draft = vipps.draft(initialCharge=initial, scope="name email", externalId="ext-1")
    assert draft.status_code == 201
    body = draft.json()
    assert body["chargeId"] == "ord-1" and body["agreementId"].startswith("agr_")
    agreement_id = body["agreementId"]
    assert vipps.agreement(agreement_id)["status"] == "PENDING"
    assert vipps.accept(agreement_id).status_code == 204
    agreement = vipps.agreement(agreement_id)
    assert agreement["status"] == "ACTIVE" and agreement["sub"] and agreement["userinfoUrl"].endswith(agreement["sub"])
    campaign = vipps.active_agreement(campaign={"type": "PRICE_CAMPAIGN", "price": 100, "end": "2031-01-01T00:00:00Z"})
    assert vipps.agreement(campaign)["campaign"]["type"] == "PRICE_CAMPAIGN"
    variable = vipps.active_agreement(pricing={"type": "VARIABLE", "suggestedMaxAmount": 30000, "currency": "NOK"})
    assert vipps.agreement(variable)["pricing"]["maxAmount"] == 30000
    listed = vipps.call("GET", "/recurring/v3/agreements?status=ACTIVE")
    assert {a["id"] for a in listed.json()} == {agreement_id, campaign, variable}
    charge_id = vipps.charge_id(agreement_id, 5000, orderId="order-2", externalId="inv-2")
    assert vipps.charge(agreement_id, charge_id)["status"] == "DUE"
    assert vipps.call("GET", f"/recurring/v3/charges/{charge_id}").json()["externalAgreementId"] == "ext-1"
    assert vipps.capture(agreement_id, "ord-1", 1000).status_code == 204
    assert vipps.cancel(agreement_id, "ord-1").status_code == 204
    assert vipps.refund(agreement_id, "ord-1", 500).status_code == 204
    assert vipps.charge(agreement_id, "ord-1")["summary"] == {"captured": 1000, "refunded": 500, "cancelled": 3900}
    charges = vipps.call("GET", f"/recurring/v3/agreements/{agreement_id}/charges").json()
    assert {c["id"]: c["status"] for c in charges} == {"ord-1": "PARTIALLY_REFUNDED", "order-2": "DUE"}
    assert vipps.update(agreement_id, {"productName": "New name", "pricing": {"amount": 12000}}).status_code == 204
    assert vipps.update(agreement_id, {"status": "STOPPED"}).status_code == 204
    assert vipps.charge(agreement_id, charge_id)["status"] == "CANCELLED"


def test_error_responses_are_problem_json_with_context_id(vipps: Vipps) -> None:
    response = vipps.draft(productName="x" * 46)
    assert response.status_code == 400
    problem = response.json()
    assert response.headers["content-type"] == "application/json;charset=UTF-8"
    assert problem["type"].endswith("#validation-error")
    assert problem["status"] == 400 and problem["title"] == "Bad Request"
    assert re.fullmatch(r"[0-9a-f-]{36}", problem["contextId"])
    assert problem["extraDetails"] == [{"field": "productName", "text": "length must be at most 45"}]
    missing = vipps.call("GET", "/recurring/v3/agreements/agr_missing")
    assert missing.status_code == 404 and vipps.problem_type(missing) == "resource-not-found"
