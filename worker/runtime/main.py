"""The worker process's composition root: ``dramatiq worker.runtime.main:setup``.

dramatiq's CLI imports this module in every worker process and calls ``setup``, which
reads the settings, sets up logging and dramatiq's encoder, and builds the broker, the
middleware and the actors. Importing the module does none of that.
"""

from __future__ import annotations

import dramatiq

from worker.runtime import actors
from worker.runtime.broker import PoisonTolerantEncoder, make_broker
from worker.runtime.logs import configure
from worker.runtime.middleware import PrometheusMetrics, RuntimeMiddleware
from worker.runtime.process import RuntimeHolder
from worker.runtime.settings import get_settings
from worker.vipps import load_settings
from worker.vipps.merchants import load_merchants

# The dramatiq CLI's broker argument for this worker.
ENTRY = "worker.runtime.main:setup"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


def setup() -> None:
    settings = get_settings()
    configure(settings.log_level)
    dramatiq.set_encoder(PoisonTolerantEncoder())
    target = settings.redis_target(DEFAULT_REDIS_URL)
    assert target is not None
    merchants = load_merchants(load_settings())
    runtime = RuntimeHolder(settings, target, merchants)
    broker = make_broker(settings, target, extra_middleware=[PrometheusMetrics(), RuntimeMiddleware(runtime)])
    dramatiq.set_broker(broker)
    actors.declare(broker, settings.layout(merchants.msns), settings, runtime)
