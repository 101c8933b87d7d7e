from __future__ import annotations

from collections.abc import Iterator

import pytest
from sim_harness import Vipps

from tests.webhook_receiver import Receiver


@pytest.fixture
def vipps() -> Iterator[Vipps]:
    client = Vipps(rate_limits_enabled=False)
    # A fixed start: 2030-01-01 10:00 UTC (after the 07:00 round, before the 15:00 one).
    client.set_clock("2030-01-01T10:00:00Z")
    client.token = client.fetch_token().json()["access_token"]
    yield client
    client.close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


@pytest.fixture
def hooked() -> Iterator[Vipps]:
    """As ``vipps``, with the short retry waits at 50 ms and a 2 s answer timeout."""
    client = Vipps(rate_limits_enabled=False, webhook_retry_seconds=0.05, webhook_timeout_seconds=2.0)
    client.set_clock("2030-01-01T10:00:00Z")
    client.token = client.fetch_token().json()["access_token"]
    yield client
    client.close()
