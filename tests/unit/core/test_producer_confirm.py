"""A producer can ask for its commands to be on a replica before it counts them as sent (WAIT)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import redis

from tests.replicated import Node, nodes, replica_of
from worker import NotConfirmed, Producer
from worker.local.redis import redis_server_binary
from worker.store.keys import Layout

needs_redis_server = pytest.mark.skipif(redis_server_binary() is None, reason="no redis-server binary")


def command(cid: str) -> dict[str, object]:
    return {"command_id": cid, "type": "charge.fetch", "agreement_id": "agr_1", "charge_id": "chr_1"}


def queued(client: redis.Redis) -> int:
    return int(client.llen(Layout().dramatiq.queue(Layout().charges_queue)))


@pytest.fixture(scope="module")
def primary_and_replica() -> Iterator[tuple[Node, Node]]:
    if redis_server_binary() is None:
        pytest.skip("no redis-server binary")
    primary = Node()
    replica = replica_of(primary)
    with nodes(primary, replica):
        yield primary, replica


@needs_redis_server
def test_a_confirmed_send_is_on_the_replica_when_it_returns(primary_and_replica: tuple[Node, Node]) -> None:
    primary, replica = primary_and_replica
    with Producer(primary.url, confirm_replicas=1, confirm_timeout_ms=5000) as producer:
        before = queued(replica.client)
        producer.send(command("confirmed-1"))
        assert producer.send_many([command("confirmed-2"), command("confirmed-3")]) == 2
        assert queued(replica.client) == before + 3


@needs_redis_server
def test_a_send_asks_for_one_replica_with_confirm_true(primary_and_replica: tuple[Node, Node]) -> None:
    primary, _ = primary_and_replica
    with Producer(primary.url) as producer:
        producer.send(command("asked-1"), confirm=True)


def test_without_replicas_a_confirmed_send_raises_not_confirmed_after_its_timeout(redis_url: str) -> None:
    with Producer(redis_url, confirm_replicas=1, confirm_timeout_ms=200) as producer:
        started = time.monotonic()
        with pytest.raises(NotConfirmed) as caught:
            producer.send(command("unconfirmed-1"))
        assert 0.15 < time.monotonic() - started < 2.0
        assert caught.value.wanted == 1 and caught.value.acknowledged == 0 and len(caught.value.message_ids) == 1
        assert "0 of 1 replica(s)" in str(caught.value)
        # Written on the primary all the same: sending again with the same command_id is how to make sure.
        assert queued(producer.redis) >= 1
        producer.send(command("unconfirmed-1"), confirm=False)  # no wait asked: returns at once
        producer.redis.flushdb()
