"""Webhook delivery: each event to every matching registration, over real HTTP, from a thread of its own.

``publish`` (called by the engine, on the request's thread) queues one delivery per matching registration and
returns at once; a background thread with its own event loop sends them with httpx, so a slow or dead receiver
never slows a Recurring call. Per registration at most one request is in flight, and deliveries go out in the
order their events were made. A delivery waits while an earlier delivery of its registration with the same
ordering key is pending (``webhook_order``: the agreement, by default; the charge; or the registration).

An attempt succeeds when the receiver answers 2xx within ``webhook_timeout_seconds``; otherwise it is retried by
``webhook_record.retry_wait``. Waits are on the simulated clock (``advance`` sends what has become due) and the
7 days count from when the delivery was queued. State is guarded by one lock; the lock is held only to queue,
pick and book, never across a request.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import random
import threading
import time
import uuid
from typing import Any

import httpx

from worker.simulator.clock import SimClock
from worker.simulator.config import SimulatorConfig
from worker.simulator.faults import DeliveryFaults, DeliveryPlan
from worker.simulator.webhook_events import WebhookEvent
from worker.simulator.webhook_record import HORIZON, UNRESPONSIVE, DeliveryLog, Outcome, Pending, retry_wait
from worker.simulator.webhook_registry import Registration, Registry
from worker.simulator.webhook_signing import http_date, signed_headers


class Webhooks:
    """Registrations, the deliveries waiting per registration, the delivery record, and the sending thread."""

    def __init__(self, config: SimulatorConfig, clock: SimClock) -> None:
        self.config = config
        self.clock = clock
        self.lock = threading.Lock()
        self.faults = DeliveryFaults(config.webhook_faults, config.seed)
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake = asyncio.Event()
        self._closing = False
        self._tasks: set[asyncio.Task[None]] = set()
        self.generation = 0
        self._fresh()

    def _fresh(self) -> None:
        self.generation += 1
        self.registry = Registry(self.config.webhook_limit_per_event)
        self.queues: dict[str, list[Pending]] = {}
        # Registration id -> the delivery being attempted for it.
        self.in_flight: dict[str, int] = {}
        self.log = DeliveryLog()
        self.deliveries = 0
        self.rng = random.Random(f"{self.config.seed}:webhooks")

    # ----------------------------------------------------------------- on the request's thread

    def register(self, owner: str, msn: str | None, msns: tuple[str, ...], url: str, events: list[str]) -> Registration:
        with self.lock:
            registration = Registration(
                id=str(uuid.UUID(int=self.rng.getrandbits(128), version=4)),
                url=url,
                events=tuple(events),
                secret=self._secret(),
                owner=owner,
                msn=msn,
                msns=msns,
                created=self.clock.timestamp(),
            )
            self.registry.add(registration)
            self.queues[registration.id] = []
            return registration

    def _secret(self) -> str:
        # Shaped like the official test vector's secret: 64 random bytes, base64.
        return base64.b64encode(self.rng.randbytes(64)).decode()

    def unregister(self, registration_id: str) -> None:
        """Delete a registration; what it still had to deliver is forgotten."""
        with self.lock:
            self.registry.remove(registration_id)
            self.queues.pop(registration_id, None)

    def visible(self, owner: str, msn: str | None) -> list[Registration]:
        with self.lock:
            return self.registry.visible(owner, msn)

    def publish(self, event: WebhookEvent) -> None:
        """Queue ``event`` for every registration that wants it (the engine calls this at each state change)."""
        with self.lock:
            targets = self.registry.matching(event.msn, event.event_type)
            if not targets:
                return
            now = self.clock.timestamp()
            body = json.dumps(event.payload, separators=(",", ":")).encode()
            for registration in targets:
                self.deliveries += 1
                item = Pending(self.deliveries, registration, event, body, self._order_key(event), now, now)
                self.queues[registration.id].append(item)
            self._start()
        self.wake()

    def _order_key(self, event: WebhookEvent) -> str:
        if self.config.webhook_order == "registration":
            return ""
        if self.config.webhook_order == "charge" and event.charge_id is not None:
            return "charge:" + event.charge_id
        return "agreement:" + event.agreement_id

    def wake(self) -> None:
        """Look again at what is due (the clock moved, or something was queued)."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # closing
                loop.call_soon_threadsafe(self._wake.set)

    def reset(self) -> None:
        with self.lock:
            self._fresh()
            self.faults.configure(self.config.webhook_faults, self.config.seed)
            self.faults.counts.clear()

    def close(self) -> None:
        """Stop the sending thread (attempts in flight are abandoned)."""
        self._closing = True
        self.wake()
        thread = self._thread
        if thread is not None:
            thread.join(timeout=self.config.webhook_timeout_seconds + 5)

    def active(self) -> bool:
        """Whether anything is registered (the app then runs timed transitions without waiting for a call)."""
        return bool(self.registry.items)

    def stats(self) -> dict[str, Any]:
        with self.lock:
            attempts = list(self.log.items)
            return {
                "registrations": len(self.registry.items),
                "pending": sum(len(queue) for queue in self.queues.values()),
                "attempts": len(attempts),
                "delivered": sum(1 for a in attempts if a.result == "delivered"),
                "dropped": sum(1 for a in attempts if a.result == "dropped"),
                "faults_injected": dict(self.faults.counts),
            }

    def pending(self) -> list[dict[str, Any]]:
        with self.lock:
            views = []
            for registration_id, queue in self.queues.items():
                first: dict[str, int] = {}
                for item in queue:
                    blocked_by = first.setdefault(item.order_key, item.delivery_id)
                    in_flight = self.in_flight.get(registration_id) == item.delivery_id
                    views.append(item.view(None if blocked_by == item.delivery_id else blocked_by, in_flight))
            return sorted(views, key=lambda view: view["delivery_id"])

    # ----------------------------------------------------------------- the sending thread

    def _start(self) -> None:
        if self._thread is not None or self._closing:
            return
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="simulator-webhooks", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        assert self._loop is not None
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._main())
        finally:
            self._loop.close()

    async def _main(self) -> None:
        async with httpx.AsyncClient(trust_env=False, follow_redirects=False) as client:
            while not self._closing:
                self._wake.clear()
                wait = self._start_due(client)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), wait)
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def _start_due(self, client: httpx.AsyncClient) -> float | None:
        """Start one attempt for each registration that has none in flight and a due delivery that waits for
        nothing; the seconds until the next one falls due (None: nothing waits)."""
        with self.lock:
            now = self.clock.timestamp()
            soonest: float | None = None
            for registration_id, queue in self.queues.items():
                if registration_id in self.in_flight or not queue:
                    continue
                # The first in the queue waits for nothing; the common case (nothing failing) needs no more.
                heads = [queue[0]] if queue[0].next_at <= now else _heads(queue)
                due = [item for item in heads if item.next_at <= now]
                if not due:
                    first = min(item.next_at for item in heads)
                    soonest = first if soonest is None else min(soonest, first)
                    continue
                item = due[0]
                self.in_flight[registration_id] = item.delivery_id
                plan = self.faults.plan(item.event.event_type)
                task = asyncio.ensure_future(self._attempt(client, item, plan, self.generation))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            return None if soonest is None else max(0.0, soonest - now)

    async def _attempt(self, client: httpx.AsyncClient, item: Pending, plan: DeliveryPlan, generation: int) -> None:
        duplicate: Outcome | None = None
        if self.clock.timestamp() - item.queued_at > HORIZON:
            outcome = Outcome(sent=False, error="dropped: queued more than 7 days ago", dropped=True)
        elif plan.fail:
            outcome = Outcome(sent=False, sent_at=self.clock.timestamp(), error="injected failure (not sent)")
        else:
            if plan.delay:
                await asyncio.sleep(plan.delay)
            outcome = await self._send(client, item)
            if plan.duplicate:
                duplicate = await self._send(client, item)
        with self.lock:
            if generation == self.generation:
                self._book(item, outcome, duplicate)
                self.in_flight.pop(item.registration.id, None)
        self.wake()

    async def _send(self, client: httpx.AsyncClient, item: Pending) -> Outcome:
        registration = item.registration
        # The receiver checks x-ms-date against its own clock: the real one, not the simulated.
        headers = signed_headers(registration.secret, registration.url, http_date(time.time()), item.body)
        sent_at, started = self.clock.timestamp(), time.monotonic()
        timeout = self.config.webhook_timeout_seconds
        status, error = None, None
        try:
            post = client.post(registration.url, content=item.body, headers=headers, timeout=timeout)
            response = await asyncio.wait_for(post, timeout)
            status = response.status_code
        except (TimeoutError, httpx.TimeoutException):
            error = f"no answer within {timeout:g} s"
        except Exception as exc:  # any failure to deliver is the receiver's failure, never the thread's
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        duration = round((time.monotonic() - started) * 1000, 1)
        return Outcome(True, status, error, sent_at, duration, headers)

    def _book(self, item: Pending, outcome: Outcome, duplicate: Outcome | None) -> None:
        """The attempt in the record, and what follows it: done, a retry, or dropped."""
        registration, now = item.registration, self.clock.timestamp()
        queue = self.queues.get(registration.id)
        item.attempts += 1
        next_at: float | None = None
        if queue is None:
            result = "registration-deleted"
        elif outcome.ok:
            result = "delivered"
            registration.failing_since = None
            queue.remove(item)
        elif outcome.dropped:
            result = "dropped"
            queue.remove(item)
        else:
            registration.failing_since = registration.failing_since or now
            next_at = now + retry_wait(item.attempts, self.config.webhook_retry_seconds)
            result = "retry" if next_at - item.queued_at <= HORIZON else "dropped"
            if result == "retry":
                item.next_at = next_at
            else:
                next_at = None
                queue.remove(item)
            if now - registration.failing_since >= UNRESPONSIVE:
                result, next_at = "registration-deleted", None
                self.registry.remove(registration.id)
                del self.queues[registration.id]
        self.log.record(item, outcome, result, next_at)
        if duplicate is not None:
            self.log.record(item, duplicate, "duplicate", None, duplicate=True)


def _heads(queue: list[Pending]) -> list[Pending]:
    """The first pending delivery of each ordering key, in queue order: the only ones that may go next."""
    seen: set[str] = set()
    heads = []
    for item in queue:
        if item.order_key not in seen:
            seen.add(item.order_key)
            heads.append(item)
    return heads
