"""The command queues, as producers write to them: dramatiq messages, stored as dramatiq's enqueue does.

Enqueueing here instead of through a dramatiq broker keeps producers free of dramatiq's global
state, and beats no heartbeat: dramatiq's dispatch script counts every process that calls it as a
worker, so a CLI that enqueued would look like a live worker (``status``, support waits).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any, NamedTuple

import redis

from schemas import actor_name
from schemas.events import EVENT_NAMESPACE
from worker.store import scripts
from worker.store.keys import Layout
from worker.store.messages import encode_message
from worker.store.replication import Replicas

NO_WAIT = Replicas()


class EnqueueKeys(NamedTuple):
    queue: str
    messages: str


def message_id(command: dict[str, Any]) -> str:
    """A fresh dramatiq message id that still names the command it carries (for dramatiq's own logs)."""
    return str(uuid.uuid5(EVENT_NAMESPACE, f"command:{command.get('command_id')}:{uuid.uuid4()}"))


class CommandQueue:
    def __init__(self, client: redis.Redis, layout: Layout) -> None:
        self.redis = client
        self.layout = layout
        self._enqueue = scripts.register(client, "enqueue")

    def route(self, command: dict[str, Any]) -> tuple[str, str]:
        """(queue, actor) of a command; an unknown type goes where a charge would, and is rejected there."""
        kind = command.get("type")
        kind = kind if isinstance(kind, str) else "charge.create"
        msn = command.get("msn")
        return self.layout.queue_for(kind, msn if isinstance(msn, str) else None), actor_name(kind)

    def enqueue(self, commands: Sequence[dict[str, Any]], replicas: Replicas = NO_WAIT) -> list[str]:
        """Put commands on their queues, each as one dramatiq message; returns their message ids. With
        ``replicas``, then waits for them to hold the messages (``NotReplicated`` if too few did in time)."""
        by_queue: dict[str, list[bytes | str]] = {}
        ids = []
        for command in commands:
            queue, actor = self.route(command)
            mid = message_id(command)
            by_queue.setdefault(queue, []).extend(encode_message(queue, actor, command, message_id=mid))
            ids.append(mid)
        pipe = self.redis.pipeline(transaction=False)
        for queue, args in by_queue.items():
            dq = self.layout.dramatiq
            self._enqueue(keys=list(EnqueueKeys(dq.queue(queue), dq.messages(queue))), args=args, client=pipe)
        replicas.add_wait(pipe)
        _, acknowledged = replicas.results(pipe.execute())
        replicas.check(acknowledged, ids)
        return ids
