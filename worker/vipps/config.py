"""Vipps connection settings, read from the environment (``VIPPS_*``).

Secrets may also come from files: ``VIPPS_CLIENT_SECRET_FILE`` and friends name a
file whose content is the value (the way Kubernetes mounts a Secret).
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class VippsEnvironment(StrEnum):
    TEST = "test"
    PRODUCTION = "production"
    SIMULATOR = "simulator"


BASE_URLS = {
    VippsEnvironment.TEST: "https://apitest.vipps.no",
    VippsEnvironment.PRODUCTION: "https://api.vipps.no",
    VippsEnvironment.SIMULATOR: "http://127.0.0.1:8070",
}

# The simulator accepts exactly these unless told otherwise; they are not secrets.
SIMULATOR_DEFAULTS = {
    "client_id": "simulator-client-id",
    "client_secret": "simulator-client-secret",
    "subscription_key": "simulator-subscription-key",
    "msn": "123456",
}

_SECRET_FIELDS = ("client_id", "client_secret", "subscription_key")


class VippsSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="VIPPS_", extra="ignore")

    env: VippsEnvironment = VippsEnvironment.SIMULATOR
    base_url: str | None = None
    client_id: SecretStr | None = None
    client_secret: SecretStr | None = None
    subscription_key: SecretStr | None = None
    msn: str | None = Field(default=None, pattern=r"^[0-9]{4,6}$")
    client_id_file: Path | None = None
    client_secret_file: Path | None = None
    subscription_key_file: Path | None = None
    # Several merchants (see `worker.vipps.merchants`); then the single-merchant keys above are not used.
    merchants_file: Path | None = Field(default=None,
                                        validation_alias=AliasChoices("MERCHANTS_FILE", "VIPPS_MERCHANTS_FILE"))
    merchant_name: str = "default"  # how CLI listings and metrics name the one merchant of VIPPS_MSN
    # Partner keys: one token serves every merchant of the set, so the token call names no MSN.
    partner_keys: bool = False

    system_name: str = Field(default="vipps-billing-worker", max_length=30)
    system_version: str = Field(default="0.1.0", max_length=30)
    plugin_name: str = Field(default="vipps-billing-worker", max_length=30)
    plugin_version: str = Field(default="0.1.0", max_length=30)

    connect_timeout: float = 3.0
    read_timeout: float = 10.0
    write_timeout: float = 10.0
    pool_timeout: float = 5.0
    max_connections: int = 32
    # Attempts the client makes by itself for a transient failure whose wait is short;
    # longer waits go back to the caller (the worker re-queues with a delay).
    max_attempts: int = 2
    # Vipps's cap on charge creation per merchant and minute; 0 only against a simulator without limits.
    charges_per_minute: int = Field(default=500, ge=0)
    # Refresh the token this many seconds before it expires.
    token_refresh_margin: float = 300.0

    @field_validator("base_url")
    @classmethod
    def _strip_slash(cls, value: str | None) -> str | None:
        return value.rstrip("/") if value else value

    @model_validator(mode="after")
    def _resolve(self) -> VippsSettings:
        for name in _SECRET_FIELDS:
            path: Path | None = getattr(self, f"{name}_file")
            if getattr(self, name) is None and path is not None:
                try:
                    value = path.read_text().strip()
                except OSError as exc:
                    raise ValueError(f"VIPPS_{name.upper()}_FILE cannot be read: {exc.strerror}") from None
                setattr(self, name, SecretStr(value))
        if self.env is VippsEnvironment.SIMULATOR and self.merchants_file is None:
            for name, default in SIMULATOR_DEFAULTS.items():
                if getattr(self, name) is None:
                    setattr(self, name, SecretStr(default) if name in _SECRET_FIELDS else default)
        missing = [f"VIPPS_{n.upper()}" for n in (*_SECRET_FIELDS, "msn") if getattr(self, n) is None]
        if missing and self.merchants_file is None:
            raise ValueError(f"{', '.join(missing)} must be set for VIPPS_ENV={self.env.value}")
        if self.base_url is None:
            self.base_url = BASE_URLS[self.env]
        return self

    @property
    def url(self) -> str:
        assert self.base_url is not None
        return self.base_url

    @property
    def allows_force_accept(self) -> bool:
        return self.env in (VippsEnvironment.TEST, VippsEnvironment.SIMULATOR)

    def secret(self, name: str) -> str:
        value: Any = getattr(self, name)
        assert isinstance(value, SecretStr)
        return value.get_secret_value()


class ConfigError(Exception):
    """Configuration is missing or invalid. The message never carries a value."""


def load_settings(**overrides: Any) -> VippsSettings:
    """Build settings, turning pydantic's errors (which echo inputs) into value-free ones."""
    from pydantic import ValidationError

    from schemas.problems import one_line

    try:
        return VippsSettings(**overrides)
    except ValidationError as exc:
        reasons = one_line(exc, unnamed="settings")
        raise ConfigError(f"invalid Vipps configuration: {reasons}") from None
