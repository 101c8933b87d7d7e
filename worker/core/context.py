"""What a handler works with: one merchant's client, the watcher and the event builder (``Context``), and
what it hands back to the pipeline to record (``Outcome``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from schemas import Event, EventType
from schemas import commands as c
from worker.core import watch
from worker.core.events import EventBuilder
from worker.core.idempotency import idempotency_key
from worker.store.watchlist import WatchChange
from worker.vipps import VippsClient
from worker.vipps.merchant_clients import MerchantClients
from worker.vipps.merchants import Merchants
from worker.vipps.operations import Operation


@dataclass
class Outcome:
    events: list[Event] = field(default_factory=list)
    watch: list[WatchChange] = field(default_factory=list)


@dataclass(frozen=True)
class Context:
    client: VippsClient
    msn: str
    watcher: watch.Watcher
    events: EventBuilder

    def key(self, command: c.CommandBase, operation: Operation) -> str:
        return idempotency_key(command.msn or self.msn, command.command_id, operation)

    def event(self, command: c.CommandBase, kind: EventType, **fields: Any) -> Event:
        """The command's outcome event; its id depends only on the command and the event type."""
        return self.events.outcome(command, kind, **fields)


class Contexts:
    """Each merchant's `Context`, made on first use: that merchant's client, the shared watcher and events."""

    def __init__(self, clients: MerchantClients, watcher: watch.Watcher, events: EventBuilder) -> None:
        self.clients = clients
        self.watcher = watcher
        self.events = events
        self._by_msn: dict[str, Context] = {}

    @property
    def merchants(self) -> Merchants:
        return self.clients.merchants

    def of(self, msn: str) -> Context:
        ctx = self._by_msn.get(msn)
        if ctx is None:
            ctx = self._by_msn[msn] = Context(self.clients.for_msn(msn), msn, self.watcher, self.events)
        return ctx
