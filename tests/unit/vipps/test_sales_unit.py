"""The Management API's sales unit lookup (`getMsn`): the request the client sends and the answer it reads."""

from __future__ import annotations

import pytest
import respx
from vipps_support import ACCESS_TOKEN, SECRETS

from worker.vipps import VippsClient, errors, models
from worker.vipps import operations as ops

SALES_UNIT = {"msn": "123456", "name": "ACME Fantastic Fitness",
              "businessIdentifier": {"scheme": "business:NO:ORG", "id": "9876543221"},
              "configuration": {"paymentAllowed": True, "captureType": "ReserveCapture",
                                "skipLandingPageAllowed": False, "recurringAllowed": True}}


def test_the_operation_is_named_once_with_the_management_operations() -> None:
    assert ops.by_id("getMsn") is ops.FETCH_SALES_UNIT
    assert ops.FETCH_SALES_UNIT not in ops.V3_OPERATIONS  # the Recurring table stays the Recurring spec's


def test_sales_unit_sends_the_token_keys_and_msn(client: VippsClient, vipps: respx.MockRouter) -> None:
    route = vipps.get("/management/v1/sales-units/123456").respond(200, json=SALES_UNIT)
    unit = client.sales_unit("123456")
    assert unit.msn == "123456" and unit.name == "ACME Fantastic Fitness"
    assert unit.configuration.recurringAllowed is True
    assert unit.configuration.captureType is models.CaptureType.RESERVE_CAPTURE
    request = route.calls.last.request
    assert request.headers["Authorization"] == f"Bearer {ACCESS_TOKEN}"
    assert request.headers["Ocp-Apim-Subscription-Key"] == SECRETS["subscription_key"]
    assert request.headers["Merchant-Serial-Number"] == "123456" and "Idempotency-Key" not in request.headers


def test_a_sparse_or_newer_answer_is_read_tolerantly(client: VippsClient, vipps: respx.MockRouter) -> None:
    vipps.get("/management/v1/sales-units/223344").respond(
        200, json={"msn": 223344, "name": "Yoga", "configuration": {"captureType": "SomethingNew"}})
    unit = client.sales_unit("223344")
    assert unit.msn == "223344" and unit.configuration.captureType == "SomethingNew"
    assert unit.configuration.recurringAllowed is None
    vipps.get("/management/v1/sales-units/334455").respond(200, json={"msn": "334455"})
    assert client.sales_unit("334455").configuration == models.SalesUnitConfiguration()


def test_an_unknown_sales_unit_is_a_permanent_error(client: VippsClient, vipps: respx.MockRouter) -> None:
    vipps.get("/management/v1/sales-units/999999").respond(404, json={"title": "Not Found", "status": 404})
    with pytest.raises(errors.PermanentError) as caught:
        client.sales_unit("999999")
    assert caught.value.status == 404 and caught.value.operation == "getMsn"


def test_the_msn_stays_one_path_segment(client: VippsClient, vipps: respx.MockRouter) -> None:
    with pytest.raises(errors.RequestValidationError, match="msn"):
        client.sales_unit("")
    route = vipps.get("/management/v1/sales-units/12%2F34").respond(200, json={"msn": "12/34"})
    client.sales_unit("12/34")
    assert route.called
