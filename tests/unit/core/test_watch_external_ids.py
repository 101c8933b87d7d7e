"""Every agreement the watcher sees is findable by its externalId in support's search, including an agreement
made outside the worker that only a webhook or a fetch brought in (store.externals), under its own merchant."""

from __future__ import annotations

import datetime as dt

import redis

from schemas import commands as c
from tests.unit.core.watch_states import States
from worker.core.events import EventBuilder
from worker.core.watch import Hint, PollPolicy, Watcher
from worker.store.externals import ExternalIds
from worker.store.keys import Keys
from worker.store.watchlist import agreement_member

NOW = dt.datetime(2026, 12, 1, 8, 0, tzinfo=dt.UTC)
ONLY = "123456"


def test_agreements_seen_by_poll_webhook_or_fetch_are_indexed_under_their_merchant(redis_client: redis.Redis) -> None:
    externals = ExternalIds(redis_client, Keys(), retention_seconds=60)
    old_watch = {"kind": "agreement", "agreement_id": "agr_1", "status": "PENDING", "msn": None, "command_id": None,
                 "started_ms": int(NOW.timestamp() * 1000), "interval": 2.0}  # from before merchants: the only one
    w = Watcher(None, States({agreement_member("agr_1"): old_watch}), None,  # type: ignore[arg-type]
                EventBuilder(msn=ONLY, now=lambda: NOW), policy=PollPolicy(), clock=NOW.timestamp,
                externals=externals)
    w.observe_agreement({"id": "agr_1", "status": "ACTIVE", "externalId": "cust-1"})
    w.observe_agreement({"id": "agr_2", "status": "STOPPED", "externalId": "cust-2"}, hint=Hint("654321", "USER"))
    fetch = c.AgreementFetch(type="agreement.fetch", command_id="f-1", issued_at=NOW, agreement_id="agr_3",
                             msn="777777")
    w.observe_agreement({"id": "agr_3", "status": "ACTIVE", "externalId": "cust-2"}, fetch)
    w.observe_agreement({"id": "agr_4", "status": "ACTIVE"}, fetch)  # no externalId: nothing to index

    assert externals.find(ONLY, "cust-1") == ["agr_1"]
    assert externals.find("654321", "cust-2") == ["agr_2"]
    assert externals.find("777777", "cust-2") == ["agr_3"]
    assert externals.find(ONLY, "cust-2") == []
    assert sorted(k.decode() for k in redis_client.keys("*external*")) == [
        Keys().external_id(m, e) for m, e in sorted([(ONLY, "cust-1"), ("654321", "cust-2"), ("777777", "cust-2")])]
