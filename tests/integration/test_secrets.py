"""Credentials never leak: a run with distinctive credential values leaves none of them anywhere we write.

The worker runs at DEBUG log level with distinctive ``VIPPS_*`` credentials (the client secret read from a
``*_FILE``) against a simulator that accepts exactly those, through successes, permanent failures, 5xx
retries, retries exhausted, 429s, a rejected command and an expired access token. Then every byte the run left
is scanned: the worker's log, every event, every dead letter, the Prometheus exposition and every Redis key
(the shared token cache excepted for the access token it exists to hold).

    TEST_REDIS_DB=4 uv run pytest tests/integration/test_secrets.py -s
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from tests.stack import Events, Simulator, Worker, due_in, producer, wait_for

CLIENT_ID = "cid-Qx7vTeLLtaLe-3e1f"
CLIENT_SECRET = "sec-Wz9kTeLLtaLe-8c2d"
SUBSCRIPTION_KEY = "sub-Jp4mTeLLtaLe-5b7a"
AGREEMENT = {"type": "agreement.create", "product_name": "Gym", "pricing": {"amount": 29900},
             "interval": {"unit": "MONTH", "count": 1}, "merchant_redirect_url": "https://example.com/back",
             "merchant_agreement_url": "https://example.com/agreements/1", "phone_number": "4791234567"}


def charge(agreement_id: str, **fields: Any) -> dict[str, Any]:
    return {"type": "charge.create", "agreement_id": agreement_id, "amount": 29900, "description": "March",
            "due": due_in(1), "retry_days": 2, "transaction_type": "DIRECT_CAPTURE"} | fields


def needles(secret: str) -> set[str]:
    """A secret as it could appear: plain, base64 (alone or in a Basic pair), URL- or JSON-escaped."""
    forms = {secret, base64.b64encode(secret.encode()).decode().rstrip("="),
             base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode().rstrip("="),
             httpx.QueryParams({"x": secret})["x"], json.dumps(secret)[1:-1]}
    return {f for f in forms if len(f) >= 12}


def redis_dump(client: redis.Redis, skip: set[bytes]) -> dict[str, bytes]:
    """Every value in the test database, whatever its type, as bytes per key."""
    out: dict[str, bytes] = {}
    c: Any = client  # redis-py's stubs type replies as bytes | str; this client returns bytes
    for key in c.scan_iter(count=1000):
        if key in skip:
            continue
        kind = c.type(key)
        if kind == b"string":
            parts = [c.get(key) or b""]
        elif kind == b"hash":
            parts = [b for kv in c.hgetall(key).items() for b in kv]
        elif kind == b"list":
            parts = list(c.lrange(key, 0, -1))
        elif kind == b"set":
            parts = list(c.smembers(key))
        elif kind == b"zset":
            parts = [m for m, _ in c.zrange(key, 0, -1, withscores=True)]
        elif kind == b"stream":
            parts = [b for _, fields in c.xrange(key) for kv in fields.items() for b in kv]
        else:
            parts = []
        out[key.decode("utf-8", "replace")] = key + b"\n" + b"\n".join(parts)
    return out


@pytest.fixture
def stack(redis_url: str, redis_client: redis.Redis, tmp_path: Path,
          monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Simulator, Worker, Events]]:
    secret_file = tmp_path / "client-secret"
    secret_file.write_text(CLIENT_SECRET + "\n")
    # The simulator (a child of this process) accepts exactly these credentials.
    monkeypatch.setenv("VIPPS_CLIENT_ID", CLIENT_ID)
    monkeypatch.setenv("VIPPS_CLIENT_SECRET", CLIENT_SECRET)
    monkeypatch.setenv("VIPPS_SUBSCRIPTION_KEY", SUBSCRIPTION_KEY)
    simulator = Simulator()
    monkeypatch.delenv("VIPPS_CLIENT_SECRET")
    worker = Worker(redis_url, simulator.url, threads=4, env={
        "VIPPS_CLIENT_SECRET_FILE": str(secret_file), "LOG_LEVEL": "DEBUG", "RETRY_MAX_ATTEMPTS": "3",
        "RETRY_MIN_BACKOFF_SECONDS": "0.2", "RETRY_MAX_BACKOFF_SECONDS": "0.5"})
    try:
        yield simulator, worker, Events(redis_client)
    finally:
        worker.stop()
        simulator.stop()


def test_no_credential_leaves_a_trace(stack: tuple[Simulator, Worker, Events], redis_url: str,
                                      redis_client: redis.Redis) -> None:
    simulator, worker, events = stack
    p = producer(redis_url)
    try:
        p.send({"command_id": "s-create"} | AGREEMENT)
        agreement_id = events.wait(command_id="s-create", type="agreement.created")["agreement_id"]
        p.send({"command_id": "s-accept", "type": "agreement.force_accept", "agreement_id": agreement_id,
                "phone_number": "4791234567"})
        events.wait(type="agreement.activated", agreement_id=agreement_id)
        p.send({"command_id": "s-charge"} | charge(agreement_id))
        events.wait(command_id="s-charge", type="charge.created")
        # Permanent failure (unknown agreement): command.failed and a dead letter carrying Vipps' problem.
        p.send({"command_id": "s-missing"} | charge("agr_doesNotExist"))
        events.wait(command_id="s-missing", type="command.failed")
        # Rejected input.
        p.send_raw({"command_id": "s-bad", "type": "charge.create", "amount": "lots"})
        events.wait(command_id="s-bad", type="command.rejected")
        # 5xx on every fetch until retries run out; 429s with Retry-After on list.
        simulator.faults(error_5xx_rate=1.0, operations=["FetchAgreementV3"])
        p.send({"command_id": "s-fetch", "type": "agreement.fetch", "agreement_id": agreement_id})
        events.wait(30, command_id="s-fetch", type="command.dead_lettered")
        simulator.faults(error_429_rate=0.7, retry_after_seconds=1, seed=3, operations=["ListChargesV3"])
        p.send({"command_id": "s-list", "type": "agreement.list_charges", "agreement_id": agreement_id})
        events.wait(60, command_id="s-list", type="agreement.charges")
        simulator.faults()
        # The access token expires at Vipps: the client gets a 401, refreshes once and carries on.
        simulator.advance(4 * 3600)
        p.send({"command_id": "s-charge-2"} | charge(agreement_id, description="April",
                                                     due=(dt.datetime.now(dt.UTC).date()
                                                          + dt.timedelta(days=5)).isoformat()))
        events.wait(command_id="s-charge-2", type="charge.created")
    finally:
        p.close()
    wait_for(lambda: redis_client.zcard("vipps-billing:outbox:pending") == 0, 20, what="outbox drained")
    stats = simulator.admin.get("/stats").raise_for_status().json()
    statuses = {status for by_status in stats["requests"].values() for status in by_status}
    assert {"401", "429"} <= statuses and any(s.startswith("5") for s in statuses), stats["requests"]

    metrics = httpx.get(f"http://127.0.0.1:{worker.metrics_port}/metrics", timeout=10).text
    assert "vipps_" in metrics or "dramatiq_" in metrics, "the metrics endpoint answered with metrics"
    token_keys = set(redis_client.scan_iter(match="vipps-billing:vipps:token:*"))
    assert token_keys, "the run used the shared token cache"
    access_tokens = set()
    for key in token_keys:
        for value in redis_dump(redis_client, set()).get(key.decode(), b"").split(b"\n")[1:]:
            try:
                cached = json.loads(value)
            except ValueError:
                continue
            token = cached.get("value") or cached.get("access_token") if isinstance(cached, dict) else None
            if isinstance(token, str) and len(token) >= 16:
                access_tokens.add(token)
    assert access_tokens, "the access token was found in its cache, so the scan below can look for it"

    worker_log = worker.output()
    assert "s-missing" in worker_log and "retry scheduled" in worker_log, "the log covers the failure paths"
    sources: dict[str, str] = {
        "worker log": worker_log,
        "events": json.dumps(events.all()),
        "dead letters": "\n".join(str(v, "utf-8", "replace") if isinstance(v, bytes) else v
                                   for v in redis_client.hvals("vipps-billing:dlq")),
        "metrics": metrics,
    }
    sources |= {f"redis {k}": v.decode("utf-8", "replace")
                for k, v in redis_dump(redis_client, skip=token_keys).items()}
    forms = needles(CLIENT_ID) | needles(CLIENT_SECRET) | needles(SUBSCRIPTION_KEY)
    forms |= {t for token in access_tokens for t in (token, token[-24:])}
    leaks = [(where, form) for where, text in sources.items() for form in forms if form in text]
    assert not leaks, f"credentials found: {leaks[:5]}"
    # The token cache holds the token (its job) and nothing else secret.
    dump = redis_dump(redis_client, set())
    cache = b"".join(dump[k.decode()] for k in token_keys).decode("utf-8", "replace")
    assert not [f for f in needles(CLIENT_SECRET) | needles(SUBSCRIPTION_KEY) if f in cache]

    scanned = sum(len(text) for text in sources.values())
    print(f"\nsecrets: scanned {scanned} characters in {len(sources)} places (worker log {len(worker_log)} chars, "
          f"{len(events.all())} events, {redis_client.hlen('vipps-billing:dlq')} dead letters, metrics "
          f"{len(metrics)} chars, {len(sources) - 4} Redis keys) for {len(forms)} forms of 3 credentials and "
          f"{len(access_tokens)} access token(s): none found")
