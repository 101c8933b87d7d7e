"""The support console's operations endpoint over real HTTP: `vipps-billing console serve` on free loopback
ports (pages on one, /metrics, /healthz, /readyz on the other) against real Redis and the simulator."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from tests.stack import Simulator, wait_for
from worker.console.users import hash_password
from worker.local.processes import free_port
from worker.local.redis import EmbeddedRedis
from worker.vipps import VippsClient, load_settings, models

PASSWORD = "correct horse battery staple"


class ConsoleProcess:
    """``vipps-billing console serve`` with its operations port; ``ops`` and ``pages`` are base URLs."""

    def __init__(self, redis_url: str, simulator_url: str, files: Path) -> None:
        port, ops_port = free_port(), free_port()
        self.pages, self.ops = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{ops_port}"
        self.log = files / f"console-{port}.log"
        env = console_env(redis_url, simulator_url, files, ops_port)
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(serve_args(port), env=env, stdout=log, stderr=subprocess.STDOUT)
        wait_for(self._up, 30, interval=0.1, what="console operations port")

    def _up(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"the console exited {self.process.returncode}: {self.log.read_text()}")
        return status(f"{self.ops}/healthz") == 200

    def metric(self, name: str, **labels: str) -> float:
        text = httpx.get(f"{self.ops}/metrics", timeout=5).text
        found = [s.value for f in text_string_to_metric_families(text) for s in f.samples
                 if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())]
        assert found, f"{name}{labels} not exported"
        return sum(found)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def console_env(redis_url: str, simulator_url: str, files: Path, ops_port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIPPS_", "CONSOLE_", "REDIS_", "MERCHANTS_"))}
    return env | {"REDIS_URL": redis_url, "VIPPS_ENV": "simulator", "VIPPS_BASE_URL": simulator_url,
                  "CONSOLE_USERS_FILE": str(files / "users.json"), "CONSOLE_SESSION_SECRET_FILE": str(files / "secret"),
                  "CONSOLE_COOKIE_SECURE": "false", "CONSOLE_METRICS_PORT": str(ops_port), "LOG_LEVEL": "WARNING"}


def serve_args(port: int) -> list[str]:
    return [sys.executable, "-m", "worker.cli.app", "console", "serve", "--host", "127.0.0.1", "--port", str(port)]


def status(url: str, method: str = "GET") -> int:
    try:
        return httpx.request(method, url, timeout=5).status_code
    except httpx.HTTPError:
        return 0


def log_in(browser: httpx.Client, password: str) -> httpx.Response:
    token = re.search(r'name="csrf" value="([^"]+)"', browser.get("/login").text)
    assert token, "no CSRF token on the login page"
    return browser.post("/login", data={"csrf": token.group(1), "username": "vera", "password": password})


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("console-ops")
    (folder / "users.json").write_text(json.dumps({"users": [
        {"username": "vera", "password_hash": hash_password(PASSWORD), "role": "viewer"}]}))
    (folder / "secret").write_text("s" * 40)
    return folder


@pytest.fixture(scope="module")
def simulator() -> Iterator[Simulator]:
    simulator = Simulator()
    try:
        yield simulator
    finally:
        simulator.stop()


@pytest.fixture(scope="module")
def console(redis_url: str, simulator: Simulator, files: Path) -> Iterator[ConsoleProcess]:
    redis.Redis.from_url(redis_url).flushdb()
    process = ConsoleProcess(redis_url, simulator.url, files)
    try:
        yield process
    finally:
        process.stop()
        redis.Redis.from_url(redis_url).flushdb()


def test_logins_are_counted_on_the_operations_port(console: ConsoleProcess, simulator: Simulator) -> None:
    with VippsClient(load_settings(base_url=simulator.url)) as vipps:
        draft = vipps.draft_agreement(models.DraftAgreementV3(
            pricing=models.PricingRequest(amount=29900), interval=models.TimePeriod(unit="MONTH", count=1),
            merchantAgreementUrl="https://example.com/a", merchantRedirectUrl="https://example.com/r",
            productName="Gym Plus"), idempotency_key="console-ops-test")
    with httpx.Client(base_url=console.pages, timeout=10) as browser:
        assert log_in(browser, "wrong").status_code == 401
        assert log_in(browser, PASSWORD).status_code == 303
        page = browser.get(f"/agreements/{draft.agreementId}")
        assert page.status_code == 200 and "Gym Plus" in page.text  # the pages read the simulator
    logins = "vipps_billing_console_logins_total"
    assert console.metric(logins, method="password", result="failure") == 1
    assert console.metric(logins, method="password", result="success") == 1
    assert console.metric(logins, method="password", result="rate_limited") == 0
    assert console.metric("vipps_billing_console_actions_total") == 0  # exported, at 0: no action was taken


def test_operations_are_served_on_their_own_port_only(console: ConsoleProcess) -> None:
    for path in ("/metrics", "/healthz", "/readyz"):
        assert status(console.pages + path) == 404, path
    assert status(f"{console.ops}/login") == 404
    assert status(f"{console.pages}/login") == 200


def test_ready_and_healthy_while_redis_answers(console: ConsoleProcess) -> None:
    ready = httpx.get(f"{console.ops}/readyz", timeout=5)
    assert (ready.status_code, ready.text) == (200, "ok\n")
    assert status(f"{console.ops}/readyz", "HEAD") == 200
    assert status(f"{console.ops}/healthz") == 200


def test_not_ready_while_redis_is_unreachable(simulator: Simulator, files: Path) -> None:
    server = EmbeddedRedis().start()
    process = ConsoleProcess(server.url, simulator.url, files)
    try:
        assert status(f"{process.ops}/readyz") == 200
        server.stop()  # its port is closed now
        answer = httpx.get(f"{process.ops}/readyz", timeout=5)
        assert answer.status_code == 503
        assert answer.text.startswith("redis unavailable: ") and answer.text.count("\n") == 1, answer.text
        assert status(f"{process.ops}/healthz") == 200  # alive: a Redis outage must not restart the pod
        server = EmbeddedRedis(port=server.port).start()
        wait_for(lambda: status(f"{process.ops}/readyz") == 200, 15, what="ready again once Redis answers")
    finally:
        process.stop()
        server.stop()


def test_a_taken_or_shared_port_stops_the_console_with_one_line(redis_url: str, simulator: Simulator,
                                                                files: Path) -> None:
    port = free_port()
    with socket.create_server(("127.0.0.1", 0)) as taken:
        busy = taken.getsockname()[1]
        refused = subprocess.run(serve_args(port), env=console_env(redis_url, simulator.url, files, busy),
                                 capture_output=True, text=True, timeout=60)
    assert refused.returncode == 1
    assert f"cannot listen on 127.0.0.1:{busy}" in refused.stderr and refused.stderr.count("\n") == 1, refused.stderr
    shared = subprocess.run(serve_args(port), env=console_env(redis_url, simulator.url, files, port),
                            capture_output=True, text=True, timeout=60)
    assert shared.returncode == 1 and "CONSOLE_METRICS_PORT must differ from CONSOLE_PORT" in shared.stderr
