"""The support console in the local stack: a one-time login for this run, and ``vipps-billing console serve``.

The console is started through the CLI, as the worker and the receiver are: ``worker.local`` does not import
``worker.console``. Only the password's hash is written down (in the run's private directory); the password
itself is handed back once, for the terminal.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from worker.local.processes import StackError, cli_args, free_port, start_child, wait_ready
from worker.runtime.settings import WorkerSettings
from worker.store.settings import SENTINEL_VARIABLES

USERNAME = "support"
ROLE = "operator"  # the local run's only user may do everything the console offers


@dataclass(frozen=True)
class ConsoleLogin:
    url: str
    username: str
    password: str = field(repr=False)  # one-time: shown on the terminal once, never written down


def start_hash(base: Mapping[str, str]) -> subprocess.Popen[bytes]:
    """``console hash-password``, started early: the CLI takes a moment to load, while other parts start.
    `password_hash` gives it the password (on stdin, never in argv) and reads the hash."""
    env = {k: v for k, v in base.items() if not k.startswith("VIPPS_")}
    return subprocess.Popen(cli_args("console", "hash-password"), env=env, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True)


def password_hash(process: subprocess.Popen[bytes], password: str, timeout: float = 60) -> str:
    """The hash of ``password`` from a `start_hash` process; StackError if it failed or took over ``timeout`` s."""
    try:
        out, _ = process.communicate(f"{password}\n".encode(), timeout=timeout)
    except subprocess.TimeoutExpired:
        raise StackError(f"the console's password hash took longer than {timeout:.0f} s") from None
    if process.returncode != 0 or not out.strip():
        raise StackError(f"the console's password hash failed (exit {process.returncode})")
    return out.decode().strip()


def private_file(path: Path, text: str) -> Path:
    """A new file readable and writable by its owner only (from the start, not chmod-ed after writing)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        file.write(text)
    return path


def write_login(directory: Path, username: str, password_hash: str) -> tuple[Path, Path]:
    """The users file (one ``operator``) and a fresh session secret in ``directory``; (users file, secret file)."""
    users = {"users": [{"username": username, "password_hash": password_hash, "role": ROLE}]}
    return (private_file(directory / "console-users.json", json.dumps(users)),
            private_file(directory / "console-session-secret", secrets.token_urlsafe(32)))


def console_env(base: Mapping[str, str], *, redis_url: str, simulator_url: str, settings: WorkerSettings,
                users_file: Path, secret_file: Path) -> dict[str, str]:
    """The console's environment: the worker's Redis, namespace and simulator, our login files; none of the
    caller's Vipps credentials or console settings."""
    env = {k: v for k, v in base.items()
           if not k.startswith(("VIPPS_", "CONSOLE_")) and k not in SENTINEL_VARIABLES}
    return env | {
        "REDIS_URL": redis_url, "KEY_PREFIX": settings.key_prefix, "DRAMATIQ_NAMESPACE": settings.dramatiq_namespace,
        "VIPPS_ENV": "simulator", "VIPPS_BASE_URL": simulator_url,
        "CONSOLE_USERS_FILE": str(users_file), "CONSOLE_SESSION_SECRET_FILE": str(secret_file),
        # Plain http on 127.0.0.1: a browser would never send a Secure cookie back, so no login would hold.
        "CONSOLE_COOKIE_SECURE": "false",
        # No operations port: its default is a fixed one, which a second local run would find taken.
        "CONSOLE_METRICS_PORT": "0",
        "LOG_LEVEL": "WARNING",
    }


def start_console(log: IO[bytes], env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    """``vipps-billing console serve`` on a free loopback port, started; (process, its URL, ending in ``/``). It
    loads while the worker starts; `console_ready` waits for it."""
    port = free_port()
    process = start_child(cli_args("console", "serve", "--host", "127.0.0.1", "--port", str(port)), env, log)
    return process, f"http://127.0.0.1:{port}/"


def console_ready(process: subprocess.Popen[bytes], url: str) -> None:
    """Until the console's login page (at ``url``, a `start_console` URL) answers; StackError if it exits first
    or takes longer than 30 s."""
    wait_ready(process, f"{url}login", 30, "the support console")
