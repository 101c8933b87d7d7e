"""The Webhooks API through the client: register (the secret kept secret), list, delete, bad input."""

from __future__ import annotations

import json

import pytest
import respx

from worker.vipps import VippsClient, errors

SECRET = "090a478d-37ff-4e77-970e-d457aeb26a3a"
EVENTS = ["recurring.agreement-stopped.v1", "recurring.charge-captured.v1"]


def test_register_list_and_delete(client: VippsClient, vipps: respx.MockRouter) -> None:
    registered = vipps.post("/webhooks/v1/webhooks").respond(201, json={"id": "5f5b6f1c", "secret": SECRET})
    vipps.get("/webhooks/v1/webhooks").respond(200, json={"webhooks": [
        {"id": "5f5b6f1c", "url": "https://hooks.example.com/vipps", "events": EVENTS}]})
    deleted = vipps.delete("/webhooks/v1/webhooks/5f5b6f1c").respond(204)
    made = client.register_webhook("https://hooks.example.com/vipps", EVENTS)
    assert made.id == "5f5b6f1c" and made.secret.get_secret_value() == SECRET and SECRET not in repr(made)
    request = registered.calls.last.request
    assert json.loads(request.content) == {"url": "https://hooks.example.com/vipps", "events": EVENTS}
    assert request.headers["Merchant-Serial-Number"] == "123456" and "Idempotency-Key" not in request.headers
    assert [w.id for w in client.list_webhooks()] == ["5f5b6f1c"]
    client.delete_webhook("5f5b6f1c")
    assert deleted.called


@pytest.mark.parametrize(("url", "events"), [("http://hooks.example.com", EVENTS), ("https://x.example", [])])
def test_bad_registrations_never_leave(client: VippsClient, vipps: respx.MockRouter, url: str,
                                       events: list[str]) -> None:
    route = vipps.post("/webhooks/v1/webhooks").respond(201, json={"id": "x", "secret": SECRET})
    with pytest.raises(errors.RequestValidationError, match="RegisterWebhook"):
        client.register_webhook(url, events)
    assert not route.called


def test_a_webhook_id_cannot_reach_another_path(client: VippsClient, vipps: respx.MockRouter) -> None:
    route = vipps.delete(url__regex=r".*").respond(204)
    client.delete_webhook("../agreements")
    assert route.calls.last.request.url.raw_path == b"/webhooks/v1/webhooks/..%2Fagreements"  # one segment
