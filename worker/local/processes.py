"""Child processes on this machine: a free port, a child in its own session, its readiness, its end.

The local stack and the bench start the simulator and workers the same way, with these.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import IO

import httpx

from worker.local.wait import wait_until
from worker.runtime.settings import WorkerSettings


class StackError(Exception):
    """A part of the local stack did not start; the message says which and where its log is."""


def free_port() -> int:
    """A TCP port on loopback that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def http_ok(url: str, timeout: float = 1.0) -> bool:
    try:
        return httpx.get(url, timeout=timeout).status_code == 200
    except httpx.HTTPError:
        return False


def cli_args(*args: str) -> list[str]:
    """``vipps-billing ARGS`` run by this Python (an installed script may be another version)."""
    return [sys.executable, "-m", "worker.cli.app", *args]


def start_child(args: list[str], env: dict[str, str], log: IO[bytes]) -> subprocess.Popen[bytes]:
    """A child in its own session: a terminal's Ctrl-C reaches only us, and ``stop_group`` reaches its forks."""
    return subprocess.Popen(args, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)


def wait_ready(process: subprocess.Popen[bytes], health_url: str, timeout: float, what: str) -> None:
    """Until ``health_url`` answers 200; StackError if the child exits first or the time is up."""
    def ready() -> bool:
        if process.poll() is not None:
            raise StackError(f"{what} exited while starting")
        return http_ok(health_url)

    wait_until(ready, timeout, what, error=lambda _: StackError(f"{what} did not become ready within {timeout:.0f} s"))


def kill_group(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL the child's whole session, at once."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(5)


def stop_group(process: subprocess.Popen[bytes], grace: float) -> None:
    """SIGTERM the child's whole session, then SIGKILL whatever is left after ``grace`` seconds."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(grace)
    # The session may still hold grandchildren (dramatiq's forks) after the leader exited.
    kill_group(process)


def start_simulator(log: IO[bytes], *args: str) -> tuple[subprocess.Popen[bytes], str]:
    """``vipps-billing simulator ARGS`` on a free port, once it answers; (process, base URL)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    # Its own defaults: the simulator accepts the credentials of VIPPS_* variables, and we never pass those on.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIPPS_", "SIMULATOR_"))}
    process = start_child(cli_args("simulator", "--host", "127.0.0.1", "--port", str(port), *args), env, log)
    try:
        wait_ready(process, f"{url}/_simulator/health", 30, "the simulator")
    except BaseException:
        stop_group(process, 5.0)
        raise
    return process, url


def receiver_url(path: str = "/vipps/webhooks") -> str:
    """A local URL for a webhook receiver, on a free port: register it, then start the receiver on it."""
    return f"http://127.0.0.1:{free_port()}{path}"


def start_receiver(log: IO[bytes], url: str, *, redis_url: str, secrets_dir: Path,
                   settings: WorkerSettings, metrics_port: int | None = None) -> subprocess.Popen[bytes]:
    """``vipps-billing webhooks serve`` at ``url`` (a `receiver_url`), once ready: Redis answers and a secret
    is loaded, so register first, then start it. Its metrics on ``metrics_port`` (a free one if None)."""
    port, metrics_port = int(url.split(":")[2].split("/")[0]), metrics_port or free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIPPS_", "WEBHOOK_"))} | {
        "REDIS_URL": redis_url, "KEY_PREFIX": settings.key_prefix, "DRAMATIQ_NAMESPACE": settings.dramatiq_namespace,
        "WEBHOOK_PUBLIC_URL": url, "WEBHOOK_SECRETS_DIR": str(secrets_dir), "WEBHOOK_HOST": "127.0.0.1",
        "WEBHOOK_PORT": str(port), "WEBHOOK_METRICS_PORT": str(metrics_port), "LOG_LEVEL": "WARNING"}
    process = start_child(cli_args("webhooks", "serve"), env, log)
    try:
        wait_ready(process, f"http://127.0.0.1:{metrics_port}/readyz", 30, "the webhook receiver")
    except BaseException:
        stop_group(process, 5.0)
        raise
    return process


def worker_env(base: Mapping[str, str], *, redis_url: str, simulator_url: str, settings: WorkerSettings,
               metrics_port: int, metrics_dir: str) -> dict[str, str]:
    """The environment of a worker that talks to our simulator: no real Vipps credentials leak in."""
    env = {k: v for k, v in base.items() if not k.startswith("VIPPS_")}
    return env | {
        "REDIS_URL": redis_url, "VIPPS_ENV": "simulator", "VIPPS_BASE_URL": simulator_url,
        "DRAMATIQ_NAMESPACE": settings.dramatiq_namespace, "KEY_PREFIX": settings.key_prefix,
        "METRICS_PORT": str(metrics_port), "METRICS_HOST": "127.0.0.1", "PROMETHEUS_MULTIPROC_DIR": metrics_dir,
    }
