"""A whole local stack as child processes: Redis (yours or a private one), the simulator, a worker, the
webhook receiver and the support console.

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
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from secrets import token_urlsafe
from typing import Any

import redis

from worker.local.console import (
    USERNAME,
    ConsoleLogin,
    console_env,
    console_ready,
    password_hash,
    start_console,
    start_hash,
    write_login,
)
from worker.local.processes import (
    StackError,
    cli_args,
    free_port,
    kill_group,
    receiver_url,
    start_child,
    start_receiver,
    start_simulator,
    stop_group,
    wait_ready,
    worker_env,
)
from worker.local.redis import FoundRedis, find_redis
from worker.runtime.settings import WorkerSettings
from worker.vipps import VippsClient, load_settings
from worker.vipps.config import SIMULATOR_DEFAULTS
from worker.vipps.webhook_events import RECURRING_EVENTS
from worker.webhooks.secrets import keep_secret


@dataclass
class Stack:
    redis: FoundRedis
    simulator_url: str
    metrics_url: str
    settings: WorkerSettings          # what the worker was given (own namespace and key prefix)
    worker_log: Path
    console: ConsoleLogin             # the support console on this stack, with the run's one-time login
    env: dict[str, str] = field(default_factory=dict)
    webhook_url: str | None = None    # the local receiver, registered at the simulator for all ten events


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


def forget_keys(url: str, prefixes: list[str]) -> None:
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


def _start_worker(cleanup: contextlib.ExitStack, workdir: Path, found: FoundRedis, simulator_url: str,
                  settings: WorkerSettings, threads: int) -> tuple[str, Path, dict[str, str]]:
    """A worker on our simulator; (metrics base URL, its log, its environment) once it is healthy."""
    metrics_port = free_port()
    env = worker_env(os.environ, redis_url=found.url, simulator_url=simulator_url, settings=settings,
                     metrics_port=metrics_port, metrics_dir=str(workdir / "metrics")) | {
        # The simulator answers at once, so poll a fresh agreement sooner than Vipps's guideline.
        "AGREEMENT_POLL_START_SECONDS": "0.5", "AGREEMENT_POLL_SECONDS": "0.5",
        "WORKER_SHUTDOWN_TIMEOUT_SECONDS": "10",
    }
    env.setdefault("LOG_LEVEL", "INFO")
    worker_log = workdir / "worker.log"
    with open(worker_log, "wb") as log:
        worker = start_child(cli_args("worker", "--processes", "1", "--threads", str(threads)), env, log)
    cleanup.callback(stop_group, worker, 20.0)
    metrics_url = f"http://127.0.0.1:{metrics_port}"
    try:
        wait_ready(worker, f"{metrics_url}/healthz", 60, "the worker")
    except StackError as exc:
        raise StackError(f"{exc} (log: {worker_log})") from None
    return metrics_url, worker_log, env


def _start_receiver(cleanup: contextlib.ExitStack, workdir: Path, found: FoundRedis, simulator_url: str,
                    settings: WorkerSettings) -> str:
    """Register a local receiver at the simulator (its own credentials, never the caller's VIPPS_*) and start it,
    so webhooks and polling work together as in production; returns its URL."""
    url = receiver_url()
    simulator = load_settings(env="simulator", base_url=simulator_url, merchants_file=None,
                              **{name: SIMULATOR_DEFAULTS[name] for name in SIMULATOR_DEFAULTS})
    with VippsClient(simulator) as client:
        made = client.register_webhook(url, list(RECURRING_EVENTS))
    secrets = workdir / "webhook-secrets"
    keep_secret(secrets, made.id, made.secret.get_secret_value())
    with open(workdir / "receiver.log", "wb") as log:
        receiver = start_receiver(log, url, redis_url=found.url, secrets_dir=secrets, settings=settings)
    cleanup.callback(stop_group, receiver, 5.0)
    return url


def _start_console(cleanup: contextlib.ExitStack, workdir: Path, found: FoundRedis, simulator_url: str,
                   settings: WorkerSettings,
                   hashing: subprocess.Popen[bytes]) -> tuple[subprocess.Popen[bytes], ConsoleLogin]:
    """The support console on the worker's Redis and simulator, started (`console_ready` waits for it), with one
    user (``support``) whose random password is made for this run and hashed by ``hashing`` (a `start_hash`);
    only the hash and the session secret are kept, in ``workdir`` (removed at the end)."""
    password = token_urlsafe()
    users_file, secret_file = write_login(workdir, USERNAME, password_hash(hashing, password))
    env = console_env(os.environ, redis_url=found.url, simulator_url=simulator_url, settings=settings,
                      users_file=users_file, secret_file=secret_file)
    with open(workdir / "console.log", "wb") as log:
        process, url = start_console(log, env)
    cleanup.callback(stop_group, process, 5.0)
    return process, ConsoleLogin(url=url, username=USERNAME, password=password)


@contextlib.contextmanager
def local_stack(*, redis_url: str | None, force_embedded: bool = False, threads: int = 8,
                on_step: Callable[[str], None] | None = None) -> Iterator[Stack]:
    """Start Redis (or use ``redis_url``, or one on localhost), the simulator, the webhook receiver, a worker and
    the support console; stop all of them when the block ends."""
    step = on_step or (lambda _: None)
    run_id = uuid.uuid4().hex[:8]
    # Own namespace and key prefix: a shared Redis may hold someone's real queues.
    settings = WorkerSettings(dramatiq_namespace=f"vb-demo-{run_id}", key_prefix=f"vb-demo-{run_id}")
    workdir = Path(tempfile.mkdtemp(prefix="vipps-billing-demo-"))
    with sigterm_as_interrupt(), contextlib.ExitStack() as cleanup:
        cleanup.callback(shutil.rmtree, workdir, True)  # registered first, so it runs last
        step("starting Redis")
        found = cleanup.enter_context(find_redis(redis_url, force_embedded=force_embedded))
        if found.origin != "embedded":
            cleanup.callback(forget_keys, found.url, [settings.dramatiq_namespace, settings.key_prefix])

        step("starting the Vipps simulator")
        hashing = start_hash(os.environ)  # the console's password hash: its CLI loads while the simulator starts
        cleanup.callback(kill_group, hashing)
        with open(workdir / "simulator.log", "wb") as sim_log:
            simulator, simulator_url = start_simulator(sim_log)
        cleanup.callback(stop_group, simulator, 5.0)

        step("starting the webhook receiver")
        webhook_url = _start_receiver(cleanup, workdir, found, simulator_url, settings)

        step("starting the support console")
        console_process, console = _start_console(cleanup, workdir, found, simulator_url, settings, hashing)

        step("starting the worker")  # the console loads meanwhile, and is waited for after the worker
        metrics_url, worker_log, env = _start_worker(cleanup, workdir, found, simulator_url, settings, threads)
        console_ready(console_process, console.url)
        yield Stack(redis=found, simulator_url=simulator_url, metrics_url=f"{metrics_url}/metrics",
                    settings=settings, worker_log=worker_log, console=console, env=env, webhook_url=webhook_url)


def tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""
