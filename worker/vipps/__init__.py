"""Client for the Vipps MobilePay Recurring API v3.

Knows nothing of queues nor of Redis: callers supply idempotency keys, decide what to do
with the errors of `worker.vipps.errors`, and may hand the client shared stores for its
token cache and rate budgets (`KeyValue`, `BudgetBackend`; in memory by default).
"""

from worker.vipps import errors, models
from worker.vipps.budgets import BudgetBackend
from worker.vipps.client import VippsClient
from worker.vipps.config import ConfigError, VippsSettings, load_settings
from worker.vipps.models import Completion
from worker.vipps.observer import NullObserver, VippsObserver
from worker.vipps.store import KeyValue

__all__ = [
    "BudgetBackend",
    "Completion",
    "ConfigError",
    "KeyValue",
    "NullObserver",
    "VippsClient",
    "VippsObserver",
    "VippsSettings",
    "errors",
    "load_settings",
    "models",
]
