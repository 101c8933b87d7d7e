"""The events queue, as the ledger's scripts write to it.

Events are dramatiq messages on ``<namespace>:<queue>``: the message JSON in the
``.msgs`` hash under its ``redis_message_id``, that id pushed on the list, exactly
as dramatiq's own enqueue stores them, so any dramatiq consumer (or a plain Redis
client in another language) reads them.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

from pydantic_core import to_json


@dataclass(frozen=True)
class EventQueue:
    namespace: str = "dramatiq"
    queue: str = "vipps.events"
    actor: str = "vipps_event"

    @property
    def keys(self) -> list[str]:
        """The list of message ids, then the hash of messages."""
        return [f"{self.namespace}:{self.queue}", f"{self.namespace}:{self.queue}.msgs"]

    def message(self, event: dict[str, Any]) -> tuple[str, bytes]:
        """(redis_message_id, the message as JSON in UTF-8, as dramatiq decodes it); message_id is the event_id."""
        redis_id = str(uuid.uuid4())
        return redis_id, to_json({
            "queue_name": self.queue, "actor_name": self.actor, "args": [event], "kwargs": {},
            "options": {"redis_message_id": redis_id}, "message_id": event["event_id"],
            "message_timestamp": int(time.time() * 1000),
        })
