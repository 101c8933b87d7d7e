"""The receiver's Prometheus metrics, in its own registry (served on its metrics port).

Every label value is bounded: events are the ten Recurring types, ``other`` or ``-`` (not read);
registrations are the configured ones. Every event/outcome pair and every reason is exported from the
start at 0, so a rate over them exists before the first delivery.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from worker.vipps.webhook_events import RECURRING_EVENTS
from worker.webhooks.intake import NOT_READ, OTHER_EVENT
from worker.webhooks.verify import REASONS as VERIFY_REASONS

OUTCOMES = ("queued", "duplicate", "unreadable", "rejected", "unavailable")
# Rejections before verification: "size" (body over the limit), "timeout" (a client too slow to send its
# request), "method" (not a POST), "path" (not the webhook path).
REASONS = (*VERIFY_REASONS, "size", "timeout", "method", "path")
NOT_DELIVERIES = ("method", "path")
ANSWER_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class ReceiverMetrics:
    def __init__(self, registration_count: Callable[[], int], registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.deliveries = Counter("vipps_billing_webhook_deliveries", "Webhook deliveries by event and outcome.",
                                  ["event", "outcome"], registry=self.registry)
        self.rejections = Counter("vipps_billing_webhook_rejections",
                                  "Webhook requests rejected before their body was read as JSON, by reason.",
                                  ["reason"], registry=self.registry)
        self.last_delivery = Gauge("vipps_billing_webhook_last_delivery_timestamp_seconds",
                                   "When the last genuine delivery of a registration arrived (POSIX time).",
                                   ["registration"], registry=self.registry)
        self.answer_time = Histogram("vipps_billing_webhook_answer_seconds",
                                     "From the start of a delivery's handling to its answer.", ["outcome"],
                                     buckets=ANSWER_BUCKETS, registry=self.registry)
        registrations = Gauge("vipps_billing_webhook_registrations",
                              "Registrations whose secrets the receiver holds.", registry=self.registry)
        registrations.set_function(lambda: float(registration_count()))
        for event in (*RECURRING_EVENTS, OTHER_EVENT, NOT_READ):
            for outcome in OUTCOMES:
                self.deliveries.labels(event, outcome)
        for reason in REASONS:
            self.rejections.labels(reason)
        for outcome in OUTCOMES:
            self.answer_time.labels(outcome)

    def rejected(self, reason: str) -> None:
        """A rejection; one of a delivery (a POST to the webhook path) unless it was not even that."""
        self.rejections.labels(reason).inc()
        if reason not in NOT_DELIVERIES:
            self.deliveries.labels(NOT_READ, "rejected").inc()

    def delivered(self, event: str, outcome: str, registration: str, started: float) -> None:
        self.deliveries.labels(event, outcome).inc()
        self.last_delivery.labels(registration).set(time.time())
        self.answered(outcome, started)

    def answered(self, outcome: str, started: float) -> None:
        self.answer_time.labels(outcome).observe(time.perf_counter() - started)
