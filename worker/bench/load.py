"""The bench's side of Redis: commands put on the queues as dramatiq does, progress read back.

Every key is the one the workers use: their settings (``KEY_PREFIX``, ``DRAMATIQ_NAMESPACE``, queue
names) with ``Keys`` and ``DramatiqKeys``.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from typing import Any

import redis

from worker.bench import naive
from worker.runtime.settings import WorkerSettings
from worker.store.commands import CommandQueue, message_id
from worker.store.keys import DramatiqKeys, Keys, command_ref
from worker.store.messages import encode_message
from worker.vipps.config import SIMULATOR_DEFAULTS

AGREEMENT: dict[str, Any] = {"type": "agreement.create", "product_name": "Bench", "pricing": {"amount": 49900},
             "interval": {"unit": "MONTH", "count": 1}, "merchant_redirect_url": "https://example.com/back",
             "merchant_agreement_url": "https://example.com/agreements/1", "phone_number": "4791234567"}
PIPELINE = 2000  # commands per pipelined round trip


def now() -> str:
    return dt.datetime.now(dt.UTC).isoformat()


def due() -> str:
    """The bench's charges are due in a week: none is processed while a run is measured."""
    return (dt.date.today() + dt.timedelta(days=7)).isoformat()


def charge_command(agreement_id: str, n: int, prefix: str) -> dict[str, Any]:
    return {"command_id": f"{prefix}-{n}", "type": "charge.create", "agreement_id": agreement_id,
            "amount": 100 + n % 1000, "description": f"Bench {n}", "due": due(), "retry_days": 0,
            "transaction_type": "DIRECT_CAPTURE", "issued_at": now()}


class Target:
    """The Redis a bench runs on, with the key layout of the workers it starts."""

    def __init__(self, url: str, settings: WorkerSettings, msn: str = SIMULATOR_DEFAULTS["msn"]) -> None:
        self.url = url
        self.settings = settings
        self.msn = msn  # the merchant of commands that name none
        self.client = redis.Redis.from_url(url, decode_responses=True)
        self.keys = Keys(settings.key_prefix)
        self.dramatiq = DramatiqKeys(settings.dramatiq_namespace)
        self.commands = CommandQueue(self.client, settings.layout())

    def close(self) -> None:
        self.client.close()

    def enqueue(self, commands: list[dict[str, Any]], *, to_naive: bool = False) -> None:
        """What dramatiq's Redis enqueue does (HSET + RPUSH), pipelined, so enqueueing is not what is measured.

        Each command goes to its worker queue and actor, or to the naive baseline's.
        """
        for start in range(0, len(commands), PIPELINE):
            pipe = self.client.pipeline(transaction=False)
            for command in commands[start:start + PIPELINE]:
                queue, actor = (naive.QUEUE, naive.ACTOR) if to_naive else self.commands.route(command)
                rid, message = encode_message(queue, actor, command, message_id=message_id(command))
                pipe.hset(self.dramatiq.messages(queue), rid, message)
                pipe.rpush(self.dramatiq.queue(queue), rid)
            pipe.execute()

    def status(self, command_id: str, msn: str | None = None) -> str | None:
        """The command's status in the worker's ledger (None before the worker took it)."""
        status = self.client.hget(self.keys.command(command_ref(msn or self.msn, command_id)), "status")
        return None if status is None else str(status)

    def events(self, command_id: str, msn: str | None = None) -> list[dict[str, Any]]:
        """The events the ledger recorded for a command."""
        raw = self.client.hget(self.keys.command(command_ref(msn or self.msn, command_id)), "events")
        events: list[dict[str, Any]] = json.loads(raw or "[]")
        return events

    def all_succeeded(self, command_ids: list[str], msn: str | None = None) -> Callable[[], bool]:
        return lambda: all(self.status(c, msn) == "succeeded" for c in command_ids)

    def route_merchants(self, msns: tuple[str, ...]) -> None:
        """Route commands as producers of a deployment with these merchants do (each to its own queues)."""
        self.commands = CommandQueue(self.client, self.settings.layout(msns))

    def finished_ms(self, command_ids: list[str], msn: str) -> list[int]:
        """When each of these commands of merchant ``msn`` finished (ms), those that have, from the ledger."""
        out: list[int] = []
        for start in range(0, len(command_ids), PIPELINE):
            pipe = self.client.pipeline(transaction=False)
            for cid in command_ids[start:start + PIPELINE]:
                pipe.hget(self.keys.command(command_ref(msn, cid)), "finished_ms")
            out += [int(v) for v in pipe.execute() if v]
        return out

    def published(self) -> int:
        """Events on the events queue (nobody consumes them in a bench run)."""
        return int(self.client.hlen(self.dramatiq.messages(self.settings.events_queue)))

    def published_messages(self) -> list[dict[str, Any]]:
        return [json.loads(raw) for raw in self.client.hvals(self.dramatiq.messages(self.settings.events_queue))]

    def queued_charges(self) -> int:
        return int(self.client.llen(self.dramatiq.queue(self.settings.charges_queue)))

    def in_flight(self) -> set[str]:
        """Commands (their command_id) an attempt holds right now."""
        return {str(ref).partition(":")[2] for ref in self.client.zrange(self.keys.inflight, 0, -1)}

    def in_outbox(self, event_id: str) -> bool:
        """The relay deletes an outbox entry once its event is on the events queue."""
        return bool(self.client.hexists(self.keys.outbox, event_id))

    def naive_done(self) -> int:
        return int(self.client.get(naive.DONE_KEY) or 0)

    def reset_naive(self) -> None:
        self.client.delete(naive.DONE_KEY)

    def cpu_seconds(self) -> float:
        """Redis's own CPU time so far."""
        info = self.client.info("cpu")
        return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])
