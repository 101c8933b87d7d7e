"""`vipps-billing demo` end to end, as a user runs it: its own processes, real Redis, the simulator."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import redis

from tests.e2e.clirun import cli, ok_json, one_line_error
from worker.local.redis import _answers


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


def _children(pid: int) -> set[int]:
    """Every live descendant of a process, from /proc."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            parents[int(stat.parent.name)] = int(fields[1])
        except (OSError, IndexError, ValueError):
            continue
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_ctrl_c_stops_the_embedded_redis_simulator_and_worker() -> None:
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL" and not k.startswith("VIPPS_")}
    demo = subprocess.Popen([sys.executable, "-m", "worker.cli.app", "demo", "--embedded-redis"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        seen: set[int] = set()
        while time.monotonic() < deadline:
            seen |= _children(demo.pid)
            lines = {pid: _cmdline(pid) for pid in seen}
            if any("redis-server" in c for c in lines.values()) and any("dramatiq" in c for c in lines.values()):
                break
            time.sleep(0.1)
        else:
            raise AssertionError(f"the demo did not start its children: {lines}")
        redis_port = next(c for c in lines.values() if "redis-server" in c).rsplit(":", 1)[1].split()[0]
        demo.send_signal(signal.SIGINT)
        _, stderr = demo.communicate(timeout=40)
    finally:
        if demo.poll() is None:
            demo.kill()
    assert demo.returncode == 130, stderr
    assert "Traceback" not in stderr and "interrupted" in stderr
    assert [pid for pid in seen if _alive(pid)] == []
    assert not _answers(f"redis://127.0.0.1:{redis_port}/0")


def test_demo_help_has_an_example() -> None:
    result = cli("demo", "--help")
    assert result.returncode == 0 and "Example: vipps-billing demo" in result.stdout


def test_demo_with_an_unreachable_redis_is_one_line() -> None:
    result = cli("demo", "--json", env={"REDIS_URL": "redis://127.0.0.1:1/0"})
    assert "REDIS_URL does not answer" in one_line_error(result)
    assert result.stdout == ""
