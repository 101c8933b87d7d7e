"""The Management API's sales units: what a key set acts for, served only with a merchants file."""

from __future__ import annotations

from typing import Any

import httpx
from sim_harness import Vipps, many_merchants

from tests.merchants import NAMES, OWN, OWN_MSN, PARTNER, PARTNER_MSNS, Keys

SALES_UNITS = "/management/v1/sales-units"
YOGA, DOJO = PARTNER_MSNS


def get(vipps: Vipps, keys: Keys, path: str = "", **headers: str) -> httpx.Response:
    token = vipps.http.post("/accesstoken/get", headers=keys.token_headers()).json()["access_token"]
    return vipps.http.request("GET", SALES_UNITS + path, headers={**keys.call_headers(token, None), **headers})


def test_each_key_set_lists_the_sales_units_it_acts_for() -> None:
    vipps = many_merchants(**{DOJO: {"active": False}})
    assert get(vipps, OWN).json() == [{"msn": OWN_MSN, "name": NAMES[OWN_MSN]}]
    # An inactive sales unit is not shown; a partner needs no MSN header here, and any it sends is not read.
    assert get(vipps, PARTNER, **{"Merchant-Serial-Number": OWN_MSN}).json() == [{"msn": YOGA, "name": "Yoga Two"}]
    vipps.http.close()


def test_a_sales_unit_in_full() -> None:
    vipps = many_merchants(**{YOGA: {"recurring_allowed": False, "capture_type": "DirectCapture"}})
    body: dict[str, Any] = get(vipps, PARTNER, f"/{YOGA}").json()
    assert body["msn"] == YOGA and body["name"] == "Yoga Two"
    assert body["businessIdentifier"]["scheme"] == "business:NO:ORG" and len(body["businessIdentifier"]["id"]) == 9
    assert body["settlementBankAccount"]["scheme"] == "BBAN:NO" and len(body["settlementBankAccount"]["id"]) == 11
    assert body["configuration"] == {
        "paymentAllowed": True,
        "captureType": "DirectCapture",
        "skipLandingPageAllowed": False,
        "recurringAllowed": False,
        "partialCaptureAllowed": True,
        "lateCaptureAllowed": True,
        "landingPagePhoneNumberLocked": False,
        "longLivingPaymentAllowed": False,
        "creditCardPaymentAllowed": True,
    }
    assert get(vipps, OWN, f"/{OWN_MSN}").json()["configuration"]["captureType"] == "ReserveCapture"
    vipps.http.close()


def test_inactive_unlinked_and_unknown_sales_units_are_404() -> None:
    vipps = many_merchants(**{DOJO: {"active": False}})
    for keys, msn in ((PARTNER, DOJO), (PARTNER, OWN_MSN), (OWN, YOGA), (OWN, "999999")):
        response = get(vipps, keys, f"/{msn}")
        assert response.status_code == 404, (keys.label, msn)
        assert response.json()["type"].endswith("#resource-not-found")
    vipps.http.close()


def test_the_same_token_and_subscription_key_as_recurring_calls() -> None:
    vipps = many_merchants()
    no_token = {"Ocp-Apim-Subscription-Key": OWN.subscription_key}
    assert vipps.http.request("GET", SALES_UNITS, headers=no_token).status_code == 401
    assert get(vipps, OWN, **{"Ocp-Apim-Subscription-Key": PARTNER.subscription_key}).status_code == 401
    vipps.http.close()


def test_without_a_merchants_file_there_is_no_management_api(vipps: Vipps) -> None:
    assert vipps.http.request("GET", SALES_UNITS, headers=vipps.headers()).status_code == 404
