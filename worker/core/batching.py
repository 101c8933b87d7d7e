"""When ``charge.create`` commands wait for the batch endpoint, and when a merchant's batch is sent.

``auto``: every RECURRING ``charge.create`` is parked in its merchant's batch; a batch goes out when
``size`` charges wait or the oldest has waited ``linger`` seconds, and a batch of one goes through the
single endpoint instead, for its synchronous answer. ``off``: each goes to the single endpoint at once.
UNSCHEDULED charges cannot be batched (Vipps: "no bulk charging") and always go alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from schemas import Command
from schemas import commands as c
from worker.store.batches import Waiting
from worker.vipps.models import MAX_BATCH


class BatchMode(StrEnum):
    AUTO = "auto"
    OFF = "off"


@dataclass(frozen=True)
class BatchPolicy:
    mode: BatchMode = BatchMode.AUTO
    size: int = MAX_BATCH
    linger: float = 0.5

    def __post_init__(self) -> None:
        if not 1 <= self.size <= MAX_BATCH:
            raise ValueError(f"a batch holds 1..{MAX_BATCH} charges")

    def batches(self, cmd: Command) -> bool:
        """Whether ``cmd`` waits for its merchant's batch."""
        return (self.mode is BatchMode.AUTO and isinstance(cmd, c.ChargeCreate)
                and getattr(cmd, "charge_type", "RECURRING") == "RECURRING")

    def due(self, waiting: Waiting) -> bool:
        """Whether the merchant's batch goes out now."""
        return waiting.count >= self.size or (waiting.count > 0 and waiting.oldest_age_ms >= self.linger * 1000)
