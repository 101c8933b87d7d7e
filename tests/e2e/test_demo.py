"""`vipps-billing demo` end to end, as a user runs it: its own processes, real Redis, the simulator."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time

import psutil
import redis

from tests.e2e.clirun import cli, ok_json, one_line_error
from worker.local.redis import redis_answers
from worker.local.wait import wait_until


def test_demo_runs_the_checklist_through_the_queues_and_cleans_up(redis_url: str, redis_client: redis.Redis) -> None:
    started = time.monotonic()
    report = ok_json(cli("demo", "--json", env={"REDIS_URL": redis_url}))
    assert time.monotonic() - started < 60

    assert report["status"] == "passed" and report["redis"] == "REDIS_URL"
    rows = {row["state"]: row for row in report["results"]}
    assert set(rows) == {"agreement ACTIVE", "agreement STOPPED", "charge CHARGED", "charge REFUNDED"}
    assert all(row["holds"] for row in rows.values())
    assert rows["agreement ACTIVE"]["observed"] == "ACTIVE"
    assert rows["agreement STOPPED"]["observed"] == "STOPPED"
    assert rows["charge CHARGED"]["observed"] == "CHARGED (RECURRING)"
    assert rows["charge REFUNDED"]["observed"] == "REFUNDED (RECURRING)"
    assert rows["agreement STOPPED"]["agreement_id"] != rows["agreement ACTIVE"]["agreement_id"]
    assert rows["charge CHARGED"]["charge_id"] != rows["charge REFUNDED"]["charge_id"]
    # The events the worker published for each resource, commands' outcomes and watch transitions alike.
    assert {"agreement.created", "agreement.activated"} <= set(rows["agreement ACTIVE"]["events"])
    assert {"agreement.updated", "agreement.stopped"} <= set(rows["agreement STOPPED"]["events"])
    assert "charge.status_changed→CHARGED" in rows["charge CHARGED"]["events"]
    assert {"charge.refunded", "charge.status_changed→REFUNDED"} <= set(rows["charge REFUNDED"]["events"])

    # It ran in its own namespace in our Redis and left nothing behind; metrics were served while it ran.
    assert report["metrics_url"].startswith("http://127.0.0.1:")
    assert redis_client.dbsize() == 0


def test_demo_prints_a_table_and_exits_zero(redis_url: str, redis_client: redis.Redis) -> None:
    result = cli("demo", env={"REDIS_URL": redis_url})
    assert result.returncode == 0, result.stderr
    for text in ("agreement ACTIVE", "agreement STOPPED", "charge CHARGED", "charge REFUNDED", "passed",
                 "/metrics", "stopped"):
        assert text in result.stdout + result.stderr


def _descendants(pid: int) -> dict[int, str]:
    """Every live descendant of a process, with its command line."""
    found = {}
    for child in psutil.Process(pid).children(recursive=True):
        with contextlib.suppress(psutil.Error):
            found[child.pid] = " ".join(child.cmdline())
    return found


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_ctrl_c_stops_the_embedded_redis_simulator_and_worker() -> None:
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL" and not k.startswith("VIPPS_")}
    demo = subprocess.Popen([sys.executable, "-m", "worker.cli.app", "demo", "--embedded-redis"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines: dict[int, str] = {}

        def started() -> bool:
            lines.update(_descendants(demo.pid))
            return any("redis-server" in c for c in lines.values()) and any("dramatiq" in c for c in lines.values())

        wait_until(started, 30, "the demo's children", error=AssertionError)
        seen = set(lines)
        redis_port = next(c for c in lines.values() if "redis-server" in c).rsplit(":", 1)[1].split()[0]
        demo.send_signal(signal.SIGINT)
        _, stderr = demo.communicate(timeout=40)
    finally:
        if demo.poll() is None:
            demo.kill()
    assert demo.returncode == 130, stderr
    assert "Traceback" not in stderr and "interrupted" in stderr
    assert [pid for pid in seen if _alive(pid)] == []
    assert not redis_answers(f"redis://127.0.0.1:{redis_port}/0")


def test_demo_help_has_an_example() -> None:
    result = cli("demo", "--help")
    assert result.returncode == 0 and "Example: vipps-billing demo" in result.stdout


def test_demo_with_an_unreachable_redis_is_one_line() -> None:
    result = cli("demo", "--json", env={"REDIS_URL": "redis://127.0.0.1:1/0"})
    assert "REDIS_URL does not answer" in one_line_error(result)
    assert result.stdout == ""
