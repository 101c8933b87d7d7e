from __future__ import annotations

from pathlib import Path

import redis
from starlette.testclient import TestClient

from worker.local.redis import free_port
from worker.runtime.http import make_app
from worker.runtime.settings import WorkerSettings


def app_on(client: redis.Redis, tmp_path: Path | None = None) -> TestClient:
    return TestClient(make_app(client, WorkerSettings(), tmp_path))


def test_metrics_are_served_while_redis_is_down_and_say_so() -> None:
    down = redis.Redis(port=free_port(), socket_connect_timeout=0.2, socket_timeout=0.2)
    with app_on(down) as http:
        response = http.get("/metrics")
        assert response.status_code == 200
        assert "vipps_billing_redis_up 0.0" in response.text
        assert "vipps_billing_queue_depth" not in response.text  # stale state is not shown as current
        assert http.get("/readyz").status_code == 503


def test_metrics_read_redis_state_when_it_answers(redis_client: redis.Redis) -> None:
    with app_on(redis_client) as http:
        response = http.get("/metrics")
        assert response.status_code == 200
        assert "vipps_billing_redis_up 1.0" in response.text
        assert 'vipps_billing_queue_depth{msn="-",queue="vipps.charges",state="ready"} 0.0' in response.text
        assert http.head("/metrics").status_code == 200
        assert http.get("/readyz").text == "ok\n"


def test_health_needs_a_recent_beat_of_every_worker_process(tmp_path: Path, redis_client: redis.Redis) -> None:
    with app_on(redis_client, tmp_path) as http:
        assert http.get("/healthz").status_code == 503  # no worker process beat yet
        (tmp_path / "health-1").write_text('{"credentials_refused": false}')
        assert http.get("/healthz").status_code == 200


def test_unknown_paths_are_404(redis_client: redis.Redis) -> None:
    with app_on(redis_client) as http:
        assert http.get("/nope").status_code == 404


def test_a_worker_whose_credentials_vipps_refused_is_not_ready(tmp_path: Path, redis_client: redis.Redis) -> None:
    health = tmp_path / "health-41"
    health.write_text('{"credentials_refused": false}')
    with app_on(redis_client, tmp_path) as http:
        assert http.get("/readyz").status_code == 200
        (tmp_path / "health-42").write_text('{"credentials_refused": true}')
        response = http.get("/readyz")
        assert response.status_code == 503 and "refused the credentials" in response.text and "42" in response.text
        assert http.get("/healthz").status_code == 200  # alive all the same: a restart would not help


def test_queue_gauges_name_the_merchant_whose_queue_it_is(redis_client: redis.Redis) -> None:
    layout = WorkerSettings().layout(("111111", "222222"))
    with TestClient(make_app(redis_client, WorkerSettings(), None, layout)) as http:
        text = http.get("/metrics").text
    assert 'vipps_billing_queue_depth{msn="111111",queue="vipps.charges.111111",state="ready"} 0.0' in text
    assert 'vipps_billing_queue_oldest_age_seconds{msn="222222",queue="vipps.agreements.222222"} 0.0' in text
    for shared in ("vipps.agreements", "vipps.charges", "vipps.events"):
        assert f'vipps_billing_queue_depth{{msn="-",queue="{shared}",state="dead"}} 0.0' in text
