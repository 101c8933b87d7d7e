"""Malformed commands end as ``command.rejected`` or a dead letter with a clear reason, and never stop the worker.

Hand-written cases cover each kind of bad input by name; hypothesis adds mutated commands (fields dropped,
replaced by arbitrary JSON, extra fields). All go onto the queues unchecked, interleaved with valid commands,
through a real worker process. Every bad one must leave exactly one trace (a rejected event with a reason, or a
dead letter) and nothing at Vipps; every valid one must succeed.

    TEST_REDIS_DB=4 uv run pytest tests/integration/test_bad_input.py -s
    BAD_INPUT_EXAMPLES=1000 ... for a larger hypothesis sample (default 150)
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import uuid
from collections.abc import Iterator
from typing import Any

import hypothesis.strategies as st
import pytest
import redis
from hypothesis import HealthCheck, assume, given, settings
from pydantic import ValidationError

from schemas import COMMAND_TYPES, CommandAdapter, actor_name
from tests.stack import Events, Simulator, Worker, producer, wait_for
from worker.store.deadletters import DeadLetter, DeadLetterStore, dead_letter_id
from worker.store.keys import Keys

EXAMPLES = int(os.environ.get("BAD_INPUT_EXAMPLES", "150"))
NS = "dramatiq"
TOMORROW = (dt.datetime.now(dt.UTC).date() + dt.timedelta(days=1)).isoformat()

VALID: dict[str, dict[str, Any]] = {
    "agreement.create": {"type": "agreement.create", "product_name": "Gym", "pricing": {"amount": 29900},
                         "interval": {"unit": "MONTH", "count": 1},
                         "merchant_redirect_url": "https://example.com/back",
                         "merchant_agreement_url": "https://example.com/agreements/1"},
    "charge.create": {"type": "charge.create", "agreement_id": "agr_5kSeqz", "amount": 29900,
                      "description": "March", "due": TOMORROW, "retry_days": 2,
                      "transaction_type": "DIRECT_CAPTURE"},
    "charge.capture": {"type": "charge.capture", "agreement_id": "agr_5kSeqz", "charge_id": "chr_5kSeqz",
                       "amount": 1000, "description": "Shipped"},
    "agreement.update": {"type": "agreement.update", "agreement_id": "agr_5kSeqz", "status": "STOPPED"},
    "charge.cancel": {"type": "charge.cancel", "agreement_id": "agr_5kSeqz", "charge_id": "chr_5kSeqz"},
}


def is_valid(command: Any) -> bool:
    try:
        CommandAdapter.validate_python(command)
    except (ValidationError, TypeError, ValueError):
        return False
    return True


def hand_written() -> list[tuple[str, dict[str, Any]]]:
    """(label, command) pairs; every command_id is valid and unique unless the case is about the id."""
    charge = VALID["charge.create"]
    cases: list[tuple[str, dict[str, Any]]] = [
        ("amount as string", charge | {"amount": "29900"}),
        ("amount as float", charge | {"amount": 299.5}),
        ("amount as integral float", charge | {"amount": 29900.0}),
        ("negative amount", charge | {"amount": -100}),
        ("zero amount", charge | {"amount": 0}),
        ("amount too large", charge | {"amount": 2**40}),
        ("amount as bool", charge | {"amount": True}),
        ("amount null", charge | {"amount": None}),
        ("missing amount", {k: v for k, v in charge.items() if k != "amount"}),
        ("missing agreement_id", {k: v for k, v in charge.items() if k != "agreement_id"}),
        ("missing type", {k: v for k, v in charge.items() if k != "type"}),
        ("bad date", charge | {"due": "31/12/2030"}),
        ("bad transaction type", charge | {"transaction_type": "STEAL"}),
        ("retry_days out of range", charge | {"retry_days": 99}),
        ("description too long", charge | {"description": "x" * 46}),
        ("description empty", charge | {"description": ""}),
        ("description as list", charge | {"description": ["a"]}),
        ("overlong correlation id", charge | {"correlation_id": "c" * 129}),
        ("extra field", charge | {"unexpected": 1}),
        ("agreement id with slash", charge | {"agreement_id": "../../agreements"}),
        ("agreement id with unicode", charge | {"agreement_id": "agr_\u00e6\u00f8\u00e5"}),
        ("agreement id too long", charge | {"agreement_id": "a" * 37}),
        ("agreement id as number", charge | {"agreement_id": 12345}),
        ("charge id with query", VALID["charge.cancel"] | {"charge_id": "chr?x=1"}),
        ("order id with emoji", charge | {"order_id": "order-\U0001f4a5"}),
        ("msn letters", charge | {"msn": "abcd"}),
        ("stop with extra status", VALID["agreement.update"] | {"status": "ACTIVE"}),
        ("update with nothing", {k: v for k, v in VALID["agreement.update"].items() if k != "status"}),
        ("capture amount float", VALID["charge.capture"] | {"amount": 10.01}),
        ("pricing without amount", VALID["agreement.create"] | {"pricing": {}}),
        ("interval count zero", VALID["agreement.create"] | {"interval": {"unit": "MONTH", "count": 0}}),
        ("http agreement url", VALID["agreement.create"] | {"merchant_agreement_url": "http://example.com/a"}),
        ("product name unicode overlong", VALID["agreement.create"] | {"product_name": "\u00e6" * 46}),
        ("phone number letters", VALID["agreement.create"] | {"phone_number": "47abc"}),
        ("oversized payload", charge | {"description": "x", "padding": "p" * 40_000}),
        ("deeply nested", charge | {"description": {"a": {"b": {"c": [[[[1]]]]}}}}),
        ("issued_at garbage", charge | {"issued_at": "yesterday"}),
    ]
    out = [(label, {"command_id": f"bad-{i}"} | cmd) for i, (label, cmd) in enumerate(cases)]
    # Cases about the command id itself: the rejection cannot name a command.
    out += [
        ("command id missing", dict(charge)),
        ("command id empty", charge | {"command_id": ""}),
        ("command id too long", charge | {"command_id": "x" * 65}),
        ("command id with space", charge | {"command_id": "bad id"}),
        ("command id unicode", charge | {"command_id": "bad-\u00e9\u4e2d"}),
        ("command id as number", charge | {"command_id": 7}),
    ]
    return out


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**63), max_value=2**63) |
    st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=80),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=10)


@st.composite
def mutated(draw: st.DrawFn) -> dict[str, Any]:
    """A valid command with one to three fields dropped, replaced by arbitrary JSON, or added."""
    command = dict(draw(st.sampled_from(sorted(VALID.items())))[1])
    for _ in range(draw(st.integers(1, 3))):
        action = draw(st.sampled_from(["drop", "replace", "add"]))
        field = draw(st.sampled_from(sorted(command)))
        if action == "drop":
            command.pop(field, None)
        elif action == "replace":
            command[field] = draw(json_values)
        else:
            command[draw(st.text(min_size=1, max_size=20))] = draw(json_values)
    return command


def hypothesis_commands(n: int) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []

    @settings(max_examples=n, database=None, deadline=None,
              suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow])
    @given(mutated())
    def collect(command: dict[str, Any]) -> None:
        assume(not is_valid({"command_id": "probe"} | command))
        found.append(command)

    collect()
    return found


def digest(raw: Any) -> str:
    """The pipeline's fingerprint of a rejected payload (after the JSON round trip of the queue)."""
    return hashlib.sha256(json.dumps(json.loads(json.dumps(raw)), sort_keys=True, default=str).encode()).hexdigest()


def inject_raw(client: redis.Redis, queue: str, data: bytes) -> None:
    message_id = str(uuid.uuid4())
    client.hset(f"{NS}:{queue}.msgs", message_id, data)
    client.rpush(f"{NS}:{queue}", message_id)


@pytest.fixture
def stack(redis_url: str, redis_client: redis.Redis) -> Iterator[tuple[Simulator, Worker, Events]]:
    simulator = Simulator()
    worker = Worker(redis_url, simulator.url, threads=4)
    try:
        yield simulator, worker, Events(redis_client)
    finally:
        worker.stop()
        simulator.stop()
        print(worker.output()[-5000:])


def test_bad_input_is_rejected_and_the_worker_keeps_going(stack: tuple[Simulator, Worker, Events],
                                                          redis_url: str, redis_client: redis.Redis) -> None:
    simulator, worker, events = stack
    dlq = DeadLetterStore(redis_client, Keys("vipps-billing"), retention_days=30)
    hand = hand_written()
    generated = [(f"hypothesis {i}", {"command_id": f"hyp-{i}"} | c) for i, c in enumerate(hypothesis_commands(
        EXAMPLES))]
    # A generated "type" that names no actor goes to an actor that does not exist: dramatiq dead-letters the
    # message (reason unknown_actor) before any command validation; that is checked separately below.
    actors = {actor_name(t) for t in COMMAND_TYPES}
    unknown_actor = [(label, c) for label, c in generated
                     if isinstance(c.get("type"), str) and actor_name(c["type"]) not in actors]
    bad = hand + [(label, c) for label, c in generated if (label, c) not in unknown_actor]
    for label, command in bad:
        assert not is_valid(command), f"test case is valid: {label}"

    p = producer(redis_url)
    valid_ids: list[str] = []
    try:
        for _, command in unknown_actor:
            p.send_raw(command)
        for i, (_, command) in enumerate(bad):
            p.send_raw(command)
            if i % 10 == 0:  # valid work interleaved with the bad
                cid = f"ok-{i}"
                p.send({"command_id": cid} | VALID["agreement.create"])
                valid_ids.append(cid)
        # Messages no command can come from: wrong actor, no argument, two arguments, kwargs, a list.
        odd = [
            ("unknown type", {"command_id": "bad-unknown-type", "type": "charge.explode", "amount": 100}),
        ]
        for _, command in odd:
            p.send_raw(command)
        broker_messages = [
            ("unknown actor", "nope_actor", "vipps.charges", ({"command_id": "bad-unknown-actor"},), {}),
            ("no arguments", "charge_create", "vipps.charges", (), {}),
            ("two arguments", "charge_create", "vipps.charges", ({"command_id": "bad-two-a"}, 2), {}),
            ("kwargs", "charge_create", "vipps.charges", (), {"command": {"command_id": "bad-kw"}}),
            ("list argument", "agreement_fetch", "vipps.agreements", ([1, 2, 3],), {}),
            ("type sent to the wrong actor", "charge_cancel", "vipps.charges",
             ({"command_id": "bad-wrong-actor"} | VALID["charge.create"],), {}),
        ]
        from dramatiq import Message

        from worker.runtime.broker import make_broker
        from worker.runtime.settings import WorkerSettings

        broker = make_broker(WorkerSettings(), redis_url)
        for _, actor, queue, args, kwargs in broker_messages:
            broker.enqueue(Message(queue_name=queue, actor_name=actor, args=args, kwargs=kwargs, options={},
                                   message_id=str(uuid.uuid4()), message_timestamp=0))
        broker.close()
    finally:
        p.close()
    undecodable = [b"\xff\xfe\x00garbage", b"not json at all", b'{"actor_name": "charge_create"}', b"[]",
                   "\u00e6\u00f8\u00e5 {".encode("latin-1")]
    for data in undecodable:
        inject_raw(redis_client, "vipps.charges", data)
    for cid in [f"ok-tail-{i}" for i in range(5)]:  # valid work after all the poison
        p = producer(redis_url)
        p.send({"command_id": cid} | VALID["agreement.create"])
        p.close()
        valid_ids.append(cid)

    tried = len(bad) + len(unknown_actor) + len(odd) + len(broker_messages) + len(undecodable)

    # Every valid command succeeds.
    wait_for(lambda: all(events.of(command_id=c, type="agreement.created") for c in valid_ids), 120,
             what="valid commands done")

    # Every pipeline-level bad command: one command.rejected event (by its command_id when it has a valid one)
    # and a dead letter whose id is the digest of its payload.
    letters: dict[str, DeadLetter] = {}

    def all_rejected() -> bool:
        for _, command in bad:
            letter_id = dead_letter_id("rejected", digest(command))
            if letter_id not in letters:
                letter = dlq.get(letter_id)
                if letter is None:
                    return False
                letters[letter_id] = letter
        return True

    wait_for(all_rejected, 120, what="every bad command rejected")

    def unknown_actor_letters() -> dict[str, DeadLetter]:
        return {d.command_id: d for d in dlq.find(limit=100_000, reason="unknown_actor") if d.command_id}

    by_id = wait_for(lambda: (found := unknown_actor_letters()) and all(c["command_id"] in found
                                                                       for _, c in unknown_actor) and found,
                     60, what="a dead letter for every command sent to no actor") if unknown_actor else {}
    for label, command in unknown_actor:
        assert "ActorNotFound" in by_id[command["command_id"]].detail, label
    own_ids = {c["command_id"] for _, c in bad if isinstance(c.get("command_id"), str)
               and c["command_id"].startswith(("bad-", "hyp-")) and len(c["command_id"]) <= 64}
    wait_for(lambda: own_ids <= {e["command_id"] for e in events.of(type="command.rejected")}, 30,
             what="a command.rejected event for every bad command with an id")
    rejected = events.of(type="command.rejected")
    by_cid: dict[str, list[dict[str, Any]]] = {}
    for e in rejected:
        by_cid.setdefault(str(e["command_id"]), []).append(e)
    for label, command in bad:
        found = letters[dead_letter_id("rejected", digest(command))]
        assert found.reason == "invalid_command", label
        assert found.detail and (found.problem or {}).get("detail"), label
        own_id = command.get("command_id")
        if isinstance(own_id, str) and own_id.startswith(("bad-", "hyp-")) and len(own_id) <= 64:
            assert len({e["event_id"] for e in by_cid.get(own_id, [])}) == 1, f"{label}: one command.rejected"
            event = by_cid[own_id][0]
            assert event["problem"]["reason"] == "invalid_command" and event["problem"]["detail"], label
    sizes = [len(json.dumps(c)) for _, c in bad]
    oversized = [letter for letter in letters.values() if "larger than" in letter.detail]
    assert oversized and max(sizes) > 16_384

    # Messages no actor can take, or no command can come from.
    wait_for(lambda: dlq.find(limit=10, reason="unknown_actor") and
             len(dlq.find(limit=100, reason="undecodable")) >= len(undecodable), 60, what="actor/poison DLQ")
    unknown = dlq.find(limit=100, reason="unknown_actor")
    assert {letter.actor for letter in unknown} >= {"charge_explode", "nope_actor"}
    assert all(letter.detail for letter in unknown)
    events.wait(command_id="bad-unknown-type", type="command.dead_lettered")
    assert len(events.of(command_id="bad-wrong-actor", type="command.rejected")) == 1
    # What the pipeline judges for a message that is not one command object: its args and kwargs as sent.
    shapes = []
    for label, _, _, args, kwargs in broker_messages[1:]:
        judged = args[0] if len(args) == 1 and not kwargs else {"args": list(args), "kwargs": kwargs}
        letter_id = dead_letter_id("rejected", digest(judged))
        wait_for(lambda i=letter_id: dlq.get(i) is not None, 30, what=f"dead letter for {label}")  # type: ignore[misc]
        letter = dlq.get(letter_id)
        assert letter is not None and letter.reason == "invalid_command" and letter.detail, label
        assert json.loads(json.dumps(letter.payload)) == json.loads(json.dumps(judged)), label
        shapes.append(letter)
    poison = dlq.find(limit=100, reason="undecodable")

    # Nothing reached Vipps but the valid commands; the worker is still alive and nothing is stuck.
    effects = simulator.effects()
    assert len(effects) == len(valid_ids), effects[:3]
    assert simulator.effects(duplicates="true") == []
    assert worker.process.poll() is None
    keys = Keys("vipps-billing")
    assert redis_client.zcard(keys.inflight) == 0 and redis_client.zcard(keys.retry) == 0

    print(f"\nbad input: tried {tried} malformed messages ({len(hand)} hand-written commands, {len(generated)} "
          f"hypothesis-generated, {len(odd) + len(broker_messages)} bad message shapes, {len(undecodable)} "
          f"undecodable byte strings) and {len(valid_ids)} valid commands; {len(rejected)} command.rejected "
          f"events, {len(unknown)} unknown-actor and {len(poison)} undecodable dead letters, "
          f"{len(shapes)} message-shape rejections; all {len(valid_ids)} valid commands succeeded")


def test_a_command_for_another_merchant_is_rejected_and_never_sent(stack: tuple[Simulator, Worker, Events],
                                                                   redis_url: str) -> None:
    """A worker calls Vipps as its own MSN: a command naming another would take effect on the wrong merchant."""
    simulator, _, events = stack
    p = producer(redis_url)
    try:
        p.send({"command_id": "msn-other", "msn": "654321"} | VALID["agreement.create"])
        p.send({"command_id": "msn-own", "msn": "123456"} | VALID["agreement.create"])
    finally:
        p.close()
    rejected = events.wait(command_id="msn-other", type="command.rejected")
    assert rejected["problem"]["errors"] == [{"field": "msn", "text": "this worker serves MSN 123456"}]
    assert "654321" in rejected["problem"]["detail"]
    created = events.wait(command_id="msn-own", type="agreement.created")
    assert created["msn"] == "123456"
    assert events.of(command_id="msn-other", type="agreement.created") == []
    assert len(simulator.effects()) == 1
