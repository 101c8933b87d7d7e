"""The processes a bench run starts (simulators, workers, the naive baseline) and what they cost.

CPU seconds and memory are read with psutil, summed over a child and all its descendants
(a worker's dramatiq forks).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import psutil

from worker.bench.naive import QUEUE as NAIVE_QUEUE
from worker.local.processes import cli_args, free_port, kill_group, start_child, stop_group, worker_env
from worker.local.processes import start_simulator as start_local_simulator
from worker.runtime.settings import WorkerSettings


class Group:
    """A child process with its descendants, in its own session, logging to a file in the scratch directory."""

    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        self.process = process
        self._ended = False

    @classmethod
    def start(cls, args: list[str], env: dict[str, str], scratch: Path) -> Group:
        with tempfile.NamedTemporaryFile(prefix="bench-", suffix=".log", delete=False, dir=scratch) as log:
            return cls(start_child(args, env, log))

    def usage(self) -> tuple[float, int]:
        """(CPU seconds, RSS bytes) summed over the live processes of the group."""
        try:
            leader = psutil.Process(self.process.pid)
            processes = [leader, *leader.children(recursive=True)]
        except psutil.Error:
            return 0.0, 0
        cpu, rss = 0.0, 0
        for process in processes:
            with contextlib.suppress(psutil.Error), process.oneshot():
                times = process.cpu_times()
                cpu += times.user + times.system
                rss += process.memory_info().rss
        return cpu, rss

    def kill(self) -> None:
        if not self._ended:
            self._ended = True
            kill_group(self.process)

    def stop(self) -> None:
        """SIGTERM, SIGKILL after 30 s; nothing if it was stopped or killed before (its pid may be reused)."""
        if not self._ended:
            self._ended = True
            stop_group(self.process, 30.0)


class Sampler:
    """Samples a group's peak RSS in the background."""

    def __init__(self, group: Group) -> None:
        self.group, self.peak, self._stop = group, 0, threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.25):
            self.peak = max(self.peak, self.group.usage()[1])

    def close(self) -> int:
        self._stop.set()
        self.thread.join()
        return self.peak


def start_simulator(scratch: Path, *args: str) -> tuple[Group, str]:
    """A simulator (``vipps-billing simulator ARGS``) once it answers; (its group, its base URL)."""
    with tempfile.NamedTemporaryFile(prefix="bench-", suffix=".log", delete=False, dir=scratch) as log:
        process, url = start_local_simulator(log, *args)
    return Group(process), url


def start_worker(kind: str, redis_url: str, sim_url: str, settings: WorkerSettings, scratch: Path, *,
                 processes: int, threads: int, env: dict[str, str] | None = None) -> Group:
    """The full worker (``vipps-billing worker``) or the naive baseline, on the simulator at ``sim_url``."""
    base = worker_env(os.environ, redis_url=redis_url, simulator_url=sim_url, settings=settings,
                      metrics_port=free_port(), metrics_dir=tempfile.mkdtemp(prefix="prom-", dir=scratch)) | {
        # Charges are polled around their due date in production, not while a run is measured.
        "LOG_LEVEL": "WARNING", "CHARGE_POLL_SECONDS": "3600",
        # The scenarios start the simulator without its limits: the worker's per-merchant cap on charge
        # creation (500 a minute, Vipps's) is off too, or it alone would set the pace.
        "VIPPS_CHARGES_PER_MINUTE": "0",
        "dramatiq_queue_prefetch": str(threads * 2), "dramatiq_worker_timeout": "200"}
    if kind == "naive":
        args = [sys.executable, "-m", "dramatiq", "worker.bench.naive:setup", "--processes", str(processes),
                "--threads", str(threads), "--queues", NAIVE_QUEUE, "--skip-logging"]
    else:
        args = cli_args("worker", "--processes", str(processes), "--threads", str(threads))
    return Group.start(args, base | (env or {}), scratch)
