"""The batch endpoint in the client: its request, its answer, its budget shared with single creation."""

from __future__ import annotations

import datetime as dt
import json

import pytest
import respx

from worker.vipps import VippsClient, errors, models
from worker.vipps import operations as ops
from worker.vipps.budgets import DEFAULT_RULES, Budgets, MemoryBudgetBackend, batch_rules, extra_rules

DUE = dt.date(2026, 12, 24)


def item(order_id: str, **changes: object) -> models.CreateChargeAsyncV3:
    fields: dict[str, object] = {"agreementId": "agr_1", "amount": 19900, "transactionType": "DIRECT_CAPTURE",
                                 "description": "December", "due": DUE, "retryDays": 2, "orderId": order_id}
    return models.CreateChargeAsyncV3.model_validate(fields | changes)


def test_a_batch_is_one_json_array_with_an_idempotency_key(client: VippsClient, vipps: respx.MockRouter) -> None:
    answer = {"validCharges": ["vbc-1"], "invalidCharges": [
        {"chargeBatchItemDto": {"orderId": "vbc-2", "amount": 19900}, "errors": ["Agreement is not active"]}]}
    route = vipps.post("/recurring/v3/agreements/charges").respond(202, json=answer)
    result = client.create_charges(models.ChargeBatchV3([item("vbc-1"), item("vbc-2", externalId="inv-2")]),
                                   idempotency_key="vbb-key")
    sent = route.calls.last.request
    assert sent.headers["Idempotency-Key"] == "vbb-key" and sent.headers["Merchant-Serial-Number"] == "123456"
    body = json.loads(sent.content)
    assert [c["orderId"] for c in body] == ["vbc-1", "vbc-2"] and body[0]["due"] == "2026-12-24"
    assert "externalId" not in body[0] and body[1]["externalId"] == "inv-2"  # unset optionals are left out
    assert result.validCharges == ["vbc-1"]
    [refused] = result.invalidCharges
    assert refused.order_id == "vbc-2" and refused.reasons() == "Agreement is not active"


def test_a_batch_holds_one_to_two_thousand_charges(client: VippsClient, vipps: respx.MockRouter) -> None:
    route = vipps.post("/recurring/v3/agreements/charges").respond(202, json={})
    for size in (0, models.MAX_BATCH + 1):
        with pytest.raises(errors.RequestValidationError, match=r"1\.\.2000"):
            client.create_charges(models.ChargeBatchV3([item(f"o-{i}") for i in range(size)]), idempotency_key="k")
    assert route.call_count == 0
    with pytest.raises(ValueError, match="orderId"):
        item("has space")  # the orderId becomes the charge id: Vipps's pattern, checked before sending


def test_a_batch_request_counts_once_in_the_merchants_charge_creation_cap() -> None:
    budgets = Budgets(MemoryBudgetBackend(), "m", {**DEFAULT_RULES, **batch_rules(3)}, extra=extra_rules(3))
    single = {"msn": "123456", "agreementId": "agr_1", "idempotencyKey": "k1"}
    assert budgets.take(ops.CREATE_CHARGE, single) == 0
    assert [budgets.take(ops.CREATE_CHARGES_ASYNC, {"msn": "123456"}) for _ in range(2)] == [0, 0]
    assert budgets.take(ops.CREATE_CHARGES_ASYNC, {"msn": "123456"}) > 0  # 3 creations a minute, whichever way
    assert budgets.take(ops.CREATE_CHARGE, {**single, "idempotencyKey": "k2"}) > 0
    assert budgets.take(ops.CREATE_CHARGES_ASYNC, {"msn": "654321"}) == 0  # per merchant
    assert batch_rules(0) == {}  # a simulator without limits: no cap
