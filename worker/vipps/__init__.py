"""Client for the Vipps MobilePay Recurring API v3.

Knows nothing of queues: callers supply idempotency keys and decide what to do with
the errors of `worker.vipps.errors`.
"""

from worker.vipps import errors, models
from worker.vipps.client import VippsClient
from worker.vipps.config import ConfigError, VippsSettings, load_settings
from worker.vipps.models import Completion
from worker.vipps.observer import NullObserver, VippsObserver

__all__ = [
    "Completion",
    "ConfigError",
    "NullObserver",
    "VippsClient",
    "VippsObserver",
    "VippsSettings",
    "errors",
    "load_settings",
    "models",
]
