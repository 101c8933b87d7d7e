"""Auth, required headers, idempotency (replay incl. 4xx, 409 on reuse) and per-key rate limits."""

from __future__ import annotations

from sim_harness import CREDENTIALS, Vipps


def test_token_endpoint_checks_every_credential(vipps: Vipps) -> None:
    assert vipps.http.post("/accessToken/get", headers=CREDENTIALS).status_code == 200
    for name in CREDENTIALS:
        wrong = vipps.http.post("/accesstoken/get", headers={**CREDENTIALS, name: "wrong"})
        assert wrong.status_code == 401, name
        assert "wrong" not in wrong.text
    missing = {k: v for k, v in CREDENTIALS.items() if k != "client_secret"}
    assert vipps.http.post("/accesstoken/get", headers=missing).status_code == 401


def test_calls_need_subscription_key_and_a_live_token(vipps: Vipps) -> None:
    agreement_id = vipps.active_agreement()
    path = f"/recurring/v3/agreements/{agreement_id}"
    assert vipps.call("GET", path, headers={"Ocp-Apim-Subscription-Key": "nope"}).status_code == 401
    assert vipps.call("GET", path, headers={"Authorization": "Bearer forged"}).status_code == 401
    assert vipps.call("GET", path, headers={"Authorization": vipps.token}).status_code == 401
    assert vipps.call("GET", path, headers={"Authorization": f"bearer {vipps.token}"}).status_code == 200
    assert vipps.call("GET", path, headers={"Merchant-Serial-Number": "654321"}).status_code == 403
    vipps.admin("POST", "/clock/advance", {"seconds": 3601})
    expired = vipps.call("GET", path)
    assert expired.status_code == 401 and "expired" in expired.json()["detail"]


def test_token_lifetime_is_configurable() -> None:
    vipps = Vipps(token_lifetime_seconds=86400)
    assert vipps.fetch_token().json()["expires_in"] == "86400"


def test_required_headers(vipps: Vipps) -> None:
    no_key = vipps.http.request("POST", "/recurring/v3/agreements", json={}, headers=vipps.headers())
    assert no_key.status_code == 400 and vipps.problem_type(vipps.check(no_key)) == "idempotency-key-header"
    for bad in ("a" * 41, "has/slash", "has#hash", "what?"):
        response = vipps.draft(key=bad)
        assert vipps.problem_type(response) == "idempotency-key-header", bad
    no_type = vipps.http.request(
        "POST", "/recurring/v3/agreements", content=b"{}", headers=vipps.headers("content-type-test")
    )
    assert vipps.problem_type(vipps.check(no_type)) == "missing-request-header"
    text = vipps.http.request(
        "POST",
        "/recurring/v3/agreements",
        content=b"{}",
        headers={**vipps.headers("content-type-test-2"), "Content-Type": "text/plain"},
    )
    assert text.status_code == 415
    long_name = vipps.call("GET", "/recurring/v3/agreements", headers={"Vipps-System-Name": "x" * 31})
    assert long_name.status_code == 400


def test_same_key_same_request_replays_the_first_response(vipps: Vipps) -> None:
    first = vipps.draft(key="draft-1")
    again = vipps.draft(key="draft-1")
    assert first.status_code == again.status_code == 201
    assert again.content == first.content
    assert len(vipps.sim.engine.agreements) == 1
    assert len(vipps.effects(operation="agreement.draft")) == 1


def test_a_4xx_is_replayed_even_after_the_cause_is_gone(vipps: Vipps) -> None:
    pending = vipps.agreement_id()
    refused = vipps.create_charge(pending, key="charge-1")
    assert refused.status_code == 400
    vipps.accept(pending)
    replay = vipps.create_charge(pending, key="charge-1")
    assert replay.status_code == 400 and replay.content == refused.content
    assert vipps.create_charge(pending, key="charge-2").status_code == 201


def test_same_key_different_request_is_an_idempotency_conflict(vipps: Vipps) -> None:
    agreement_id = vipps.active_agreement()
    assert vipps.create_charge(agreement_id, 1000, key="k").status_code == 201
    conflict = vipps.create_charge(agreement_id, 2000, key="k")
    assert conflict.status_code == 409 and vipps.problem_type(conflict) == "idempotency-conflict"
    other_path = vipps.update(agreement_id, {"productName": "x"}, key="k")
    assert other_path.status_code == 409
    assert len(vipps.effects(operation="charge.create")) == 1
    assert vipps.effects(duplicates="true") == []


def test_per_key_rate_limits_with_retry_after() -> None:
    vipps = Vipps()
    agreement_id = vipps.active_agreement()
    statuses = [vipps.create_charge(agreement_id, key="same-create").status_code for _ in range(3)]
    assert statuses == [201, 201, 429]
    limited = vipps.create_charge(agreement_id, key="same-create")
    assert 1 <= int(limited.headers["Retry-After"]) <= 60
    # Another charge (another key) has its own budget.
    assert vipps.create_charge(agreement_id, key="other-create").status_code == 201
    path = f"/recurring/v3/agreements/{agreement_id}"
    updates = [vipps.update(agreement_id, {"productName": f"n{i}"}).status_code for i in range(6)]
    assert updates == [204] * 5 + [429]
    fetches = [vipps.call("GET", path).status_code for _ in range(121)]
    assert fetches.count(429) == 1 and fetches[-1] == 429
    vipps.admin("POST", "/clock/advance", {"seconds": 60})
    vipps.token = vipps.fetch_token().json()["access_token"]
    assert vipps.call("GET", path).status_code == 200
    assert vipps.admin("GET", "/stats")["rate_limited"] == 4


def test_unknown_paths_are_problem_json(vipps: Vipps) -> None:
    response = vipps.http.request("GET", "/recurring/v3/nothing/here")
    assert response.status_code == 404 and response.json()["type"].endswith("#resource-not-found")
