"""The shared rate budget, taken in the ledger claim: a full budget sends nothing and costs no attempt."""

from __future__ import annotations

import datetime as dt
import time

import redis

from schemas import CommandAdapter
from tests.stack import Simulator
from worker.core.handlers import budget_slot
from worker.core.pipeline import Delivery
from worker.runtime.broker import make_broker
from worker.runtime.process import Runtime
from worker.runtime.settings import WorkerSettings
from worker.store.keys import command_ref
from worker.vipps import load_settings, models
from worker.vipps.config import SIMULATOR_DEFAULTS

MSN = SIMULATOR_DEFAULTS["msn"]


def test_a_full_budget_holds_the_command_back_and_the_claim_pays_for_the_send(
        redis_url: str, redis_client: redis.Redis) -> None:
    sim = Simulator()
    settings = WorkerSettings(charge_batch="off")  # the single endpoint's claim, which takes the budget slot
    broker = make_broker(settings, redis_url)
    runtime = Runtime(settings, broker, redis_url, load_settings(base_url=sim.url))
    try:
        client = runtime.clients.for_msn(MSN)
        draft = client.draft_agreement(models.DraftAgreementV3(
            pricing=models.PricingRequest(amount=10000), interval=models.TimePeriod(unit="MONTH", count=1),
            merchantAgreementUrl="https://example.com/a", merchantRedirectUrl="https://example.com/r",
            productName="Plan"), idempotency_key="budget-draft")
        client.force_accept_agreement(draft.agreementId, "4791234567", idempotency_key="budget-accept")
        command = {"command_id": "budget-1", "type": "charge.create", "agreement_id": draft.agreementId,
                   "amount": 4900, "description": "Month", "retry_days": 0, "transaction_type": "DIRECT_CAPTURE",
                   "due": (dt.datetime.now(dt.UTC).date() + dt.timedelta(days=3)).isoformat(),
                   "issued_at": dt.datetime.now(dt.UTC).isoformat()}
        slot = budget_slot(runtime.contexts.of(MSN), CommandAdapter.validate_python(command))
        assert slot is not None and slot.limit == 2

        # Two sends with this key went out in the last minute (another pod, say): the budget is full.
        now = int(time.time() * 1000)
        redis_client.zadd(slot.key, {f"{now}-a": now, f"{now}-b": now})
        delivery = Delivery(args=(command,), kwargs={}, actor="charge_create", queue="vipps.charges",
                            message_id="m-budget-1")
        assert runtime.pipeline.handle(delivery) == "retry"
        record = runtime.ledger.get(command_ref(MSN, "budget-1"))
        assert record is not None and record["status"] == "retry_wait"
        assert record["attempts"] == "0"  # nothing was sent: not an attempt
        assert int(record["next_attempt_ms"]) >= now + 59_000  # not before a slot frees
        assert sim.effects(operation="charge.create") == []

        # The slots free up and the retry is due: one send, whose slot the claim took.
        redis_client.delete(slot.key)
        redis_client.hset(runtime.keys.command(command_ref(MSN, "budget-1")), "next_attempt_ms", 0)
        assert runtime.pipeline.handle(delivery) == "succeeded"
        assert len(sim.effects(operation="charge.create")) == 1
        assert redis_client.zcard(slot.key) == 1
    finally:
        runtime.stop()
        broker.close()
        sim.stop()
