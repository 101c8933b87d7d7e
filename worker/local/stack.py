"""A whole local stack as child processes: Redis (yours or a private one), the simulator and a worker.

Everything started here is stopped again when the ``local_stack`` block ends, whether it ends
normally, by an error, by Ctrl-C or by SIGTERM. The worker and the simulator run in their own
sessions so a terminal's Ctrl-C reaches only us, and we stop them in order.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import redis

from worker.local.redis import DEFAULT_URL, EmbeddedRedis, RedisUnavailable, _answers, _redact, free_port
from worker.runtime.settings import WorkerSettings


class StackError(Exception):
    """A part of the local stack did not start; the message says which and where its log is."""


@dataclass
class Stack:
    redis_url: str
    redis_origin: str                 # "REDIS_URL", "localhost:6379" or "embedded"
    simulator_url: str
    metrics_url: str
    settings: WorkerSettings          # what the worker was given (own namespace and key prefix)
    worker_log: Path
    env: dict[str, str] = field(default_factory=dict)

    @property
    def shown_redis(self) -> str:
        return _redact(self.redis_url)


def _wait(predicate: Callable[[], bool], timeout: float, what: str, alive: Callable[[], bool]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive():
            raise StackError(f"{what} exited while starting")
        if predicate():
            return
        time.sleep(0.1)
    raise StackError(f"{what} did not become ready within {timeout:.0f} s")


def _http_ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


def _stop_group(process: subprocess.Popen[bytes], grace: float) -> None:
    """SIGTERM the child's whole session, then SIGKILL whatever is left after ``grace`` seconds."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(grace)
    # The session may still hold grandchildren (dramatiq's forks) after the leader exited.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(5)


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM and SIGINT unwind like Ctrl-C, so every ``finally`` runs and children are stopped.

    SIGINT is set explicitly too: a shell starts background jobs with SIGINT ignored.
    """
    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@contextlib.contextmanager
def choose_redis(force_embedded: bool = False) -> Iterator[tuple[str, str]]:
    """(url, origin): ``REDIS_URL``, else a Redis on localhost:6379, else a private redis-server."""
    url = os.environ.get("REDIS_URL")
    if url and not force_embedded:
        if not _answers(url):
            raise RedisUnavailable(f"Redis at REDIS_URL does not answer ({_redact(url)})")
        yield url, "REDIS_URL"
        return
    if not force_embedded and _answers(DEFAULT_URL):
        yield DEFAULT_URL, "localhost:6379"
        return
    server = EmbeddedRedis().start()
    try:
        yield server.url, "embedded"
    finally:
        server.stop()


def _forget_keys(url: str, prefixes: list[str]) -> None:
    """Remove what a run left in a Redis it shares with others (never touches other keys)."""
    client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5)
    try:
        for prefix in prefixes:
            batch: list[bytes] = []
            for key in client.scan_iter(match=f"{prefix}:*", count=1000):
                batch.append(key)
                if len(batch) >= 500:
                    client.delete(*batch)
                    batch = []
            if batch:
                client.delete(*batch)
    except redis.RedisError:
        pass  # best effort: the keys are namespaced and expire or are harmless
    finally:
        client.close()


def worker_env(base: dict[str, str], *, redis_url: str, simulator_url: str, settings: WorkerSettings,
               metrics_port: int, metrics_dir: str) -> dict[str, str]:
    """The environment of a worker that talks to our simulator: no real Vipps credentials leak in."""
    env = {k: v for k, v in base.items() if not k.startswith("VIPPS_")}
    return env | {
        "REDIS_URL": redis_url, "VIPPS_ENV": "simulator", "VIPPS_BASE_URL": simulator_url,
        "DRAMATIQ_NAMESPACE": settings.dramatiq_namespace, "KEY_PREFIX": settings.key_prefix,
        "METRICS_PORT": str(metrics_port), "METRICS_HOST": "127.0.0.1", "PROMETHEUS_MULTIPROC_DIR": metrics_dir,
        # The simulator answers at once, so poll a fresh agreement sooner than Vipps's guideline.
        "AGREEMENT_POLL_START_SECONDS": "0.5", "AGREEMENT_POLL_SECONDS": "0.5",
        "WORKER_SHUTDOWN_TIMEOUT_SECONDS": "10", "LOG_LEVEL": base.get("LOG_LEVEL", "INFO"),
    }


@contextlib.contextmanager
def local_stack(*, force_embedded: bool = False, threads: int = 8,
                on_step: Callable[[str], None] | None = None) -> Iterator[Stack]:
    """Start Redis (or use yours), the simulator and a worker; stop all of them when the block ends."""
    step = on_step or (lambda _: None)
    run_id = uuid.uuid4().hex[:8]
    # Own namespace and key prefix: a shared Redis may hold someone's real queues.
    settings = WorkerSettings(dramatiq_namespace=f"vb-demo-{run_id}", key_prefix=f"vb-demo-{run_id}")
    workdir = Path(tempfile.mkdtemp(prefix="vipps-billing-demo-"))
    with sigterm_as_interrupt(), contextlib.ExitStack() as cleanup:
        cleanup.callback(shutil.rmtree, workdir, True)  # registered first, so it runs last
        step("starting Redis")
        url, origin = cleanup.enter_context(choose_redis(force_embedded))
        if origin != "embedded":
            cleanup.callback(_forget_keys, url, [settings.dramatiq_namespace, settings.key_prefix])

        step("starting the Vipps simulator")
        sim_port = free_port()
        simulator_url = f"http://127.0.0.1:{sim_port}"
        sim_env = {k: v for k, v in os.environ.items() if not k.startswith(("VIPPS_", "SIMULATOR_"))}
        with open(workdir / "simulator.log", "wb") as sim_log:
            simulator = subprocess.Popen(
                [sys.executable, "-m", "worker.cli.app", "simulator", "--host", "127.0.0.1", "--port", str(sim_port)],
                env=sim_env, stdin=subprocess.DEVNULL, stdout=sim_log, stderr=subprocess.STDOUT,
                start_new_session=True)
        cleanup.callback(_stop_group, simulator, 5.0)
        _wait(lambda: _http_ok(f"{simulator_url}/_simulator/health"), 30, "the simulator",
              lambda: simulator.poll() is None)

        step("starting the worker")
        metrics_port = free_port()
        env = worker_env(dict(os.environ), redis_url=url, simulator_url=simulator_url, settings=settings,
                         metrics_port=metrics_port, metrics_dir=str(workdir / "metrics"))
        worker_log = workdir / "worker.log"
        with open(worker_log, "wb") as log:
            worker = subprocess.Popen(
                [sys.executable, "-m", "worker.cli.app", "worker", "--processes", "1", "--threads", str(threads)],
                env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        cleanup.callback(_stop_group, worker, 20.0)
        metrics_url = f"http://127.0.0.1:{metrics_port}"
        try:
            _wait(lambda: _http_ok(f"{metrics_url}/healthz"), 60, "the worker", lambda: worker.poll() is None)
        except StackError as exc:
            raise StackError(f"{exc} (log: {worker_log})") from None
        yield Stack(redis_url=url, redis_origin=origin, simulator_url=simulator_url,
                    metrics_url=f"{metrics_url}/metrics", settings=settings, worker_log=worker_log, env=env)


def tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""
