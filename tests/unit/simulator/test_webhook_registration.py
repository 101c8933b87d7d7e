"""The Webhooks API: register, list, delete; its ProblemDetails; the 25-per-event limit per bucket; which MSNs a
registration covers (a partner's without an MSN covers all its merchants). The harness checks every answer the
Webhooks spec documents against it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from sim_harness import Vipps, many_merchants

from tests.merchants import OWN, OWN_MSN, PARTNER, PARTNER_MSNS
from tests.webhook_receiver import Receiver, wait_until
from worker.simulator.webhook_api import REQUIRED

ACTIVATED = "recurring.agreement-activated.v1"
STOPPED = "recurring.agreement-stopped.v1"
HOOKS = "/webhooks/v1/webhooks"
YOGA, DOJO = PARTNER_MSNS


@pytest.fixture
def merchants() -> Iterator[Vipps]:
    client = many_merchants()
    yield client
    client.close()


def _details(response: object) -> list[dict[str, str]]:
    body = response.json()  # type: ignore[attr-defined]
    assert body["status"] == 400 and body["title"] == "Bad Request" and body["traceId"].startswith("00-")
    assert response.headers["content-type"] == "application/problem+json"  # type: ignore[attr-defined]
    details: list[dict[str, str]] = body["extraDetails"]
    return details


def test_register_list_and_delete(vipps: Vipps) -> None:
    made = vipps.register_webhook("https://example.com/hooks?src=vipps", [ACTIVATED, STOPPED, ACTIVATED])
    assert made.status_code == 201 and set(made.json()) == {"id", "secret"}
    registration_id = made.json()["id"]
    assert uuid.UUID(registration_id) and len(made.json()["secret"]) >= 32
    listed = vipps.call("GET", HOOKS)
    url = "https://example.com/hooks?src=vipps"
    assert listed.json() == {"webhooks": [{"id": registration_id, "url": url, "events": [ACTIVATED, STOPPED]}]}
    assert made.json()["secret"] not in listed.text
    assert vipps.call("DELETE", f"{HOOKS}/{registration_id}").status_code == 204
    assert vipps.call("GET", HOOKS).json() == {"webhooks": []}
    again = vipps.call("DELETE", f"{HOOKS}/{registration_id}")
    assert again.status_code == 404 and again.json()["traceId"]


def test_refused_bodies_name_each_field(vipps: Vipps) -> None:
    assert _details(vipps.register_webhook("", [])) == [
        {"name": "url", "reason": REQUIRED},
        {"name": "events", "reason": REQUIRED},
    ]
    body = {"url": "ftp://example.com/x", "events": ["epayments.payment.created.v1"], "x": 1}
    wrong = vipps.call("POST", HOOKS, body)
    assert [d["name"] for d in _details(wrong)] == ["x", "url", "events"]
    assert "Unknown event type: epayments.payment.created.v1" in _details(wrong)[2]["reason"]
    assert _details(vipps.register_webhook("https://example.com", "nope"))[0]["name"] == "events"  # type: ignore[arg-type]
    assert _details(vipps.call("POST", HOOKS, ["url"]))[0]["name"] == "$"
    headers = {**vipps.headers(), "Content-Type": "application/json"}
    not_json = vipps.http.request("POST", HOOKS, content=b"{", headers=headers)
    assert not_json.status_code == 400 and not_json.headers["content-type"] == "application/problem+json"
    bad_id = vipps.call("DELETE", f"{HOOKS}/not-a-uuid")
    assert _details(bad_id) == [{"name": "id", "reason": "The value 'not-a-uuid' is not valid."}]
    assert vipps.call("GET", HOOKS).json() == {"webhooks": []}


def test_https_only_refuses_plain_http() -> None:
    vipps = Vipps(webhook_https_only=True)
    try:
        assert _details(vipps.register_webhook("http://example.com/x", [ACTIVATED])) == [
            {"name": "url", "reason": "The URL must use HTTPS."}
        ]
        assert vipps.register_webhook("https://example.com/x", [ACTIVATED]).status_code == 201
    finally:
        vipps.close()


def test_the_same_credentials_as_recurring_calls(merchants: Vipps) -> None:
    no_token = merchants.http.request("GET", HOOKS, headers={"Ocp-Apim-Subscription-Key": OWN.subscription_key})
    assert no_token.status_code == 401 and no_token.headers["content-type"] == "application/problem+json"
    merchants.msn = YOGA
    assert merchants.call("GET", HOOKS).status_code == 403
    merchants.login(PARTNER.token_headers(), OWN_MSN)
    assert merchants.call("GET", HOOKS).status_code == 403
    merchants.msn = None
    assert merchants.call("GET", HOOKS).status_code == 200


def test_at_most_25_per_event_type_in_each_bucket(merchants: Vipps) -> None:
    for n in range(25):
        assert merchants.register_webhook(f"https://example.com/{n}", [ACTIVATED]).status_code == 201
    refused = merchants.register_webhook("https://example.com/26", [STOPPED, ACTIVATED])
    assert _details(refused) == [{"name": "events", "reason": f"{ACTIVATED} already has 25 registrations"}]
    assert merchants.register_webhook("https://example.com/stopped", [STOPPED]).status_code == 201
    # A partner's registrations for a merchant, and for all its merchants, are buckets of their own.
    for msn in (YOGA, None):
        merchants.login(PARTNER.token_headers(), msn)
        for n in range(25):
            assert merchants.register_webhook(f"https://example.com/p{n}", [ACTIVATED]).status_code == 201
        assert merchants.register_webhook("https://example.com/p26", [ACTIVATED]).status_code == 400
    merchants.msn = DOJO
    assert merchants.register_webhook("https://example.com/dojo", [ACTIVATED]).status_code == 201


def test_who_sees_which_registration(merchants: Vipps) -> None:
    own = merchants.webhook("https://example.com/own")
    merchants.login(PARTNER.token_headers(), YOGA)
    yoga = merchants.webhook("https://example.com/yoga")
    merchants.msn = None
    wide = merchants.webhook("https://example.com/all")
    assert [w["id"] for w in merchants.call("GET", HOOKS).json()["webhooks"]] == [yoga["id"], wide["id"]]
    merchants.msn = YOGA
    assert [w["id"] for w in merchants.call("GET", HOOKS).json()["webhooks"]] == [yoga["id"]]
    assert merchants.call("DELETE", f"{HOOKS}/{wide['id']}").status_code == 404
    assert merchants.call("DELETE", f"{HOOKS}/{own['id']}").status_code == 404
    registrations = merchants.admin("GET", "/webhooks/registrations")
    assert [(r["owner"], r["msn"], r["msns"]) for r in registrations] == [
        (OWN.label, OWN_MSN, [OWN_MSN]),
        (PARTNER.label, YOGA, [YOGA]),
        (PARTNER.label, None, list(PARTNER_MSNS)),
    ]
    assert all("secret" not in r for r in registrations)


def test_a_partner_registration_without_msn_receives_every_merchant_of_the_partner(merchants: Vipps) -> None:
    receiver = Receiver()
    try:
        merchants.webhook(receiver.url("/own"), ACTIVATED)
        merchants.login(PARTNER.token_headers(), YOGA)
        merchants.webhook(receiver.url("/yoga"), ACTIVATED)
        merchants.msn = None
        merchants.webhook(receiver.url("/all"), ACTIVATED)
        made = {}
        for keys, msn in ((PARTNER, YOGA), (PARTNER, DOJO), (OWN, OWN_MSN)):
            merchants.login(keys.token_headers(), msn)
            made[merchants.active_agreement()] = msn
        receiver.wait(4)
        wait_until(lambda: len(merchants.deliveries(result="delivered")) == 4)
        got = sorted((r.path, r.json()["msn"], made[r.json()["agreementId"]]) for r in receiver.received)
        assert got == [("/all", YOGA, YOGA), ("/all", DOJO, DOJO), ("/own", OWN_MSN, OWN_MSN), ("/yoga", YOGA, YOGA)]
    finally:
        receiver.close()
