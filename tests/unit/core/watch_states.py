"""A watchlist stand-in for the watcher's unit tests."""

from __future__ import annotations

from typing import Any


class States:
    """What was last seen, as the watchlist keeps it (read only: the caller records the changes)."""

    def __init__(self, states: dict[str, dict[str, Any]] | None = None) -> None:
        self.states = states or {}

    def state(self, member: str) -> dict[str, Any] | None:
        found = self.states.get(member)
        return dict(found) if found is not None else None
