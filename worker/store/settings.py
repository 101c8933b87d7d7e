"""Where the store lives and how long it keeps things: the settings every process that touches it shares.

From the environment (no prefix; see the README's configuration table). The worker's settings
extend these; the CLI and the support console read these alone.
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from worker.store.keys import DramatiqKeys, Keys, Layout


class StoreSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore")

    redis_url: str | None = Field(default=None, description="Redis for broker, ledger and outbox")
    dramatiq_namespace: str = "dramatiq"
    key_prefix: str = Field(default="vipps-billing", description="prefix of the worker's own Redis keys")

    agreements_queue: str = "vipps.agreements"
    charges_queue: str = "vipps.charges"
    events_queue: str = "vipps.events"
    events_actor: str = "vipps_event"

    heartbeat_timeout_ms: int = Field(default=10_000, ge=1000)
    dead_letter_retention_days: int = Field(default=30, ge=30)
    ledger_retention_days: int = Field(default=35, ge=1)

    def layout(self, msns: tuple[str, ...] = ()) -> Layout:
        """The layout; with several merchants (``msns``), each gets its own command queues."""
        return Layout(keys=Keys(self.key_prefix), dramatiq=DramatiqKeys(self.dramatiq_namespace),
                      agreements_queue=self.agreements_queue, charges_queue=self.charges_queue,
                      events_queue=self.events_queue, events_actor=self.events_actor,
                      merchant_queues=msns if len(msns) > 1 else (), merchants=msns)
