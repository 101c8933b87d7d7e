"""Waiting for a command's outcome reads its ledger record: a scheduled retry is progress, not silence."""

from __future__ import annotations

import datetime as dt
import threading
import time

import pytest
import redis

from schemas import Event, EventType
from worker.core.control import Control, NoOutcome, Progress
from worker.store.clock import now_ms
from worker.store.keys import command_ref
from worker.store.settings import StoreSettings
from worker.vipps.config import SIMULATOR_DEFAULTS

MSN = SIMULATOR_DEFAULTS["msn"]  # the one merchant of the default settings
COMMAND = {"command_id": "w-1", "type": "charge.create", "issued_at": "2026-12-01T00:00:00Z", "msn": MSN}
REF = command_ref(MSN, "w-1")


@pytest.fixture
def control(redis_url: str, redis_client: redis.Redis) -> Control:
    return Control(redis_url, StoreSettings(key_prefix="t-wait"))


def test_a_scheduled_retry_keeps_the_wait_going_and_says_what_it_waits_for(control: Control) -> None:
    ledger = control.ledger
    ledger.claim(COMMAND, owner="m1", broker_id="b1", lease_ms=10_000)
    ledger.retry_later(REF, at_ms=now_ms() + 2_500, error={"detail": "Vipps answered 502", "context_id": "c-9"})
    ledger.claim(COMMAND, owner="m2", broker_id="b1", lease_ms=10_000)  # too early: stays waiting
    seen: list[Progress] = []

    def finish_later() -> None:
        time.sleep(3.0)
        ledger.claim(COMMAND, owner="m3", broker_id="b1", lease_ms=10_000)
        ledger.finish(COMMAND, status="succeeded", events=[Event(
            event_id="e-w-1", type=EventType.CHARGE_CREATED, command_id="w-1", occurred_at=dt.datetime.now(dt.UTC))])

    threading.Thread(target=finish_later, daemon=True).start()
    outcome = control.wait("w-1", timeout=1.0, on_progress=seen.append)  # 1 s without progress, yet it waits
    assert outcome.status == "succeeded"
    waiting = next(p for p in seen if p.status == "retry_wait")
    assert waiting.describe().startswith("retry 2 at ") and "Vipps answered 502 (Vipps contextId c-9)" in \
        waiting.describe()


def test_a_budget_wait_does_not_hide_what_vipps_said(control: Control) -> None:
    ledger = control.ledger
    ledger.claim(COMMAND, owner="m1", broker_id="b1", lease_ms=10_000)
    ledger.retry_later(REF, at_ms=now_ms() + 60_000, error={"detail": "HTTP 500", "context_id": "c-1"})
    ledger.claim({**COMMAND}, owner="m2", broker_id="b1", lease_ms=10_000)  # not yet due: no claim
    record = ledger.get(REF) or {}
    assert record["status"] == "retry_wait"
    # The next attempt is held back by our own budget: recorded apart from the 500.
    ledger.redis.hset(ledger.keys.command(REF), mapping={"status": "in_progress"})
    ledger.retry_later(REF, at_ms=now_ms() + 30_000, error={"detail": "rate budget exhausted, not sent"},
                       not_sent=True)
    progress = control.progress("w-1")
    assert progress.error == {"detail": "HTTP 500", "context_id": "c-1"}
    assert progress.waiting == {"detail": "rate budget exhausted, not sent"}


def test_silence_still_ends_the_wait(control: Control) -> None:
    with pytest.raises(NoOutcome, match=r"queued, not yet taken by a worker.*no worker is running"):
        control.wait("never-sent", timeout=0.5)
