"""Models (strict requests, tolerant responses) and the parsing of error bodies and Retry-After."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from pydantic import ValidationError

from schemas import commands
from worker.vipps import errors, models

DRAFT = {
    "pricing": {"amount": 49900},
    "interval": {"unit": "MONTH", "count": 1},
    "merchantAgreementUrl": "https://example.com/a",
    "merchantRedirectUrl": "myapp://home",
    "productName": "News",
}


# --- requests --------------------------------------------------------------------------------------


def test_draft_wire_json_uses_spec_names_and_drops_unset() -> None:
    wire = models.DraftAgreementV3.model_validate(DRAFT).to_wire()
    assert wire == {
        "pricing": {"type": "LEGACY", "currency": "NOK", "amount": 49900},
        "interval": {"unit": "MONTH", "count": 1},
        "merchantAgreementUrl": "https://example.com/a",
        "merchantRedirectUrl": "myapp://home",
        "productName": "News",
    }


@pytest.mark.parametrize(
    "change",
    [
        {"pricing": {"amount": 99}},
        {"pricing": {"amount": 100.0}},
        {"pricing": {"type": "VARIABLE", "amount": 1000}},
        {"pricing": {"type": "VARIABLE", "suggestedMaxAmount": 2_000_001}},
        {"pricing": {"amount": 1000, "currency": "EUR"}},
        {"interval": {"unit": "MONTH", "count": 32}},
        {"interval": {"unit": "FORTNIGHT", "count": 1}},
        {"productName": "x" * 46},
        {"productName": ""},
        {"productDescription": "x" * 101},
        {"merchantAgreementUrl": "http://example.com/a"},
        {"merchantAgreementUrl": "https://e.com/" + "x" * 1024},
        {"phoneNumber": "4" * 16},
        {"scope": "name shoeSize"},
        {"externalId": "x" * 65},
        {"countryCode": "SE"},
        {"unknownField": 1},
        {
            "pricing": {"type": "VARIABLE", "suggestedMaxAmount": 5000},
            "campaign": {"type": "PERIOD_CAMPAIGN", "price": 1, "period": {"unit": "WEEK", "count": 2}},
        },
        {"campaign": {"type": "PRICE_CAMPAIGN", "price": 100, "end": "2030-01-01T00:00:00"}},
        {
            "initialCharge": {
                "amount": 100,
                "description": "x",
                "transactionType": "DIRECT_CAPTURE",
                "orderId": "bad_id",
            }
        },
    ],
)
def test_draft_constraints(change: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        models.DraftAgreementV3.model_validate({**DRAFT, **change})


def test_campaign_dates_go_out_as_utc_z() -> None:
    end = dt.datetime(2030, 1, 1, 1, 0, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    draft = models.DraftAgreementV3.model_validate(
        {**DRAFT, "campaign": {"type": "PRICE_CAMPAIGN", "price": 100, "end": end}}
    )
    assert draft.to_wire()["campaign"] == {"type": "PRICE_CAMPAIGN", "price": 100, "end": "2030-01-01T00:00:00Z"}


def test_is_app_allows_a_deeplink_agreement_url() -> None:
    draft = models.DraftAgreementV3.model_validate(
        {**DRAFT, "isApp": True, "merchantAgreementUrl": "myapp://agreements"}
    )
    assert draft.to_wire()["isApp"] is True


CHARGE = {"amount": 100, "transactionType": "RESERVE_CAPTURE", "description": "d", "due": "2030-01-31", "retryDays": 0}


def test_create_charge_wire() -> None:
    assert models.CreateChargeV3.model_validate({**CHARGE, "orderId": "acme-1"}).to_wire() == {
        **CHARGE,
        "orderId": "acme-1",
    }


@pytest.mark.parametrize(
    "change",
    [
        {"amount": 99},
        {"amount": 2**31},
        {"amount": "1000"},
        {"amount": 150.5},
        {"description": ""},
        {"description": "x" * 46},
        {"retryDays": 15},
        {"retryDays": -1},
        {"due": "2030-01-31T00:00:00Z"},
        {"due": dt.datetime(2030, 1, 31, 12)},
        {"due": "31.01.2030"},
        {"transactionType": "LATER"},
        {"orderId": "has space"},
        {"orderId": "x" * 51},
        {"externalId": ""},
        {"currency": "NOK"},
    ],
)
def test_create_charge_constraints(change: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        models.CreateChargeV3.model_validate({**CHARGE, **change})


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"status": "STOPPED", "productName": "x"},
        {"status": "ACTIVE"},
        {"pricing": {"amount": 1000, "suggestedMaxAmount": 1000}},
        {"interval": {"type": "FLEXIBLE"}},
    ],
)
def test_patch_rules(body: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        models.PatchAgreementV3.model_validate(body)


def test_stop_is_status_only() -> None:
    assert models.PatchAgreementV3.stop().to_wire() == {"status": "STOPPED"}


def test_modify_charge_minimum() -> None:
    with pytest.raises(ValidationError):
        models.ModifyChargeV3(amount=50, description="refund")


# --- responses -------------------------------------------------------------------------------------


def test_charge_response_tolerates_what_the_api_really_returns() -> None:
    charge = models.ChargeResponseV3.model_validate(
        {
            "id": "acme-shop-123-order123abc-with-a-long-order-id-50",
            "agreementId": "agr_1",
            "amount": 1000,
            "currency": "NOK",
            "description": "d",
            "due": "2019-06-01T00:00:00Z",
            "retryDays": 5,
            "status": "UNKNOWN",
            "type": "SOME_LATER_TYPE",
            "transactionType": "DIRECT_CAPTURE",
            "transactionId": None,
            "externalId": None,
            "failureReason": "insufficient_funds",
            "summary": {"captured": 0, "refunded": 0, "cancelled": 0},
            "history": [
                {
                    "occurred": "2019-05-01T10:00:00.123Z",
                    "event": "CREATE",
                    "amount": 1000,
                    "idempotencyKey": "k",
                    "success": True,
                }
            ],
            "somethingNew": {"x": 1},
        }
    )
    # The guide's UNKNOWN is not in the spec's enum (the contract's ChargeStatus): kept as the plain string.
    assert charge.status == models.CHARGE_STATUS_UNKNOWN == "UNKNOWN"
    assert not isinstance(charge.status, models.ChargeStatus)
    assert charge.type == "SOME_LATER_TYPE" and not isinstance(charge.type, models.ChargeType)
    assert charge.due == dt.date(2019, 6, 1)
    assert charge.failureReason == "insufficient_funds"
    assert charge.transactionId is None and charge.externalId is None
    assert charge.history[0].event is models.ChargeEventType.CREATE


def test_charge_status_values_known_to_the_enum_become_enum_members() -> None:
    for status in models.ChargeStatus:
        parsed = models.ChargeResponseV3.model_validate({"id": "c", "amount": 100, "status": status.value})
        assert parsed.status is status
    odd = models.ChargeResponseV3.model_validate({"id": "c", "amount": 100, "status": "SOMETHING_NEW"})
    assert odd.status == "SOMETHING_NEW"


def test_due_as_plain_date_still_parses() -> None:
    assert models.ChargeResponseV3.model_validate(
        {"id": "c", "amount": 100, "status": "DUE", "due": "2030-01-02"}
    ).due == dt.date(2030, 1, 2)


def test_agreement_response_from_the_guide() -> None:
    agreement = models.AgreementResponseV3.model_validate(
        {
            "id": "agr_ADbq4JK",
            "created": "2018-08-22T12:59:56Z",
            "start": None,
            "stop": None,
            "status": "PENDING",
            "productName": "Premier League subscription",
            "pricing": {"type": "VARIABLE", "suggestedMaxAmount": 500000, "maxAmount": 1800000, "currency": "NOK"},
            "interval": {"unit": "MONTH", "count": 2, "text": "every 2 months"},
            "campaign": {"type": "LEGACY_CAMPAIGN", "price": 100, "end": "2022/02/28T00:00:00Z"},
            "merchantAgreementUrl": "https://www.merchant.no/subscriptions/1234/",
            "uuid": "6080c099-d7f2-43ef-a82b-2991ccc3a239",
            "countryCode": "NO",
            "history": [{"event": "CREATE"}],
        }
    )
    assert agreement.status is models.AgreementStatus.PENDING
    assert agreement.pricing is not None and agreement.pricing.maxAmount == 1800000
    assert agreement.campaign is not None and agreement.campaign.end == "2022/02/28T00:00:00Z"
    assert agreement.start is None


def test_token_response_numbers_as_strings() -> None:
    token = models.AccessTokenResponse.model_validate(
        {
            "token_type": "Bearer",
            "expires_in": "86398",
            "ext_expires_in": "0",
            "expires_on": "1495271273",
            "not_before": "",
            "resource": "r",
            "access_token": "secret-jwt",
        }
    )
    assert token.expires_in == 86398.0 and token.not_before is None
    assert "secret-jwt" not in repr(token)


# --- error bodies ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            b'{"type":"https://vippsas.github.io/vipps-developer-docs/docs/APIs/recurring-api/'
            b'vipps-recurring-api-problems#illegal-agreement-update","title":"Bad Request","status":400,'
            b'"detail":"Illegal update","instance":"/x","contextId":"ef08",'
            b'"extraDetails":[{"status":"Cannot modify an agreement which is not active."}]}',
            errors.Problem(
                "illegal-agreement-update",
                "Bad Request",
                "Illegal update",
                "ef08",
                400,
                [{"status": "Cannot modify an agreement which is not active."}],
            ),
        ),
        (
            b'{"type":"about:blank","title":"Bad","status":"400","extraDetails":[{"name":"due","reason":"bad"}],"traceId":"t-1"}',
            errors.Problem(None, "Bad", None, "t-1", 400, [{"name": "due", "reason": "bad"}]),
        ),
        (
            b'{"responseInfo":{"responseCode":401,"responseMessage":"Unauthorized"},'
            b'"result":{"message":"Access denied due to invalid subscription key."}}',
            errors.Problem(None, "Unauthorized", "Access denied due to invalid subscription key.", None, 401, []),
        ),
        (
            b'{"statusCode": 429, "message": "Rate limit is exceeded. Try again in 10 seconds."}',
            errors.Problem(None, None, "Rate limit is exceeded. Try again in 10 seconds.", None, 429, []),
        ),
        (
            b'[{"field":"agreement.status","message":"Cannot create a charge",'
            b'"code":"recurring.core.charges.create.invalid_agreement","contextId":"c-2"}]',
            errors.Problem(
                "recurring.core.charges.create.invalid_agreement",
                None,
                "Cannot create a charge",
                "c-2",
                400,
                [
                    {
                        "field": "agreement.status",
                        "message": "Cannot create a charge",
                        "code": "recurring.core.charges.create.invalid_agreement",
                        "contextId": "c-2",
                    }
                ],
            ),
        ),
        (
            b"Something went wrong, please try again later",
            errors.Problem(None, None, "Something went wrong, please try again later", None, 400, []),
        ),
        (b"{not json", errors.Problem(None, None, "{not json", None, 400, [])),
        (b"", errors.Problem(None, None, None, None, 400, [])),
    ],
)
def test_parse_problem_shapes(body: bytes, expected: errors.Problem) -> None:
    assert errors.parse_problem(400, body) == expected


def test_problem_to_dict() -> None:
    assert errors.Problem(type="conflict", status=409).to_dict() == {
        "type": "conflict",
        "title": None,
        "detail": None,
        "context_id": None,
        "status": 409,
        "extra_details": [],
    }


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120", 120.0),
        ("0.5", 0.5),
        ("-3", 0.0),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 10.0),
        ("Wed, 21 Oct 2015 07:27:00 GMT", 0.0),
        ("soon", None),
        ("", None),
        (None, None),
        ("nan", None),
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    now = dt.datetime(2015, 10, 21, 7, 27, 50, tzinfo=dt.UTC).timestamp()
    assert errors.parse_retry_after(value, now=now) == expected


@pytest.mark.parametrize(
    ("status", "expected", "maybe_applied"),
    [
        (500, errors.TransientError, True),
        (503, errors.TransientError, True),
        (429, errors.RateLimitedError, False),
        (401, errors.AuthError, None),
        (400, errors.PermanentError, None),
    ],
)
def test_error_for_response_classes(status: int, expected: type, maybe_applied: bool | None) -> None:
    err = errors.error_for_response("FetchChargeV3", status, b"", None)
    assert type(err) is expected
    if maybe_applied is not None:
        assert isinstance(err, errors.TransientError) and err.maybe_applied is maybe_applied


def test_the_contract_and_the_client_share_one_definition_of_each_enum() -> None:
    assert models.ChargeStatus is commands.ChargeStatus
    assert models.TransactionType is commands.TransactionType
    assert models.PricingType is commands.PricingType
    assert models.IntervalUnit is commands.IntervalUnit


def test_status_sets_follow_the_notes() -> None:
    assert {"STOPPED", "EXPIRED"} == models.FINAL_AGREEMENT_STATUSES  # ACTIVE can still be stopped
    assert {"PENDING", "DUE", "PROCESSING", "UNKNOWN"} == models.CHANGING_CHARGE_STATUSES
    assert {"PENDING", "DUE", "RESERVED", "PARTIALLY_CAPTURED"} == models.CANCELLABLE_CHARGE_STATUSES


@pytest.mark.parametrize(("status", "changing"), [("UNKNOWN", True), ("DUE", True), ("RESERVED", False)])
def test_parsed_statuses_are_found_in_the_sets(status: str, changing: bool) -> None:
    charge = models.ChargeResponseV3.model_validate({"id": "c", "amount": 100, "status": status})
    assert (charge.status in models.CHANGING_CHARGE_STATUSES) is changing
    agreement = models.AgreementResponseV3.model_validate({"id": "a", "status": "EXPIRED"})
    assert agreement.status in models.FINAL_AGREEMENT_STATUSES
