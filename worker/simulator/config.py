"""Simulator settings: credentials (the same ``VIPPS_*`` variables a worker reads), clock rules, faults.

Read from the environment by ``SimulatorConfig.from_env()``; ``SIMULATOR_*`` variables tune the rest.
Secrets may come from files (``VIPPS_CLIENT_SECRET_FILE`` and friends), like the worker's settings.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

DEFAULT_CREDENTIALS = {
    "client_id": "simulator-client-id",
    "client_secret": "simulator-client-secret",
    "subscription_key": "simulator-subscription-key",
    "msn": "123456",
}


class LatencyConfig(BaseModel):
    """Added delay before a Vipps endpoint handles a request."""

    distribution: Literal["none", "fixed", "uniform", "lognormal"] = "none"
    ms: float = Field(default=0.0, ge=0, description="fixed: the delay")
    min_ms: float = Field(default=0.0, ge=0, description="uniform: lower bound")
    max_ms: float = Field(default=0.0, ge=0, description="uniform: upper bound")
    median_ms: float = Field(default=0.0, ge=0, description="lognormal: median")
    sigma: float = Field(default=0.5, ge=0, description="lognormal: shape")
    cap_ms: float = Field(default=30_000.0, ge=0, description="no single delay exceeds this")


class FaultConfig(BaseModel):
    """Fault injection on Vipps endpoints. All rates are probabilities in [0, 1]; all off by default."""

    seed: int | None = None
    latency: LatencyConfig = Field(default_factory=LatencyConfig)
    error_5xx_rate: float = Field(default=0.0, ge=0, le=1)
    error_5xx_statuses: list[int] = Field(default_factory=lambda: [500, 502, 503])
    error_429_rate: float = Field(default=0.0, ge=0, le=1)
    retry_after_seconds: int = Field(default=1, ge=0)
    # The request is lost: the connection closes before anything is done.
    connection_drop_rate: float = Field(default=0.0, ge=0, le=1)
    # The effect is applied and recorded, then the connection closes with no response.
    drop_after_commit_rate: float = Field(default=0.0, ge=0, le=1)
    # The effect is applied and recorded, then the response is held for timeout_seconds.
    timeout_after_commit_rate: float = Field(default=0.0, ge=0, le=1)
    timeout_seconds: float = Field(default=15.0, ge=0)
    include_token_endpoint: bool = False
    # Restrict faults to these operation ids (e.g. ["CreateChargeV3"]); None means every Vipps operation.
    operations: list[str] | None = None

    def active(self) -> bool:
        return (
            self.latency.distribution != "none"
            or self.error_5xx_rate > 0
            or self.error_429_rate > 0
            or self.connection_drop_rate > 0
            or self.drop_after_commit_rate > 0
            or self.timeout_after_commit_rate > 0
        )


class SimulatorConfig(BaseModel):
    client_id: str = DEFAULT_CREDENTIALS["client_id"]
    client_secret: str = DEFAULT_CREDENTIALS["client_secret"]
    subscription_key: str = DEFAULT_CREDENTIALS["subscription_key"]
    msn: str = DEFAULT_CREDENTIALS["msn"]

    seed: int = 0
    token_lifetime_seconds: int = Field(default=3600, ge=1)
    # Earliest due date is today + this many days (test environment: 1, production: 2).
    min_due_lead_days: int = Field(default=1, ge=0)
    max_due_days: int = Field(default=730, ge=1)
    pending_agreement_ttl_seconds: float = Field(default=600.0, gt=0)
    # A charge turns DUE when its due date is this close (FAQ: 30 days).
    due_visibility_days: int = Field(default=30, ge=0)
    processing_hours_utc: list[int] = Field(default_factory=lambda: [7, 15])
    capture_window_days: int = 180
    refund_window_days: int = 365
    legacy_max_multiplier: int = 5
    rate_limits_enabled: bool = True
    # Re-stopping a STOPPED agreement: False = 400 illegal-agreement-update (Dec-2023 docs),
    # True = 204 (later docs).
    idempotent_stop: bool = False
    skip_landing_page_allowed: bool = False
    # Emulate users who approve on the landing page this many seconds after the draft; None = never.
    auto_accept_after_seconds: float | None = None
    list_page_size: int = Field(default=100, ge=1)
    # How long a key is remembered; None = for the life of the process (Vipps documents no limit).
    idempotency_ttl_seconds: float | None = None
    public_url: str | None = None
    faults: FaultConfig = Field(default_factory=FaultConfig)

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> SimulatorConfig:
        env = dict(os.environ if environ is None else environ)
        values: dict[str, object] = {}
        for name in ("client_id", "client_secret", "subscription_key", "msn"):
            value = _read(env, f"VIPPS_{name.upper()}")
            if value is not None:
                values[name] = value
        for name, field in cls.model_fields.items():
            raw = env.get(f"SIMULATOR_{name.upper()}")
            if raw is not None and name != "faults":
                values[name] = _parse_list(raw) if field.annotation == list[int] else raw
        config = cls.model_validate(values)
        faults_json = env.get("SIMULATOR_FAULTS")
        if faults_json:
            config.faults = FaultConfig.model_validate_json(faults_json)
        return config


def _read(env: dict[str, str], key: str) -> str | None:
    if env.get(key):
        return env[key]
    path = env.get(f"{key}_FILE")
    if path:
        try:
            return Path(path).read_text().strip()
        except OSError as exc:
            raise ValueError(f"{key}_FILE cannot be read: {exc.strerror}") from None
    return None


def _parse_list(raw: str) -> list[int]:
    return [int(part) for part in raw.replace(" ", "").split(",") if part]
