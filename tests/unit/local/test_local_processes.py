"""Child processes of the local stack and the bench: started in their own session, ready, stopped whole."""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Iterator

import psutil
import pytest

from worker.local.processes import StackError, http_ok, start_child, start_simulator, stop_group, wait_ready, worker_env
from worker.local.wait import wait_until
from worker.runtime.settings import WorkerSettings

# A child that starts a grandchild (as dramatiq forks its workers), then waits.
FORKS = ("import subprocess, sys, time; "
         "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); time.sleep(60)")


@pytest.fixture
def log() -> Iterator[tempfile._TemporaryFileWrapper[bytes]]:
    with tempfile.NamedTemporaryFile(prefix="child-", suffix=".log") as file:
        yield file


def test_a_worker_gets_our_simulator_and_namespace_and_no_real_vipps_credentials() -> None:
    env = worker_env({"VIPPS_CLIENT_SECRET": "real", "VIPPS_ENV": "production", "PATH": "/bin"},
                     redis_url="redis://r/0", simulator_url="http://sim", metrics_port=9, metrics_dir="/m",
                     settings=WorkerSettings(dramatiq_namespace="ns", key_prefix="kp"))
    assert "VIPPS_CLIENT_SECRET" not in env and env["PATH"] == "/bin"
    assert env["VIPPS_ENV"] == "simulator" and env["VIPPS_BASE_URL"] == "http://sim"
    assert (env["REDIS_URL"], env["DRAMATIQ_NAMESPACE"], env["KEY_PREFIX"]) == ("redis://r/0", "ns", "kp")
    assert (env["METRICS_PORT"], env["PROMETHEUS_MULTIPROC_DIR"]) == ("9", "/m")


def test_stopping_a_child_stops_its_whole_session(log: tempfile._TemporaryFileWrapper[bytes]) -> None:
    child = start_child([sys.executable, "-c", FORKS], {}, log)
    grandchildren = wait_for_children(child.pid)
    stop_group(child, grace=5)
    assert child.returncode is not None
    # The whole group got the signal; on a busy machine a grandchild may take a moment to go.
    _, alive = psutil.wait_procs(grandchildren, timeout=5)
    assert not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in alive)


def test_a_child_that_exits_while_starting_is_a_stack_error(log: tempfile._TemporaryFileWrapper[bytes]) -> None:
    child = start_child([sys.executable, "-c", "pass"], {}, log)
    with pytest.raises(StackError, match="the thing exited while starting"):
        wait_ready(child, "http://127.0.0.1:1/health", 30, "the thing")


def test_a_child_that_never_answers_is_a_stack_error(log: tempfile._TemporaryFileWrapper[bytes]) -> None:
    child = start_child([sys.executable, "-c", "import time; time.sleep(60)"], {}, log)
    try:
        with pytest.raises(StackError, match="the thing did not become ready within 0 s"):
            wait_ready(child, "http://127.0.0.1:1/health", 0.3, "the thing")
    finally:
        stop_group(child, grace=1)


def test_a_simulator_is_up_when_started(log: tempfile._TemporaryFileWrapper[bytes]) -> None:
    simulator, url = start_simulator(log)
    try:
        assert http_ok(f"{url}/_simulator/health")
    finally:
        stop_group(simulator, grace=5)
    assert not http_ok(f"{url}/_simulator/health")


def wait_for_children(pid: int) -> list[psutil.Process]:
    children: list[psutil.Process] = wait_until(lambda: psutil.Process(pid).children(recursive=True), 10,
                                                "a grandchild", every=0.05)
    return children
