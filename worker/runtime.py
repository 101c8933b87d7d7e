"""One worker process's wiring: clients, ledger, pipeline, and its background loops.

Built once per process (after fork) by ``RuntimeMiddleware``; the loops (outbox
relay, sweeper, watch poller, health beat) stop with the worker.
"""

from __future__ import annotations

import datetime as dt
import gc
import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dramatiq
from dramatiq import Broker, Middleware

from schemas import EventType, event_id
from worker import metrics
from worker.broker import BillingRedisBroker, LedgerAckingConsumer
from worker.deadletters import DeadLetter, DeadLetterStore, dead_letter_id
from worker.eventqueue import EventQueue
from worker.handlers import Context
from worker.keys import Keys
from worker.ledger import Ledger, now_ms
from worker.outbox import Relay
from worker.pipeline import Pipeline
from worker.settings import WorkerSettings
from worker.store.vipps_state import redis_backends
from worker.sweeper import Sweeper
from worker.vipps import VippsClient, VippsSettings, load_settings
from worker.vipps.config import VippsEnvironment
from worker.watch import PollPolicy, Watcher

log = logging.getLogger("worker.runtime")


def health_dir() -> Path | None:
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    return Path(path) if path else None


class Runtime:
    def __init__(self, settings: WorkerSettings, broker: Broker, redis_url: str,
                 vipps_settings: VippsSettings | None = None) -> None:
        from worker.broker import redis_client

        self.settings = settings
        self.broker = broker
        self.vipps_settings = vipps_settings or load_settings()
        self.redis = redis_client(redis_url)
        self.keys = Keys(settings.key_prefix)
        self.client = VippsClient(self.vipps_settings, **redis_backends(self.redis), observer=metrics.MetricsObserver(),
                                  key_prefix=settings.key_prefix)
        events = EventQueue(settings.dramatiq_namespace, settings.events_queue, settings.events_actor)
        self.relay = Relay(self.redis, self.keys, events, on_published=metrics.event_published)
        self.ledger = Ledger(self.redis, self.keys, heartbeats_key=f"{settings.dramatiq_namespace}:__heartbeats__",
                             heartbeat_timeout_ms=settings.heartbeat_timeout_ms,
                             retention_seconds=settings.ledger_retention_days * 86_400, events=events,
                             on_published=metrics.events_published_all)
        self.dead_letters = DeadLetterStore(self.redis, self.keys, retention_days=settings.dead_letter_retention_days)
        charge_every = settings.charge_poll_seconds
        if charge_every is None and self.vipps_settings.env is VippsEnvironment.SIMULATOR:
            charge_every = 2.0
        policy = PollPolicy(agreement_start=settings.agreement_poll_start_seconds,
                            agreement_every=settings.agreement_poll_seconds,
                            agreement_max=settings.agreement_poll_max_seconds,
                            agreement_give_up=settings.agreement_poll_give_up_seconds,
                            agreement_active=settings.agreement_active_poll_seconds,
                            charge_every=charge_every, charge_give_up_days=settings.charge_poll_give_up_days)
        msn = self.vipps_settings.msn or ""
        self.watcher = Watcher(self.client, self.redis, self.keys, self.ledger, msn=msn, policy=policy)
        self.context = Context(client=self.client, msn=msn, watcher=self.watcher,
                               now=lambda: dt.datetime.now(dt.UTC))
        self.pipeline = Pipeline(self.context, self.ledger, self.dead_letters, settings,
                                 broker_id=getattr(broker, "broker_id", "local"))
        self.sweeper = Sweeper(self.redis, self.keys, self.ledger, self.dead_letters, broker, settings)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._orphans: dict[str, set[str]] = {}  # per queue: seen held by nobody on the last round

    def start_loops(self, alive: Callable[[], bool] | None = None,
                    consumers: Callable[[], dict[str, Any]] | None = None) -> None:
        loops: list[tuple[str, float, Callable[[], Any]]] = [
            ("relay", self.settings.relay_interval_seconds, self.relay.relay),
            ("sweeper", self.settings.sweep_interval_seconds, self.sweeper.sweep),
            ("watch", self.settings.watch_interval_seconds, lambda: self.watcher.poll_once(self.settings.watch_batch)),
        ]
        if alive is not None:
            loops.append(("health", 2.0, lambda: self._beat(alive)))
        if consumers is not None and isinstance(self.broker, BillingRedisBroker):
            loops.append(("orphans", self.settings.sweep_interval_seconds,
                          lambda: self.requeue_orphans(consumers())))
        for name, interval, step in loops:
            thread = threading.Thread(target=self._loop, args=(name, interval, step), name=f"vipps-{name}",
                                      daemon=True)
            thread.start()
            self._threads.append(thread)

    def _loop(self, name: str, interval: float, step: Callable[[], Any]) -> None:
        while not self._stop.is_set():
            busy = False
            try:
                result = step()
                busy = bool(result) and name in ("relay", "watch")
            except Exception:
                log.exception("background loop failed", extra={"loop": name})
            if not busy:
                self._stop.wait(interval)

    def requeue_orphans(self, consumers: dict[str, Any]) -> int:
        """Put back messages this process fetched but holds nowhere, once seen so on two rounds in a row
        (a fetch in progress holds its messages a moment before the consumer has them)."""
        broker = self.broker
        assert isinstance(broker, BillingRedisBroker)
        requeued = 0
        for queue, thread in consumers.items():
            consumer = getattr(thread, "consumer", None)
            found = broker.orphans(queue, consumer if isinstance(consumer, LedgerAckingConsumer) else None)
            confirmed = found & self._orphans.get(queue, set())
            self._orphans[queue] = found - confirmed
            if confirmed:
                broker.do_requeue(queue, *sorted(confirmed))
                metrics.orphans_requeued.labels(queue).inc(len(confirmed))
                log.warning("requeued messages fetched but held by nobody",
                            extra={"queue": queue, "count": len(confirmed)})
                requeued += len(confirmed)
        return requeued

    def _beat(self, alive: Callable[[], bool]) -> None:
        directory = health_dir()
        if directory is not None and alive():
            (directory / f"health-{os.getpid()}").touch()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)
        directory = health_dir()
        if directory is not None:
            (directory / f"health-{os.getpid()}").unlink(missing_ok=True)
        self.client.close()
        self.redis.close()

    def dead_letter_message(self, message: Any, reason: str, detail: str) -> None:
        """A message dramatiq dead-lettered (unknown actor, undecodable, repeated crash)."""
        args = list(message.args)
        command = args[0] if len(args) == 1 and isinstance(args[0], dict) else None
        cid = command.get("command_id") if command and isinstance(command.get("command_id"), str) else None
        if message.actor_name == "__undecodable__":
            self.sweeper.record_poison(str(args[0]) if args else "", queue=None, reason="undecodable")
            return
        self.dead_letters.add(DeadLetter(
            id=dead_letter_id("message", message.message_id), reason=reason, detail=detail[:500], at_ms=now_ms(),
            command_id=cid, command_type=str(command.get("type")) if command else None, queue=message.queue_name,
            actor=message.actor_name, payload=command if command is not None else args))
        if cid:
            problem = {"reason": reason, "detail": detail[:500]}
            event = {"event_id": event_id(cid, EventType.COMMAND_DEAD_LETTERED.value), "command_id": cid,
                     "type": EventType.COMMAND_DEAD_LETTERED.value, "command_type": command.get("type") if command
                     else None, "occurred_at": dt.datetime.now(dt.UTC).isoformat(), "problem": problem,
                     "msn": self.context.msn, "correlation_id": command.get("correlation_id") if command else None}
            self.ledger.observe([event], [])
            metrics.commands.labels(str(command.get("type")) if command else "invalid", "dead_lettered").inc()


_runtime: Runtime | None = None
_lock = threading.Lock()


_config: tuple[WorkerSettings, str] | None = None


def get_runtime() -> Runtime:
    """This process's runtime; built on first use (a message may arrive before the worker-boot hook ran)."""
    if _runtime is not None:
        return _runtime
    if _config is None:
        raise RuntimeError("the worker runtime is not configured")
    return start_runtime(_config[0], dramatiq.get_broker(), _config[1])


def start_runtime(settings: WorkerSettings, broker: Broker, redis_url: str) -> Runtime:
    global _runtime
    with _lock:
        if _runtime is None:
            _runtime = Runtime(settings, broker, redis_url)
        return _runtime


def stop_runtime() -> None:
    global _runtime
    with _lock:
        if _runtime is not None:
            _runtime.stop()
            _runtime = None


class RuntimeMiddleware(Middleware):
    """Starts the process's runtime with the worker, stops it at shutdown, dead-letters what dramatiq drops."""

    def __init__(self, settings: WorkerSettings, redis_url: str) -> None:
        global _config
        self.settings = settings
        self.redis_url = redis_url
        _config = (settings, redis_url)

    @property
    def forks(self) -> list[Callable[[], int]]:
        from worker.exposition import serve_from_env

        return [serve_from_env]

    def after_worker_boot(self, broker: Broker, worker: dramatiq.Worker) -> None:
        runtime = start_runtime(self.settings, broker, self.redis_url)

        def alive() -> bool:
            threads = list(getattr(worker, "workers", [])) + list(getattr(worker, "consumers", {}).values())
            return all(t.is_alive() for t in threads)

        runtime.start_loops(alive, consumers=lambda: dict(getattr(worker, "consumers", {})))
        # Everything built so far (modules, schemas, clients) lives as long as the process: keep it out of
        # the collector's full passes, which otherwise rescan it while commands run.
        gc.freeze()

    def after_worker_shutdown(self, broker: Broker, worker: dramatiq.Worker) -> None:
        stop_runtime()

    def after_nack(self, broker: Broker, message: Any) -> None:
        exc = getattr(message, "_exception", None)
        if message.actor_name == "__undecodable__":
            reason = "undecodable"
        elif exc is not None and type(exc).__name__ == "ActorNotFound":
            reason = "unknown_actor"
        else:
            reason = "worker_error"
        detail = f"{type(exc).__name__}: {exc}" if exc is not None else reason
        try:
            runtime = _runtime or start_runtime(self.settings, broker, self.redis_url)
            runtime.dead_letter_message(message, reason, detail)
        except Exception:
            log.exception("could not record a dead letter", extra={"message_id": message.message_id})
