"""Simulator settings: credentials (the same ``VIPPS_*`` variables a worker reads), clock rules, faults.

``SimulatorConfig(...)`` is exactly what the caller passes and reads nothing from the environment, so a
test never picks up a developer's ``VIPPS_*``. ``SimulatorConfig.from_env()`` is the one place that reads
it (pydantic-settings): ``SIMULATOR_<FIELD>`` for every field (``SIMULATOR_FAULTS`` as JSON),
``VIPPS_CLIENT_ID``, ``VIPPS_CLIENT_SECRET``, ``VIPPS_SUBSCRIPTION_KEY``, ``VIPPS_MSN`` for the
credentials, or a file named by ``VIPPS_CLIENT_SECRET_FILE`` and friends, as the worker's settings do.

Those credentials and that MSN make the one merchant served unless a merchants file is given
(``merchants``, ``SIMULATOR_MERCHANTS``, ``--merchants``): then the file's merchants and partners replace them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, SecretStr, ValidationError, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from worker.simulator.merchants_file import MerchantEntry, MerchantsFile, MerchantsFileError, load

ENV_PREFIX = "SIMULATOR_"
# Field -> the variable the worker reads for it; the simulator accepts exactly what a worker sends.
CREDENTIAL_VARIABLES = {
    "client_id": "VIPPS_CLIENT_ID",
    "client_secret": "VIPPS_CLIENT_SECRET",
    "subscription_key": "VIPPS_SUBSCRIPTION_KEY",
    "msn": "VIPPS_MSN",
}
DEFAULT_CREDENTIALS = {
    "client_id": "simulator-client-id",
    "client_secret": "simulator-client-secret",
    "subscription_key": "simulator-subscription-key",
    "msn": "123456",
}
DEFAULT_MERCHANT_NAME = "Simulator merchant"


class SimulatorConfigError(ValueError):
    """The environment does not make a valid configuration. The message names variables, never values."""


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


class WebhookFaultConfig(BaseModel):
    """Fault injection on webhook deliveries (``webhook_delivery``); all off by default.

    Each planned attempt draws three values from an RNG seeded with ``seed`` (else the simulator's seed).
    """

    seed: int | None = None
    # Hold a planned attempt this many seconds before it is sent (share: delay_rate).
    delay_seconds: float = Field(default=0.0, ge=0)
    delay_rate: float = Field(default=1.0, ge=0, le=1)
    # Send the same request twice, back to back; the first answer counts.
    duplicate_rate: float = Field(default=0.0, ge=0, le=1)
    # Count the attempt as failed without sending it: the retry schedule applies.
    fail_rate: float = Field(default=0.0, ge=0, le=1)
    # Restrict the faults to these event types; None means every one.
    events: list[str] | None = None

    def active(self) -> bool:
        return (self.delay_seconds > 0 and self.delay_rate > 0) or self.duplicate_rate > 0 or self.fail_rate > 0


def _credential(name: str) -> Any:
    return Field(default=SecretStr(DEFAULT_CREDENTIALS[name]), validation_alias=CREDENTIAL_VARIABLES[name])


class SimulatorConfig(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_ignore_empty=True, extra="ignore", validate_by_name=True, validate_by_alias=True
    )

    client_id: SecretStr = _credential("client_id")
    client_secret: SecretStr = _credential("client_secret")
    subscription_key: SecretStr = _credential("subscription_key")
    msn: str = Field(default=DEFAULT_CREDENTIALS["msn"], validation_alias=CREDENTIAL_VARIABLES["msn"])

    seed: int = 0
    token_lifetime_seconds: int = Field(default=3600, ge=1)
    # Earliest due date is today + this many days (test environment: 1, production: 2).
    min_due_lead_days: int = Field(default=1, ge=0)
    max_due_days: int = Field(default=730, ge=1)
    pending_agreement_ttl_seconds: float = Field(default=600.0, gt=0)
    # A charge turns DUE when its due date is this close (FAQ: 30 days).
    due_visibility_days: int = Field(default=30, ge=0)
    # From the environment as "7,15" (NoDecode: not JSON).
    processing_hours_utc: Annotated[list[int], NoDecode] = Field(default_factory=lambda: [7, 15])
    capture_window_days: int = 180
    refund_window_days: int = 365
    legacy_max_multiplier: int = 5
    rate_limits_enabled: bool = True
    # Charge creation per MSN and minute, single and batch requests together (CHANGES §5: 500).
    charges_per_minute: int = Field(default=500, ge=1)
    # A batch's accepted charges are created this many seconds after the request (0: right after the answer).
    batch_creation_delay_seconds: float = Field(default=0.0, ge=0)
    # The share of a batch's accepted charges that then fail to be created (charge-creation-failed).
    batch_creation_failure_rate: float = Field(default=0.0, ge=0, le=1)
    # May the single merchant (and file merchants that do not say) create UNSCHEDULED charges? Vipps allow-lists.
    unscheduled_charges_allowed: bool = False
    # Re-stopping a STOPPED agreement: False = 400 illegal-agreement-update (Dec-2023 docs),
    # True = 204 (later docs).
    idempotent_stop: bool = False
    skip_landing_page_allowed: bool = False
    # Emulate users who approve on the landing page this many seconds after the draft; None = never.
    auto_accept_after_seconds: float | None = None
    # A ListAgreements page without pageNumber/pageSize (Vipps's default pageSize: 500).
    list_page_size: int = Field(default=500, ge=1)
    # How long a key is remembered; None = for the life of the process (Vipps documents no limit).
    idempotency_ttl_seconds: float | None = None
    public_url: str | None = None
    faults: FaultConfig = Field(default_factory=FaultConfig)
    # Webhooks (CHANGES §1): an answer later than this is a failed delivery (Vipps: 10 s).
    webhook_timeout_seconds: float = Field(default=10.0, gt=0)
    # The short waits of the retry schedule (Vipps: about 2 s between the first four attempts).
    webhook_retry_seconds: float = Field(default=2.0, ge=0)
    # What a failing delivery holds back: later deliveries of the same registration for the same agreement
    # (its events and its charges'), the same charge (agreement events: the agreement), or all of them.
    webhook_order: Literal["agreement", "charge", "registration"] = "agreement"
    webhook_limit_per_event: int = Field(default=25, ge=1)
    # Refuse http:// URLs at registration, as Vipps does (off: the simulator delivers to local receivers).
    webhook_https_only: bool = False
    webhook_faults: WebhookFaultConfig = Field(default_factory=WebhookFaultConfig)
    # A path (read and checked here) or the file's content; None = one merchant, the credentials above.
    merchants: Annotated[MerchantsFile | None, NoDecode] = None

    @field_validator("processing_hours_utc", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [int(part) for part in value.replace(" ", "").split(",") if part]
        return value

    @field_validator("merchants", mode="before")
    @classmethod
    def _merchants_file(cls, value: Any) -> Any:
        if isinstance(value, str | os.PathLike):
            return load(Path(value))
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)

    @classmethod
    def from_env(cls, **overrides: Any) -> SimulatorConfig:
        """Overrides (the CLI's options) > ``SIMULATOR_*`` / ``VIPPS_*`` > ``VIPPS_*_FILE`` > defaults."""
        try:
            return _FromEnvironment(**overrides)
        except ValidationError as exc:
            raise SimulatorConfigError(_describe(exc)) from None
        except SettingsError as exc:
            # Raised for undecodable JSON (SIMULATOR_FAULTS); its message names the field, not the value.
            raise SimulatorConfigError(f"invalid simulator configuration: {exc}") from None

    def merchants_file(self) -> MerchantsFile:
        """The merchants file given, else one merchant: the credentials and MSN above."""
        if self.merchants is not None:
            return self.merchants
        # Not validated again: the settings are, and VIPPS_MSN has never had to be digits.
        entry = MerchantEntry.model_construct(
            msn=self.msn,
            name=DEFAULT_MERCHANT_NAME,
            client_id=self.client_id,
            client_secret=self.client_secret,
            subscription_key=self.subscription_key,
        )
        return MerchantsFile.model_construct(merchants=[entry], partners=[])

    def secret(self, name: Literal["client_id", "client_secret", "subscription_key"]) -> str:
        value: SecretStr = getattr(self, name)
        return value.get_secret_value()


class _FromEnvironment(SimulatorConfig):
    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _CredentialFiles(settings_cls))


class _CredentialFiles(PydanticBaseSettingsSource):
    """``VIPPS_CLIENT_SECRET_FILE`` and friends name a file holding the value (a mounted Kubernetes Secret)."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # not used: __call__ reads every file at once

    def __call__(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for variable in CREDENTIAL_VARIABLES.values():
            path = os.environ.get(f"{variable}_FILE")
            if not path:
                continue
            try:
                # Keyed by the variable, like the environment source, so a set variable wins over its file.
                values[variable] = Path(path).read_text().strip()
            except OSError as exc:
                raise SimulatorConfigError(f"{variable}_FILE cannot be read: {exc.strerror}") from None
        return values


def _describe(exc: ValidationError) -> str:
    """Pydantic's errors without the inputs (they may be secrets), each under the variable it came from."""
    reasons = []
    for error in exc.errors(include_input=False, include_url=False):
        cause = error.get("ctx", {}).get("error")
        if isinstance(cause, MerchantsFileError):
            reasons.append(str(cause))  # names the file and the entry; the same from --merchants and the variable
            continue
        head, *rest = [str(part) for part in error["loc"]] or ["settings"]
        if head in CREDENTIAL_VARIABLES:
            head = CREDENTIAL_VARIABLES[head]
        variable = head if head in CREDENTIAL_VARIABLES.values() else ENV_PREFIX + head.upper()
        reasons.append(": ".join([variable, *rest, error["msg"]]))
    return "invalid simulator configuration: " + "; ".join(reasons)
