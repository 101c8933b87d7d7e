"""A dead-lettered capture or refund that in fact took effect at Vipps is never replayed."""

from __future__ import annotations

import datetime as dt

import redis

from tests.stack import Simulator
from worker.core.control import Control
from worker.core.idempotency import idempotency_key
from worker.core.replay import decide
from worker.runtime.settings import WorkerSettings
from worker.store.deadletters import DeadLetter
from worker.store.vipps_state import redis_backends
from worker.vipps import VippsClient, load_settings, models
from worker.vipps.operations import REFUND_CHARGE


def test_refund_that_took_effect_is_not_replayed(redis_url: str, redis_client: redis.Redis) -> None:
    sim = Simulator()
    client = VippsClient(load_settings(base_url=sim.url), **redis_backends(redis_client))
    ops = Control(redis_url, WorkerSettings())
    try:
        msn = client.settings.msn or ""
        draft = client.draft_agreement(models.DraftAgreementV3(
            pricing=models.PricingRequest(amount=10000), interval=models.TimePeriod(unit="MONTH", count=1),
            merchantAgreementUrl="https://example.com/a", merchantRedirectUrl="https://example.com/r",
            productName="Plan"), idempotency_key="replay-draft")
        client.force_accept_agreement(draft.agreementId, "4791234567", idempotency_key="replay-accept")
        due = (dt.datetime.now(dt.UTC).date() + dt.timedelta(days=1))
        ref = client.create_charge(draft.agreementId, models.CreateChargeV3(
            amount=10000, transactionType="DIRECT_CAPTURE", description="Month", due=due, retryDays=0),
            idempotency_key="replay-charge")
        sim.advance(2 * 86_400)

        def refund_letter(command_id: str) -> DeadLetter:
            command = {"command_id": command_id, "type": "charge.refund", "agreement_id": draft.agreementId,
                       "charge_id": ref.chargeId, "amount": 3000, "description": "Refund",
                       "issued_at": dt.datetime.now(dt.UTC).isoformat()}
            return DeadLetter(id=command_id, reason="retries_exhausted", detail="timed out", at_ms=0,
                              command_id=command_id, command_type="charge.refund", payload=command)

        # The worker's refund "r-applied" reached Vipps (its response was lost) before it was dead-lettered.
        client.refund_charge(draft.agreementId, ref.chargeId, models.ModifyChargeV3(amount=3000, description="Refund"),
                             idempotency_key=idempotency_key(msn, "r-applied", REFUND_CHARGE))

        applied = decide(refund_letter("r-applied"), ops.ledger, client)
        assert not applied.replay
        assert "took effect" in applied.why

        missing = decide(refund_letter("r-missing"), ops.ledger, client)
        assert missing.replay and missing.new_command_id == "r-missing.r1"
    finally:
        client.close()
        sim.stop()
