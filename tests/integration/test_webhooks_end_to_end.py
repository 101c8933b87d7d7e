"""Webhooks end to end over real HTTP: registered with the CLI at the simulator, delivered signed to the
receiver, queued, and carried out by the worker as hints; rotated without a gap."""

from __future__ import annotations

import base64
import email.utils
import hashlib
import hmac
import json
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from tests.e2e.clirun import cli, ok_json
from tests.stack import SCRATCH, Events, Simulator, Worker, due_in, producer, wait_for
from worker.local.processes import receiver_url, start_receiver, stop_group
from worker.runtime.settings import WorkerSettings

AGREEMENT = {"type": "agreement.create", "product_name": "Gym", "pricing": {"amount": 29900},
             "interval": {"unit": "MONTH", "count": 1}, "merchant_redirect_url": "https://example.com/back",
             "merchant_agreement_url": "https://example.com/agreements/1", "phone_number": "4791234567"}


@dataclass
class Hooks:
    simulator: Simulator
    events: Events
    env: dict[str, str]
    url: str
    secrets: Path


@pytest.fixture
def hooks(redis_url: str, redis_client: redis.Redis, tmp_path: Path) -> Iterator[Hooks]:
    simulator = Simulator()
    # Only webhooks can tell of a stop in the app in time: the daily re-check stays daily.
    worker = Worker(redis_url, simulator.url, env={"AGREEMENT_ACTIVE_POLL_SECONDS": "86400"})
    env = {"REDIS_URL": redis_url, "VIPPS_ENV": "simulator", "VIPPS_BASE_URL": simulator.url}
    url, secrets = receiver_url(), tmp_path / "secrets"
    registered = cli("webhooks", "register", "--url", url, "--secrets-dir", str(secrets), env=env)
    assert registered.returncode == 0, registered.stderr
    log = tempfile.NamedTemporaryFile(prefix="receiver-", suffix=".log", delete=False, dir=SCRATCH.name)  # noqa: SIM115
    receiver = start_receiver(log, url, redis_url=redis_url, secrets_dir=secrets, settings=WorkerSettings())
    try:
        yield Hooks(simulator, Events(redis_client), env, url, secrets)
    finally:
        stop_group(receiver, 5.0)
        worker.stop()
        simulator.stop()


def active(hooks: Hooks, redis_url: str, name: str) -> str:
    with producer(redis_url) as p:
        p.send({"command_id": f"{name}-create"} | AGREEMENT)
        agreement_id: str = hooks.events.wait(command_id=f"{name}-create", type="agreement.created")["agreement_id"]
        p.send({"command_id": f"{name}-accept", "type": "agreement.force_accept", "agreement_id": agreement_id,
                "phone_number": "4791234567"})
    hooks.events.wait(type="agreement.activated", agreement_id=agreement_id)
    return agreement_id


def test_a_stop_in_the_app_arrives_by_webhook(hooks: Hooks, redis_url: str) -> None:
    [registration] = ok_json(cli("webhooks", "list", "--json", env=hooks.env))
    assert registration["url"] == hooks.url and len(registration["events"]) == 10
    assert (hooks.secrets / registration["id"]).stat().st_mode & 0o777 == 0o600
    agreement_id = active(hooks, redis_url, "e2e-1")
    hooks.simulator.stop_as_user(agreement_id)
    stopped = hooks.events.wait(15, type="agreement.stopped", agreement_id=agreement_id)
    assert (stopped["observed_by"], stopped["actor"]) == ("webhook", "USER")
    delivered = [d for d in hooks.simulator.webhook_deliveries(agreement_id=agreement_id) if d["ok"]]
    assert {d["event_type"] for d in delivered} >= {"recurring.agreement-activated.v1",
                                                    "recurring.agreement-stopped.v1"}
    shown = ok_json(cli("status", "--json", env=hooks.env))["webhooks"]
    assert shown["received"] >= 2 and shown["rejected"] == {} and shown["last_age_seconds"] < 60
    assert list(shown["registrations"]) == [registration["id"]]


def test_rotation_registers_verifies_and_deletes_the_old_one(hooks: Hooks, redis_url: str) -> None:
    [old] = ok_json(cli("webhooks", "list", "--json", env=hooks.env))
    agreement_id = active(hooks, redis_url, "e2e-2")

    def stop_soon() -> Any:  # an event to deliver while rotate waits for one signed with the new secret
        wait_for(lambda: len(ok_json(cli("webhooks", "list", "--json", env=hooks.env))) == 2, 30, what="new one")
        return hooks.simulator.stop_as_user(agreement_id)

    threading.Thread(target=stop_soon, daemon=True).start()
    rotated = cli("webhooks", "rotate", "--url", hooks.url, "--secrets-dir", str(hooks.secrets), "--wait", "60",
                  env=hooks.env)
    assert rotated.returncode == 0, rotated.stderr
    [new] = ok_json(cli("webhooks", "list", "--json", env=hooks.env))
    assert new["id"] != old["id"] and not (hooks.secrets / old["id"]).exists()
    assert hooks.events.wait(15, type="agreement.stopped", agreement_id=agreement_id)["observed_by"] == "webhook"


def test_deliveries_that_fail_or_repeat_are_carried_out_exactly_once(hooks: Hooks, redis_url: str) -> None:
    hooks.simulator.webhook_faults(fail_rate=0.05, duplicate_rate=0.05, seed=11)  # activations and stops alike
    agreements = [active(hooks, redis_url, f"e2e-f{i}") for i in range(40)]
    for agreement_id in agreements:
        hooks.simulator.stop_as_user(agreement_id)

    def stopped() -> dict[str, set[str]]:
        seen: dict[str, set[str]] = {a: set() for a in agreements}
        for e in hooks.events.of(type="agreement.stopped"):
            if e["agreement_id"] in seen:
                seen[e["agreement_id"]].add(e["event_id"])
        return seen

    wait_for(lambda: all(stopped().values()), 60, interval=0.5, what="every stop, retried deliveries too")
    assert all(len(ids) == 1 for ids in stopped().values())  # 0 lost, 0 twice
    results = [d["result"] for a in agreements for d in hooks.simulator.webhook_deliveries(agreement_id=a)]
    assert "retry" in results and "duplicate" in results  # the faults did happen


def post_signed(hooks: Hooks, payload: dict[str, Any]) -> int:
    """A genuine delivery as Vipps signs it (CHANGES §1.5), with the registration's secret, over HTTP."""
    [secret_file] = list(hooks.secrets.iterdir())
    body = json.dumps(payload, separators=(",", ":")).encode()
    date = email.utils.formatdate(usegmt=True)
    digest = base64.b64encode(hashlib.sha256(body).digest()).decode()
    url = httpx.URL(hooks.url)
    target = url.raw_path.decode()
    signed = f"POST\n{target}\n{date};{url.host}:{url.port};{digest}"
    mac = base64.b64encode(hmac.new(secret_file.read_text().strip().encode(), signed.encode(),
                                    hashlib.sha256).digest()).decode()
    headers = {"x-ms-date": date, "x-ms-content-sha256": digest, "content-type": "application/json",
               "Authorization": f"HMAC-SHA256 SignedHeaders=x-ms-date;host;x-ms-content-sha256&Signature={mac}"}
    return httpx.post(hooks.url, content=body, headers=headers, timeout=10).status_code


def test_a_stale_genuine_delivery_never_changes_money_state(hooks: Hooks, redis_url: str) -> None:
    agreement_id = active(hooks, redis_url, "e2e-s")
    with producer(redis_url) as p:
        p.send({"command_id": "e2e-s-charge", "type": "charge.create", "agreement_id": agreement_id, "amount": 9900,
                "description": "Month", "due": due_in(1), "retry_days": 0, "transaction_type": "DIRECT_CAPTURE"})
        charge_id = hooks.events.wait(command_id="e2e-s-charge", type="charge.created")["charge_id"]
        hooks.simulator.advance(2 * 86_400)
        wait_for(lambda: [e for e in hooks.events.of(type="charge.status_changed", charge_id=charge_id)
                          if e["transition"]["to"] == "CHARGED"], 30, what="CHARGED")
        p.send({"command_id": "e2e-s-refund", "type": "charge.refund", "agreement_id": agreement_id,
                "charge_id": charge_id, "amount": 9900, "description": "Sorry"})
    hooks.events.wait(command_id="e2e-s-refund", type="charge.refunded")
    wait_for(lambda: [e for e in hooks.events.of(type="charge.status_changed", charge_id=charge_id)
                      if e["transition"]["to"] == "REFUNDED"], 30, what="REFUNDED")
    before = {e["event_id"] for e in hooks.events.of(charge_id=charge_id)}
    stale = {"agreementId": agreement_id, "chargeId": charge_id, "amount": 9900, "chargeType": "RECURRING",
             "currency": "NOK", "msn": "123456", "occurred": "2026-12-03T07:00:00Z"}
    assert post_signed(hooks, stale | {"eventType": "recurring.charge-captured.v1"}) == 200
    assert post_signed(hooks, stale | {"eventType": "recurring.charge-reserved.v1"}) == 200
    wait_for(lambda: ok_json(cli("status", "--json", env=hooks.env))["webhooks"]["waiting"] == 0, 20,
             what="the stale deliveries taken by the worker")
    time.sleep(1.0)
    assert {e["event_id"] for e in hooks.events.of(charge_id=charge_id)} == before  # nothing new published
