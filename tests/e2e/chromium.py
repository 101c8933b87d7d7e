"""Debian's Chromium for the browser tests, installed with apt where it is missing.

Playwright drives it through ``executable_path``; Playwright's own browser builds are never downloaded. The
install runs as root, else through ``sudo -n``, under a file lock so that parallel test runs on one machine
do not start apt twice; anything that stops it fails the tests with the reason (a browser test that cannot
run is not a pass).
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")
PACKAGES = ("chromium", "chromium-driver")
LOCK = Path(tempfile.gettempdir()) / "vipps-billing-chromium-install.lock"
# apt waits this long for another apt or dpkg to let go of its own lock.
APT_LOCK_SECONDS = 120
# The whole install, within the test timeout of the test that first asks for Chromium.
INSTALL_SECONDS = 480


class ChromiumMissing(Exception):
    """Chromium is not there and could not be installed; the message says why and what to run."""


def _usable() -> bool:
    if not os.access(CHROMIUM, os.X_OK):
        return False
    try:
        run = subprocess.run([str(CHROMIUM), "--version"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return run.returncode == 0 and "Chromium" in run.stdout


@contextmanager
def _locked() -> Iterator[None]:
    try:
        fh = open(LOCK, "a")  # noqa: SIM115 (closed below, after the lock is let go)
    except OSError as exc:
        raise ChromiumMissing(f"{CHROMIUM} is missing, and the install lock {LOCK} cannot be opened: "
                              f"{exc.strerror}") from None
    with fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _as_root() -> list[str]:
    if os.geteuid() == 0:
        return []
    if shutil.which("sudo") is None:
        raise ChromiumMissing(f"{CHROMIUM} is missing, and this user is not root and has no sudo")
    return ["sudo", "-n"]


def _apt(prefix: list[str], deadline: float, *args: str) -> subprocess.CompletedProcess[str]:
    command = [*prefix, "env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "-o",
               f"DPkg::Lock::Timeout={APT_LOCK_SECONDS}", *args]
    try:
        return subprocess.run(command, capture_output=True, text=True, stdin=subprocess.DEVNULL,
                              timeout=max(1.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        raise ChromiumMissing(f"`{' '.join(command)}` had not finished after {INSTALL_SECONDS} s") from None


def _tail(run: subprocess.CompletedProcess[str]) -> str:
    return " | ".join((run.stdout + run.stderr).strip().splitlines()[-5:])


def ensure_chromium() -> Path:
    """/usr/bin/chromium, installed first (apt-get update too when the package lists lack it) if missing."""
    if _usable():
        return CHROMIUM
    with _locked():
        if _usable():  # another run installed it while this one waited
            return CHROMIUM
        prefix, deadline = _as_root(), time.monotonic() + INSTALL_SECONDS
        install = ("install", "-y", "--no-install-recommends", *PACKAGES)
        run = _apt(prefix, deadline, *install)
        if run.returncode != 0:
            # A fresh machine may have no package lists yet, or stale ones naming versions long gone.
            update = _apt(prefix, deadline, "update")
            if update.returncode != 0:
                raise ChromiumMissing(f"apt-get update failed ({update.returncode}): {_tail(update)}")
            run = _apt(prefix, deadline, *install)
        if run.returncode != 0:
            raise ChromiumMissing(f"apt-get install {' '.join(PACKAGES)} failed ({run.returncode}): {_tail(run)}")
        if not _usable():
            raise ChromiumMissing(f"{' '.join(PACKAGES)} installed, but `{CHROMIUM} --version` does not answer")
    return CHROMIUM
