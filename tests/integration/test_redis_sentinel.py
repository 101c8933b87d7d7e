"""A worker that finds its Redis through a Sentinel: connects, carries out a command, and says it is ready.

A private primary and one Sentinel on free loopback ports (never the shared Redis), the simulator over
HTTP, and ``vipps-billing worker`` as its own process with ``REDIS_URL=redis+sentinel://...``.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.replicated import Node, nodes, sentinel_of
from tests.stack import Events, Simulator, Worker, wait_for
from worker.core.producer import Producer
from worker.local.redis import redis_server_binary
from worker.runtime.settings import WorkerSettings
from worker.store.connection import connect

pytestmark = pytest.mark.skipif(redis_server_binary() is None, reason="no redis-server binary")

AGREEMENT = {"type": "agreement.create", "product_name": "Sentinel FC", "pricing": {"amount": 9900},
             "interval": {"unit": "MONTH", "count": 1}, "merchant_redirect_url": "https://example.com/back",
             "merchant_agreement_url": "https://example.com/agreements/1", "phone_number": "4791234567"}


@pytest.fixture
def sentinel_and_primary() -> Iterator[tuple[str, Node]]:
    primary = Node()
    sentinel = sentinel_of(primary, "billing")
    with nodes(primary, sentinel):
        yield f"redis+sentinel://127.0.0.1:{sentinel.port}/billing/0", primary


def answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_a_worker_through_a_sentinel_carries_out_a_command(sentinel_and_primary: tuple[str, Node]) -> None:
    sentinel_url, primary = sentinel_and_primary
    simulator = Simulator()
    worker = Worker(sentinel_url, simulator.url)
    client = connect(sentinel_url)
    try:
        with Producer(sentinel_url, layout=WorkerSettings().layout()) as producer:
            producer.send({"command_id": "through-sentinel-1", **AGREEMENT})
        created = Events(client).wait(command_id="through-sentinel-1", type="agreement.created", timeout=60)
        assert created["agreement_id"]
        wait_for(lambda: answers(f"http://127.0.0.1:{worker.metrics_port}/readyz"), 30, what="/readyz")
        metrics = httpx.get(f"http://127.0.0.1:{worker.metrics_port}/metrics", timeout=5).text
        assert "vipps_billing_redis_failovers_total 0.0" in metrics and "vipps_billing_redis_up 1.0" in metrics
        primary.stop()  # no primary answers (and no replica to promote): not ready
        readyz = f"http://127.0.0.1:{worker.metrics_port}/readyz"
        wait_for(lambda: httpx.get(readyz, timeout=10).status_code == 503, 30, what="/readyz 503")
    finally:
        client.close()
        worker.stop()
        simulator.stop()
        print(worker.output()[-20000:])  # shown by pytest when the test failed
