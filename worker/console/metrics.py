"""The console's Prometheus metrics, in its own registry (served on its metrics port, never on the pages' port).

Every label value is bounded and exported from the start at 0, so a rate over them exists before the first
login or action.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter

LOGIN_METHODS = ("password", "oidc")
LOGIN_RESULTS = ("success", "failure", "rate_limited")
ACTIONS = ("agreement.stop", "charge.capture", "charge.refund", "charge.cancel", "dead_letter.replay")
# refused: a pre-check said no and nothing was sent; succeeded/failed: the worker's outcome;
# pending: no outcome within the page's wait (the command goes on).
ACTION_OUTCOMES = ("refused", "succeeded", "failed", "pending")


class ConsoleMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.logins = Counter("vipps_billing_console_logins", "Console logins by method and result.",
                              ["method", "result"], registry=self.registry)
        self.actions = Counter("vipps_billing_console_actions", "Console actions by type and outcome.",
                               ["action", "outcome"], registry=self.registry)
        for method in LOGIN_METHODS:
            for result in LOGIN_RESULTS:
                self.logins.labels(method, result)
        for action in ACTIONS:
            for outcome in ACTION_OUTCOMES:
                self.actions.labels(action, outcome)

    def login(self, method: str, result: str) -> None:
        self.logins.labels(method, result).inc()

    def action(self, action: str, outcome: str) -> None:
        self.actions.labels(action, outcome).inc()
