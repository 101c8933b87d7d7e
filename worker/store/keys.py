"""Names of the worker's own Redis keys, all under one prefix."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Keys:
    prefix: str = "vipps-billing"

    def command(self, command_id: str) -> str:
        return f"{self.prefix}:cmd:{command_id}"

    @property
    def inflight(self) -> str:
        """command_id -> lease expiry (ms): attempts that hold a command right now."""
        return f"{self.prefix}:inflight"

    @property
    def retry(self) -> str:
        """command_id -> next attempt (ms): our own durable delay queue."""
        return f"{self.prefix}:retry"

    @property
    def outbox(self) -> str:
        """event_id -> event JSON, until published."""
        return f"{self.prefix}:outbox"

    @property
    def outbox_pending(self) -> str:
        """event_id -> when it may be (re)published (ms)."""
        return f"{self.prefix}:outbox:pending"

    @property
    def outbox_born(self) -> str:
        """event_id -> when it was written (ms), for the backlog age."""
        return f"{self.prefix}:outbox:born"

    @property
    def watch(self) -> str:
        """agreement watch member -> next check (ms)."""
        return f"{self.prefix}:watch:agreements"

    @property
    def watch_charges(self) -> str:
        """charge watch member -> next check (ms)."""
        return f"{self.prefix}:watch:charges"

    def watch_for(self, member: str) -> str:
        return self.watch_charges if member.startswith("charge:") else self.watch

    @property
    def watch_state(self) -> str:
        """watch member -> JSON of what was last seen."""
        return f"{self.prefix}:watch:state"

    @property
    def watch_settled(self) -> str:
        """watch member -> when it settled (ms): what was seen is kept this long for later comparisons."""
        return f"{self.prefix}:watch:settled"

    @property
    def dead_letters(self) -> str:
        return f"{self.prefix}:dlq"

    @property
    def dead_letter_index(self) -> str:
        return f"{self.prefix}:dlq:index"
