"""One read of the worker's state in Redis: queues, in flight, retries, watchlist, dead letters, outbox, workers.

Shared by ``vipps-billing status`` and the metrics endpoint, so both always say the same.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

import redis

from worker.store.keys import Layout


@dataclass(frozen=True)
class QueueState:
    ready: int
    delayed: int
    dead: int
    oldest_age_seconds: float


@dataclass(frozen=True)
class RedisState:
    queues: dict[str, QueueState]
    in_flight: int
    retry_scheduled: int
    watch_agreements: int
    watch_charges: int
    dead_letters: int
    outbox_pending: int
    outbox_oldest_age_seconds: float
    workers_live: int
    workers_stale: int
    charge_batches: dict[str, int]  # msn -> charge.create commands waiting for the batch endpoint


def read_state(client: redis.Redis, layout: Layout, *, heartbeat_timeout_ms: int) -> RedisState:
    keys, dq = layout.keys, layout.dramatiq
    queues = (*layout.command_queues, layout.events_queue)
    heartbeats = dq.heartbeats
    now_ms = time.time() * 1000
    pipe = client.pipeline(transaction=False)
    for q in queues:
        pipe.llen(dq.queue(q))
        pipe.hlen(dq.messages(dq.delayed(q)))
        pipe.zcard(dq.dead(q))
        pipe.lindex(dq.queue(q), 0)
    pipe.zcard(keys.inflight)
    pipe.zcard(keys.retry)
    pipe.zcard(keys.watch)
    pipe.zcard(keys.watch_charges)
    pipe.zcard(keys.dead_letter_index)
    pipe.zcard(keys.outbox_born)
    pipe.zrange(keys.outbox_born, 0, 0, withscores=True)
    pipe.zcount(heartbeats, now_ms - heartbeat_timeout_ms, "+inf")
    pipe.zcount(heartbeats, "-inf", f"({now_ms - heartbeat_timeout_ms}")
    for msn in layout.merchants:
        pipe.zcard(keys.charge_batch(msn))
    values = pipe.execute()
    batches = {msn: int(n) for msn, n in zip(layout.merchants, values[len(values) - len(layout.merchants):],
                                             strict=True)}
    values = values[:len(values) - len(layout.merchants)]
    by_queue = {}
    for i, q in enumerate(queues):
        ready, delayed, dead, head = values[i * 4:i * 4 + 4]
        by_queue[q] = QueueState(int(ready), int(delayed), int(dead),
                                 _message_age(client, dq.messages(q), head, now_ms))
    inflight, retry, watch_a, watch_c, dead, outbox, oldest, live, stale = values[len(queues) * 4:]
    return RedisState(
        queues=by_queue, in_flight=int(inflight), retry_scheduled=int(retry), watch_agreements=int(watch_a),
        watch_charges=int(watch_c), dead_letters=int(dead), outbox_pending=int(outbox),
        outbox_oldest_age_seconds=max(0.0, (now_ms - oldest[0][1]) / 1000) if oldest else 0.0,
        workers_live=int(live), workers_stale=int(stale), charge_batches=batches)


def _message_age(client: redis.Redis, hash_key: str, message_id: bytes | None, now_ms: float) -> float:
    """Age of a queued dramatiq message, from its ``message_timestamp``."""
    if message_id is None:
        return 0.0
    raw = client.hget(hash_key, message_id)
    if not isinstance(raw, bytes):
        return 0.0
    try:
        stamp = float(json.loads(raw).get("message_timestamp") or now_ms)
    except (ValueError, AttributeError):
        return 0.0
    return max(0.0, (now_ms - stamp) / 1000)
