"""Agreement changes since the baseline (CHANGES §4): blocked payment sources, the history with who acted, and
ListAgreements paged by pageNumber/pageSize."""

from __future__ import annotations

import pytest
from sim_harness import Vipps

LIST = "/recurring/v3/agreements"


def test_blocked_sources_are_set_on_draft_and_never_changed(vipps: Vipps) -> None:
    blocked = vipps.active_agreement(paymentMethod={"blockedSources": ["COMMERCIAL_CARDS"]})
    assert vipps.agreement(blocked)["paymentMethod"] == {"blockedSources": ["COMMERCIAL_CARDS"]}
    assert "paymentMethod" not in vipps.agreement(vipps.agreement_id())
    for wrong in ({"blockedSources": ["PRIVATE_CARDS"]}, {"blockedSources": "COMMERCIAL_CARDS"}, "cards"):
        refused = vipps.draft(paymentMethod=wrong)
        assert refused.status_code == 400 and vipps.problem_type(refused) == "validation-error"
    patch = vipps.update(blocked, {"paymentMethod": {"blockedSources": []}})
    assert patch.status_code == 400 and vipps.problem_type(patch) == "validation-error"
    assert vipps.agreement(blocked)["paymentMethod"] == {"blockedSources": ["COMMERCIAL_CARDS"]}


def _history(vipps: Vipps, agreement_id: str) -> list[tuple[str, str | None]]:
    return [(e["event"], e["actor"]) for e in vipps.agreement(agreement_id)["history"]]


def test_history_is_oldest_first_with_who_acted(vipps: Vipps) -> None:
    merchant = vipps.active_agreement()
    vipps.advance(60)
    assert vipps.update(merchant, {"status": "STOPPED"}).status_code == 204
    history = vipps.agreement(merchant)["history"]
    assert [(e["event"], e["actor"]) for e in history] == [
        ("CREATE", "MERCHANT"),
        ("ACTIVATE", "USER"),
        ("STOP", "MERCHANT"),
    ]
    assert history[0]["occurred"] == "2030-01-01T10:00:00Z" and history[2]["occurred"] == "2030-01-01T10:01:00Z"
    user = vipps.active_agreement()
    vipps.admin("POST", f"/agreements/{user}/user-stop")
    assert _history(vipps, user)[-1] == ("STOP", "USER")
    admin = vipps.active_agreement(phoneNumber="4798765432")
    vipps.admin("POST", "/profiles/delete", {"agreement_id": admin})
    assert _history(vipps, admin)[-1] == ("STOP", "ADMIN")
    rejected = vipps.agreement_id()
    vipps.admin("POST", "/scripts", {"user_rejects": rejected})
    assert _history(vipps, rejected) == [("CREATE", "MERCHANT"), ("STOP", "USER")]
    expired = vipps.agreement_id()
    vipps.advance(601)
    assert _history(vipps, expired) == [("CREATE", "MERCHANT"), ("EXPIRE", None)]


def test_stopping_twice_adds_no_history() -> None:
    vipps = Vipps(rate_limits_enabled=False, idempotent_stop=True)
    agreement_id = vipps.active_agreement()
    assert vipps.update(agreement_id, {"status": "STOPPED"}).status_code == 204
    assert vipps.update(agreement_id, {"status": "STOPPED"}).status_code == 204
    assert [e["event"] for e in vipps.agreement(agreement_id)["history"]] == ["CREATE", "ACTIVATE", "STOP"]
    vipps.close()


def test_pages_by_number_and_size(vipps: Vipps) -> None:
    ids = [vipps.active_agreement() for _ in range(5)]

    def page(query: str) -> list[str]:
        response = vipps.call("GET", f"{LIST}?{query}")
        assert response.status_code == 200 and "Continuation-Token" not in response.headers
        return [a["id"] for a in response.json()]

    assert page("pageSize=2") == ids[:2]
    assert page("pageNumber=2&pageSize=2") == ids[2:4]
    assert page("pageNumber=3&pageSize=2") == ids[4:]
    assert page("pageNumber=4&pageSize=2") == []
    assert page("pageNumber=1") == ids
    assert page("pageSize=2000&status=ACTIVE") == ids
    assert page("pageSize=5&status=PENDING") == []


@pytest.mark.parametrize("query", ["pageSize=0", "pageSize=2001", "pageNumber=0", "pageNumber=x", "pageSize="])
def test_bad_paging_is_a_validation_error(vipps: Vipps, query: str) -> None:
    response = vipps.call("GET", f"{LIST}?{query}")
    assert response.status_code == 400 and vipps.problem_type(response) == "validation-error"


def test_without_paging_the_first_500_and_a_continuation_token() -> None:
    vipps = Vipps(rate_limits_enabled=False)
    assert vipps.config.list_page_size == 500
    vipps.close()
    small = Vipps(rate_limits_enabled=False, list_page_size=2)
    ids = [small.active_agreement() for _ in range(3)]
    first = small.call("GET", LIST)
    assert [a["id"] for a in first.json()] == ids[:2]
    token = first.headers["Continuation-Token"]
    rest = small.call("GET", LIST, headers={"Continuation-Token": token})
    assert [a["id"] for a in rest.json()] == ids[2:] and "Continuation-Token" not in rest.headers
    small.close()
