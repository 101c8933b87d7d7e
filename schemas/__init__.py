"""The message contract between billing systems and the worker."""

from schemas.commands import COMMAND_TYPES, Command, CommandAdapter, actor_name, queue_kind
from schemas.events import Event, EventType, Problem, Transition, event_id

__all__ = [
    "COMMAND_TYPES",
    "Command",
    "CommandAdapter",
    "Event",
    "EventType",
    "Problem",
    "Transition",
    "actor_name",
    "event_id",
    "queue_kind",
]
