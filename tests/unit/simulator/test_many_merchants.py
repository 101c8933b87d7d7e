"""Many merchants: which keys may act for which MSN, and every merchant's state kept apart from the others'.

Gym One (123456) has its own keys; Yoga Two (223344) and Dojo Three (334455) are reached through the
partner keys of "platform" (tests/merchants.py).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sim_harness import Vipps, many_merchants

from tests.merchants import OWN, OWN_MSN, PARTNER, PARTNER_MSNS, merchants_data
from worker.simulator.config import SimulatorConfig

YOGA, DOJO = PARTNER_MSNS


@pytest.fixture
def vipps() -> Iterator[Vipps]:
    client = many_merchants()
    yield client
    client.http.close()


def test_merchant_keys_may_name_their_own_msn_or_none(vipps: Vipps) -> None:
    assert vipps.call("GET", "/recurring/v3/agreements").status_code == 200
    vipps.msn = None
    assert vipps.call("GET", "/recurring/v3/agreements").status_code == 200
    for other in (YOGA, "999999"):
        vipps.msn = other
        wrong = vipps.call("GET", "/recurring/v3/agreements")
        assert wrong.status_code == 403 and vipps.problem_type(wrong) == "invalid-sale-unit", other
    # A token is not issued for another merchant's MSN either.
    assert vipps.http.post("/accesstoken/get", headers=OWN.token_headers(YOGA)).status_code == 401


def test_partner_keys_need_an_msn_they_manage(vipps: Vipps) -> None:
    vipps.login(PARTNER.token_headers(), None)
    missing = vipps.call("GET", "/recurring/v3/agreements")
    assert missing.status_code == 403 and vipps.problem_type(missing) == "invalid-sale-unit"
    assert "required" in missing.json()["detail"]
    for unmanaged in (OWN_MSN, "999999"):
        vipps.msn = unmanaged
        refused = vipps.call("POST", "/recurring/v3/agreements", {})
        assert refused.status_code == 403 and vipps.problem_type(refused) == "invalid-sale-unit", unmanaged
    # One token, no MSN asked for, serves each merchant the partner acts for.
    for msn in PARTNER_MSNS:
        vipps.msn = msn
        assert vipps.call("GET", "/recurring/v3/agreements").status_code == 200
    assert vipps.http.post("/accesstoken/get", headers=PARTNER.token_headers(YOGA)).status_code == 200
    assert vipps.http.post("/accesstoken/get", headers=PARTNER.token_headers(OWN_MSN)).status_code == 401
    assert vipps.effects() == []


def test_the_subscription_key_must_be_the_tokens(vipps: Vipps) -> None:
    other_key = {"Ocp-Apim-Subscription-Key": PARTNER.subscription_key}
    assert vipps.call("GET", "/recurring/v3/agreements", headers=other_key).status_code == 401
    mixed = {**OWN.token_headers(), **other_key}
    assert vipps.http.post("/accesstoken/get", headers=mixed).status_code == 401
    assert PARTNER.subscription_key not in vipps.http.post("/accesstoken/get", headers=mixed).text


def test_another_merchants_agreement_is_not_found(vipps: Vipps) -> None:
    vipps.login(PARTNER.token_headers(), YOGA)
    agreement_id = vipps.active_agreement()
    charge_id = vipps.charge_id(agreement_id)
    base = f"/recurring/v3/agreements/{agreement_id}"
    calls = [
        ("GET", base, None),
        ("PATCH", base, {"productName": "Taken over"}),
        ("GET", base + "/charges", None),
        ("POST", base + "/charges", {"amount": 100, "description": "x", "due": vipps.due(2), "retryDays": 0}),
        ("GET", f"{base}/charges/{charge_id}", None),
        ("DELETE", f"{base}/charges/{charge_id}", None),
        ("POST", f"{base}/charges/{charge_id}/refund", {"amount": 100, "description": "x"}),
        ("GET", f"/recurring/v3/charges/{charge_id}", None),
    ]
    for credentials, msn in ((PARTNER.token_headers(), DOJO), (OWN.token_headers(), OWN_MSN)):
        vipps.login(credentials, msn)
        for method, path, body in calls:
            response = vipps.call(method, path, body)
            assert response.status_code == 404, (msn, method, path, response.text)
            assert vipps.problem_type(response) == "resource-not-found"
        assert vipps.call("GET", "/recurring/v3/agreements").json() == []
    vipps.login(PARTNER.token_headers(), YOGA)
    assert vipps.agreement(agreement_id)["productName"] == "MyNews Digital"
    assert [a["id"] for a in vipps.call("GET", "/recurring/v3/agreements").json()] == [agreement_id]
    assert {e["msn"] for e in vipps.effects()} == {YOGA}


def test_the_same_idempotency_key_from_two_merchants_is_two_requests(vipps: Vipps) -> None:
    first = vipps.draft(key="shared-key")
    vipps.login(PARTNER.token_headers(), YOGA)
    second = vipps.draft(key="shared-key")
    replay = vipps.draft(key="shared-key")
    assert first.status_code == second.status_code == 201
    assert first.json()["agreementId"] != second.json()["agreementId"] == replay.json()["agreementId"]
    drafts = vipps.effects(operation="agreement.draft")
    assert [(e["msn"], e["idempotency_key"]) for e in drafts] == [(OWN_MSN, "shared-key"), (YOGA, "shared-key")]
    assert vipps.effects(duplicates="true") == []


def test_rate_limits_and_list_pages_are_per_merchant() -> None:
    vipps = Vipps(SimulatorConfig(merchants=merchants_data(), list_page_size=1), OWN.token_headers(), OWN_MSN)
    vipps.login(PARTNER.token_headers(), YOGA)
    vipps.draft()
    vipps.draft()
    page = vipps.call("GET", "/recurring/v3/agreements?status=PENDING")
    token = {"Continuation-Token": page.headers["Continuation-Token"]}
    vipps.msn = DOJO
    assert vipps.call("GET", "/recurring/v3/agreements", headers=token).status_code == 400
    for _ in range(4):
        assert vipps.call("GET", "/recurring/v3/agreements").status_code == 200
    assert vipps.call("GET", "/recurring/v3/agreements").status_code == 429
    vipps.msn = YOGA
    assert vipps.call("GET", "/recurring/v3/agreements", headers=token).status_code == 200
    vipps.http.close()


def test_recurring_not_allowed_or_inactive_is_403() -> None:
    vipps = many_merchants(**{YOGA: {"recurring_allowed": False}, DOJO: {"active": False}})
    vipps.login(PARTNER.token_headers(), YOGA)
    for msn, detail in ((YOGA, "not allowed to use the Recurring API"), (DOJO, "not active")):
        vipps.msn = msn
        for response in (vipps.call("GET", "/recurring/v3/agreements"), vipps.draft()):
            assert response.status_code == 403 and vipps.problem_type(response) == "invalid-sale-unit"
            assert detail in response.json()["detail"]
    assert vipps.effects() == []
    vipps.http.close()


def test_effects_and_requests_carry_the_msn_and_the_key_set(vipps: Vipps) -> None:
    vipps.msn = None
    own = vipps.active_agreement()
    vipps.login(PARTNER.token_headers(), DOJO)
    partners = vipps.agreement_id()
    vipps.admin("POST", "/scripts", {"user_accepts": partners})
    vipps.msn = None
    vipps.call("GET", "/recurring/v3/agreements")
    effects = vipps.effects()
    assert [(e["agreement_id"], e["msn"], e["credentials"]) for e in effects] == [
        (own, OWN_MSN, OWN.label),
        (own, OWN_MSN, OWN.label),
        (partners, DOJO, PARTNER.label),
        # The user's acceptance: no key set made it.
        (partners, DOJO, None),
    ]
    assert [e["agreement_id"] for e in vipps.effects(msn=DOJO)] == [partners, partners]
    assert vipps.admin("GET", f"/agreements/{partners}")["msn"] == DOJO
    requests = vipps.admin("GET", "/requests")
    assert [(r["operation"], r["msn_header"], r["msn"], r["credentials"], r["status"]) for r in requests] == [
        ("DraftAgreementV3", None, OWN_MSN, OWN.label, 201),
        ("acceptUsingPATCHV3", None, OWN_MSN, OWN.label, 204),
        ("DraftAgreementV3", DOJO, DOJO, PARTNER.label, 201),
        ("ListAgreementsV3", None, None, PARTNER.label, 403),
    ]
    assert [r["operation"] for r in vipps.admin("GET", f"/requests?msn={DOJO}")] == ["DraftAgreementV3"]
    assert len(vipps.admin("GET", f"/requests?credentials={OWN.label}&since=1")) == 1


def test_timed_effects_land_on_the_agreements_merchant(vipps: Vipps) -> None:
    vipps.login(PARTNER.token_headers(), YOGA)
    agreement_id = vipps.active_agreement()
    vipps.charge_id(agreement_id)
    vipps.advance(2 * 86400)
    processed = vipps.effects(operation="charge.process")
    assert [(e["msn"], e["credentials"], e["effect"]) for e in processed] == [(YOGA, None, "DUE->CHARGED")]
