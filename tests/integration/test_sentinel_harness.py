"""The Sentinel harness of the failover tests (tests/sentinel.py): real processes started, killed and restarted."""

from __future__ import annotations

import contextlib

import pytest
import redis

from tests.sentinel import HOST, MASTER, SentinelGroup
from tests.stack import wait_for
from worker.local.redis import redis_server_binary

pytestmark = pytest.mark.skipif(redis_server_binary() is None, reason="needs a redis-server binary")


def write(client: redis.Redis, key: str, value: str) -> None:
    """SET, asked again while there is no primary to take it."""
    def done() -> bool:
        try:
            client.set(key, value)
        except redis.RedisError:
            return False
        return True

    wait_for(done, 30, interval=0.2, what=f"SET {key}")


def test_a_killed_primary_is_replaced_and_comes_back_as_a_replica() -> None:
    group = SentinelGroup().start()
    try:
        ports = ",".join(f"{HOST}:{s.port}" for s in group.sentinels)
        assert group.url == f"redis+sentinel://{ports}/{MASTER}/0"
        first = group.primary()
        client = group.client()
        write(client, "before", "1")
        assert client.wait(1, 5000) == 1  # on the replica before the primary dies

        assert group.kill_primary() == first
        second = group.wait_promoted(first)
        assert second != first and group.node_at(second).replication()["role"] == "master"
        write(client, "after", "2")  # the same client now reaches the promoted replica
        assert client.get("before") == b"1"

        group.restart_as_replica(first)
        info = group.node_at(first).replication()
        assert (info["role"], info["master_port"], info["master_link_status"]) == ("slave", second[1], "up")
        assert group.primary() == second
        with contextlib.closing(group.node_at(first).client()) as old:
            wait_for(lambda: old.get("after") == b"2", 10, what="the restarted node holding the new write")
        processes = [n.process for n in group.nodes + group.sentinels]
    finally:
        group.stop()
    assert all(p is not None and p.poll() is not None for p in processes), "stop() leaves no process running"
