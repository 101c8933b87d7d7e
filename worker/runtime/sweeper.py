"""The sweeper: nothing stays stuck, whatever dramatiq lost.

- scheduled retries whose time has come go back onto their queue;
- attempts whose lease expired, or whose worker stopped heartbeating, are re-driven
  from the ledger (the ledger keeps every command's payload);
- messages a live worker fetched but could not decode are moved to the dead letters;
- dead letters past their retention are pruned, and so is what was seen of charges settled longer ago than
  the ledger keeps finished commands.
Every step is safe to run in several processes at once: schedules are taken
atomically and a second delivery of a command is a no-op in the ledger.
"""

from __future__ import annotations

import logging
import time

import redis

from worker.core.observer import PipelineObserver
from worker.runtime.broker import UNDECODABLE_ACTOR, is_decodable, poison_digest
from worker.runtime.settings import WorkerSettings
from worker.store.clock import now_ms
from worker.store.commands import CommandQueue
from worker.store.deadletters import DeadLetter, DeadLetterStore, dead_letter_id
from worker.store.keys import Layout
from worker.store.ledger import Ledger
from worker.store.replies import text, texts
from worker.store.schedules import Schedules
from worker.store.watchlist import Watchlist

log = logging.getLogger("worker.runtime.sweeper")

PUSH_MS = 30_000


class Sweeper:
    def __init__(self, client: redis.Redis, layout: Layout, ledger: Ledger, dead_letters: DeadLetterStore,
                 watchlist: Watchlist, settings: WorkerSettings, *, observer: PipelineObserver | None = None) -> None:
        self.redis = client
        self.layout = layout
        self.keys = layout.keys
        self.ledger = ledger
        self.dead_letters = dead_letters
        self.watchlist = watchlist
        self.settings = settings
        self.observer = observer or PipelineObserver()
        self.commands = CommandQueue(client, layout)
        self.schedules = Schedules(client)
        self._last_poison_scan = 0.0
        self._last_prune = 0.0

    def sweep(self) -> dict[str, int]:
        counts = {"retries": self.redrive(self.keys.retry), "expired": self.redrive(self.keys.inflight),
                  "orphaned": self.redrive_orphans()}
        now = time.monotonic()
        if now - self._last_poison_scan > 30:
            self._last_poison_scan = now
            counts["poison"] = self.clear_poison()
        if now - self._last_prune > 3600:
            self._last_prune = now
            counts["pruned"] = self.dead_letters.prune()
            counts["settled_forgotten"] = self.prune_settled()
        return counts

    def prune_settled(self, batch: int = 1000, batches: int = 100) -> int:
        """What was seen of resources settled longer ago than finished commands are kept, in bounded batches."""
        cutoff = now_ms() - self.settings.ledger_retention_days * 86_400_000
        total = 0
        for _ in range(batches):
            forgotten = self.watchlist.prune_settled(older_than_ms=cutoff, limit=batch)
            total += forgotten
            if forgotten < batch:
                break
        return total

    def redrive(self, schedule: str) -> int:
        """Re-enqueue commands whose scheduled time (retry or lease expiry) has passed."""
        due = self.schedules.take_due(schedule, now=now_ms(), limit=500, push_ms=PUSH_MS)
        for command_id in due:
            self._enqueue(command_id)
        return len(due)

    def redrive_orphans(self) -> int:
        """Re-enqueue commands held by workers whose heartbeat stopped (faster than waiting for the lease)."""
        stale = set(texts(self.redis.zrangebyscore(
            self.layout.dramatiq.heartbeats, "-inf", now_ms() - self.settings.heartbeat_timeout_ms)))
        if not stale:
            return 0
        held = texts(self.redis.zrangebyscore(self.keys.inflight, now_ms(), "+inf"))
        count = 0
        for command_id in held:
            holder = self.redis.hget(self.keys.command(command_id), "broker")
            if holder is not None and text(holder) in stale:
                self.redis.zadd(self.keys.inflight, {command_id: now_ms() + PUSH_MS}, xx=True)
                self._enqueue(command_id)
                count += 1
        return count

    def _enqueue(self, command_id: str) -> None:
        payload = self.ledger.payload(command_id)
        if payload is None:
            self.redis.zrem(self.keys.retry, command_id)
            self.redis.zrem(self.keys.inflight, command_id)
            return
        self.commands.enqueue([payload])
        log.info("command re-driven", extra={"command_id": command_id})

    def clear_poison(self) -> int:
        """Move undecodable messages out of live workers' hands and into the dead letters."""
        dq = self.layout.dramatiq
        moved = 0
        for ack_key in self.redis.scan_iter(match=dq.acks_pattern, count=500):
            _, queue = dq.acks_queue(text(ack_key))
            for message_id in texts(self.redis.smembers(ack_key)):
                data = self.redis.hget(dq.messages(queue), message_id)
                if not isinstance(data, bytes) or is_decodable(data):
                    continue
                self.record_poison(data, queue=queue, reason="undecodable")
                pipe = self.redis.pipeline(transaction=True)
                pipe.hdel(dq.messages(queue), message_id)
                pipe.srem(ack_key, message_id)
                pipe.execute()
                moved += 1
        return moved

    def record_poison(self, data: bytes | str, *, queue: str | None, reason: str) -> None:
        raw = data if isinstance(data, bytes) else data.encode()
        if self.dead_letters.add(DeadLetter(
                id=dead_letter_id("poison", poison_digest(raw)), reason=reason, at_ms=now_ms(), queue=queue,
                actor=UNDECODABLE_ACTOR, detail="message could not be decoded as a dramatiq message",
                payload={"raw": raw.decode("utf-8", "replace")[:16_384]})):
            # Nothing in it can be read; a merchant's own queue still says whose it was.
            self.observer.dead_lettered(reason, self.layout.merchant_of(queue) if queue else None)

