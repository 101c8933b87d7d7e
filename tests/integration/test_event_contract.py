"""Every event the worker publishes is what the published contract says: ``schemas/json/event.schema.json``.

One running worker goes through the go-live paths and the failure and replay paths, so that every event
type is emitted at least once; each published event is then validated against the checked-in JSON Schema
(the file other languages build from), not against the Python model it was built with.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import redis

from schemas import EventType
from tests.stack import Events, Simulator, Worker, producer, wait_for
from worker.core.control import Control
from worker.core.replay import decide
from worker.runtime.settings import WorkerSettings
from worker.store.keys import Layout
from worker.store.webhooks import WebhookQueue
from worker.vipps import load_settings

SCHEMA = json.loads((Path(__file__).resolve().parents[2] / "schemas/json/event.schema.json").read_text())
FAST_RETRIES = {"RETRY_MAX_ATTEMPTS": "2", "RETRY_MIN_BACKOFF_SECONDS": "0.2", "RETRY_MAX_BACKOFF_SECONDS": "0.5",
                "VIPPS_MAX_ATTEMPTS": "1", "CHARGE_POLL_SECONDS": "0.5"}
AGREEMENT = {"type": "agreement.create", "product_name": "Plan", "pricing": {"amount": 49900},
             "interval": {"unit": "MONTH", "count": 1}, "merchant_redirect_url": "https://example.com/back",
             "merchant_agreement_url": "https://example.com/agreements/1", "phone_number": "4791234567"}


class Run:
    def __init__(self, redis_url: str, simulator: Simulator, events: Events) -> None:
        self.redis_url = redis_url
        self.simulator = simulator
        self.events = events

    def send(self, command_id: str, **fields: Any) -> str:
        with producer(self.redis_url) as p:
            p.send({"command_id": command_id, **fields})
        return command_id

    def wait(self, **criteria: Any) -> dict[str, Any]:
        return self.events.wait(timeout=30, **criteria)

    def reached(self, charge_id: str, status: str) -> None:
        wait_for(lambda: any(e["transition"]["to"] == status
                             for e in self.events.of(type="charge.status_changed", charge_id=charge_id)),
                 30, what=f"charge {charge_id} {status} (seen: "
                 f"{[e['transition'] for e in self.events.of(type='charge.status_changed', charge_id=charge_id)]})")

    def charge(self, command_id: str, agreement_id: str, **fields: Any) -> str:
        due = (dt.datetime.now(dt.UTC).date() + dt.timedelta(days=1)).isoformat()
        body = {"type": "charge.create", "agreement_id": agreement_id, "amount": 29900, "description": "December",
                "due": due, "retry_days": 0, "transaction_type": "DIRECT_CAPTURE"} | fields
        self.send(command_id, **body)
        charge_id: str = self.wait(command_id=command_id, type="charge.created")["charge_id"]
        return charge_id


@pytest.fixture
def run(redis_url: str, redis_client: redis.Redis) -> Iterator[Run]:
    simulator = Simulator()
    worker = Worker(redis_url, simulator.url, env=FAST_RETRIES)
    try:
        yield Run(redis_url, simulator, Events(redis_client))
    finally:
        worker.stop()
        simulator.stop()
        print(worker.output()[-20000:])  # shown by pytest when the test failed


def agreement_paths(run: Run) -> str:
    run.send("ev-create", **AGREEMENT)
    agreement_id: str = run.wait(command_id="ev-create", type="agreement.created")["agreement_id"]
    run.send("ev-accept", type="agreement.force_accept", agreement_id=agreement_id, phone_number="4791234567")
    run.wait(command_id="ev-accept", type="agreement.force_accepted")
    run.wait(type="agreement.activated", agreement_id=agreement_id)
    run.send("ev-fetch", type="agreement.fetch", agreement_id=agreement_id)
    run.send("ev-list", type="agreement.list_charges", agreement_id=agreement_id)
    run.send("ev-price", type="agreement.update", agreement_id=agreement_id, pricing_amount=39900)
    for command_id, kind in (("ev-fetch", "agreement.snapshot"), ("ev-list", "agreement.charges"),
                             ("ev-price", "agreement.updated")):
        run.wait(command_id=command_id, type=kind)
    return agreement_id


def charge_paths(run: Run, agreement_id: str) -> None:
    charged = run.charge("ev-charge", agreement_id)
    reserved = run.charge("ev-reserve", agreement_id, transaction_type="RESERVE_CAPTURE")
    later = (dt.datetime.now(dt.UTC).date() + dt.timedelta(days=20)).isoformat()
    cancelled = run.charge("ev-to-cancel", agreement_id, due=later)  # still PENDING after the rounds below
    run.simulator.advance(2 * 86_400)  # the processing rounds of the due date
    run.reached(charged, "CHARGED")
    run.reached(reserved, "RESERVED")
    for command_id, command_type, charge_id, extra, kind in (
            ("ev-refund", "charge.refund", charged, {"amount": 1000, "description": "Goodwill"}, "charge.refunded"),
            ("ev-capture", "charge.capture", reserved, {"amount": 29900, "description": "Shipped"},
             "charge.captured"),
            ("ev-cancel", "charge.cancel", cancelled, {}, "charge.cancelled"),
            ("ev-charge-fetch", "charge.fetch", charged, {}, "charge.snapshot")):
        run.send(command_id, type=command_type, agreement_id=agreement_id, charge_id=charge_id, **extra)
        run.wait(command_id=command_id, type=kind)


def failure_and_replay_paths(run: Run, redis_url: str, agreement_id: str) -> None:
    # Vipps says no: a capture of a charged (not reserved) charge.
    charged = run.events.of(command_id="ev-charge", type="charge.created")[0]["charge_id"]
    run.send("ev-bad-capture", type="charge.capture", agreement_id=agreement_id, charge_id=charged, amount=100,
             description="Twice")
    run.wait(command_id="ev-bad-capture", type="command.failed")
    with producer(redis_url) as p:
        p.send_raw({"command_id": "ev-invalid", "type": "charge.refund", "amount": "a lot"})
    run.wait(command_id="ev-invalid", type="command.rejected")
    run.simulator.faults(error_5xx_rate=1.0, operations=["FetchAgreementV3"])
    run.send("ev-unlucky", type="agreement.fetch", agreement_id=agreement_id)
    run.wait(command_id="ev-unlucky", type="command.dead_lettered")
    run.simulator.faults()
    # The replay of the dead letter, as `vipps-billing dlq replay` does it.
    control = Control(redis_url, WorkerSettings())
    try:
        [letter] = control.dead_letters.find(command_id="ev-unlucky")
        decision = decide(letter, control.ledger, control.vipps(load_settings(base_url=run.simulator.url)))
        assert decision.replay and decision.command is not None, decision.why
        control.send(decision.command)
        run.wait(command_id=decision.new_command_id, type="agreement.snapshot")
    finally:
        control.close()


def test_every_published_event_validates_against_the_json_schema(run: Run, redis_url: str) -> None:
    agreement_id = agreement_paths(run)
    charge_paths(run, agreement_id)
    failure_and_replay_paths(run, redis_url, agreement_id)
    run.send("ev-pending", **AGREEMENT)
    pending = run.wait(command_id="ev-pending", type="agreement.created")["agreement_id"]
    run.simulator.advance(3 * 86_400)  # never accepted: Vipps lets it expire
    run.wait(type="agreement.expired", agreement_id=pending)
    # A webhook (as the receiver queues it) for a charge Vipps could not create: a fetch agrees it is not there.
    payload = {"agreementId": agreement_id, "chargeId": "chr-neverMade", "msn": "123456",
               "eventType": "recurring.charge-creation-failed.v1"}
    WebhookQueue(run.events.redis, Layout()).add(json.dumps(payload).encode(), {"payload": payload})
    run.wait(type="charge.creation_failed", charge_id="chr-neverMade")
    run.send("ev-stop", type="agreement.update", agreement_id=agreement_id, status="STOPPED")
    run.wait(type="agreement.stopped", agreement_id=agreement_id)

    published = run.events.all()
    validator = jsonschema.Draft202012Validator(SCHEMA, format_checker=jsonschema.FormatChecker())
    problems = [f"{e.get('type')} {e.get('event_id')}: {error.message}"
                for e in published for error in validator.iter_errors(e)]
    assert not problems, "\n".join(problems)
    assert {e["type"] for e in published} == {kind.value for kind in EventType}
