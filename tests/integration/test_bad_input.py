"""Malformed commands end as ``command.rejected`` or a dead letter with a clear reason, and never stop the worker.

Hand-written cases cover each kind of bad input by name; hypothesis adds mutated commands (fields dropped,
replaced by arbitrary JSON, extra fields). All go onto the queues unchecked, interleaved with valid commands,
through a real worker process. Every bad one must leave exactly one trace (a rejected event with a reason, or a
dead letter) and nothing at Vipps; every valid one must succeed.

    TEST_REDIS_DB=4 uv run pytest tests/integration/test_bad_input.py -s
    BAD_INPUT_EXAMPLES=1000 ... for a larger hypothesis sample (default 150)
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import hypothesis.strategies as st
import pytest
import redis
from hypothesis import HealthCheck, assume, given, settings
from pydantic import ValidationError

from schemas import COMMAND_TYPES, CommandAdapter, actor_name
from tests.stack import Events, Simulator, Worker, due_in, producer, wait_for
from worker.store.deadletters import DeadLetter, DeadLetterStore, dead_letter_id
from worker.store.keys import Keys

EXAMPLES = int(os.environ.get("BAD_INPUT_EXAMPLES", "150"))
NS = "dramatiq"

VALID: dict[str, dict[str, Any]] = {
    "agreement.create": {"type": "agreement.create", "product_name": "Gym", "pricing": {"amount": 29900},
                         "interval": {"unit": "MONTH", "count": 1},
                         "merchant_redirect_url": "https://example.com/back",
                         "merchant_agreement_url": "https://example.com/agreements/1"},
    "charge.create": {"type": "charge.create", "agreement_id": "agr_5kSeqz", "amount": 29900,
                      "description": "March", "due": due_in(7), "retry_days": 2,
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


# Combinations each field is valid in alone but not together: (label, command, the field the rejection names).
FIELD_RULE_CASES: list[tuple[str, dict[str, Any], str]] = [
    ("single attempt with retry days", VALID["charge.create"] | {"processing_mode": "SINGLE_ATTEMPT", "retry_days": 2},
     "retry_days"),
    ("unscheduled with due", {k: v for k, v in VALID["charge.create"].items() if k != "retry_days"}
     | {"charge_type": "UNSCHEDULED"}, "due"),
    ("unscheduled with processing mode", {k: v for k, v in VALID["charge.create"].items()
                                          if k not in ("due", "retry_days")}
     | {"charge_type": "UNSCHEDULED", "processing_mode": "SINGLE_ATTEMPT"}, "processing_mode"),
    ("recurring without due", {k: v for k, v in VALID["charge.create"].items() if k != "due"}
     | {"charge_type": "RECURRING"}, "due"),
    ("blocked source unknown", VALID["agreement.create"] | {"blocked_sources": ["PREPAID_CARDS"]},
     "blocked_sources.0"),
]
FIELD_RULES = [(label, command) for label, command, _ in FIELD_RULE_CASES]


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
        *FIELD_RULES,
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


@dataclass
class BadRun:
    """One worker fed every kind of bad input, interleaved with valid commands; the tests below check it."""

    simulator: Simulator
    worker: Worker
    events: Events
    dlq: DeadLetterStore
    client: redis.Redis
    hand: list[tuple[str, Any]]
    generated: list[tuple[str, Any]]
    bad: list[tuple[str, Any]] = field(default_factory=list)
    unknown_actor: list[tuple[str, Any]] = field(default_factory=list)
    odd: list[tuple[str, Any]] = field(default_factory=list)
    broker_messages: list[tuple[str, str, str, tuple[Any, ...], dict[str, Any]]] = field(default_factory=list)
    undecodable: list[bytes] = field(default_factory=list)
    valid_ids: list[str] = field(default_factory=list)

    @property
    def tried(self) -> int:
        return (len(self.bad) + len(self.unknown_actor) + len(self.odd) + len(self.broker_messages)
                + len(self.undecodable))


def split_cases(run: BadRun) -> None:
    # A generated "type" that names no actor goes to an actor that does not exist: dramatiq dead-letters the
    # message (reason unknown_actor) before any command validation; that is checked separately below.
    actors = {actor_name(t) for t in COMMAND_TYPES}
    run.unknown_actor = [(label, c) for label, c in run.generated
                         if isinstance(c.get("type"), str) and actor_name(c["type"]) not in actors]
    run.bad = run.hand + [(label, c) for label, c in run.generated if (label, c) not in run.unknown_actor]
    for label, command in run.bad:
        assert not is_valid(command), f"test case is valid: {label}"


def send_commands(run: BadRun, redis_url: str) -> None:
    with producer(redis_url) as p:
        for _, command in run.unknown_actor:
            p.send_raw(command)
        for i, (_, command) in enumerate(run.bad):
            p.send_raw(command)
            if i % 10 == 0:  # valid work interleaved with the bad
                cid = f"ok-{i}"
                p.send({"command_id": cid} | VALID["agreement.create"])
                run.valid_ids.append(cid)
        run.odd = [("unknown type", {"command_id": "bad-unknown-type", "type": "charge.explode", "amount": 100})]
        for _, command in run.odd:
            p.send_raw(command)


def send_odd_messages(run: BadRun, redis_url: str) -> None:
    """Messages no command can come from: wrong actor, no argument, two arguments, kwargs, a list; and bytes."""
    from dramatiq import Message

    from worker.runtime.broker import make_broker
    from worker.runtime.settings import WorkerSettings

    run.broker_messages = [
        ("unknown actor", "nope_actor", "vipps.charges", ({"command_id": "bad-unknown-actor"},), {}),
        ("no arguments", "charge_create", "vipps.charges", (), {}),
        ("two arguments", "charge_create", "vipps.charges", ({"command_id": "bad-two-a"}, 2), {}),
        ("kwargs", "charge_create", "vipps.charges", (), {"command": {"command_id": "bad-kw"}}),
        ("list argument", "agreement_fetch", "vipps.agreements", ([1, 2, 3],), {}),
        ("type sent to the wrong actor", "charge_cancel", "vipps.charges",
         ({"command_id": "bad-wrong-actor"} | VALID["charge.create"],), {}),
    ]
    broker = make_broker(WorkerSettings(), redis_url)
    for _, actor, queue, args, kwargs in run.broker_messages:
        broker.enqueue(Message(queue_name=queue, actor_name=actor, args=args, kwargs=kwargs, options={},
                               message_id=str(uuid.uuid4()), message_timestamp=0))
    broker.close()
    run.undecodable = [b"\xff\xfe\x00garbage", b"not json at all", b'{"actor_name": "charge_create"}', b"[]",
                       "\u00e6\u00f8\u00e5 {".encode("latin-1")]
    for data in run.undecodable:
        inject_raw(run.client, "vipps.charges", data)
    with producer(redis_url) as p:
        for cid in [f"ok-tail-{i}" for i in range(5)]:  # valid work after all the poison
            p.send({"command_id": cid} | VALID["agreement.create"])
            run.valid_ids.append(cid)


@pytest.fixture(scope="class")
def bad_run(redis_url: str) -> Iterator[BadRun]:
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    simulator = Simulator()
    worker = Worker(redis_url, simulator.url, threads=4)
    run = BadRun(simulator, worker, Events(client), DeadLetterStore(client, Keys("vipps-billing"), retention_days=30),
                 client, hand_written(), [(f"hypothesis {i}", {"command_id": f"hyp-{i}"} | c)
                                          for i, c in enumerate(hypothesis_commands(EXAMPLES))])
    try:
        split_cases(run)
        send_commands(run, redis_url)
        send_odd_messages(run, redis_url)
        yield run
    finally:
        worker.stop()
        simulator.stop()
        print(worker.output()[-5000:])
        client.flushdb()
        client.close()


def own_id(command: Any) -> str | None:
    """The test's own command id of a bad command, when it has a usable one."""
    cid = command.get("command_id") if isinstance(command, dict) else None
    return cid if isinstance(cid, str) and cid.startswith(("bad-", "hyp-")) and len(cid) <= 64 else None


class TestBadInput:
    def test_valid_commands_around_the_bad_ones_succeed(self, bad_run: BadRun) -> None:
        wait_for(lambda: all(bad_run.events.of(command_id=c, type="agreement.created") for c in bad_run.valid_ids),
                 120, what="valid commands done")

    def test_every_bad_command_has_a_dead_letter_and_one_rejection(self, bad_run: BadRun) -> None:
        """By its command_id when it has a valid one; the dead letter's id is the digest of its payload."""
        letters: dict[str, DeadLetter] = {}

        def all_rejected() -> bool:
            for _, command in bad_run.bad:
                letter_id = dead_letter_id("rejected", digest(command))
                if letter_id not in letters:
                    letter = bad_run.dlq.get(letter_id)
                    if letter is None:
                        return False
                    letters[letter_id] = letter
            return True

        wait_for(all_rejected, 120, what="every bad command rejected")
        ids = {cid for _, c in bad_run.bad if (cid := own_id(c))}
        wait_for(lambda: ids <= {e["command_id"] for e in bad_run.events.of(type="command.rejected")}, 30,
                 what="a command.rejected event for every bad command with an id")
        by_cid: dict[str, list[dict[str, Any]]] = {}
        for e in bad_run.events.of(type="command.rejected"):
            by_cid.setdefault(str(e["command_id"]), []).append(e)
        for label, command in bad_run.bad:
            found = letters[dead_letter_id("rejected", digest(command))]
            assert found.reason == "invalid_command", label
            assert found.detail and (found.problem or {}).get("detail"), label
            if (cid := own_id(command)) is not None:
                assert len({e["event_id"] for e in by_cid.get(cid, [])}) == 1, f"{label}: one command.rejected"
                event = by_cid[cid][0]
                assert event["problem"]["reason"] == "invalid_command" and event["problem"]["detail"], label
        oversized = [letter for letter in letters.values() if "larger than" in letter.detail]
        assert oversized and max(len(json.dumps(c)) for _, c in bad_run.bad) > 16_384

    def test_a_field_rule_names_its_field(self, bad_run: BadRun) -> None:
        """Fields that are valid alone but not together: the rejection names the field to fix."""
        labels = {label for label, _, _ in FIELD_RULE_CASES}
        ids = {label: cid for label, c in bad_run.hand if label in labels and (cid := own_id(c))}
        assert len(ids) == len(FIELD_RULE_CASES)
        for label, command, field_name in FIELD_RULE_CASES:
            rejected = bad_run.events.wait(command_id=ids[label], type="command.rejected")
            named = {e["field"] for e in rejected["problem"]["errors"]} - {f"{command['type']}.issued_at"}
            assert named == {f"{command['type']}.{field_name}"}, label  # sent raw: without issued_at as well

    def test_a_command_for_no_actor_is_dead_lettered(self, bad_run: BadRun) -> None:
        def letters() -> dict[str, DeadLetter]:
            return {d.command_id: d for d in bad_run.dlq.find(limit=100_000, reason="unknown_actor") if d.command_id}

        wanted = {c["command_id"] for _, c in bad_run.unknown_actor} | {"bad-unknown-type", "bad-unknown-actor"}
        by_id = wait_for(lambda: (found := letters()) and wanted <= set(found) and found, 60,
                         what="a dead letter for every command sent to no actor")
        for label, command in bad_run.unknown_actor:
            assert "ActorNotFound" in by_id[command["command_id"]].detail, label
        unknown = bad_run.dlq.find(limit=100_000, reason="unknown_actor")
        assert {letter.actor for letter in unknown} >= {"charge_explode", "nope_actor"}
        assert all(letter.detail for letter in unknown)
        bad_run.events.wait(command_id="bad-unknown-type", type="command.dead_lettered")

    def test_a_message_that_is_not_one_command_is_judged_as_it_was_sent(self, bad_run: BadRun) -> None:
        """Its args and kwargs as sent; a command sent to another type's actor is rejected too."""
        for label, _, _, args, kwargs in bad_run.broker_messages[1:]:
            judged = args[0] if len(args) == 1 and not kwargs else {"args": list(args), "kwargs": kwargs}
            letter_id = dead_letter_id("rejected", digest(judged))
            letter = wait_for(lambda i=letter_id: bad_run.dlq.get(i), 30,  # type: ignore[misc]
                              what=f"dead letter for {label}")
            assert letter.reason == "invalid_command" and letter.detail, label
            assert json.loads(json.dumps(letter.payload)) == json.loads(json.dumps(judged)), label
        assert len(bad_run.events.of(command_id="bad-wrong-actor", type="command.rejected")) == 1

    def test_undecodable_bytes_become_dead_letters(self, bad_run: BadRun) -> None:
        wait_for(lambda: len(bad_run.dlq.find(limit=100, reason="undecodable")) >= len(bad_run.undecodable), 60,
                 what="a dead letter for every undecodable message")

    def test_nothing_but_the_valid_commands_reached_vipps(self, bad_run: BadRun) -> None:
        """Runs last: the worker is alive, nothing is stuck, and only the valid commands had an effect."""
        wait_for(lambda: all(bad_run.events.of(command_id=c, type="agreement.created") for c in bad_run.valid_ids),
                 120, what="valid commands done")
        effects = bad_run.simulator.effects()
        assert len(effects) == len(bad_run.valid_ids), effects[:3]
        assert bad_run.simulator.effects(duplicates="true") == []
        assert bad_run.worker.process.poll() is None
        keys = Keys("vipps-billing")
        assert bad_run.client.zcard(keys.inflight) == 0 and bad_run.client.zcard(keys.retry) == 0
        print(f"\nbad input: tried {bad_run.tried} malformed messages ({len(bad_run.hand)} hand-written "
              f"commands, {len(bad_run.generated)} hypothesis-generated, "
              f"{len(bad_run.odd) + len(bad_run.broker_messages)} bad message shapes, "
              f"{len(bad_run.undecodable)} undecodable byte strings) and {len(bad_run.valid_ids)} valid commands")


def test_a_command_for_another_merchant_is_rejected_and_never_sent(stack: tuple[Simulator, Worker, Events],
                                                                   redis_url: str) -> None:
    """A command naming a merchant the deployment does not serve would take effect on the wrong one, or none."""
    simulator, _, events = stack
    p = producer(redis_url)
    try:
        p.send({"command_id": "msn-other", "msn": "654321"} | VALID["agreement.create"])
        p.send({"command_id": "msn-own", "msn": "123456"} | VALID["agreement.create"])
    finally:
        p.close()
    rejected = events.wait(command_id="msn-other", type="command.rejected")
    why = "MSN 654321 is not a merchant of this deployment (123456 (default))"
    assert rejected["problem"]["errors"] == [{"field": "msn", "text": why}] and rejected["problem"]["detail"] == why
    created = events.wait(command_id="msn-own", type="agreement.created")
    assert created["msn"] == "123456"
    assert events.of(command_id="msn-other", type="agreement.created") == []
    assert len(simulator.effects()) == 1
