"""What a process group costs, read with psutil over the child and its descendants."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from worker.bench.processes import Group, Sampler
from worker.local.wait import wait_until

# Busy for a moment, 60 MB held, and a grandchild holding 30 MB more (as dramatiq's forks would).
CHILD = ("import subprocess, sys, time; "
         "subprocess.Popen([sys.executable, '-c', 'import time; x = bytearray(30 * 2**20); time.sleep(60)']); "
         "x = bytearray(60 * 2**20); sum(range(3 * 10**6)); print('ready', flush=True); time.sleep(60)")


@pytest.fixture
def group(tmp_path: Path) -> Iterator[Group]:
    started = Group.start([sys.executable, "-c", CHILD], {}, tmp_path)
    try:
        wait_until(lambda: len(psutil.Process(started.process.pid).children()) == 1 and started.usage()[1] > 90
                   * 2**20, 20, "the child and its grandchild", every=0.05)
        yield started
    finally:
        started.kill()


def test_usage_sums_the_child_and_its_descendants(group: Group) -> None:
    cpu, rss = group.usage()
    assert cpu > 0
    assert 90 * 2**20 < rss < 400 * 2**20


def test_the_sampler_keeps_the_peak(group: Group) -> None:
    sampler = Sampler(group)
    wait_until(lambda: sampler.peak > 0, 5, "a sample", every=0.05)
    assert sampler.close() > 90 * 2**20


def test_a_killed_group_costs_nothing_and_stops_once(group: Group) -> None:
    leader = psutil.Process(group.process.pid)
    family = [leader, *leader.children(recursive=True)]
    group.kill()
    assert group.usage() == (0.0, 0)
    # SIGKILL is delivered to the whole group at once, but a busy machine may take a moment to end each one.
    wait_until(lambda: not any(alive(p) for p in family), 5, "the group to be gone", every=0.05)
    group.stop()  # after a kill: nothing to do, and no signal to a pid that may be someone else's now


def alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_its_output_goes_to_a_log_in_the_scratch_directory(tmp_path: Path, group: Group) -> None:
    [log] = tmp_path.glob("bench-*.log")
    wait_until(lambda: "ready" in log.read_text(), 10, "the child's line in its log", every=0.05)
