"""The watcher tells its observer what saw each transition first (webhook, poll, command), once per transition;
the runtime counts them in ``vipps_billing_transitions_seen_total{observed_by}``, every label from the start."""

from __future__ import annotations

import datetime as dt
from typing import Any

from prometheus_client import REGISTRY

from schemas import commands as c
from tests.unit.core.watch_states import States
from worker.core.events import EventBuilder
from worker.core.observer import PipelineObserver
from worker.core.watch import Hint, PollPolicy, Watcher
from worker.runtime import metrics
from worker.store.watchlist import agreement_member, charge_member

NOW = dt.datetime(2026, 12, 1, 8, 0, tzinfo=dt.UTC)


class Seen(PipelineObserver):
    def __init__(self) -> None:
        self.via: list[str] = []

    def transition_seen(self, via: str) -> None:
        self.via.append(via)


def watcher(states: dict[str, dict[str, Any]], observer: PipelineObserver) -> Watcher:
    return Watcher(None, States(states), None, EventBuilder(msn="123456", now=lambda: NOW),  # type: ignore[arg-type]
                   policy=PollPolicy(), clock=NOW.timestamp, observer=observer)


def pending(agreement_id: str) -> dict[str, Any]:
    return {"kind": "agreement", "agreement_id": agreement_id, "status": "PENDING", "msn": "123456",
            "command_id": "c-1", "started_ms": int(NOW.timestamp() * 1000), "interval": 2.0}


def test_each_transition_is_reported_with_what_saw_it() -> None:
    seen = Seen()
    charge_state = {"kind": "charge", "agreement_id": "agr_3", "charge_id": "chr_1", "status": "RESERVED",
                    "sig": "RESERVED:0:0:0", "started_ms": 0, "retry_days": 0}
    w = watcher({agreement_member("agr_1"): pending("agr_1"), agreement_member("agr_2"): pending("agr_2"),
                 charge_member("agr_3", "chr_1"): charge_state}, seen)
    events, _ = w.observe_agreement({"id": "agr_1", "status": "ACTIVE"})
    assert [e.observed_by for e in events] == ["poll"] and seen.via == ["poll"]
    events, _ = w.observe_agreement({"id": "agr_2", "status": "STOPPED"}, hint=Hint("123456", "USER"))
    assert [e.observed_by for e in events] == ["webhook"] and seen.via == ["poll", "webhook"]
    fetch = c.ChargeFetch(type="charge.fetch", command_id="f-1", issued_at=NOW, agreement_id="agr_3",
                          charge_id="chr_1")
    charged = {"id": "chr_1", "status": "CHARGED", "amount": 4900,
               "summary": {"captured": 4900, "refunded": 0, "cancelled": 0}}
    events, _ = w.observe_charge("agr_3", charged, origin=fetch)
    assert [e.observed_by for e in events] == ["command"] and seen.via == ["poll", "webhook", "command"]


def test_no_change_reports_nothing() -> None:
    seen = Seen()
    w = watcher({agreement_member("agr_1"): pending("agr_1")}, seen)
    events, _ = w.observe_agreement({"id": "agr_1", "status": "PENDING"})
    assert events == [] and seen.via == []
    events, _ = w.observe_agreement({"id": "agr_9", "status": "ACTIVE"})  # not followed, no hint: ignored
    assert events == [] and seen.via == []


def test_the_runtime_counts_transitions_by_observed_by_from_zero() -> None:
    def value(via: str) -> float:
        return REGISTRY.get_sample_value("vipps_billing_transitions_seen_total", {"observed_by": via}) or 0.0

    observer = metrics.PipelineMetrics(["123456"])
    before = {via: value(via) for via in metrics.OBSERVED_BY}
    for via in metrics.OBSERVED_BY:
        assert REGISTRY.get_sample_value("vipps_billing_transitions_seen_total", {"observed_by": via}) is not None
    observer.transition_seen("poll")
    observer.transition_seen("poll")
    observer.transition_seen("webhook")
    assert value("poll") - before["poll"] == 2
    assert value("webhook") - before["webhook"] == 1
    assert value("command") == before["command"]


def test_a_pending_agreement_is_polled_less_often_while_webhooks_arrive() -> None:
    now_ms = int(NOW.timestamp() * 1000)
    state = pending("agr_9") | {"interval": 100.0}  # grown: the next interval would pass the usual 30 s cap
    for last, cap in ((None, 30.0), (now_ms - 7_200_000, 30.0), (now_ms - 60_000, 120.0)):
        w = Watcher(None, States({agreement_member("agr_9"): state}), None,  # type: ignore[arg-type]
                    EventBuilder(msn="123456", now=lambda: NOW), policy=PollPolicy(), clock=NOW.timestamp,
                    last_webhook_ms=lambda last=last: last)  # type: ignore[misc]
        _, change = w.observe_agreement({"id": "agr_9", "status": "PENDING"})
        assert change is not None and change.next_check_ms == now_ms + int(cap * 1000), (last, cap)
