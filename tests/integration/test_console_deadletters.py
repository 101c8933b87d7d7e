"""Dead letters in the console over HTTP, with a real worker and the simulator: operators only, dry run, and a
replay under the CLI's rules with the operator and reason on the replayed command."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from tests.integration.test_cli_dlq import FAST_RETRIES, letters, seed_dead_letters
from tests.integration.test_console_acting import client_as, console_on, csrf
from tests.stack import Simulator, Worker


@pytest.fixture(scope="module")
def dead(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Three dead letters: a capture Vipps refused, a refund that met only 5xx, an invalid command."""
    redis.Redis.from_url(redis_url).flushdb()
    simulator = Simulator()
    worker = Worker(redis_url, simulator.url, env=FAST_RETRIES)
    env = {"REDIS_URL": redis_url, "VIPPS_ENV": "simulator", "VIPPS_BASE_URL": simulator.url}
    tmp = tmp_path_factory.mktemp("console-dlq")
    console = console_on(redis_url, simulator.url, tmp)
    ops = console.finder.ops
    try:
        _, charge = seed_dead_letters(tmp, env, simulator, redis_url)
        yield {"console": console, "simulator": simulator, "charge": charge,
               "ids": {x["command_id"]: x["id"] for x in letters(env)}}
    finally:
        ops.close()
        worker.stop()
        simulator.stop()
        redis.Redis.from_url(redis_url).flushdb()


def test_only_operators_see_and_replay_dead_letters(dead: dict[str, Any]) -> None:
    letter = dead["ids"]["dlq-refund"]
    for user in ("victor", "alice"):
        client = client_as(dead["console"], user)
        token = csrf(client.get("/").text)
        assert 'href="/dead-letters"' not in client.get("/").text
        assert client.get("/dead-letters").status_code == 403
        assert client.get(f"/dead-letters/{letter}").status_code == 403
        assert client.post(f"/dead-letters/{letter}/replay", data={"csrf": token, "reason": "x"}).status_code == 403
    assert dead["console"].finder.ops.dead_letters.get(letter).replayed_as == []


def test_an_operator_lists_and_inspects_dead_letters(dead: dict[str, Any]) -> None:
    client = client_as(dead["console"], "olga")
    listed = client.get("/dead-letters")
    assert listed.status_code == 200 and "3 shown of 3" in listed.text
    for letter in dead["ids"].values():
        assert f'href="/dead-letters/{letter}"' in listed.text
    only = client.get("/dead-letters", params={"reason": "vipps_problem"})
    assert "1 shown of 3" in only.text and dead["ids"]["dlq-capture"] in only.text
    page = client.get(f"/dead-letters/{dead['ids']['dlq-capture']}")
    assert page.status_code == 200 and f"<h1>Dead letter {dead['ids']['dlq-capture']}</h1>" in page.text
    assert '<form id="dry-run"' in page.text and '<form id="replay"' in page.text
    assert "vipps_problem" in page.text and "&quot;charge_id&quot;: &quot;" + dead["charge"] in page.text
    assert client.get("/dead-letters/nosuchletter").status_code == 404


def test_a_dry_run_says_what_a_replay_would_do_and_sends_nothing(dead: dict[str, Any]) -> None:
    client = client_as(dead["console"], "olga")
    token = csrf(client.get("/").text)
    before = dead["simulator"].effects()
    refused = client.post(f"/dead-letters/{dead['ids']['dlq-capture']}/dry-run", data={"csrf": token})
    assert refused.status_code == 200 and "Would not replay: Vipps refused it" in refused.text
    assert '<form id="replay"' not in refused.text
    needed = client.post(f"/dead-letters/{dead['ids']['dlq-refund']}/dry-run", data={"csrf": token})
    assert "Would replay as dlq-refund.r1" in needed.text and '<form id="replay"' in needed.text
    invalid = client.post(f"/dead-letters/{dead['ids']['dlq-invalid']}/dry-run", data={"csrf": token})
    assert "Would not replay: invalid_command" in invalid.text
    assert dead["simulator"].effects() == before


def test_an_operator_replays_a_dead_letter_once(dead: dict[str, Any]) -> None:
    client = client_as(dead["console"], "olga")
    letter = dead["ids"]["dlq-refund"]
    token = csrf(client.get(f"/dead-letters/{letter}").text)
    no_reason = client.post(f"/dead-letters/{letter}/replay", data={"csrf": token, "reason": " "})
    assert no_reason.status_code == 409 and "reason is required" in no_reason.text
    done = client.post(f"/dead-letters/{letter}/replay", data={"csrf": token, "reason": "Vipps was down"})
    assert done.status_code == 303 and done.headers["location"].startswith("/commands/dlq-refund.r1")
    outcome = client.get(done.headers["location"]).text
    assert re.search(r'<p id="outcome" class="ok">succeeded</p>', outcome), outcome
    assert "olga" in outcome and "Vipps was down" in outcome
    refunds = [e for e in dead["simulator"].effects(charge_id=dead["charge"]) if "refund" in e["operation"].lower()]
    assert [e["amount"] for e in refunds] == [3000]
    again = client.post(f"/dead-letters/{letter}/replay", data={"csrf": token, "reason": "once more"})
    assert again.status_code == 409 and "already replayed as dlq-refund.r1" in again.text
    assert "dlq-refund.r1" in client.get(f"/dead-letters/{letter}").text
    assert dead["console"].metrics.actions.labels("dead_letter.replay", "succeeded")._value.get() == 1
