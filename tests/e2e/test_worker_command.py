"""`vipps-billing worker` refuses to start on a metrics port that is taken, in one line."""

from __future__ import annotations

import socket

from tests.e2e.clirun import cli, one_line_error


def test_a_busy_metrics_port_is_one_line_and_a_failure(redis_url: str) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        result = cli("worker", env={"REDIS_URL": redis_url, "METRICS_HOST": "127.0.0.1", "METRICS_PORT": str(port)},
                     timeout=60)
    assert result.returncode == 1
    assert f"METRICS_PORT {port}" in one_line_error(result)
