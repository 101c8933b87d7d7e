"""The events queue, as the store's scripts write to it.

Events are dramatiq messages on ``<namespace>:<queue>``: the message JSON in the
``.msgs`` hash under its ``redis_message_id``, that id pushed on the list, exactly
as dramatiq's own enqueue stores them, so any dramatiq consumer (or a plain Redis
client in another language) reads them. The dramatiq ``message_id`` is the event id.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from pydantic_core import to_json

from schemas.events import Event
from worker.store.keys import Layout
from worker.store.messages import encode_message


@dataclass(frozen=True)
class EventQueue:
    layout: Layout = field(default_factory=Layout)

    @property
    def queue(self) -> str:
        return self.layout.dramatiq.queue(self.layout.events_queue)

    @property
    def messages(self) -> str:
        return self.layout.dramatiq.messages(self.layout.events_queue)

    def args(self, events: Sequence[Event]) -> list[str | bytes]:
        """(event_id, redis_message_id, message, type, timeline key or '', event JSON) for each event, as
        ``publish.lua`` takes them."""
        out: list[str | bytes] = []
        for event in events:
            body = event.wire()
            redis_id, message = encode_message(self.layout.events_queue, self.layout.events_actor, body,
                                               message_id=event.event_id)
            timeline = self.layout.keys.history(event.agreement_id, event.charge_id) if event.agreement_id else ""
            out += [event.event_id, redis_id, message, event.type.value, timeline, to_json(body)]
        return out
