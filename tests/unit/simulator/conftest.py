from __future__ import annotations

from collections.abc import Iterator

import pytest
from sim_harness import Vipps


@pytest.fixture
def vipps() -> Iterator[Vipps]:
    client = Vipps(rate_limits_enabled=False)
    # A fixed start: 2030-01-01 10:00 UTC (after the 07:00 round, before the 15:00 one).
    client.set_clock("2030-01-01T10:00:00Z")
    client.token = client.fetch_token().json()["access_token"]
    yield client
    client.http.close()
