"""`vipps-billing demo` end to end, as a user runs it: its own processes, real Redis, the simulator."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import redis

from tests.e2e.clirun import cli, ok_json, one_line_error
from worker.local.processes import http_ok
from worker.local.redis import redis_answers
from worker.local.wait import wait_until


def test_demo_runs_the_checklist_through_the_queues_and_cleans_up(redis_url: str, redis_client: redis.Redis) -> None:
    started = time.monotonic()
    result = cli("demo", "--json", env={"REDIS_URL": redis_url})
    report = ok_json(result)
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

    # The console's URL and user are in the report; its password is nowhere in the output of a JSON run.
    assert report["console"] == {"url": report["console"]["url"], "username": "support"}
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/", report["console"]["url"])
    assert "password" not in result.stdout.lower() and "Login" not in result.stderr


def test_demo_prints_a_table_and_exits_zero(redis_url: str, redis_client: redis.Redis) -> None:
    result = cli("demo", env={"REDIS_URL": redis_url})
    assert result.returncode == 0, result.stderr
    for text in ("agreement ACTIVE", "agreement STOPPED", "charge CHARGED", "charge REFUNDED", "passed",
                 "/metrics", "stopped"):
        assert text in result.stdout + result.stderr
    # The console's URL and one-time login come before the report; the console stops with the demo.
    url, username, password = console_login(result.stderr)
    assert username == "support" and len(password) >= 40
    assert "--keep-running keeps it up" in result.stderr
    assert password not in result.stdout
    assert "support console are stopped" in result.stdout
    assert not http_ok(f"{url}login")


def console_login(stderr: str) -> tuple[str, str, str]:
    """(URL, user, password) of the console, as the demo prints them."""
    url = re.search(r"^Console +(http://127\.0\.0\.1:\d+/) ", stderr, re.MULTILINE)
    login = re.search(r"^Login +(\S+) / (\S+) +\(one-time", stderr, re.MULTILINE)
    assert url and login, stderr
    return url[1], login[1], login[2]


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


def test_keep_running_serves_the_console_until_sigterm(redis_url: str, redis_client: redis.Redis,
                                                      tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIPPS_")} | {"REDIS_URL": redis_url,
                                                                                   "COLUMNS": "200"}
    out, err = tmp_path / "stdout", tmp_path / "stderr"
    with open(out, "wb") as stdout, open(err, "wb") as stderr:
        demo = subprocess.Popen([sys.executable, "-m", "worker.cli.app", "demo", "--keep-running"], env=env,
                                stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr)
    try:
        def reported() -> bool:
            assert demo.poll() is None, err.read_text()
            return "stays up at" in err.read_text()

        wait_until(reported, 90, "the demo's report", error=AssertionError)
        assert "passed: all four go-live states hold" in out.read_text()
        url, username, password = console_login(err.read_text())
        assert "stays up after the report until Ctrl-C" in err.read_text()
        children = _descendants(demo.pid)
        files = _login_files(children)
        for path in files:
            assert stat.S_IMODE(path.stat().st_mode) == 0o600 and password not in path.read_text()

        _log_in(url, username, password)

        demo.send_signal(signal.SIGTERM)
        demo.wait(40)
    finally:
        if demo.poll() is None:
            demo.kill()
    assert demo.returncode == 0, err.read_text()
    assert "Traceback" not in err.read_text()
    assert "support console are stopped" in out.read_text()
    assert [pid for pid in children if _alive(pid)] == []
    assert not http_ok(f"{url}login")
    assert not any(path.exists() for path in files)
    assert redis_client.dbsize() == 0


def _login_files(children: dict[int, str]) -> list[Path]:
    """The console's users file and session secret, from the environment of the console the demo started."""
    pid = next(pid for pid, command in children.items() if "console serve" in command)
    env = psutil.Process(pid).environ()
    assert env["CONSOLE_COOKIE_SECURE"] == "false" and "CONSOLE_SESSION_SECRET" not in env
    return [Path(env["CONSOLE_USERS_FILE"]), Path(env["CONSOLE_SESSION_SECRET_FILE"])]


def _log_in(url: str, username: str, password: str) -> None:
    """Log in as a person would: the form's CSRF token, the printed user and password, then the home page."""
    with httpx.Client(base_url=url, timeout=10) as client:
        assert client.get("/").status_code == 303  # not logged in yet
        form = client.get("/login")
        assert form.status_code == 200
        csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
        assert csrf, form.text
        wrong = client.post("/login", data={"csrf": csrf[1], "username": username, "password": password + "x"})
        assert wrong.status_code != 303
        done = client.post("/login", data={"csrf": csrf[1], "username": username, "password": password})
        assert done.status_code == 303 and done.headers["location"] == "/"
        assert client.cookies
        assert client.get("/").status_code == 200
