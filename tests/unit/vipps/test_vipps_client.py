"""The client against a respx-mocked Vipps: headers, idempotency keys, retries, 401 refresh,
the error taxonomy, pagination, budgets and secret-free logging."""

from __future__ import annotations

import datetime as dt
import json
import logging
import pickle
import time
from email.utils import format_datetime
from typing import Any

import httpx
import pytest
import respx
from pydantic import ValidationError
from vipps_support import ACCESS_TOKEN, BASE, SECRETS, token_body

from worker.vipps import Completion, NullObserver, VippsClient, VippsSettings, errors, load_settings, models
from worker.vipps.auth import BearerAuth, token_cache_key
from worker.vipps.store import MemoryKeyValue
from worker.vipps.token import SHARED_CHECK_SECONDS

AGR = "agr_5kSeqz"
CHR = "chr-123ab"
CHARGE_PATH = f"/recurring/v3/agreements/{AGR}/charges/{CHR}"
PROBLEM_BASE = "https://developer.vippsmobilepay.com/docs/APIs/recurring-api/recurring-api-problems#"


def charge_body() -> models.CreateChargeV3:
    return models.CreateChargeV3(
        amount=1000, transactionType="DIRECT_CAPTURE", description="May", due=dt.date(2030, 5, 1), retryDays=2
    )


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []

    def request_finished(self, operation: str, status: int | None, seconds: float, problem_type: str | None) -> None:
        self.events.append(("finished", operation, status, problem_type))

    def retried(self, operation: str, reason: str) -> None:
        self.events.append(("retried", operation, reason))

    def rate_limited(self, operation: str, retry_after: float | None) -> None:
        self.events.append(("rate_limited", operation, retry_after))

    def budget_exhausted(self, operation: str, wait: float) -> None:
        self.events.append(("budget", operation, wait))

    def token_refreshed(self, ok: bool) -> None:
        self.events.append(("token", ok))


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def pauses() -> list[float]:
    return []


@pytest.fixture
def observed(
    settings: VippsSettings, vipps: respx.MockRouter, recorder: Recorder, pauses: list[float]
) -> VippsClient:
    return VippsClient(settings, observer=recorder, key_prefix="unit", sleep=pauses.append)


# --- headers ---------------------------------------------------------------------------------------


def test_every_request_carries_the_standard_headers(client: VippsClient, vipps: respx.MockRouter) -> None:
    route = vipps.post(f"/recurring/v3/agreements/{AGR}/charges").respond(201, json={"chargeId": "chr-1"})
    client.create_charge(AGR, charge_body(), idempotency_key="key-1")
    sent = route.calls.last.request.headers
    assert sent["Authorization"] == f"Bearer {ACCESS_TOKEN}"
    assert sent["Ocp-Apim-Subscription-Key"] == SECRETS["subscription_key"]
    assert sent["Merchant-Serial-Number"] == "123456"
    assert sent["Idempotency-Key"] == "key-1"
    assert sent["Content-Type"] == "application/json"
    for name in (
        "Vipps-System-Name",
        "Vipps-System-Version",
        "Vipps-System-Plugin-Name",
        "Vipps-System-Plugin-Version",
    ):
        assert 1 <= len(sent[name]) <= 30


def test_token_call_sends_credentials_as_headers_without_body(client: VippsClient, vipps: respx.MockRouter) -> None:
    vipps.get(f"/recurring/v3/agreements/{AGR}").respond(200, json={"id": AGR})
    client.fetch_agreement(AGR)
    token_request = vipps.routes["token"].calls.last.request
    assert token_request.headers["client_id"] == SECRETS["client_id"]
    assert token_request.headers["client_secret"] == SECRETS["client_secret"]
    assert token_request.headers["Ocp-Apim-Subscription-Key"] == SECRETS["subscription_key"]
    assert token_request.content == b""


def test_gets_carry_no_idempotency_key(client: VippsClient, vipps: respx.MockRouter) -> None:
    route = vipps.get(f"/recurring/v3/agreements/{AGR}").respond(200, json={"id": AGR})
    client.fetch_agreement(AGR)
    assert "Idempotency-Key" not in route.calls.last.request.headers


@pytest.mark.parametrize("key", ["", "x" * 41, "a#b", "a?b", "a/b", "a\\b", "a b", "nøkkel", "tab\t", None, 42])
def test_bad_idempotency_keys_are_refused_before_sending(
    client: VippsClient, vipps: respx.MockRouter, key: Any
) -> None:
    route = vipps.post(f"/recurring/v3/agreements/{AGR}/charges").respond(201, json={"chargeId": "c"})
    with pytest.raises(errors.RequestValidationError) as info:
        client.create_charge(AGR, charge_body(), idempotency_key=key)
    assert info.value.status is None
    assert route.call_count == 0
    assert vipps.routes["token"].call_count == 0


@pytest.mark.parametrize(
    "key", ["a", "x" * 40, "cmd-123_charge.create:2030-05-01", "550e8400-e29b-41d4-a716-446655440000"]
)
def test_good_idempotency_keys_are_sent_unchanged(client: VippsClient, vipps: respx.MockRouter, key: str) -> None:
    route = vipps.delete(CHARGE_PATH).respond(204)
    assert client.cancel_charge(AGR, CHR, idempotency_key=key) is Completion.DONE
    assert route.calls.last.request.headers["Idempotency-Key"] == key


def test_ids_stay_one_path_segment(client: VippsClient, vipps: respx.MockRouter) -> None:
    route = vipps.get(path__regex=r"^/recurring/v3/charges/").respond(
        200, json={"id": "x", "amount": 100, "status": "DUE"}
    )
    client.fetch_charge_by_id("../agreements")
    assert route.calls.last.request.url.raw_path == b"/recurring/v3/charges/..%2Fagreements"
    with pytest.raises(errors.RequestValidationError):
        client.fetch_charge_by_id("")


# --- retries ---------------------------------------------------------------------------------------


def test_5xx_is_retried_once_with_the_same_key(
    observed: VippsClient, vipps: respx.MockRouter, recorder: Recorder, pauses: list[float]
) -> None:
    route = vipps.post(f"{CHARGE_PATH}/capture")
    route.side_effect = [httpx.Response(502), httpx.Response(204)]
    result = observed.capture_charge(
        AGR, CHR, models.ModifyChargeV3(amount=500, description="x"), idempotency_key="cap-1"
    )
    assert result is Completion.DONE
    keys = [call.request.headers["Idempotency-Key"] for call in route.calls]
    bodies = [call.request.content for call in route.calls]
    assert keys == ["cap-1", "cap-1"]
    assert bodies[0] == bodies[1]
    assert ("retried", "CaptureChargeV3", "server_error") in recorder.events
    assert pauses == [0.2]  # a 5xx without Retry-After: a short pause before the retry


def test_connect_error_is_retried_and_not_marked_applied(client: VippsClient, vipps: respx.MockRouter) -> None:
    route = vipps.delete(CHARGE_PATH)
    route.side_effect = [httpx.ConnectError("refused"), httpx.Response(202)]
    assert client.cancel_charge(AGR, CHR, idempotency_key="c-1") is Completion.ACCEPTED
    assert route.call_count == 2


def test_persistent_5xx_gives_transient_error_after_max_attempts(client: VippsClient, vipps: respx.MockRouter) -> None:
    route = vipps.delete(CHARGE_PATH).respond(500, text="oops")
    with pytest.raises(errors.TransientError) as info:
        client.cancel_charge(AGR, CHR, idempotency_key="c-1")
    assert route.call_count == 2  # settings.max_attempts
    assert info.value.status == 500
    assert info.value.maybe_applied is True
    assert info.value.problem is not None and info.value.problem.detail == "oops"


def test_long_retry_after_goes_back_to_the_caller(client: VippsClient, vipps: respx.MockRouter) -> None:
    route = vipps.delete(CHARGE_PATH).respond(503, headers={"Retry-After": "120"})
    with pytest.raises(errors.TransientError) as info:
        client.cancel_charge(AGR, CHR, idempotency_key="c-1")
    assert route.call_count == 1
    assert info.value.retry_after == 120.0


def test_429_with_http_date_is_rate_limited(observed: VippsClient, vipps: respx.MockRouter, recorder: Recorder) -> None:
    when = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=30)
    route = vipps.get(f"/recurring/v3/agreements/{AGR}").respond(
        429, headers={"Retry-After": format_datetime(when, usegmt=True)}
    )
    with pytest.raises(errors.RateLimitedError) as info:
        observed.fetch_agreement(AGR)
    assert route.call_count == 1
    assert info.value.retry_after is not None and 25 <= info.value.retry_after <= 31
    assert info.value.maybe_applied is False
    assert any(e[0] == "rate_limited" for e in recorder.events)


def test_429_with_short_retry_after_is_retried(
    observed: VippsClient, vipps: respx.MockRouter, pauses: list[float]
) -> None:
    route = vipps.get(f"/recurring/v3/agreements/{AGR}")
    route.side_effect = [httpx.Response(429, headers={"Retry-After": "1"}), httpx.Response(200, json={"id": AGR})]
    assert observed.fetch_agreement(AGR).id == AGR
    assert route.call_count == 2
    assert pauses == [1.0]  # waited as long as Vipps asked


def test_429_without_retry_after_is_not_retried(client: VippsClient, vipps: respx.MockRouter) -> None:
    route = vipps.get(f"/recurring/v3/agreements/{AGR}").respond(429)
    with pytest.raises(errors.RateLimitedError) as info:
        client.fetch_agreement(AGR)
    assert route.call_count == 1
    assert info.value.retry_after is None


def test_read_timeout_may_have_applied_and_is_not_retried(client: VippsClient, vipps: respx.MockRouter) -> None:
    route = vipps.post(f"/recurring/v3/agreements/{AGR}/charges")
    route.side_effect = httpx.ReadTimeout("slow")
    with pytest.raises(errors.TransientError) as info:
        client.create_charge(AGR, charge_body(), idempotency_key="k")
    assert route.call_count == 1
    assert info.value.maybe_applied is True
    assert info.value.status is None


def test_dropped_response_is_retried_with_the_same_key(client: VippsClient, vipps: respx.MockRouter) -> None:
    route = vipps.post(f"/recurring/v3/agreements/{AGR}/charges")
    route.side_effect = [httpx.RemoteProtocolError("dropped"), httpx.Response(201, json={"chargeId": "chr-9"})]
    assert client.create_charge(AGR, charge_body(), idempotency_key="k-drop").chargeId == "chr-9"
    assert [c.request.headers["Idempotency-Key"] for c in route.calls] == ["k-drop", "k-drop"]


# --- 4xx -------------------------------------------------------------------------------------------


def test_4xx_problem_is_parsed_and_never_retried(client: VippsClient, vipps: respx.MockRouter) -> None:
    problem = {
        "type": PROBLEM_BASE + "charge-due-too-soon",
        "title": "Bad Request",
        "status": 400,
        "detail": "Due must be at least 2 days in the future",
        "instance": "/v3/agreements/agr_5kSeqz/charges",
        "contextId": "f70b8bf7-c843-4bea-95d9-94725b19895f",
        "extraDetails": [{"field": "due", "text": "too soon"}],
    }
    route = vipps.post(f"/recurring/v3/agreements/{AGR}/charges").respond(
        400, json=problem, headers={"Content-Type": "application/problem+json"}
    )
    with pytest.raises(errors.PermanentError) as info:
        client.create_charge(AGR, charge_body(), idempotency_key="k")
    assert route.call_count == 1
    err = info.value
    assert type(err) is errors.PermanentError
    assert err.status == 400
    assert err.problem == errors.Problem(
        type="charge-due-too-soon",
        title="Bad Request",
        detail="Due must be at least 2 days in the future",
        context_id="f70b8bf7-c843-4bea-95d9-94725b19895f",
        status=400,
        extra_details=[{"field": "due", "text": "too soon"}],
    )


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (409, {"type": PROBLEM_BASE + "idempotency-conflict", "status": 409}, errors.IdempotencyConflictError),
        (409, {"type": PROBLEM_BASE + "conflict", "status": 409}, errors.ConflictError),
        (409, None, errors.ConflictError),
        (
            403,
            {"responseInfo": {"responseCode": 403, "responseMessage": "Forbidden"}, "result": {"message": "no"}},
            errors.PermanentError,
        ),
        (404, {"type": PROBLEM_BASE + "resource-not-found"}, errors.PermanentError),
        (422, "could not process", errors.PermanentError),
    ],
)
def test_4xx_taxonomy(client: VippsClient, vipps: respx.MockRouter, status: int, body: Any, expected: type) -> None:
    kwargs: dict[str, Any] = {"text": body} if isinstance(body, str) else {"json": body}
    route = vipps.delete(CHARGE_PATH).respond(status, **kwargs)
    with pytest.raises(expected) as info:
        client.cancel_charge(AGR, CHR, idempotency_key="c-1")
    assert type(info.value) is expected
    assert info.value.status == status
    assert route.call_count == 1


# --- 401 and the token -----------------------------------------------------------------------------


def test_401_refreshes_once_and_retries_with_the_new_token(
    observed: VippsClient, vipps: respx.MockRouter, recorder: Recorder
) -> None:
    vipps.routes["token"].side_effect = [
        httpx.Response(200, json=token_body("first-token")),
        httpx.Response(200, json=token_body("second-token")),
    ]
    route = vipps.patch(f"/recurring/v3/agreements/{AGR}")
    route.side_effect = [
        httpx.Response(
            401,
            json={
                "responseInfo": {"responseCode": 401, "responseMessage": "Unauthorized"},
                "result": {"message": "expired"},
            },
        ),
        httpx.Response(204),
    ]
    assert observed.stop_agreement(AGR, idempotency_key="stop-1") is Completion.DONE
    auth = [c.request.headers["Authorization"] for c in route.calls]
    assert auth == ["Bearer first-token", "Bearer second-token"]
    assert [c.request.headers["Idempotency-Key"] for c in route.calls] == ["stop-1", "stop-1"]
    assert recorder.events.count(("token", True)) == 2


def test_second_401_is_an_auth_error(client: VippsClient, vipps: respx.MockRouter) -> None:
    route = vipps.get(f"/recurring/v3/agreements/{AGR}").respond(401, text="Access denied")
    with pytest.raises(errors.AuthError):
        client.fetch_agreement(AGR)
    assert route.call_count == 2
    assert vipps.routes["token"].call_count == 2


def test_token_is_reused_between_calls(client: VippsClient, vipps: respx.MockRouter) -> None:
    vipps.get(f"/recurring/v3/agreements/{AGR}").respond(200, json={"id": AGR})
    for _ in range(5):
        client.fetch_agreement(AGR)
    assert vipps.routes["token"].call_count == 1


@pytest.mark.parametrize("status", [400, 401, 403])
def test_refused_credentials_are_an_auth_error(client: VippsClient, vipps: respx.MockRouter, status: int) -> None:
    vipps.routes["token"].respond(status, json={"error": "unauthorized_client"})
    route = vipps.get(f"/recurring/v3/agreements/{AGR}").respond(200, json={"id": AGR})
    with pytest.raises(errors.AuthError) as info:
        client.fetch_agreement(AGR)
    assert info.value.operation == "AccessToken"
    assert route.call_count == 0


def test_token_endpoint_outage_is_transient(client: VippsClient, vipps: respx.MockRouter) -> None:
    vipps.routes["token"].respond(503, headers={"Retry-After": "30"})
    with pytest.raises(errors.TransientError) as info:
        client.fetch_agreement(AGR)
    assert info.value.retry_after == 30.0


def test_bearer_auth_is_a_plain_httpx_auth(settings: VippsSettings, vipps: respx.MockRouter) -> None:
    vipps.routes["token"].side_effect = [
        httpx.Response(200, json=token_body("first-token")),
        httpx.Response(200, json=token_body("second-token")),
    ]
    route = vipps.get("/anything").mock(side_effect=[httpx.Response(401), httpx.Response(200)])
    with httpx.Client(base_url=BASE) as http:
        auth = BearerAuth(http, settings, MemoryKeyValue(), key_prefix="unit", observer=NullObserver(),
                          system_headers={})
        assert http.get("/anything", auth=auth).status_code == 200
    assert [c.request.headers["Authorization"] for c in route.calls] == ["Bearer first-token", "Bearer second-token"]
    assert {c.request.headers["Ocp-Apim-Subscription-Key"] for c in route.calls} == {SECRETS["subscription_key"]}


def test_a_wrong_secret_never_uses_the_token_cached_for_the_right_one(
    settings: VippsSettings, vipps: respx.MockRouter
) -> None:
    def token_endpoint(request: httpx.Request) -> httpx.Response:
        if request.headers["client_secret"] == SECRETS["client_secret"]:
            return httpx.Response(200, json=token_body())
        return httpx.Response(401, json={"error": "invalid_client"})

    vipps.routes["token"].side_effect = token_endpoint
    route = vipps.get(f"/recurring/v3/agreements/{AGR}").respond(200, json={"id": AGR})
    wrong = load_settings(env="test", msn="123456", **{**SECRETS, "client_secret": "wrong-secret-value"})
    shared = MemoryKeyValue()  # one store, as two processes sharing Redis
    with VippsClient(settings, token_store=shared) as good, VippsClient(wrong, token_store=shared) as bad:
        good.fetch_agreement(AGR)
        with pytest.raises(errors.AuthError) as info:
            bad.fetch_agreement(AGR)
        assert info.value.operation == "AccessToken"
        assert bad.credentials_refused is True
        assert good.credentials_refused is False
    assert route.call_count == 1  # nothing went out with the wrong secret
    assert vipps.routes["token"].call_count == 2


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("client_id", "another-client-id"),
        ("client_secret", "another-secret"),
        ("subscription_key", "another-subscription-key"),
        ("msn", "654321"),
        ("base_url", "https://elsewhere.example"),
    ],
)
def test_the_token_key_depends_on_every_credential_and_shows_none(
    settings: VippsSettings, field: str, value: str
) -> None:
    other = load_settings(**{"env": "test", "msn": "123456", **SECRETS, field: value})
    key = token_cache_key(settings, "unit")
    assert token_cache_key(other, "unit") != key
    assert key == token_cache_key(load_settings(env="test", msn="123456", **SECRETS), "unit")
    assert not [s for s in (*SECRETS.values(), value) if s in key]


def test_a_client_sends_the_token_another_client_refreshed(settings: VippsSettings, vipps: respx.MockRouter) -> None:
    vipps.routes["token"].side_effect = [
        httpx.Response(200, json=token_body("first-token")),
        httpx.Response(200, json=token_body("second-token")),
    ]
    accepted = {"Bearer first-token"}

    def api(request: httpx.Request) -> httpx.Response:
        if request.headers["Authorization"] in accepted:
            return httpx.Response(200, json={"id": AGR})
        return httpx.Response(401, text="The access token is invalid")

    route = vipps.get(f"/recurring/v3/agreements/{AGR}").mock(side_effect=api)
    shared = MemoryKeyValue()
    with VippsClient(settings, token_store=shared) as a, VippsClient(settings, token_store=shared) as b:
        a.fetch_agreement(AGR)  # a now holds first-token
        accepted = {"Bearer second-token"}  # Vipps stops accepting it ...
        b.fetch_agreement(AGR)  # ... b meets the 401 and stores second-token
        time.sleep(SHARED_CHECK_SECONDS)  # a compares its copy with the shared token at most this often
        a.fetch_agreement(AGR)
    sent = [c.request.headers["Authorization"] for c in route.calls]
    assert sent == ["Bearer first-token", "Bearer first-token", "Bearer second-token", "Bearer second-token"]
    assert vipps.routes["token"].call_count == 2


def test_credentials_refused_follows_the_token_endpoints_last_answer(
    client: VippsClient, vipps: respx.MockRouter
) -> None:
    vipps.get(f"/recurring/v3/agreements/{AGR}").respond(200, json={"id": AGR})
    assert client.credentials_refused is False
    vipps.routes["token"].respond(401, json={"error": "invalid_client"})
    with pytest.raises(errors.AuthError):
        client.fetch_agreement(AGR)
    assert client.credentials_refused is True
    vipps.routes["token"].respond(200, json=token_body())
    client.fetch_agreement(AGR)
    assert client.credentials_refused is False


def test_a_401_even_with_a_fresh_token_counts_as_refused(client: VippsClient, vipps: respx.MockRouter) -> None:
    route = vipps.get(f"/recurring/v3/agreements/{AGR}")
    route.side_effect = [httpx.Response(401), httpx.Response(401), httpx.Response(200, json={"id": AGR})]
    with pytest.raises(errors.AuthError):
        client.fetch_agreement(AGR)
    assert client.credentials_refused is True
    client.fetch_agreement(AGR)
    assert client.credentials_refused is False


def test_a_token_endpoint_outage_is_no_refusal(client: VippsClient, vipps: respx.MockRouter) -> None:
    vipps.routes["token"].respond(503)
    with pytest.raises(errors.TransientError):
        client.fetch_agreement(AGR)
    assert client.credentials_refused is False


# --- other behaviour -------------------------------------------------------------------------------


def test_202_and_204_are_distinct(client: VippsClient, vipps: respx.MockRouter) -> None:
    route = vipps.post(f"{CHARGE_PATH}/refund")
    route.side_effect = [httpx.Response(202), httpx.Response(204)]
    body = models.ModifyChargeV3(amount=100, description="r")
    assert client.refund_charge(AGR, CHR, body, idempotency_key="r1") is Completion.ACCEPTED
    assert client.refund_charge(AGR, CHR, body, idempotency_key="r2") is Completion.DONE


def test_force_accept_is_refused_in_production(vipps: respx.MockRouter) -> None:
    production = load_settings(env="production", msn="123456", **SECRETS)
    route = vipps.route(method="PATCH").respond(204)
    with VippsClient(production) as c, pytest.raises(errors.ForceAcceptNotAllowed):
        c.force_accept_agreement(AGR, "4791234567", idempotency_key="acc")
    assert route.call_count == 0


def test_list_agreements_follows_continuation_tokens(client: VippsClient, vipps: respx.MockRouter) -> None:
    route = vipps.get("/recurring/v3/agreements")
    route.side_effect = [
        httpx.Response(
            200, json=[{"id": "agr_1"}], headers={"Continuation-Token": "7f0e6c1a-0000-4000-8000-000000000001"}
        ),
        httpx.Response(200, json=[{"id": "agr_2"}, {"id": "agr_3", "status": "PAUSED_SOMEDAY"}]),
    ]
    found = client.list_agreements(status=models.AgreementStatus.STOPPED, created_after=1)
    assert [a.id for a in found] == ["agr_1", "agr_2", "agr_3"]
    assert found[2].status == "PAUSED_SOMEDAY"
    first, second = (c.request for c in route.calls)
    assert "Continuation-Token" not in first.headers
    assert second.headers["Continuation-Token"] == "7f0e6c1a-0000-4000-8000-000000000001"
    assert second.url.params["status"] == "STOPPED" and second.url.params["createdAfter"] == "1"


def test_list_charges_passes_status(client: VippsClient, vipps: respx.MockRouter) -> None:
    route = vipps.get(f"/recurring/v3/agreements/{AGR}/charges").respond(200, json=[])
    assert client.list_charges(AGR, status=models.ChargeStatus.RESERVED) == []
    assert route.calls.last.request.url.params["status"] == "RESERVED"
    with pytest.raises(errors.RequestValidationError):
        client.list_charges(AGR, status="NOT_A_STATUS")  # type: ignore[arg-type]


def test_unreadable_success_body_is_unexpected(client: VippsClient, vipps: respx.MockRouter) -> None:
    vipps.post(f"/recurring/v3/agreements/{AGR}/charges").respond(201, text="<html>proxy</html>")
    with pytest.raises(errors.UnexpectedResponseError) as info:
        client.create_charge(AGR, charge_body(), idempotency_key="k")
    assert info.value.maybe_applied is True


def test_wrong_body_type_is_refused(client: VippsClient, vipps: respx.MockRouter) -> None:
    with pytest.raises(errors.RequestValidationError):
        client.create_charge(AGR, {"amount": 100}, idempotency_key="k")  # type: ignore[arg-type]


def test_create_charge_budget_is_two_per_minute_per_key(
    observed: VippsClient, vipps: respx.MockRouter, recorder: Recorder
) -> None:
    route = vipps.post(f"/recurring/v3/agreements/{AGR}/charges").respond(201, json={"chargeId": "c"})
    observed.create_charge(AGR, charge_body(), idempotency_key="same")
    observed.create_charge(AGR, charge_body(), idempotency_key="same")
    with pytest.raises(errors.BudgetExhaustedError) as info:
        observed.create_charge(AGR, charge_body(), idempotency_key="same")
    assert route.call_count == 2  # the third was not sent
    assert info.value.retry_after is not None and 0 < info.value.retry_after <= 60
    observed.create_charge(AGR, charge_body(), idempotency_key="other")  # another key has its own budget
    assert route.call_count == 3
    assert any(e[0] == "budget" for e in recorder.events)


def test_budgets_can_be_disabled(settings: VippsSettings, vipps: respx.MockRouter) -> None:
    route = vipps.post(f"/recurring/v3/agreements/{AGR}/charges").respond(201, json={"chargeId": "c"})
    with VippsClient(settings, budget_rules={}) as c:
        for _ in range(5):
            c.create_charge(AGR, charge_body(), idempotency_key="same")
    assert route.call_count == 5


# --- logging and secrets ---------------------------------------------------------------------------


def test_each_error_is_logged_once_with_context_and_no_secrets(
    client: VippsClient, vipps: respx.MockRouter, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    vipps.delete(CHARGE_PATH).respond(
        400, json={"type": PROBLEM_BASE + "cancel-charge-failed", "contextId": "ctx-1", "detail": "cannot"}
    )
    with pytest.raises(errors.PermanentError) as info:
        client.cancel_charge(AGR, CHR, idempotency_key="c-1")
    records = [r for r in caplog.records if r.name == "worker.vipps"]
    assert len(records) == 1
    record = records[0]
    assert record.__dict__["operation"] == "CancelChargeV3"
    assert record.__dict__["status"] == 400
    assert record.__dict__["problem_type"] == "cancel-charge-failed"
    assert record.__dict__["context_id"] == "ctx-1"
    secrets = [ACCESS_TOKEN, *SECRETS.values()]
    everything = caplog.text + repr(info.value) + str(info.value) + repr(client) + repr(client.current_token())
    everything += "".join(repr(r.__dict__) for r in caplog.records)
    assert not [s for s in secrets if s in everything]


def test_errors_survive_pickling() -> None:
    err = errors.BudgetExhaustedError("x", operation="CreateChargeV3", retry_after=3.0, maybe_applied=True)
    copy = pickle.loads(pickle.dumps(err))
    assert type(copy) is errors.BudgetExhaustedError
    assert (copy.operation, copy.retry_after, copy.maybe_applied) == ("CreateChargeV3", 3.0, True)


def test_settings_repr_hides_secrets(settings: VippsSettings) -> None:
    text = repr(settings) + str(settings.model_dump())
    assert not [s for s in SECRETS.values() if s in text]


def agreements(first: int, count: int) -> list[dict[str, Any]]:
    return [{"id": f"agr_{n}"} for n in range(first, first + count)]


def test_list_agreements_pages_by_number_until_a_short_page(client: VippsClient, vipps: respx.MockRouter) -> None:
    route = vipps.get("/recurring/v3/agreements")
    route.side_effect = [httpx.Response(200, json=agreements(0, 2)), httpx.Response(200, json=agreements(2, 2)),
                         httpx.Response(200, json=agreements(4, 1))]
    found = client.list_agreements(status=models.AgreementStatus.ACTIVE, page_size=2)
    assert [a.id for a in found] == [f"agr_{n}" for n in range(5)]
    sent = [dict(call.request.url.params) for call in route.calls]
    assert sent == [{"status": "ACTIVE", "pageNumber": str(n), "pageSize": "2"} for n in (1, 2, 3)]


def test_list_agreements_asks_for_500_a_page_and_stops_on_an_empty_page(
    client: VippsClient, vipps: respx.MockRouter
) -> None:
    route = vipps.get("/recurring/v3/agreements")
    route.side_effect = [httpx.Response(200, json=agreements(0, 500)), httpx.Response(200, json=[])]
    assert len(client.list_agreements()) == 500
    assert [call.request.url.params["pageSize"] for call in route.calls] == ["500", "500"]
    assert [call.request.url.params["pageNumber"] for call in route.calls] == ["1", "2"]


def test_list_agreements_stops_when_the_server_ignores_the_page_number(
    client: VippsClient, vipps: respx.MockRouter
) -> None:
    route = vipps.get("/recurring/v3/agreements").respond(200, json=agreements(0, 2))
    assert [a.id for a in client.list_agreements(page_size=2)] == ["agr_0", "agr_1"]
    assert route.call_count == 2


@pytest.mark.parametrize("size", [0, 2001, -1, True, 2.5, "500"])
def test_list_agreements_page_size_is_1_to_2000(client: VippsClient, vipps: respx.MockRouter, size: Any) -> None:
    route = vipps.get("/recurring/v3/agreements").respond(200, json=[])
    with pytest.raises(errors.RequestValidationError, match=r"page_size must be an integer 1\.\.2000"):
        client.list_agreements(page_size=size)
    assert route.call_count == 0
    client.list_agreements(page_size=2000)
    assert route.calls.last.request.url.params["pageSize"] == "2000"


def test_create_charge_sends_type_and_processing_mode_only_when_given(
    client: VippsClient, vipps: respx.MockRouter
) -> None:
    route = vipps.post(f"/recurring/v3/agreements/{AGR}/charges").respond(201, json={"chargeId": "c"})
    client.create_charge(AGR, charge_body(), idempotency_key="k1")
    assert not {"type", "processingMode"} & set(json.loads(route.calls.last.request.content))
    unscheduled = models.CreateChargeV3(amount=1000, transactionType="DIRECT_CAPTURE", description="Now",
                                        type="UNSCHEDULED")
    client.create_charge(AGR, unscheduled, idempotency_key="k2")
    assert json.loads(route.calls.last.request.content) == {"amount": 1000, "transactionType": "DIRECT_CAPTURE",
                                                            "description": "Now", "type": "UNSCHEDULED"}
    single = models.CreateChargeV3(amount=1000, transactionType="DIRECT_CAPTURE", description="Once",
                                   due=dt.date(2030, 1, 1), retryDays=0, processingMode="SINGLE_ATTEMPT")
    client.create_charge(AGR, single, idempotency_key="k3")
    assert json.loads(route.calls.last.request.content)["processingMode"] == "SINGLE_ATTEMPT"


@pytest.mark.parametrize(("fields", "text"), [
    ({"type": "UNSCHEDULED", "due": dt.date(2030, 1, 1)}, "UNSCHEDULED charge takes no due"),
    ({"type": "UNSCHEDULED", "processingMode": "SINGLE_ATTEMPT"}, "UNSCHEDULED charge takes no processingMode"),
    ({"due": dt.date(2030, 1, 1)}, "RECURRING charge needs due and retryDays"),
    ({"due": dt.date(2030, 1, 1), "retryDays": 2, "processingMode": "SINGLE_ATTEMPT"}, "needs retryDays 0"),
    ({"type": "INITIAL"}, "RECURRING"),  # a response type, not one to create
])
def test_create_charge_body_rules(fields: dict[str, Any], text: str) -> None:
    with pytest.raises(ValidationError, match=text):
        models.CreateChargeV3(amount=1000, transactionType="DIRECT_CAPTURE", description="d", **fields)


def test_draft_agreement_sends_blocked_sources(client: VippsClient, vipps: respx.MockRouter) -> None:
    route = vipps.post("/recurring/v3/agreements").respond(201, json={"agreementId": AGR})
    body = models.DraftAgreementV3(
        pricing=models.PricingRequest(amount=49900), interval=models.TimePeriod(unit="MONTH", count=1),
        merchantAgreementUrl="https://example.com/a", merchantRedirectUrl="https://example.com/r",
        productName="Gym", paymentMethod=models.PaymentMethodV3(blockedSources=["COMMERCIAL_CARDS"]))
    client.draft_agreement(body, idempotency_key="d1")
    assert json.loads(route.calls.last.request.content)["paymentMethod"] == {"blockedSources": ["COMMERCIAL_CARDS"]}
    for bad in ([], ["COMMERCIAL_CARDS", "COMMERCIAL_CARDS"], ["PREPAID"]):
        with pytest.raises(ValidationError):
            models.PaymentMethodV3(blockedSources=bad)


def test_agreement_history_and_payment_method_are_read(client: VippsClient, vipps: respx.MockRouter) -> None:
    vipps.get(f"/recurring/v3/agreements/{AGR}").respond(200, json={
        "id": AGR, "status": "STOPPED", "paymentMethod": {"blockedSources": ["COMMERCIAL_CARDS", "LATER_SOURCE"]},
        "history": [{"occurred": "2026-10-01T10:00:00Z", "event": "CREATE", "actor": "MERCHANT"},
                    {"occurred": "2026-10-01T10:01:00Z", "event": "ACTIVATE", "actor": "USER"},
                    {"occurred": "2026-10-09T08:00:00Z", "event": "SOME_NEW_EVENT", "extra": 1},
                    {"occurred": "2026-10-20T08:00:00Z", "event": "STOP", "actor": "ADMIN"}]})
    agreement = client.fetch_agreement(AGR)
    assert [h.event for h in agreement.history] == ["CREATE", "ACTIVATE", "SOME_NEW_EVENT", "STOP"]
    assert agreement.history[2].actor is None
    assert agreement.paymentMethod is not None and agreement.paymentMethod.blockedSources[0] == "COMMERCIAL_CARDS"
    assert models.stop_actor(agreement.model_dump(mode="json")) == "ADMIN"
    vipps.get("/recurring/v3/agreements/agr_old").respond(200, json={"id": "agr_old", "history": None})
    old = client.fetch_agreement("agr_old")
    assert old.history == [] and old.paymentMethod is None
