"""The webhook receiver over real HTTP: `vipps-billing webhooks serve` on free loopback ports, real Redis.

Genuine deliveries are signed here by an independent signer (the code of CHANGES-2025-2026 §1.5, not the
receiver's module). Every forgery, tampering, stale or future date, oversize body, wrong method or path and
slow client is rejected or cut off with nothing queued, and the receiver goes on serving genuine
deliveries after each; a replay is processed once; an unreadable genuine body is a dead letter and 200;
rotation: two secrets both accepted, a removed one rejected at once.
"""

from __future__ import annotations

import base64
import email.utils
import hashlib
import hmac
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

PUBLIC_URL = "https://hooks.example.com/vipps/webhooks?src=recurring"
PATH_AND_QUERY, HOST = "/vipps/webhooks?src=recurring", "hooks.example.com"
SECRETS = {"reg-partner": "A0+AeKBRG2KRGvnNwJpQlb6IJFk48CKXCIcrLoHncVJKDILsQSxS6NWCccwWm6r6FhGKhiHTBsG2wo/xU6FY/A==",
           "reg-msn-123456": "090a478d-37ff-4e77-970e-d457aeb26a3a"}
READ_TIMEOUT = 1.0
QUEUE, DLQ = "dramatiq:vipps.webhooks", "vipps-billing:dlq"


def sign(secret: str, path_and_query: str, host: str, date: str, raw_body: bytes) -> tuple[str, str]:
    """CHANGES-2025-2026 §1.5, verbatim."""
    ch = base64.b64encode(hashlib.sha256(raw_body).digest()).decode()
    sts = f"POST\n{path_and_query}\n{date};{host};{ch}"
    sig = base64.b64encode(hmac.new(secret.encode(), sts.encode(), hashlib.sha256).digest()).decode()
    return ch, f"HMAC-SHA256 SignedHeaders=x-ms-date;host;x-ms-content-sha256&Signature={sig}"


def signed(body: bytes, secret: str = SECRETS["reg-partner"], offset: float = 0.0) -> dict[str, str]:
    date = email.utils.formatdate(time.time() + offset, usegmt=True)
    ch, auth = sign(secret, PATH_AND_QUERY, HOST, date, body)
    return {"x-ms-date": date, "x-ms-content-sha256": ch, "authorization": auth}


def payload(n: int = 1, event: str = "recurring.charge-captured.v1") -> bytes:
    return json.dumps({"agreementId": "agr_5kSeqz", "chargeId": f"acme-sub-{n}-{time.time_ns()}", "amount": 49900,
                       "eventType": event, "occurred": "2026-10-01T07:12:45Z", "msn": "123456"}).encode()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Receiver:
    def __init__(self, redis_url: str, secrets_dir: Path) -> None:
        self.port, self.metrics_port = free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("WEBHOOK_", "REDIS_"))} | {
            "WEBHOOK_PUBLIC_URL": PUBLIC_URL, "WEBHOOK_SECRETS_DIR": str(secrets_dir), "REDIS_URL": redis_url,
            "WEBHOOK_METRICS_PORT": str(self.metrics_port), "WEBHOOK_READ_TIMEOUT_SECONDS": str(READ_TIMEOUT)}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "worker.cli.app", "webhooks", "serve", "--host", "127.0.0.1", "--port",
             str(self.port)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while not self._up():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"receiver did not start: {self.stop()}")
            time.sleep(0.05)

    def _up(self) -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{self.metrics_port}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def post(self, body: bytes, headers: dict[str, str], path: str = PATH_AND_QUERY) -> httpx.Response:
        return httpx.post(self.url + path, content=body, headers=headers, timeout=10)

    def metric(self, name: str, **labels: str) -> float:
        text = httpx.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5).text
        return sum(s.value for f in text_string_to_metric_families(text) for s in f.samples
                   if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()))

    def stop(self) -> str:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
        out = self.process.stdout.read() if self.process.stdout else b""
        return out.decode(errors="replace")


@pytest.fixture(scope="module")
def secrets_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("webhook-secrets")


@pytest.fixture(scope="module")
def receiver(redis_url: str, secrets_dir: Path) -> Iterator[Receiver]:
    for name, secret in SECRETS.items():
        (secrets_dir / name).write_text(secret + "\n")
    started = Receiver(redis_url, secrets_dir)
    try:
        yield started
    finally:
        output = started.stop()
        assert all(secret not in output for secret in SECRETS.values())


@pytest.fixture
def hooks(receiver: Receiver, redis_client: redis.Redis, secrets_dir: Path) -> Iterator[Receiver]:
    for name, secret in SECRETS.items():
        (secrets_dir / name).write_text(secret + "\n")
    yield receiver
    assert_still_serving(receiver, redis_client)


def queued(client: redis.Redis) -> list[dict[str, Any]]:
    return [json.loads(m)["args"][0] for m in client.hvals(f"{QUEUE}.msgs")]


def assert_still_serving(receiver: Receiver, client: redis.Redis) -> None:
    before = len(queued(client))
    body = payload(999)
    assert receiver.post(body, signed(body)).status_code == 200
    assert len(queued(client)) == before + 1


def test_a_genuine_delivery_is_queued_for_the_worker(hooks: Receiver, redis_client: redis.Redis) -> None:
    body = payload()
    response = hooks.post(body, signed(body, SECRETS["reg-msn-123456"]) | {"host": "10.0.0.7:8080"})
    assert response.status_code == 200  # the Host header a proxy rewrote does not matter: the registered URL does
    [delivery] = queued(redis_client)
    assert delivery["registration"] == "reg-msn-123456" and delivery["payload"] == json.loads(body)
    assert delivery["event_type"] == "recurring.charge-captured.v1"
    assert redis_client.lrange(QUEUE, 0, -1)
    assert hooks.metric("vipps_billing_webhook_last_delivery_timestamp_seconds", registration="reg-msn-123456") > 0


def test_a_replayed_delivery_is_processed_once(hooks: Receiver, redis_client: redis.Redis) -> None:
    body = payload(event="recurring.agreement-stopped.v1")
    duplicates = hooks.metric("vipps_billing_webhook_deliveries_total", outcome="duplicate")
    assert hooks.post(body, signed(body)).status_code == 200
    assert hooks.post(body, signed(body)).status_code == 200  # Vipps's retry (or an attacker's replay)
    assert hooks.post(body, signed(body, SECRETS["reg-msn-123456"])).status_code == 200  # an overlapping registration
    assert len(queued(redis_client)) == 1
    assert hooks.metric("vipps_billing_webhook_deliveries_total", outcome="duplicate") == duplicates + 2


def forged(body: bytes) -> dict[str, str]:
    return signed(body) | {"authorization": "HMAC-SHA256 SignedHeaders=x-ms-date;host;x-ms-content-sha256"
                                            f"&Signature={base64.b64encode(os.urandom(32)).decode()}"}


def tampered(body: bytes) -> tuple[bytes, dict[str, str]]:
    changed = body.replace(b"49900", b"99")
    return changed, signed(body) | {"x-ms-content-sha256": signed(changed)["x-ms-content-sha256"]}


REJECTED = {
    "forged signature": (lambda b: (b, forged(b)), "unknown_registration"),
    "wrong secret": (lambda b: (b, signed(b, "not-a-registered-secret")), "unknown_registration"),
    "body changed after signing": (lambda b: (b.replace(b"49900", b"99"), signed(b)), "content_hash"),
    "body changed and rehashed": (tampered, "unknown_registration"),
    "wrong content hash": (lambda b: (b, signed(b) | {"x-ms-content-sha256": signed(b"{}")["x-ms-content-sha256"]}),
                           "content_hash"),
    "no authorization": (lambda b: (b, {k: v for k, v in signed(b).items() if k != "authorization"}), "signature"),
    "stale date": (lambda b: (b, signed(b, offset=-330)), "date"),
    "future date": (lambda b: (b, signed(b, offset=330)), "date"),
    "unsigned": (lambda b: (b, {}), "content_hash"),
}


@pytest.mark.parametrize("case", REJECTED)
def test_a_delivery_that_is_not_genuine_is_rejected(hooks: Receiver, redis_client: redis.Redis, case: str) -> None:
    make, reason = REJECTED[case]
    before = hooks.metric("vipps_billing_webhook_rejections_total", reason=reason)
    body, headers = make(payload())
    response = hooks.post(body, headers)
    assert response.status_code == 401
    # Nothing queued, no dedupe key, no dead letter: only the count `vipps-billing status` shows.
    assert redis_client.keys("*") == [b"vipps-billing:webhooks:stats"]
    assert redis_client.hgetall("vipps-billing:webhooks:stats") == {f"rejected:{reason}".encode(): b"1"}
    assert hooks.metric("vipps_billing_webhook_rejections_total", reason=reason) == before + 1


def test_an_oversize_body_is_refused(hooks: Receiver, redis_client: redis.Redis) -> None:
    big = json.dumps({"eventType": "recurring.charge-captured.v1", "pad": "x" * 70_000}).encode()
    assert hooks.post(big, signed(big)).status_code == 413
    streamed = httpx.post(hooks.url + PATH_AND_QUERY, content=iter([big[:30_000], big[30_000:]]), headers=signed(big))
    assert streamed.status_code == 413  # no Content-Length: cut off while streaming
    assert redis_client.keys("*") == []
    assert hooks.metric("vipps_billing_webhook_rejections_total", reason="size") >= 2


def test_a_genuine_unreadable_body_is_a_dead_letter_and_200(hooks: Receiver, redis_client: redis.Redis) -> None:
    body = b"<html>not json</html>"
    assert hooks.post(body, signed(body)).status_code == 200  # a failure would block the registration's later events
    assert queued(redis_client) == []
    [letter] = [json.loads(v) for v in redis_client.hvals(DLQ)]
    assert letter["reason"] == "webhook_unreadable" and letter["payload"] == body.decode()
    assert hooks.metric("vipps_billing_webhook_deliveries_total", outcome="unreadable") >= 1


@pytest.mark.parametrize(("method", "path", "status"), [("GET", PATH_AND_QUERY, 405), ("PUT", PATH_AND_QUERY, 405),
                                                        ("POST", "/vipps/other", 404), ("POST", "/metrics", 404)])
def test_wrong_method_or_path(hooks: Receiver, redis_client: redis.Redis, method: str, path: str, status: int) -> None:
    body = payload()
    assert httpx.request(method, hooks.url + path, content=body, headers=signed(body)).status_code == status
    assert redis_client.keys("*") == []


def raw_request_head(body_length: int) -> bytes:
    return (f"POST {PATH_AND_QUERY} HTTP/1.1\r\nHost: {HOST}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {body_length}\r\n\r\n").encode()


def trickle(sock: socket.socket, data: bytes, every: float, stop: threading.Event) -> tuple[float, bytes]:
    """Send ``data`` a byte every ``every`` seconds; (seconds until the server answered or closed, its answer)."""
    started = time.monotonic()
    sock.settimeout(every)
    for byte in data:
        if stop.is_set():
            break
        try:
            sock.sendall(bytes([byte]))
        except OSError:
            return time.monotonic() - started, b""
        try:
            return time.monotonic() - started, sock.recv(4096)  # an answer, or b"" when closed
        except TimeoutError:
            continue
        except OSError:
            return time.monotonic() - started, b""
    return time.monotonic() - started, b"never cut off"


@pytest.mark.parametrize("phase", ["body", "head"])
def test_a_slow_client_is_cut_off_and_others_are_served(hooks: Receiver, redis_client: redis.Redis,
                                                        phase: str) -> None:
    body = payload()
    stop, result = threading.Event(), {}

    def slow() -> None:
        with socket.create_connection(("127.0.0.1", hooks.port), timeout=10) as sock:
            if phase == "body":
                sock.sendall(raw_request_head(len(body)))  # the whole head at once, then the body slowly
                result["seconds"], result["answer"] = trickle(sock, body, 0.2, stop)
            else:
                result["seconds"], result["answer"] = trickle(sock, raw_request_head(len(body)) + body, 0.2, stop)

    thread = threading.Thread(target=slow)
    thread.start()
    time.sleep(0.3)
    assert_still_serving(hooks, redis_client)  # while the slow client holds its connection
    thread.join(timeout=10)
    stop.set()
    assert not thread.is_alive()
    assert result["seconds"] < READ_TIMEOUT + 3, result  # not the ~40 s the whole trickle would take
    assert len(queued(redis_client)) == 1  # the genuine one only
    if phase == "body":  # the app answers 408 and closes
        assert result["answer"].startswith(b"HTTP/1.1 408"), result
        assert hooks.metric("vipps_billing_webhook_rejections_total", reason="timeout") >= 1
    else:  # no request yet: the connection is closed
        assert result["answer"] == b"", result


def test_rotation_both_secrets_then_the_removed_one_is_rejected(hooks: Receiver, redis_client: redis.Redis,
                                                                secrets_dir: Path) -> None:
    old, new = payload(1), payload(2)
    assert hooks.post(old, signed(old, SECRETS["reg-partner"])).status_code == 200
    assert hooks.post(new, signed(new, SECRETS["reg-msn-123456"])).status_code == 200
    (secrets_dir / "reg-partner").unlink()
    again = payload(3)
    assert hooks.post(again, signed(again, SECRETS["reg-partner"])).status_code == 401
    assert hooks.post(again, signed(again, SECRETS["reg-msn-123456"])).status_code == 200
    assert [d["registration"] for d in sorted(queued(redis_client), key=lambda d: d["received_ms"])] == [
        "reg-partner", "reg-msn-123456", "reg-msn-123456"]
    assert hooks.metric("vipps_billing_webhook_registrations") == 1
    (secrets_dir / "reg-partner").write_text(SECRETS["reg-partner"])


@pytest.mark.parametrize("redis_state", ["refusing", "silent"])
def test_redis_down_answers_503_quickly(secrets_dir: Path, receiver: Receiver, redis_state: str) -> None:
    """A Redis that refuses connections, or one that accepts and never answers (WEBHOOK_REDIS_TIMEOUT_SECONDS
    is 2 s): 503 well inside Vipps's 10 s, and not ready."""
    with socket.create_server(("127.0.0.1", 0)) as silent:
        port = silent.getsockname()[1] if redis_state == "silent" else free_port()
        down = Receiver(f"redis://127.0.0.1:{port}/0", secrets_dir)
        try:
            body = payload()
            started = time.monotonic()
            assert down.post(body, signed(body)).status_code == 503
            assert time.monotonic() - started < 5
            assert httpx.get(f"http://127.0.0.1:{down.metrics_port}/readyz", timeout=10).status_code == 503
        finally:
            down.stop()
