"""vipps-billing-worker: a billing worker for the Vipps MobilePay Recurring API v3.

The public Python API is what billing systems use to talk to the worker::

    from worker import Producer
    Producer("redis://localhost:6379/0").send({"command_id": "...", "type": "charge.create", ...})

Names are imported on first use, so importing ``worker`` (or any of its packages) loads nothing else.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from worker.core.producer import InvalidCommand, NotConfirmed, Producer, prepare
    from worker.store.keys import Layout

__all__ = ["InvalidCommand", "Layout", "NotConfirmed", "Producer", "prepare"]

_HOMES = {"InvalidCommand": "worker.core.producer", "NotConfirmed": "worker.core.producer",
          "Producer": "worker.core.producer",
          "prepare": "worker.core.producer", "Layout": "worker.store.keys"}


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'worker' has no attribute {name!r}")
    return getattr(importlib.import_module(_HOMES[name]), name)
