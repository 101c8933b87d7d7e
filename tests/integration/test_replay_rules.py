"""Replay rules that use what Vipps already said: a refusal is not replayed unchanged, a charge on an
agreement that is no longer ACTIVE is not replayed, and a replay may change fields (validated)."""

from __future__ import annotations

import datetime as dt

import redis

from tests.stack import Simulator
from worker.core.control import Control
from worker.core.replay import decide
from worker.runtime.settings import WorkerSettings
from worker.store.deadletters import DeadLetter
from worker.vipps import load_settings, models


def letter(command_id: str, reason: str, payload: dict[str, object], problem: dict[str, object] | None = None
           ) -> DeadLetter:
    return DeadLetter(id=command_id, reason=reason, detail="x", at_ms=0, command_id=command_id,
                      command_type=str(payload["type"]), payload=payload, problem=problem)


def test_replays_use_what_vipps_already_said(redis_url: str, redis_client: redis.Redis) -> None:
    sim = Simulator()
    control = Control(redis_url, WorkerSettings())
    try:
        client = control.vipps(load_settings(base_url=sim.url))
        draft = client.draft_agreement(models.DraftAgreementV3(
            pricing=models.PricingRequest(amount=10000), interval=models.TimePeriod(unit="MONTH", count=1),
            merchantAgreementUrl="https://example.com/a", merchantRedirectUrl="https://example.com/r",
            productName="Plan"), idempotency_key="rules-draft")
        client.force_accept_agreement(draft.agreementId, "4791234567", idempotency_key="rules-accept")
        due = (dt.datetime.now(dt.UTC).date() + dt.timedelta(days=1)).isoformat()
        charge = {"command_id": "rules-c1", "type": "charge.create", "agreement_id": draft.agreementId,
                  "amount": 4900, "description": "Month", "retry_days": 0, "transaction_type": "DIRECT_CAPTURE",
                  "due": due, "issued_at": dt.datetime.now(dt.UTC).isoformat()}
        refused = letter("rules-c1", "vipps_problem", charge, {"type": "charge-due-too-soon", "status": 400})
        plain = decide(refused, control.ledger, client)
        assert not plain.replay and "charge-due-too-soon" in plain.why and "would refuse" in plain.why
        later = (dt.datetime.now(dt.UTC).date() + dt.timedelta(days=5)).isoformat()
        changed = decide(refused, control.ledger, client, {"due": later})
        assert changed.replay and changed.command is not None and changed.command["due"] == later
        bad = decide(refused, control.ledger, client, {"amount": -1})
        assert not bad.replay and "not valid" in bad.why and "amount" in bad.why

        client.stop_agreement(draft.agreementId, idempotency_key="rules-stop")
        timed_out = letter("rules-c2", "retries_exhausted", charge | {"command_id": "rules-c2"})
        stopped = decide(timed_out, control.ledger, client)
        assert not stopped.replay and "agreement is STOPPED" in stopped.why
    finally:
        control.close()
        sim.stop()


def test_dlq_replay_takes_changed_fields_from_the_command_line(redis_url: str) -> None:
    """`--set due=...` is parsed and validated before anything is read or sent; a bad one is a usage error."""
    from tests.e2e.clirun import cli, one_line_error

    env = {"REDIS_URL": redis_url}
    result = cli("dlq", "replay", "--all", "--dry-run", "--set", "due", env=env)
    assert result.returncode == 2 and "FIELD=VALUE" in one_line_error(result)
    result = cli("dlq", "replay", "--all", "--dry-run", "--set", "type=charge.refund", env=env)
    assert result.returncode == 2 and "cannot be changed" in one_line_error(result)
    ok = cli("dlq", "replay", "--all", "--dry-run", "--json", "--set", "due=2026-12-05", env=env)
    assert ok.returncode == 0, ok.stderr
