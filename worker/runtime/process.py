"""One worker process's wiring: clients, ledger, pipeline, and its background loops.

Built once per process (after fork) through a ``RuntimeHolder``; the loops (outbox
relay, sweeper, watch poller, health beat) stop with the worker.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from dramatiq import Broker

from schemas import COMMAND_TYPES, EventType
from worker.core.batching import BatchPolicy
from worker.core.charge_runs import ChargeRuns
from worker.core.context import Contexts
from worker.core.events import EventBuilder, Origin, command_event_id
from worker.core.hints import Hints
from worker.core.pipeline import Pipeline
from worker.core.watch import PollPolicy, Watcher
from worker.runtime import metrics
from worker.runtime.broker import BillingRedisBroker, LedgerAckingConsumer
from worker.runtime.health import beat_file, write_beat
from worker.runtime.loops import Loop, Loops
from worker.runtime.settings import WorkerSettings
from worker.runtime.sweeper import Sweeper
from worker.store.batches import ChargeBatches
from worker.store.clock import now_ms
from worker.store.connection import Where, connect
from worker.store.deadletters import DeadLetter, DeadLetterStore, dead_letter_id
from worker.store.externals import ExternalIds
from worker.store.ledger import Ledger
from worker.store.outbox import Relay
from worker.store.vipps_state import redis_backends
from worker.store.watchlist import Watchlist
from worker.store.webhooks import WebhookQueue
from worker.vipps import VippsClient, VippsSettings, load_settings
from worker.vipps.config import VippsEnvironment
from worker.vipps.merchant_clients import MerchantClients
from worker.vipps.merchants import Merchants, load_merchants

log = logging.getLogger("worker.runtime.process")

BATCH_LOOP_SECONDS = 0.1  # how often each process looks for a merchant batch that is due


class Runtime:
    def __init__(self, settings: WorkerSettings, broker: Broker, redis_url: Where,
                 vipps_settings: VippsSettings | None = None, merchants: Merchants | None = None) -> None:
        self.settings = settings
        self.broker = broker
        self.vipps_settings = vipps_settings or load_settings()
        self.merchants = merchants or load_merchants(self.vipps_settings)
        self.redis = connect(redis_url)
        layout = settings.layout(self.merchants.msns)
        self.keys = layout.keys
        backends = redis_backends(self.redis)
        self.clients = MerchantClients(self.merchants, lambda s: VippsClient(
            s, observer=metrics.MetricsObserver(s.msn), key_prefix=settings.key_prefix, **backends))
        self.relay = Relay(self.redis, layout, on_published=metrics.event_published)
        self.ledger = Ledger(self.redis, layout, heartbeat_timeout_ms=settings.heartbeat_timeout_ms,
                             retention_seconds=settings.ledger_retention_days * 86_400,
                             on_published=metrics.events_published_all, replicas=settings.replicas(),
                             on_unreplicated=metrics.unreplicated)
        self.dead_letters = DeadLetterStore(self.redis, self.keys, retention_days=settings.dead_letter_retention_days)
        charge_every = settings.charge_poll_seconds
        if charge_every is None and self.vipps_settings.env is VippsEnvironment.SIMULATOR:
            charge_every = 2.0
        policy = PollPolicy(agreement_start=settings.agreement_poll_start_seconds,
                            agreement_every=settings.agreement_poll_seconds,
                            agreement_max=settings.agreement_poll_max_seconds,
                            agreement_give_up=settings.agreement_poll_give_up_seconds,
                            agreement_active=settings.agreement_active_poll_seconds,
                            charge_every=charge_every, charge_give_up_days=settings.charge_poll_give_up_days,
                            charge_created_check=settings.charge_created_check_seconds,
                            charge_creation_give_up=settings.charge_creation_give_up_seconds)
        only = self.merchants.only
        self.events = EventBuilder(msn=only.msn if only else None, now=lambda: dt.datetime.now(dt.UTC))
        self.watchlist = Watchlist(self.redis, self.keys)
        self.observer = metrics.PipelineMetrics(self.merchants.msns)
        externals = ExternalIds(self.redis, self.keys, retention_seconds=settings.ledger_retention_days * 86_400)
        self.watcher = Watcher(self.clients, self.watchlist, self.ledger, self.events, policy=policy,
                               last_webhook_ms=cached(WebhookQueue(self.redis, layout).last_delivery_ms, 10.0),
                               observer=self.observer, externals=externals)
        self.contexts = Contexts(self.clients, self.watcher, self.events)
        self.pipeline = Pipeline(self.contexts, self.ledger, self.dead_letters, retry=settings.retry_policy(),
                                 lease_ms=int(settings.lease_seconds * 1000),
                                 broker_id=getattr(broker, "broker_id", "local"), observer=self.observer,
                                 batching=settings.batch_policy(), externals=externals)
        self.charge_runs = ChargeRuns(self.pipeline, ChargeBatches(self.redis, self.keys),
                                      settings.batch_policy() or BatchPolicy(), lambda: self.merchants.msns,
                                      lease_ms=int(settings.lease_seconds * 1000),
                                      broker_id=getattr(broker, "broker_id", "local"))
        self.hints = Hints(self.clients, self.watcher, self.ledger, self.dead_letters, observer=self.observer)
        self.sweeper = Sweeper(self.redis, layout, self.ledger, self.dead_letters, self.watchlist, settings,
                               observer=self.observer)
        self.loops = Loops()
        self._orphans: dict[str, set[str]] = {}  # per queue: seen held by nobody on the last round

    def start_loops(self, alive: Callable[[], bool] | None = None,
                    consumers: Callable[[], dict[str, Any]] | None = None) -> None:
        settings = self.settings
        loops = [Loop("relay", settings.relay_interval_seconds, self.relay.relay, busy_again=True),
                 Loop("sweeper", settings.sweep_interval_seconds, self.sweeper.sweep),
                 Loop("watch", settings.watch_interval_seconds, lambda: self.watcher.poll_once(settings.watch_batch),
                      busy_again=True),
                 # Also with CHARGE_BATCH=off: commands parked before the switch still go out.
                 Loop("charge-batches", BATCH_LOOP_SECONDS, self.charge_runs.flush, busy_again=True)]
        if alive is not None:
            loops.append(Loop("health", 2.0, lambda: self._beat(alive)))
        if consumers is not None and isinstance(self.broker, BillingRedisBroker):
            loops.append(Loop("orphans", settings.sweep_interval_seconds, lambda: self.requeue_orphans(consumers())))
        self.loops.start(loops)

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
        directory = self.settings.prometheus_multiproc_dir
        if directory is not None and alive():
            write_beat(directory, credentials_refused=bool(self.clients.refused()))

    def stop(self) -> None:
        self.loops.stop()
        directory = self.settings.prometheus_multiproc_dir
        if directory is not None:
            beat_file(directory).unlink(missing_ok=True)
        self.clients.close()
        self.redis.close()

    def dead_letter_message(self, message: Any, reason: str, detail: str) -> None:
        """A message dramatiq dead-lettered (unknown actor, undecodable, repeated crash)."""
        args = list(message.args)
        command = args[0] if len(args) == 1 and isinstance(args[0], dict) else None
        cid = command.get("command_id") if command and isinstance(command.get("command_id"), str) else None
        if message.actor_name == "__undecodable__":
            self.sweeper.record_poison(str(args[0]) if args else "", queue=None, reason="undecodable")
            return
        ctype = command.get("type") if command else None
        msn = self.pipeline.msn_of(command)
        if self.dead_letters.add(DeadLetter(
                id=dead_letter_id("message", message.message_id), reason=reason, detail=detail[:500], at_ms=now_ms(),
                command_id=cid, command_type=str(ctype) if command else None, queue=message.queue_name,
                actor=message.actor_name, payload=command if command is not None else args, msn=msn)):
            self.observer.dead_lettered(reason, msn)
        if cid:
            kind = EventType.COMMAND_DEAD_LETTERED
            correlation = command.get("correlation_id") if command else None
            stamped = msn or self.events.msn
            origin = Origin(cid, correlation if isinstance(correlation, str) else None, stamped,
                            ctype if isinstance(ctype, str) else None)
            problem = {"reason": reason, "detail": detail[:500]}
            self.ledger.observe([self.events.caused(origin, kind, command_event_id(stamped, cid, kind),
                                                    problem=problem)])
            self.observer.finished(ctype if ctype in COMMAND_TYPES else "invalid", "dead_lettered", None, msn)


def cached(read: Callable[[], Any], seconds: float) -> Callable[[], Any]:
    """``read``, called at most once every ``seconds`` (the answer kept in between)."""
    kept: list[Any] = [None, -1.0]

    def get() -> Any:
        if time.monotonic() - kept[1] > seconds:
            kept[:] = [read(), time.monotonic()]
        return kept[0]

    return get


class RuntimeHolder:
    """This process's runtime, built once on first use (a message may arrive before the worker-boot hook ran)."""

    def __init__(self, settings: WorkerSettings, redis_url: Where, merchants: Merchants | None = None) -> None:
        self.settings = settings
        self.redis_url = redis_url
        self.merchants = merchants
        self._runtime: Runtime | None = None
        self._lock = threading.Lock()

    def get(self, broker: Broker) -> Runtime:
        runtime = self._runtime
        if runtime is not None:
            return runtime
        with self._lock:
            if self._runtime is None:
                self._runtime = Runtime(self.settings, broker, self.redis_url, merchants=self.merchants)
            return self._runtime

    def stop(self) -> None:
        with self._lock:
            if self._runtime is not None:
                self._runtime.stop()
                self._runtime = None
