"""The receiver's apps in process (starlette's test client): answers, metrics and readiness."""

from __future__ import annotations

import base64
import email.utils
import hashlib
import hmac
from pathlib import Path

import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

from worker.store.connection import connect_within
from worker.webhooks.main import Receiver, build
from worker.webhooks.settings import WebhookSettings

URL = "https://hooks.example.com/vipps/webhooks"
SECRET = "s3cret-for-reg-1"
BODY = b'{"agreementId":"agr_1","eventType":"recurring.charge-captured.v1"}'


def signed(body: bytes, secret: str = SECRET) -> dict[str, str]:
    date = email.utils.formatdate(usegmt=True)
    ch = base64.b64encode(hashlib.sha256(body).digest()).decode()
    sts = f"POST\n/vipps/webhooks\n{date};hooks.example.com;{ch}"
    sig = base64.b64encode(hmac.new(secret.encode(), sts.encode(), hashlib.sha256).digest()).decode()
    return {"x-ms-date": date, "x-ms-content-sha256": ch,
            "authorization": f"HMAC-SHA256 SignedHeaders=x-ms-date;host;x-ms-content-sha256&Signature={sig}"}


def settings(tmp_path: Path, redis_url: str) -> WebhookSettings:
    (tmp_path / "reg-1").write_text(SECRET)
    return WebhookSettings(webhook_public_url=URL, webhook_secrets_dir=tmp_path, redis_url=redis_url,
                           webhook_max_body_bytes=2048)


@pytest.fixture
def receiver(tmp_path: Path, redis_url: str, redis_client: redis.Redis) -> Receiver:
    return build(settings(tmp_path, redis_url))


@pytest.fixture
def hooks(receiver: Receiver) -> TestClient:
    return TestClient(receiver.deliveries, base_url="http://receiver")  # no lifespan: the receiver has none


def metric(receiver: Receiver, name: str, **labels: str) -> float:
    with TestClient(receiver.operations) as ops:
        text = ops.get("/metrics").text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    raise AssertionError(f"{name} {labels} not exported")


def test_a_delivery_and_its_repeat(hooks: TestClient, receiver: Receiver) -> None:
    assert hooks.post("/vipps/webhooks", content=BODY, headers=signed(BODY)).status_code == 200
    assert hooks.post("/vipps/webhooks", content=BODY, headers=signed(BODY)).status_code == 200
    event = "recurring.charge-captured.v1"
    assert metric(receiver, "vipps_billing_webhook_deliveries_total", event=event, outcome="queued") == 1
    assert metric(receiver, "vipps_billing_webhook_deliveries_total", event=event, outcome="duplicate") == 1
    assert metric(receiver, "vipps_billing_webhook_last_delivery_timestamp_seconds", registration="reg-1") > 0
    assert metric(receiver, "vipps_billing_webhook_registrations") == 1


@pytest.mark.parametrize(("method", "path", "status", "reason"), [
    ("GET", "/vipps/webhooks", 405, "method"), ("PUT", "/vipps/webhooks", 405, "method"),
    ("POST", "/vipps/webhooks/", 404, "path"), ("POST", "/", 404, "path"), ("GET", "/metrics", 404, "path")])
def test_only_a_post_on_the_path(hooks: TestClient, receiver: Receiver, method: str, path: str, status: int,
                                 reason: str) -> None:
    response = hooks.request(method, path, content=BODY, headers=signed(BODY))
    assert response.status_code == status and response.headers["connection"] == "close"
    assert metric(receiver, "vipps_billing_webhook_rejections_total", reason=reason) == 1
    assert metric(receiver, "vipps_billing_webhook_deliveries_total", event="-", outcome="rejected") == 0


def test_a_body_over_the_limit(hooks: TestClient, receiver: Receiver) -> None:
    big = b'{"eventType":"x","pad":"' + b"x" * 3000 + b'"}'
    assert hooks.post("/vipps/webhooks", content=big, headers=signed(big)).status_code == 413
    chunked = hooks.post("/vipps/webhooks", content=iter([big[:1500], big[1500:]]), headers=signed(big))
    assert chunked.status_code == 413
    assert metric(receiver, "vipps_billing_webhook_rejections_total", reason="size") == 2
    assert metric(receiver, "vipps_billing_webhook_deliveries_total", event="-", outcome="rejected") == 2


def test_an_unsigned_delivery(hooks: TestClient, receiver: Receiver, redis_client: redis.Redis) -> None:
    assert hooks.post("/vipps/webhooks", content=BODY, headers=signed(BODY, "other")).status_code == 401
    assert metric(receiver, "vipps_billing_webhook_rejections_total", reason="unknown_registration") == 1
    # Nothing stored but the refusal's count, for `vipps-billing status`.
    assert redis_client.keys("*") == [b"vipps-billing:webhooks:stats"]


def test_redis_down_is_503_at_once(tmp_path: Path) -> None:
    down = build(settings(tmp_path, "redis://127.0.0.1:1/0"), client=connect_within("redis://127.0.0.1:1/0", 0.5))
    response = TestClient(down.deliveries).post("/vipps/webhooks", content=BODY, headers=signed(BODY))
    assert response.status_code == 503
    assert metric(down, "vipps_billing_webhook_deliveries_total", event="recurring.charge-captured.v1",
                  outcome="unavailable") == 1
    with TestClient(down.operations) as ops:
        assert ops.get("/readyz").status_code == 503
        assert ops.get("/healthz").status_code == 200


def test_ready_with_redis_and_secrets(receiver: Receiver, tmp_path: Path) -> None:
    with TestClient(receiver.operations) as ops:
        assert ops.get("/readyz").status_code == 200
        (tmp_path / "reg-1").unlink()
        not_ready = ops.get("/readyz")
    assert not_ready.status_code == 503 and "WEBHOOK_SECRETS_DIR" in not_ready.text
