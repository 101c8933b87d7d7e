"""``vipps-billing worker``: run the worker processes (dramatiq) on the command queues."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Annotated, Any

import typer

from worker.cli.common import fail
from worker.local.redis import RedisUnavailable, find_redis
from worker.runtime.settings import SettingsError, WorkerSettings, get_settings
from worker.store.keys import Layout
from worker.store.settings import SENTINEL_VARIABLES
from worker.vipps import ConfigError, load_settings
from worker.vipps.merchants import load_merchants


def worker(
    processes: Annotated[int | None, typer.Option(help="worker processes (env WORKER_PROCESSES)")] = None,
    threads: Annotated[int | None, typer.Option(help="threads per process (env WORKER_THREADS)")] = None,
) -> None:
    """Run the worker: consume the command queues until SIGTERM.

    Example: REDIS_URL=redis://127.0.0.1:6379/0 vipps-billing worker --processes 1 --threads 16
    """
    try:
        settings = get_settings()
        layout = settings.layout(load_merchants(load_settings()).msns)
    except (SettingsError, ConfigError) as exc:
        raise fail(str(exc)) from None
    if settings.metrics_port and not port_free(settings.metrics_host, settings.metrics_port):
        raise fail(f"METRICS_PORT {settings.metrics_port} on {settings.metrics_host} is in use (another worker?)")
    try:
        with find_redis(settings.redis_target(), configured_as=settings.redis_variable) as found:
            raise typer.Exit(run_worker(found.url, processes or settings.worker_processes,
                                        threads or settings.worker_threads, settings, layout))
    except RedisUnavailable as exc:
        raise fail(str(exc)) from None


def port_free(host: str, port: int) -> bool:
    """Whether the metrics endpoint could listen there (the endpoint itself stops the worker if it cannot)."""
    try:
        with socket.create_server((host, port)):
            return True
    except OSError:
        return False


def run_worker(url: str, processes: int, threads: int, settings: WorkerSettings, layout: Layout | None = None,
               extra_env: dict[str, str] | None = None) -> int:
    """Run the worker (``dramatiq worker.runtime.main:setup``) on the command queues; returns its exit code."""
    # prometheus_client's own variable (not a worker setting): the multiprocess metrics directory.
    given_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    metrics_dir = Path(given_dir or tempfile.mkdtemp(prefix="vipps-billing-prom-"))
    if metrics_dir.exists():
        shutil.rmtree(metrics_dir)  # stale files from a previous run would add up
    metrics_dir.mkdir(parents=True)
    # Loads dramatiq and the metrics (only for this command), after the metrics directory exists: a metric
    # without labels writes its file there as soon as it is defined.
    from worker.runtime.main import ENTRY
    # The URL says it all (a sentinel URL too); the secrets kept apart (REDIS_PASSWORD_FILE, ...) pass on as they are.
    inherited = {k: v for k, v in os.environ.items() if k not in SENTINEL_VARIABLES}
    env = inherited | (extra_env or {}) | {
        "REDIS_URL": url, "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir), "prometheus_multiproc_dir": str(metrics_dir),
        "dramatiq_prom_db": str(metrics_dir), "dramatiq_queue_prefetch": str(max(2, threads * 2)),
        "dramatiq_worker_timeout": "200",
    }
    layout = layout or settings.layout()
    args = [sys.executable, "-m", "dramatiq", ENTRY, "--processes", str(processes),
            "--threads", str(threads), "--queues", *layout.command_queues, layout.webhooks_queue,
            "--worker-shutdown-timeout", str(int(settings.worker_shutdown_timeout_seconds * 1000)),
            "--skip-logging"]
    child = subprocess.Popen(args, env=env)

    def forward(signum: int, _: Any) -> None:
        child.send_signal(signum)

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, forward)
    try:
        return child.wait()
    finally:
        if not given_dir:
            shutil.rmtree(metrics_dir, ignore_errors=True)
