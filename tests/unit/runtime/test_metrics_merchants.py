"""Metrics per merchant: one process's runtime for two merchants, Vipps mocked per MSN, series read from the
registry. The ``msn`` label is a configured merchant's MSN or ``-``, never a value taken from a command."""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Iterator
from typing import Any

import dramatiq
import httpx
import pytest
import redis
import respx
from dramatiq.brokers.stub import StubBroker
from prometheus_client import REGISTRY

from worker.core.pipeline import Delivery
from worker.runtime import metrics
from worker.runtime.process import Runtime
from worker.runtime.settings import WorkerSettings
from worker.vipps import load_settings
from worker.vipps.merchants import Merchant, Merchants

GYM, YOGA = "111111", "222222"
TOKEN = {"token_type": "Bearer", "expires_in": "3599", "ext_expires_in": "0", "expires_on": "1495271273",
         "not_before": "1495184574", "resource": "00000002-0000-0000-c000-000000000000", "access_token": "t-1"}
PROBLEM = {"type": "https://developer.vippsmobilepay.com/docs/APIs/recurring-api/recurring-api-problems#bad-request",
           "title": "Bad Request", "detail": "Bad Request", "status": 400, "contextId": "c-1"}


def vipps(request: httpx.Request) -> httpx.Response:
    """GYM's calls succeed; YOGA's agreement updates are refused, its charge cancels rate-limited."""
    if request.url.path == "/accesstoken/get":
        return httpx.Response(200, json=TOKEN)
    if request.headers["Merchant-Serial-Number"] == GYM:
        return httpx.Response(204)
    if request.method == "PATCH":
        return httpx.Response(400, json=PROBLEM, headers={"Content-Type": "application/problem+json"})
    return httpx.Response(429, headers={"Retry-After": "120"})


@pytest.fixture
def runtime(redis_url: str, redis_client: redis.Redis) -> Iterator[Runtime]:
    base = load_settings()  # the simulator's
    merchants = Merchants([Merchant(msn, name, True, f"merchant:{msn}",
                                    base.model_copy(update={"msn": msn, "merchant_name": name}))
                           for msn, name in ((GYM, "Gym"), (YOGA, "Yoga"))])
    runtime = Runtime(WorkerSettings(key_prefix="t-metrics"), StubBroker(), redis_url, vipps_settings=base,
                      merchants=merchants)
    try:
        with respx.mock(base_url=base.url, assert_all_called=False) as router:
            router.route().mock(side_effect=vipps)
            yield runtime
    finally:
        runtime.stop()


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


class Series:
    """The growth of chosen series since it was made (the registry is the process's, shared by every test)."""

    def __init__(self, *series: tuple[str, dict[str, str]]) -> None:
        self.series = series
        self.before = [value(name, **labels) for name, labels in series]

    def growth(self) -> list[float]:
        return [value(name, **labels) - before for (name, labels), before in zip(self.series, self.before, strict=True)]


def command(kind: str, cid: str, **fields: Any) -> dict[str, Any]:
    return {"type": kind, "command_id": cid, "issued_at": dt.datetime.now(dt.UTC).isoformat(), **fields}


def deliver(runtime: Runtime, raw: Any, actor: str, queue: str = "vipps.agreements") -> str:
    delivery = Delivery(args=(raw,), kwargs={}, actor=actor, queue=queue, message_id=f"m-{id(raw)}")
    return runtime.pipeline.handle(delivery)


def update(cid: str, msn: str | None, agreement_id: str = "agr_1") -> dict[str, Any]:
    fields = {"msn": msn} if msn is not None else {}
    return command("agreement.update", cid, agreement_id=agreement_id, product_name="Renamed", **fields)


def test_each_merchants_commands_and_vipps_calls_are_counted_under_its_msn(runtime: Runtime) -> None:
    outcomes = Series(*(("vipps_billing_commands_total", {"type": "agreement.update", "outcome": outcome, "msn": msn})
                        for msn in (GYM, YOGA) for outcome in ("succeeded", "failed")))
    calls = Series(*(("vipps_billing_vipps_requests_total",
                      {"operation": "UpdateAgreementPatchV3", "status_class": status, "msn": msn})
                     for msn in (GYM, YOGA) for status in ("2xx", "4xx")))
    problems = Series(("vipps_billing_vipps_problems_total",
                       {"operation": "UpdateAgreementPatchV3", "problem_type": "bad-request", "msn": YOGA}),
                      ("vipps_billing_token_refreshes_total", {"result": "success", "msn": GYM}),
                      ("vipps_billing_token_refreshes_total", {"result": "success", "msn": YOGA}))
    dead = Series(("vipps_billing_dead_letters_added_total", {"msn": YOGA, "reason": "vipps_problem"}),
                  ("vipps_billing_dead_letters_added_total", {"msn": GYM, "reason": "vipps_problem"}))

    assert deliver(runtime, update("u-gym", GYM), "agreement_update") == "succeeded"
    assert deliver(runtime, update("u-yoga", YOGA), "agreement_update") == "failed"

    assert outcomes.growth() == [1, 0, 0, 1]
    assert calls.growth() == [1, 0, 0, 1]
    assert problems.growth() == [1, 1, 1]  # each merchant's client fetched its own token
    assert dead.growth() == [1, 0]
    [letter] = runtime.dead_letters.find(msn=YOGA)
    assert letter.reason == "vipps_problem"


def test_429s_and_retries_are_counted_for_the_merchant_that_met_them(runtime: Runtime) -> None:
    labels = {"operation": "CancelChargeV3"}
    seen = Series(("vipps_billing_vipps_rate_limited_total", {**labels, "msn": YOGA}),
                  ("vipps_billing_vipps_rate_limited_total", {**labels, "msn": GYM}),
                  ("vipps_billing_command_retries_total", {"type": "charge.cancel", "reason": "rate_limited",
                                                           "msn": YOGA}),
                  ("vipps_billing_commands_total", {"type": "charge.cancel", "outcome": "succeeded", "msn": GYM}))
    cancel = functools.partial(command, "charge.cancel", agreement_id="agr_1", charge_id="chr_1")
    assert deliver(runtime, cancel("c-yoga", msn=YOGA), "charge_cancel", "vipps.charges.222222") == "retry"
    assert deliver(runtime, cancel("c-gym", msn=GYM), "charge_cancel", "vipps.charges.111111") == "succeeded"
    assert seen.growth() == [1, 0, 1, 1]


def test_a_rejected_command_is_labelled_with_its_merchant_only_when_it_is_a_configured_one(runtime: Runtime) -> None:
    rejected = Series(*(("vipps_billing_commands_total", {"type": "agreement.update", "outcome": "rejected",
                                                          "msn": msn}) for msn in (metrics.NO_MERCHANT, GYM)))
    dead = Series(*(("vipps_billing_dead_letters_added_total", {"msn": msn, "reason": "invalid_command"})
                    for msn in (metrics.NO_MERCHANT, GYM)))

    assert deliver(runtime, update("r-unknown", "999999"), "agreement_update") == "rejected"  # not ours
    assert deliver(runtime, update("r-none", None), "agreement_update") == "rejected"  # two merchants: msn needed
    assert deliver(runtime, update("r-gym", GYM, agreement_id="not an id"), "agreement_update") == "rejected"

    assert rejected.growth() == [2, 1]
    assert dead.growth() == [2, 1]
    assert value("vipps_billing_commands_total", type="agreement.update", outcome="rejected", msn="999999") == 0
    assert value("vipps_billing_dead_letters_added_total", msn="999999", reason="invalid_command") == 0


def test_the_same_dead_letter_twice_is_counted_once(runtime: Runtime) -> None:
    dead = Series(("vipps_billing_dead_letters_added_total", {"msn": metrics.NO_MERCHANT, "reason": "invalid_command"}))
    for _ in range(2):
        deliver(runtime, {"type": "agreement.update", "msn": "999999"}, "agreement_update")  # the same message again
    assert dead.growth() == [1]


def test_a_message_dramatiq_dead_lettered_is_counted_for_the_merchant_it_names(runtime: Runtime) -> None:
    counted = Series(("vipps_billing_dead_letters_added_total", {"msn": GYM, "reason": "unknown_actor"}),
                     ("vipps_billing_commands_total", {"type": "charge.cancel", "outcome": "dead_lettered",
                                                       "msn": GYM}),
                     ("vipps_billing_dead_letters_added_total", {"msn": metrics.NO_MERCHANT, "reason": "worker_error"}),
                     ("vipps_billing_commands_total", {"type": "invalid", "outcome": "dead_lettered",
                                                       "msn": metrics.NO_MERCHANT}))
    ours = dramatiq.Message(queue_name="vipps.charges.111111", actor_name="no_such_actor", kwargs={}, options={},
                            args=(command("charge.cancel", "d-gym", msn=GYM, agreement_id="a", charge_id="c"),))
    theirs = dramatiq.Message(queue_name="vipps.charges", actor_name="charge_cancel", kwargs={}, options={},
                              args=({"command_id": "d-other", "type": "anything at all", "msn": "999999"},))
    runtime.dead_letter_message(ours, "unknown_actor", "ActorNotFound: no_such_actor")
    runtime.dead_letter_message(theirs, "worker_error", "RuntimeError: boom")
    assert counted.growth() == [1, 1, 1, 1]
    assert [letter.msn for letter in runtime.dead_letters.find(reason="unknown_actor")] == [GYM]


def test_dead_letter_series_exist_from_the_start_for_every_merchant(runtime: Runtime) -> None:
    # An alert on increase() misses a series' first sample: each (msn, reason) is exported as 0 before it.
    for msn in (GYM, YOGA, metrics.NO_MERCHANT):
        for reason in metrics.DEAD_LETTER_REASONS:
            assert REGISTRY.get_sample_value("vipps_billing_dead_letters_added_total",
                                             {"msn": msn, "reason": reason}) is not None, (msn, reason)


def test_an_unreadable_message_is_counted_for_the_merchant_whose_own_queue_held_it(runtime: Runtime) -> None:
    counted = Series(*(("vipps_billing_dead_letters_added_total", {"msn": msn, "reason": "undecodable"})
                       for msn in (GYM, metrics.NO_MERCHANT)))
    runtime.sweeper.record_poison(b'{"msn": "222222", \xff', queue="vipps.charges.111111", reason="undecodable")
    runtime.sweeper.record_poison(b'{"msn": "111111", \xfe', queue="vipps.charges", reason="undecodable")
    runtime.sweeper.record_poison(b"\xfd", queue=None, reason="undecodable")
    assert counted.growth() == [1, 2]
