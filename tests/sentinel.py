"""A Redis Sentinel group of real processes: a primary, a replica and three Sentinels, all on loopback.

``SentinelGroup().start()`` starts them from ``redis_server_binary()`` on free ports, each in its own
temp dir, and ``stop()`` kills them all and removes the dirs (also at interpreter exit, whatever happened).
``url`` is the form the worker and the Producer read from ``REDIS_URL``:
``redis+sentinel://127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3/<master>/0``.

The data nodes keep an AOF with ``appendfsync everysec``, the production default. In a failover the fsync
policy changes nothing: the promoted replica's dataset wins, and a killed primary that comes back loads its
AOF only to be resynced in full from the new primary. What a failover can lose is what the primary had
acknowledged and not yet sent to the replica, which no fsync policy covers.
"""

from __future__ import annotations

import atexit
import contextlib
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis
from redis.sentinel import MasterNotFoundError, Sentinel

from tests.stack import wait_for
from worker.local.processes import free_port
from worker.local.redis import RedisUnavailable, redis_server_binary

HOST = "127.0.0.1"
MASTER = "vipps-billing"
Address = tuple[str, int]


@dataclass
class Node:
    """One redis-server process (a data node or a Sentinel): its port, config file and log."""

    port: int
    directory: Path
    sentinel: bool = False
    process: subprocess.Popen[bytes] | None = None

    @property
    def config(self) -> Path:
        return self.directory / ("sentinel.conf" if self.sentinel else "redis.conf")

    @property
    def address(self) -> Address:
        return HOST, self.port

    def start(self, exe: str) -> None:
        args = [exe, str(self.config)] + (["--sentinel"] if self.sentinel else [])
        self.process = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)

    def kill(self) -> None:
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.kill()
        if process is not None:
            process.wait()

    def client(self) -> redis.Redis:
        return redis.Redis(HOST, self.port, socket_timeout=2, socket_connect_timeout=1)

    def answers(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise RedisUnavailable(f"redis-server on port {self.port} exited; see {self.directory}")
        try:
            with contextlib.closing(self.client()) as c:
                return bool(c.ping())
        except redis.RedisError:
            return False

    def replication(self) -> dict[str, Any]:
        with contextlib.closing(self.client()) as c:
            info: dict[str, Any] = c.info("replication")
            return info

    def log(self) -> str:
        path = self.directory / "redis.log"
        return path.read_text(errors="replace") if path.exists() else ""


class SentinelGroup:
    """One primary, one replica and three Sentinels (quorum 2) monitoring them as ``master``."""

    def __init__(self, master: str = MASTER, *, fsync: str = "everysec", down_after_ms: int = 1000,
                 failover_timeout_ms: int = 5000) -> None:
        exe = redis_server_binary()
        if exe is None:
            raise RedisUnavailable("no redis-server binary found")
        self.exe, self.master, self.fsync = exe, master, fsync
        self.down_after_ms, self.failover_timeout_ms = down_after_ms, failover_timeout_ms
        self.directory = Path(tempfile.mkdtemp(prefix="vipps-billing-sentinel-"))
        self.nodes = [self._node(f"redis-{i}") for i in range(2)]
        self.sentinels = [self._node(f"sentinel-{i}", sentinel=True) for i in range(3)]
        self._sentinel: Sentinel | None = None
        atexit.register(self.stop)

    def _node(self, name: str, sentinel: bool = False) -> Node:
        directory = self.directory / name
        directory.mkdir()
        return Node(free_port(), directory, sentinel)

    @property
    def url(self) -> str:
        hosts = ",".join(f"{HOST}:{s.port}" for s in self.sentinels)
        return f"redis+sentinel://{hosts}/{self.master}/0"

    def start(self, timeout: float = 30.0) -> SentinelGroup:
        try:
            primary, replica = self.nodes
            self._write_data_config(primary)
            self._write_data_config(replica, replica_of=primary)
            for node in self.nodes:
                node.start(self.exe)
            for node in self.nodes:
                wait_for(node.answers, timeout, what=f"redis-server on {node.port}")
            wait_for(lambda: self._synced(replica), timeout, what="the replica in sync")
            for s in self.sentinels:
                self._write_sentinel_config(s, primary)
                s.start(self.exe)
            self.wait_monitored(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _write_data_config(self, node: Node, replica_of: Node | None = None) -> None:
        lines = [f"port {node.port}", f"bind {HOST}", f"dir {node.directory}", "logfile redis.log", 'save ""',
                 "appendonly yes", f"appendfsync {self.fsync}", "maxmemory-policy noeviction", "daemonize no"]
        if replica_of is not None:
            lines.append(f"replicaof {HOST} {replica_of.port}")
        node.config.write_text("\n".join(lines) + "\n")

    def _write_sentinel_config(self, node: Node, primary: Node) -> None:
        m = self.master
        node.config.write_text("\n".join([
            f"port {node.port}", f"bind {HOST}", f"dir {node.directory}", "logfile redis.log", "daemonize no",
            f"sentinel monitor {m} {HOST} {primary.port} 2",
            f"sentinel down-after-milliseconds {m} {self.down_after_ms}",
            f"sentinel failover-timeout {m} {self.failover_timeout_ms}",
            f"sentinel parallel-syncs {m} 1",
        ]) + "\n")

    @staticmethod
    def _synced(node: Node) -> bool:
        info = node.replication()
        return info.get("role") == "slave" and info.get("master_link_status") == "up"

    def wait_monitored(self, timeout: float = 30.0) -> None:
        """Until every Sentinel sees the primary up, the replica up and the two other Sentinels: only then
        can they agree on a failover."""
        def ready(s: Node) -> bool:
            try:
                with contextlib.closing(s.client()) as c:
                    state: Any = c.sentinel_master(self.master)
                    replicas: Any = c.sentinel_slaves(self.master)
            except redis.RedisError:
                return False
            return (not state["is_sdown"] and not state["is_odown"] and state["num-other-sentinels"] == 2
                    and len(replicas) == 1 and not replicas[0]["is_sdown"]
                    and replicas[0].get("master-link-status") == "ok")

        wait_for(lambda: all(ready(s) for s in self.sentinels), timeout, what="the Sentinels monitoring the group")

    def sentinel(self) -> Sentinel:
        if self._sentinel is None:
            self._sentinel = Sentinel([s.address for s in self.sentinels], socket_timeout=1.0,
                                      socket_connect_timeout=1.0)
        return self._sentinel

    def primary(self) -> Address:
        """The primary's address as the Sentinels report it now (MasterNotFoundError during a failover)."""
        host, port = self.sentinel().discover_master(self.master)
        return str(host), int(port)

    def client(self, **kwargs: Any) -> redis.Redis:
        """A client that follows the primary: each new connection asks the Sentinels where it is."""
        options = {"socket_timeout": 5.0, "socket_connect_timeout": 2.0} | kwargs
        return self.sentinel().master_for(self.master, **options)

    def node_at(self, address: Address) -> Node:
        return next(n for n in self.nodes if n.address == address)

    def kill_primary(self) -> Address:
        """SIGKILL the process serving as primary now; returns its address."""
        address = self.primary()
        node = self.node_at(address)
        assert node.replication()["role"] == "master", f"{address} is not serving as primary"
        node.kill()
        return address

    def wait_promoted(self, old: Address, timeout: float = 30.0) -> Address:
        """Until the Sentinels report another primary and it answers as ``role:master``; returns it."""
        def promoted() -> Address | None:
            try:
                now = self.primary()
            except (MasterNotFoundError, redis.RedisError):
                return None
            if now == old:
                return None
            try:
                return now if self.node_at(now).replication()["role"] == "master" else None
            except redis.RedisError:
                return None

        found: Address = wait_for(promoted, timeout, interval=0.05, what=f"a primary other than {old}")
        return found

    def restart_as_replica(self, old: Address, timeout: float = 60.0) -> None:
        """Start the killed node again on its port; the Sentinels make it a replica of the new primary.
        Returns once it replicates (``role:slave``, ``master_link_status:up``) and every Sentinel sees it so."""
        node = self.node_at(old)
        assert node.process is None, f"{old} is still running"
        node.start(self.exe)
        wait_for(node.answers, timeout, what=f"redis-server on {node.port} again")
        wait_for(lambda: self._synced(node), timeout, interval=0.2, what=f"{old} replicating the new primary")
        self.wait_monitored(timeout)

    def stop(self) -> None:
        if self._sentinel is not None:
            for s in self._sentinel.sentinels:
                s.close()
            self._sentinel = None
        for node in self.sentinels + self.nodes:
            node.kill()
        shutil.rmtree(self.directory, ignore_errors=True)

    def logs(self) -> str:
        """Every process's log, for a failed test's output."""
        return "\n".join(f"--- port {n.port} ({n.directory.name})\n{n.log()[-4000:]}"
                         for n in self.nodes + self.sentinels)

    def __enter__(self) -> SentinelGroup:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
