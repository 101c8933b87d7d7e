"""dramatiq's message format, for the messages the store puts on queues itself (events, commands).

The same JSON dramatiq's ``Message.encode`` writes, with the ``options.redis_message_id`` its Redis
broker stores and acks a message under; see the README's wire format.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from pydantic_core import to_json


def encode_message(queue: str, actor: str, body: dict[str, Any], *, message_id: str) -> tuple[str, bytes]:
    """(redis_message_id, the message as UTF-8 JSON) of a message whose one argument is ``body``."""
    redis_id = str(uuid.uuid4())
    return redis_id, to_json({
        "queue_name": queue, "actor_name": actor, "args": [body], "kwargs": {},
        "options": {"redis_message_id": redis_id}, "message_id": message_id,
        "message_timestamp": int(time.time() * 1000),
    })
