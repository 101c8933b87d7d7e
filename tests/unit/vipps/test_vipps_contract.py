"""Contract tests: every request the client builds, for every operation, validated against the
official Recurring v3 OpenAPI spec (method, path, headers, query, body); and sample responses
validated against the spec and parsed by the models."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import respx
from openapi_core import OpenAPI
from openapi_core.validation.request.exceptions import MissingRequiredParameter
from vipps_support import BASE, SpecRequest, SpecResponse, load_yaml

from worker.vipps import VippsClient, models
from worker.vipps import operations as ops

AGR = "agr_5kSeqz"
CHR = "chr-123ab"
DUE = dt.date(2030, 12, 31)

CHARGE = {
    "id": "chr_WCVbcA",
    "agreementId": AGR,
    "externalId": "external-id-2468",
    "externalAgreementId": "external-id-2468",
    "amount": 1000,
    "currency": "NOK",
    "description": "Premier League subscription: September",
    "due": "2022-09-16T00:00:00Z",
    "retryDays": 5,
    "status": "PARTIALLY_REFUNDED",
    "type": "RECURRING",
    "transactionType": "RESERVE_CAPTURE",
    "transactionId": "5001419121",
    "failureReason": None,
    "failureDescription": "",
    "summary": {"captured": 1000, "refunded": 600, "cancelled": 0},
    "history": [
        {
            "occurred": "2022-09-14T10:31:15Z",
            "event": "CREATE",
            "amount": 1000,
            "idempotencyKey": "k-1",
            "success": True,
        },
        {
            "occurred": "2022-09-16T06:01:00Z",
            "event": "RESERVE",
            "amount": 1000,
            "idempotencyKey": "sys",
            "success": True,
        },
        {
            "occurred": "2022-09-18T06:01:00Z",
            "event": "CAPTURE",
            "amount": 1000,
            "idempotencyKey": "k-2",
            "success": True,
        },
        {
            "occurred": "2022-09-20T06:01:00Z",
            "event": "REFUND",
            "amount": 600,
            "idempotencyKey": "k-3",
            "success": True,
        },
    ],
}
AGREEMENT = {
    "id": "agr_ADbq4JK",
    "created": "2018-08-22T12:59:56Z",
    "start": "2018-08-22T13:00:00Z",
    "stop": None,
    "status": "ACTIVE",
    "productName": "Premier League subscription",
    "productDescription": "Access to all games of English top football",
    "pricing": {"type": "LEGACY", "amount": 49900, "currency": "NOK"},
    "interval": {"unit": "MONTH", "count": 2, "text": "every 2 months"},
    "merchantAgreementUrl": "https://www.merchant.no/subscriptions/1234/",
    "merchantRedirectUrl": "https://www.merchant.no/landing",
    "uuid": "6080c099-d7f2-43ef-a82b-2991ccc3a239",
    "countryCode": "NO",
}
VARIABLE_AGREEMENT = {
    **AGREEMENT,
    "pricing": {"type": "VARIABLE", "suggestedMaxAmount": 500000, "maxAmount": 1800000, "currency": "NOK"},
    "campaign": {
        "type": "PRICE_CAMPAIGN",
        "price": 100,
        "end": "2030-01-01T00:00:00Z",
        "explanation": "Ordinary price 499 kr starts 1/1/2030",
    },
}
DRAFT_RESPONSE = {
    "agreementId": "agr_TGSuPyV",
    "uuid": "9c2ca95c-245f-4a2e-aab2-4a08eb78e6fb",
    "vippsConfirmationUrl": "https://api.vipps.no/dwo-api-application/v1/deeplink/vippsgateway?v=2",
    "chargeId": None,
}

FULL_DRAFT = models.DraftAgreementV3(
    pricing=models.PricingRequest(amount=49900),
    interval=models.TimePeriod(unit="MONTH", count=1),
    merchantAgreementUrl="https://example.com/subscriptions/1234/",
    merchantRedirectUrl="https://example.com/redirect",
    productName="Premier League subscription",
    productDescription="All the games",
    phoneNumber="4791234567",
    initialCharge=models.InitialChargeV3(
        amount=19900, description="First month", transactionType="RESERVE_CAPTURE", orderId="acme-order-1"
    ),
    campaign=models.PeriodCampaignV3(price=100, period=models.TimePeriod(unit="WEEK", count=10)),
    isApp=False,
    skipLandingPage=False,
    scope="name  email phoneNumber",
    externalId="external-id-2468",
    countryCode="NO",
)

# (operation, how to call it, status and body the mock answers)
Call = Callable[[VippsClient], Any]
CASES: list[tuple[ops.Operation, Call, int, Any]] = [
    (ops.DRAFT_AGREEMENT, lambda c: c.draft_agreement(FULL_DRAFT, idempotency_key="draft-1"), 201, DRAFT_RESPONSE),
    (ops.FETCH_AGREEMENT, lambda c: c.fetch_agreement(AGR), 200, AGREEMENT),
    (
        ops.LIST_AGREEMENTS,
        lambda c: c.list_agreements(status=models.AgreementStatus.PENDING, created_after=1644572442944),
        200,
        [AGREEMENT],
    ),
    (
        ops.UPDATE_AGREEMENT,
        lambda c: c.update_agreement(
            AGR,
            models.PatchAgreementV3(
                productName="Pluss",
                productDescription="More",
                merchantAgreementUrl="https://example.com/a",
                externalId="ext-1",
                pricing=models.PricingUpdateRequest(amount=5000),
                interval=models.IntervalUpdate(period=models.TimePeriod(unit="MONTH", count=3)),
            ),
            idempotency_key="upd-1",
        ),
        204,
        None,
    ),
    (ops.UPDATE_AGREEMENT, lambda c: c.stop_agreement(AGR, idempotency_key="stop-1"), 202, None),
    (ops.FORCE_ACCEPT, lambda c: c.force_accept_agreement(AGR, "4791234567", idempotency_key="acc-1"), 204, None),
    (ops.LIST_CHARGES, lambda c: c.list_charges(AGR, status=models.ChargeStatus.DUE), 200, [CHARGE]),
    (
        ops.CREATE_CHARGE,
        lambda c: c.create_charge(
            AGR,
            models.CreateChargeV3(
                amount=49900,
                transactionType="DIRECT_CAPTURE",
                description="Premier League subscription",
                due=DUE,
                retryDays=5,
                orderId="acmeshop123order123abc",
                externalId="ext-9",
            ),
            idempotency_key="create-1",
        ),
        201,
        {"chargeId": "chg_WCVbcAbRCmu"},
    ),
    (ops.FETCH_CHARGE, lambda c: c.fetch_charge(AGR, CHR), 200, CHARGE),
    (ops.FETCH_CHARGE_BY_ID, lambda c: c.fetch_charge_by_id(CHR), 200, CHARGE),
    (ops.CANCEL_CHARGE, lambda c: c.cancel_charge(AGR, CHR, idempotency_key="cancel-1"), 204, None),
    (
        ops.CAPTURE_CHARGE,
        lambda c: c.capture_charge(
            AGR, CHR, models.ModifyChargeV3(amount=5000, description="Partial"), idempotency_key="cap-1"
        ),
        202,
        None,
    ),
    (
        ops.REFUND_CHARGE,
        lambda c: c.refund_charge(
            AGR, CHR, models.ModifyChargeV3(amount=5000, description="Discount"), idempotency_key="ref-1"
        ),
        204,
        None,
    ),
]


def _spec_operation_ids() -> dict[tuple[str, str], str]:
    document = load_yaml("recurring-v3-openapi.yaml")
    return {
        (method.upper(), path): op["operationId"]
        for path, item in document["paths"].items()
        if path.startswith("/recurring/v3/")
        for method, op in item.items()
    }


def test_operation_table_matches_the_spec() -> None:
    spec_ops = _spec_operation_ids()
    ours = {(op.method, op.path): op.id for op in ops.V3_OPERATIONS}
    assert ours == spec_ops


def test_every_operation_is_covered_by_a_contract_case() -> None:
    assert {case[0].id for case in CASES} == {op.id for op in ops.V3_OPERATIONS}


@pytest.mark.parametrize("case", CASES, ids=[f"{c[0].id}-{i}" for i, c in enumerate(CASES)])
def test_request_conforms_to_spec(
    case: tuple[ops.Operation, Call, int, Any],
    client: VippsClient,
    vipps: respx.MockRouter,
    recurring_spec: OpenAPI,
) -> None:
    op, call, status, body = case
    route = vipps.route(method=op.method, path__regex=r"^/recurring/v3/").respond(status, json=body)
    result = call(client)
    assert route.call_count == 1
    request = route.calls.last.request
    recurring_spec.validate_request(SpecRequest(request))  # raises on any violation
    if op.idempotent:
        assert request.headers["Idempotency-Key"]
    if body is not None:  # the answer the spec allows is one the models read
        recurring_spec.validate_response(SpecRequest(request), SpecResponse(status, body))
        assert result is not None
    else:
        assert result == (models.Completion.ACCEPTED if status == 202 else models.Completion.DONE)


def test_validator_rejects_a_request_without_the_required_headers(
    client: VippsClient, vipps: respx.MockRouter, recurring_spec: OpenAPI
) -> None:
    """Guards the guard: the spec check really fails when a required header is missing."""
    route = vipps.delete(f"/recurring/v3/agreements/{AGR}/charges/{CHR}").respond(204)
    client.cancel_charge(AGR, CHR, idempotency_key="cancel-2")
    sent = route.calls.last.request
    stripped = httpx.Request(
        sent.method, sent.url, headers={k: v for k, v in sent.headers.items() if k.lower() != "idempotency-key"}
    )
    with pytest.raises(MissingRequiredParameter):
        recurring_spec.validate_request(SpecRequest(stripped))


def test_token_request_conforms_to_the_access_token_spec(
    client: VippsClient, vipps: respx.MockRouter, token_spec: OpenAPI
) -> None:
    vipps.get(f"/recurring/v3/agreements/{AGR}").respond(200, json=AGREEMENT)
    client.fetch_agreement(AGR)
    token_request = vipps.routes["token"].calls.last.request
    token_spec.validate_request(SpecRequest(token_request))


@pytest.mark.parametrize(
    ("path", "body", "model"),
    [
        (f"/recurring/v3/agreements/{AGR}", VARIABLE_AGREEMENT, models.AgreementResponseV3),
        (f"/recurring/v3/agreements/{AGR}/charges/{CHR}", CHARGE, models.ChargeResponseV3),
    ],
)
def test_sample_responses_conform_and_parse(
    path: str, body: dict[str, Any], model: type[models.ResponseModel], recurring_spec: OpenAPI
) -> None:
    request = httpx.Request(
        "GET",
        BASE + path,
        headers={"Authorization": "Bearer x", "Ocp-Apim-Subscription-Key": "k", "Content-Type": "application/json"},
    )
    recurring_spec.validate_response(SpecRequest(request), SpecResponse(200, body))
    parsed = model.model_validate(body)
    assert parsed.model_dump(exclude_none=True)["id"] == body["id"]


def test_problem_response_conforms_to_the_error_schema(recurring_spec: OpenAPI) -> None:
    request = httpx.Request(
        "GET",
        f"{BASE}/recurring/v3/agreements/{AGR}",
        headers={"Authorization": "Bearer x", "Ocp-Apim-Subscription-Key": "k"},
    )
    problem = {
        "type": "https://developer.vippsmobilepay.com/docs/APIs/recurring-api/recurring-api-problems#validation-error",
        "title": "Bad Request",
        "status": 400,
        "detail": "Input validation failed",
        "instance": "/v3/agreements",
        "contextId": "f70b8bf7-c843-4bea-95d9-94725b19895f",
        "extraDetails": [{"field": "productName", "text": "must not be empty"}],
    }
    recurring_spec.validate_response(SpecRequest(request), SpecResponse(400, problem, "application/json;charset=UTF-8"))
