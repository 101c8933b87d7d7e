"""The worker's Prometheus metrics.

In the worker, ``PROMETHEUS_MULTIPROC_DIR`` is set before Python starts, so these
are written to files shared by every process and served by ``worker.runtime.http``
together with dramatiq's own. Gauges that describe Redis state (queues, outbox,
watchlist, dead letters) are read at scrape time by ``RedisStateCollector``.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterable

from prometheus_client import Counter, Histogram

from worker.core.observer import PipelineObserver
from worker.vipps.observer import NullObserver

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
END_TO_END_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)

# Series that concern one merchant carry ``msn``: a configured merchant's MSN, else NO_MERCHANT (a command
# that named no merchant of this deployment, an unreadable message on a shared queue). Never taken from input.
NO_MERCHANT = "-"
DEAD_LETTER_REASONS = ("invalid_command", "command_id_reused", "vipps_problem", "retries_exhausted", "undecodable",
                       "unknown_actor", "worker_error", "webhook_unknown_merchant", "webhook_unreadable",
                       "webhook_fetch_refused")

vipps_requests = Counter("vipps_billing_vipps_requests", "Calls to Vipps by operation and status class.",
                         ["operation", "status_class", "msn"])
vipps_latency = Histogram("vipps_billing_vipps_request_duration_seconds", "Vipps call latency.", ["operation"],
                          buckets=LATENCY_BUCKETS)
vipps_problems = Counter("vipps_billing_vipps_problems", "Vipps error responses by problem type.",
                         ["operation", "problem_type", "msn"])
vipps_rate_limited = Counter("vipps_billing_vipps_rate_limited", "429 responses from Vipps.", ["operation", "msn"])
budget_waits = Counter("vipps_billing_rate_budget_waits", "Calls held back by the shared rate budget.",
                       ["operation", "msn"])
token_refreshes = Counter("vipps_billing_token_refreshes", "Access token refreshes.", ["result", "msn"])
commands = Counter("vipps_billing_commands", "Commands by type and outcome.", ["type", "outcome", "msn"])
retries = Counter("vipps_billing_command_retries", "Command retries scheduled, by reason.",
                  ["type", "reason", "msn"])
replays = Counter("vipps_billing_idempotent_replays", "Redelivered finished commands whose events were re-sent.",
                  ["type", "msn"])
dead_letters_added = Counter("vipps_billing_dead_letters_added", "Records added to the dead-letter store, by reason.",
                             ["msn", "reason"])
end_to_end = Histogram("vipps_billing_command_end_to_end_seconds", "From issued_at to the command's outcome.",
                       ["type"], buckets=END_TO_END_BUCKETS)
queue_wait = Histogram("vipps_billing_queue_wait_seconds", "From enqueue to the start of processing.", ["queue"],
                       buckets=END_TO_END_BUCKETS)
webhook_hints = Counter("vipps_billing_webhook_hints", "Webhook deliveries carried out by the worker, by event "
                        "type and outcome (published, no_change, poll_soon, or why not).", ["event", "outcome"])
webhook_to_event = Histogram("vipps_billing_webhook_to_event_seconds", "From the receiver taking a delivery to "
                             "the worker publishing what its fetch found.", buckets=LATENCY_BUCKETS)
events_published = Counter("vipps_billing_events_published", "Events put on the events queue.", ["type"])
# What saw each transition first (the events' observed_by): transitions seen by the poller while webhooks are
# registered are webhooks that did not come, or came late.
OBSERVED_BY = ("webhook", "poll", "command")
transitions_seen = Counter("vipps_billing_transitions_seen", "Agreement and charge transitions the watcher saw, by "
                           "what saw them first (observed_by: webhook, poll, command).", ["observed_by"])
charge_batches = Counter("vipps_billing_charge_batches", "Requests to the batch endpoint, by outcome (sent, failed, "
                         "not_sent, refused).", ["msn", "outcome"])
BATCH_OUTCOMES = ("sent", "failed", "not_sent", "refused")
charge_batch_size = Histogram("vipps_billing_charge_batch_size", "Charges per request to the batch endpoint.",
                              buckets=(1, 2, 10, 50, 100, 250, 500, 1000, 1500, 2000))
unreplicated_writes = Counter("vipps_billing_redis_unreplicated_writes", "Outcomes and parks that fewer "
                              "replicas than REDIS_WAIT_REPLICAS acknowledged within REDIS_WAIT_TIMEOUT_MS.")
redis_failovers = Counter("vipps_billing_redis_failovers", "Changes of the Redis primary seen through Sentinel.")
orphans_requeued = Counter("vipps_billing_orphaned_messages_requeued",
                           "Fetched messages held by no worker of the process, put back on their queue.", ["queue"])


def unreplicated(acknowledged: int) -> None:
    unreplicated_writes.inc()


def event_published(kind: str) -> None:
    events_published.labels(kind).inc()


def events_published_all(kinds: list[str]) -> None:
    for kind in kinds:
        events_published.labels(kind).inc()


def status_class(status: int | None) -> str:
    if status is None:
        return "network"
    if status == 429:
        return "429"
    return f"{status // 100}xx"


class MetricsObserver(NullObserver):
    """Feeds one merchant's Vipps client's observations into the metrics above."""

    def __init__(self, msn: str | None) -> None:
        self.msn = msn or NO_MERCHANT
        for result in ("success", "failure"):  # present from the start: the first failure is an increase
            token_refreshes.labels(result, self.msn)

    def request_finished(self, operation: str, status: int | None, seconds: float, problem_type: str | None) -> None:
        vipps_requests.labels(operation, status_class(status), self.msn).inc()
        vipps_latency.labels(operation).observe(seconds)
        if problem_type:
            vipps_problems.labels(operation, problem_type, self.msn).inc()

    def rate_limited(self, operation: str, retry_after: float | None) -> None:
        vipps_rate_limited.labels(operation, self.msn).inc()

    def budget_exhausted(self, operation: str, wait: float) -> None:
        budget_waits.labels(operation, self.msn).inc()

    def token_refreshed(self, ok: bool) -> None:
        token_refreshes.labels("success" if ok else "failure", self.msn).inc()


class PipelineMetrics(PipelineObserver):
    """Feeds what the pipeline reports into the metrics above, labelled with the configured ``msns`` only."""

    def __init__(self, msns: Iterable[str]) -> None:
        self.msns = frozenset(msns)
        for msn in (*sorted(self.msns), NO_MERCHANT):  # present from the start: the first one is an increase
            for reason in DEAD_LETTER_REASONS:
                dead_letters_added.labels(msn, reason)
        for via in OBSERVED_BY:
            transitions_seen.labels(via)
        for msn in sorted(self.msns):
            for outcome in BATCH_OUTCOMES:
                charge_batches.labels(msn, outcome)

    def label(self, msn: str | None) -> str:
        return msn if msn is not None and msn in self.msns else NO_MERCHANT

    def waited_in_queue(self, queue: str, seconds: float) -> None:
        queue_wait.labels(queue).observe(seconds)

    def finished(self, command_type: str, outcome: str, issued_at: dt.datetime | None, msn: str | None) -> None:
        commands.labels(command_type, outcome, self.label(msn)).inc()
        if issued_at is not None:
            end_to_end.labels(command_type).observe(max(0.0, time.time() - issued_at.timestamp()))

    def retry_scheduled(self, command_type: str, reason: str, msn: str | None) -> None:
        retries.labels(command_type, reason, self.label(msn)).inc()

    def replayed(self, command_type: str, msn: str | None) -> None:
        replays.labels(command_type, self.label(msn)).inc()

    def budget_wait(self, operation: str, msn: str | None) -> None:
        budget_waits.labels(operation, self.label(msn)).inc()

    def dead_lettered(self, reason: str, msn: str | None) -> None:
        dead_letters_added.labels(self.label(msn), reason).inc()

    def published(self, kinds: list[str]) -> None:
        events_published_all(kinds)

    def hint_handled(self, event_type: str, outcome: str, seconds: float | None) -> None:
        webhook_hints.labels(event_type, outcome).inc()
        if seconds is not None and outcome == "published":
            webhook_to_event.observe(seconds)

    def transition_seen(self, via: str) -> None:
        transitions_seen.labels(via if via in OBSERVED_BY else "command").inc()

    def charge_batch(self, msn: str, size: int, outcome: str) -> None:
        charge_batches.labels(self.label(msn), outcome).inc()
        charge_batch_size.observe(size)
