"""A worker whose Vipps credentials are refused says so on /readyz, while /healthz stays ok."""

from __future__ import annotations

import httpx
import redis

from tests.stack import Simulator, Worker, producer, wait_for


def test_refused_credentials_make_the_worker_not_ready(redis_url: str, redis_client: redis.Redis) -> None:
    simulator = Simulator()
    worker = Worker(redis_url, simulator.url, env={"VIPPS_CLIENT_SECRET": "not-the-secret"})
    base = f"http://127.0.0.1:{worker.metrics_port}"
    try:
        wait_for(lambda: _status(f"{base}/healthz") == 200, 60, interval=0.5, what="worker up")
        with producer(redis_url) as p:
            p.send({"command_id": "creds-1", "type": "agreement.fetch", "agreement_id": "agr_1"})
        wait_for(lambda: _status(f"{base}/readyz") == 503, 60, interval=0.5, what="not ready")
        assert "refused the credentials" in httpx.get(f"{base}/readyz").text
        assert _status(f"{base}/healthz") == 200
        assert "not-the-secret" not in worker.output()
    finally:
        worker.stop()
        simulator.stop()


def _status(url: str) -> int:
    try:
        return httpx.get(url, timeout=2).status_code
    except httpx.HTTPError:
        return 0
