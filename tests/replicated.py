"""Private Redis nodes for replication tests: a primary, its replicas, and Sentinels watching it.

Each node is a ``redis-server`` on a free loopback port with its own directory, stopped (SIGKILL) at the end;
never the shared Redis on 6379.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import redis

from worker.local.processes import free_port
from worker.local.redis import redis_server_binary


class Node:
    def __init__(self, *args: str, sentinel: bool = False) -> None:
        exe = redis_server_binary()
        assert exe is not None, "no redis-server binary"
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="vipps-billing-node-")
        if sentinel:
            config = Path(self.dir) / "sentinel.conf"
            config.write_text("\n".join(args) + "\n")
            argv = [exe, str(config), "--sentinel", "--port", str(self.port), "--bind", "127.0.0.1"]
        else:
            argv = [exe, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                    "--dir", self.dir, *args]
        self.process = subprocess.Popen([*argv, "--daemonize", "no", "--logfile", str(Path(self.dir) / "log")],
                                        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.client = redis.Redis(port=self.port, socket_timeout=2)
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(redis.RedisError):
                if self.client.ping():
                    break
            assert time.monotonic() < deadline and self.process.poll() is None, "redis-server did not start"
            time.sleep(0.05)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        self.client.close()
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def replica_of(primary: Node) -> Node:
    node = Node("--replicaof", "127.0.0.1", str(primary.port))
    deadline = time.monotonic() + 10
    while node.client.info("replication").get("master_link_status") != "up":
        assert time.monotonic() < deadline, "the replica did not sync"
        time.sleep(0.05)
    return node


def sentinel_of(primary: Node, master: str = "mymaster") -> Node:
    return Node(f"sentinel monitor {master} 127.0.0.1 {primary.port} 1",
                f"sentinel down-after-milliseconds {master} 1000", f"sentinel failover-timeout {master} 5000",
                sentinel=True)


@contextlib.contextmanager
def nodes(*made: Node) -> Iterator[None]:
    try:
        yield
    finally:
        for node in reversed(made):
            node.stop()
