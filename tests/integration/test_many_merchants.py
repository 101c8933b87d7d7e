"""One deployment, three merchants at once on the simulator: Gym One with its own keys, Yoga Two and Dojo Three
through the partner keys of "platform". Each merchant runs the go-live states (an agreement ACTIVE, one
STOPPED, a charge CHARGED and one REFUNDED) with the same command_ids as the others; every request carries the
right MSN and keys, and no effect lands on another merchant's state. Bad merchants are refused, and the
others keep working."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from tests.integration.test_secrets import redis_dump
from tests.merchants import NAMES, MerchantsSetup, write_merchants_file, write_worker_merchants_file
from tests.stack import Events, Simulator, Worker, due_in, wait_for
from worker.core.producer import Producer
from worker.runtime.settings import WorkerSettings

STRAY = "445566"      # the worker routes it through "platform", which does not manage it at Vipps
DISABLED = "556677"   # in the worker's file, disabled
AGREEMENT = {"type": "agreement.create", "product_name": "Membership", "pricing": {"amount": 39900},
             "interval": {"unit": "MONTH", "count": 1}, "merchant_redirect_url": "https://example.com/back",
             "merchant_agreement_url": "https://example.com/agreements/1", "phone_number": "4791234567"}


@dataclass
class World:
    setup: MerchantsSetup
    simulator: Simulator
    worker: Worker
    events: Events
    producer: Producer
    redis: redis.Redis

    def send(self, msn: str | None, command_id: str, **fields: Any) -> None:
        self.producer.send({"command_id": command_id, **fields} | ({"msn": msn} if msn else {}))

    def wait(self, msn: str | None, timeout: float = 60.0, **criteria: Any) -> dict[str, Any]:
        return self.events.wait(timeout, msn=msn, **criteria)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> Iterator[World]:
    directory: Path = tmp_path_factory.mktemp("merchants")
    setup = write_merchants_file(directory)
    worker_file = write_worker_merchants_file(directory, [
        {"msn": STRAY, "name": "Stray", "partner": "platform"},
        {"msn": DISABLED, "name": "Closed", "partner": "platform", "enabled": False}])
    client = redis.Redis.from_url(redis_url)
    client.flushdb()  # module-wide state: no test here may use the redis_client fixture, which flushes
    simulator = Simulator(*setup.simulator_args)
    worker = Worker(redis_url, simulator.url, threads=8, env={"MERCHANTS_FILE": str(worker_file)})
    msns = (*setup.msns, STRAY, DISABLED)
    producer = Producer(redis_url, layout=WorkerSettings().layout(msns))
    try:
        yield World(setup, simulator, worker, Events(client), producer, client)
    finally:
        producer.close()
        worker.stop()
        simulator.stop()
        client.close()
        print(worker.output()[-20000:])


@pytest.fixture(scope="module")
def go_live(world: World) -> dict[str, dict[str, str]]:
    """Every merchant's go-live states, with the same command_ids for all three, run at the same time."""
    msns = world.setup.msns
    for msn in msns:
        for name in ("keep", "stop"):
            world.send(msn, f"gl-{name}", **AGREEMENT)
    ids: dict[str, dict[str, str]] = {msn: {} for msn in msns}
    for msn in msns:
        for name in ("keep", "stop"):
            ids[msn][name] = world.wait(msn, command_id=f"gl-{name}", type="agreement.created")["agreement_id"]
            world.send(msn, f"gl-{name}-accept", type="agreement.force_accept", agreement_id=ids[msn][name],
                       phone_number="4791234567")
    for msn in msns:
        for name in ("keep", "stop"):
            world.wait(msn, type="agreement.activated", agreement_id=ids[msn][name])
        world.send(msn, "gl-stop-it", type="agreement.update", agreement_id=ids[msn]["stop"], status="STOPPED")
        for name in ("charged", "refunded"):
            world.send(msn, f"gl-{name}", type="charge.create", agreement_id=ids[msn]["keep"], amount=29900,
                       description="December", due=due_in(1), retry_days=2, transaction_type="DIRECT_CAPTURE")
    for msn in msns:
        world.wait(msn, type="agreement.stopped", agreement_id=ids[msn]["stop"])
        for name in ("charged", "refunded"):
            ids[msn][name] = world.wait(msn, command_id=f"gl-{name}", type="charge.created")["charge_id"]
    world.simulator.advance(2 * 86_400)  # past the due date's processing rounds
    for msn in msns:
        for name in ("charged", "refunded"):
            wait_for(lambda m=msn, c=ids[msn][name]: [e for e in world.events.of(
                msn=m, type="charge.status_changed", charge_id=c) if e["transition"]["to"] == "CHARGED"], 60,
                what=f"{NAMES[msn]}'s charge CHARGED")
        world.send(msn, "gl-refund", type="charge.refund", agreement_id=ids[msn]["keep"],
                   charge_id=ids[msn]["refunded"], amount=29900, description="Cancelled membership")
    for msn in msns:
        world.wait(msn, command_id="gl-refund", type="charge.refunded")
    return ids


def at_vipps(world: World, agreement_id: str) -> dict[str, Any]:
    """The agreement as the simulator holds it: its merchant, its status and its charges' statuses."""
    found = world.simulator.admin.get(f"/agreements/{agreement_id}").raise_for_status().json()
    return {"msn": found["msn"], "status": found["agreement"]["status"],
            "charges": {c["id"]: c["status"] for c in found["charges"]}}


def test_every_merchant_reaches_the_go_live_states_on_its_own(world: World, go_live: dict[str, dict[str, str]]
                                                               ) -> None:
    for msn, ids in go_live.items():
        keep, stop = at_vipps(world, ids["keep"]), at_vipps(world, ids["stop"])
        assert (keep["msn"], stop["msn"]) == (msn, msn), NAMES[msn]
        assert (keep["status"], stop["status"]) == ("ACTIVE", "STOPPED"), NAMES[msn]
        assert keep["charges"] == {ids["charged"]: "CHARGED", ids["refunded"]: "REFUNDED"}, NAMES[msn]
        # ... and the events the billing system got say the same.
        world.wait(msn, type="charge.status_changed", charge_id=ids["refunded"],
                   transition={"from": "CHARGED", "to": "REFUNDED"})
    # The same command_id from three merchants: three commands, three outcome events.
    created = world.events.of(command_id="gl-keep", type="agreement.created")
    assert sorted(e["msn"] for e in created) == sorted(go_live)
    assert len({e["event_id"] for e in created}) == 3


def test_every_call_carries_its_merchants_msn_and_keys(world: World, go_live: dict[str, dict[str, str]]) -> None:
    requests = world.simulator.requests()
    mine = [r for r in requests if r["msn"] in go_live]
    assert len(mine) >= 3 * 12  # drafts, accepts, stop, charges, fetches, refund: each merchant's calls
    wrong = [r for r in mine if r["msn_header"] != r["msn"]
             or r["credentials"] != world.setup.keys_for(r["msn"]).label]
    assert wrong == []
    for msn in go_live:
        # 401: the token expired as the simulated clock moved two days on; the call went again with a new one.
        assert {r["status"] for r in mine if r["msn"] == msn} <= {200, 201, 202, 204, 401}, NAMES[msn]


def test_no_effect_lands_on_another_merchants_state(world: World, go_live: dict[str, dict[str, str]]) -> None:
    effects = world.simulator.effects()
    owner = {agreement_id: msn for msn, ids in go_live.items() for name, agreement_id in ids.items()
             if name in ("keep", "stop")}
    ours = [e for e in effects if e["agreement_id"] in owner]
    assert {e["msn"] for e in ours} == set(go_live)
    assert [e for e in ours if e["msn"] != owner[e["agreement_id"]]] == []
    assert world.simulator.effects(duplicates="true") == []


@pytest.mark.parametrize(("msn", "why"), [
    ("999999", "MSN 999999 is not a merchant of this deployment"),
    (None, "msn is required: this deployment serves 5 merchants"),
    (DISABLED, f"MSN {DISABLED} (Closed) is disabled"),
])
def test_a_command_for_no_known_merchant_is_rejected_and_never_reaches_vipps(
        world: World, msn: str | None, why: str) -> None:
    before = len(world.simulator.requests())
    command_id = f"bad-{msn}"
    world.send(msn, command_id, **AGREEMENT)
    rejected = world.events.wait(30, command_id=command_id, type="command.rejected")
    assert rejected["problem"]["errors"][0]["field"] == "msn" and why in rejected["problem"]["detail"]
    good = f"good-after-{msn}"
    world.send(world.setup.partner_msns[0], good, **AGREEMENT)
    world.wait(world.setup.partner_msns[0], command_id=good, type="agreement.created")
    drafts = [r for r in world.simulator.requests()[before:] if r["operation"] == "DraftAgreementV3"]
    assert [r["msn"] for r in drafts] == [world.setup.partner_msns[0]]  # only the good one reached Vipps


def test_a_partner_set_used_for_a_merchant_it_does_not_manage_fails_with_vipps_reason(world: World) -> None:
    world.send(STRAY, "stray-1", **AGREEMENT)
    failed = world.events.wait(30, command_id="stray-1", type="command.failed")
    assert failed["msn"] == STRAY and failed["problem"]["status"] == 403
    assert world.simulator.effects(msn=STRAY) == []
    world.send(world.setup.own_msn, "after-stray", **AGREEMENT)
    world.wait(world.setup.own_msn, command_id="after-stray", type="agreement.created")


def test_no_merchant_or_partner_secret_is_written_anywhere(world: World, go_live: dict[str, dict[str, str]]
                                                           ) -> None:
    secrets = [getattr(keys, name).encode() for keys in (world.setup.own, world.setup.partner)
               for name in ("client_id", "client_secret", "subscription_key")]
    written = {"log": world.worker.output().encode(),
               "metrics": httpx.get(f"http://127.0.0.1:{world.worker.metrics_port}/metrics", timeout=10).content,
               **{f"redis {key}": value for key, value in redis_dump(world.redis, set()).items()}}
    assert len(written) > 50  # the ledger, events, watchlist, token cache, ... were all read
    leaks = [(where, secret.decode()) for where, text in written.items() for secret in secrets if secret in text]
    assert leaks == []
