"""Worker settings, from the environment (no prefix; see the README's configuration table)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, ValidationError

from schemas.problems import one_line
from worker.core.batching import BatchMode, BatchPolicy
from worker.core.retry import RetryPolicy
from worker.store.settings import StoreSettings
from worker.vipps.models import MAX_BATCH


class SettingsError(Exception):
    """Invalid settings; the message names the variables, never their values."""


class WorkerSettings(StoreSettings):
    """The worker process's settings: the store's, and how the worker carries out commands."""

    # Retries of transient failures: exponential backoff with full jitter, bounded in count and time.
    retry_max_attempts: int = Field(default=10, ge=1)
    retry_max_seconds: float = Field(default=1800.0, gt=0)
    retry_min_backoff_seconds: float = Field(default=1.0, gt=0)
    retry_max_backoff_seconds: float = Field(default=300.0, gt=0)

    lease_seconds: float = Field(default=30.0, gt=0, description="how long one attempt may hold a command")

    maintenance_chance: int = Field(default=100_000, ge=1, le=1_000_000)

    worker_processes: int = Field(default=1, ge=1)
    worker_threads: int = Field(default=8, ge=1)
    worker_shutdown_timeout_seconds: float = Field(default=60.0, gt=0)
    metrics_port: int = Field(default=9191, ge=0, le=65535)
    metrics_host: str = "0.0.0.0"
    prometheus_multiproc_dir: Path | None = Field(
        default=None, description="where every worker process writes its metrics and health beats (set by the CLI)")

    # Background loops (relay, sweeper, watch poller) run in every worker process.
    relay_interval_seconds: float = 0.25
    sweep_interval_seconds: float = 2.0
    watch_interval_seconds: float = 0.5
    watch_batch: int = 50
    agreement_poll_start_seconds: float = 5.0
    agreement_poll_seconds: float = 2.0
    agreement_poll_max_seconds: float = 30.0
    agreement_poll_give_up_seconds: float = 1800.0
    agreement_active_poll_seconds: float = Field(
        default=86_400.0, ge=0, description="re-check an ACTIVE agreement this often (a stop by the user in the "
        "Vipps app is seen no other way); 0: forget agreements once ACTIVE")
    charge_poll_seconds: float | None = Field(
        default=None, description="charge poll interval; default 2 s on the simulator, 1800 s elsewhere")
    charge_poll_give_up_days: int = 20

    # Charge runs: charge.create commands of one merchant go through the batch endpoint (see worker.core.batching).
    charge_batch: BatchMode = Field(default=BatchMode.AUTO, description="auto: batch charge.create (a lone one "
                                    "goes alone); off: every one to the single endpoint at once")
    charge_batch_size: int = Field(default=MAX_BATCH, ge=1, le=MAX_BATCH)
    charge_batch_linger_seconds: float = Field(default=0.5, ge=0)
    charge_created_check_seconds: float = Field(
        default=60.0, gt=0, description="first look for a charge the batch endpoint accepted (then backing off)")
    charge_creation_give_up_seconds: float = Field(
        default=3600.0, gt=0, description="a charge the batch endpoint accepted that has not appeared by then is "
        "reported as charge.creation_failed")

    log_level: str = "INFO"

    def batch_policy(self) -> BatchPolicy | None:
        if self.charge_batch is BatchMode.OFF:
            return None
        return BatchPolicy(self.charge_batch, self.charge_batch_size, self.charge_batch_linger_seconds)

    def retry_policy(self) -> RetryPolicy:
        return RetryPolicy(max_attempts=self.retry_max_attempts, max_seconds=self.retry_max_seconds,
                           min_backoff=self.retry_min_backoff_seconds, max_backoff=self.retry_max_backoff_seconds)


@lru_cache(maxsize=1)
def get_settings() -> WorkerSettings:
    try:
        return WorkerSettings()
    except ValidationError as exc:
        reasons = one_line(exc, upper=True, unnamed="")
        raise SettingsError(f"invalid settings: {reasons}") from None
