"""The merchants one deployment serves, and the credentials it calls Vipps with for each.

Without a merchants file the ``VIPPS_*`` settings describe exactly one merchant, as they always did.
With ``MERCHANTS_FILE`` (YAML or JSON, read at start: change it with a rolling restart) they name
several: each with its own API keys, or with a reference to a partner credential set, whose one access
token serves every merchant it names (with that merchant's ``Merchant-Serial-Number`` on each call).

    partners:
      platform: {client_id_file: /secrets/platform/id, client_secret_file: ..., subscription_key_file: ...}
    merchants:
      - {msn: "223344", name: Yoga Two, partner: platform}
      - {msn: "123456", name: Gym One, client_id: ..., client_secret: ..., subscription_key: ...}

Secrets stay ``SecretStr`` (their repr is ``**********``); errors name fields, never values.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator
from pydantic_settings import (
    BaseSettings,
    JsonConfigSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from worker.vipps.config import ConfigError, VippsSettings

SECRET_FIELDS = ("client_id", "client_secret", "subscription_key")
MSN_PATTERN = r"^[0-9]{4,6}$"


class Credentials(BaseModel):
    """One API key set: the values, or files that hold them (the way Kubernetes mounts a Secret)."""

    model_config = ConfigDict(extra="forbid")

    client_id: SecretStr | None = None
    client_secret: SecretStr | None = None
    subscription_key: SecretStr | None = None
    client_id_file: Path | None = None
    client_secret_file: Path | None = None
    subscription_key_file: Path | None = None

    @model_validator(mode="after")
    def _from_files(self) -> Credentials:
        for name in SECRET_FIELDS:
            path: Path | None = getattr(self, f"{name}_file")
            if getattr(self, name) is None and path is not None:
                try:
                    setattr(self, name, SecretStr(path.read_text().strip()))
                except OSError as exc:
                    raise ValueError(f"{name}_file cannot be read: {exc.strerror}") from None
        return self

    @property
    def given(self) -> bool:
        return any(getattr(self, name) is not None for name in SECRET_FIELDS)

    def missing(self) -> list[str]:
        return [name for name in SECRET_FIELDS if getattr(self, name) is None]


class MerchantEntry(Credentials):
    msn: str = Field(pattern=MSN_PATTERN)
    name: str = Field(min_length=1, max_length=100)
    partner: str | None = None  # the partner credential set that calls for this merchant
    enabled: bool = True  # a disabled merchant's commands are rejected; nothing reaches Vipps

    @model_validator(mode="after")
    def _one_key_set(self) -> MerchantEntry:
        if self.partner is not None and self.given:
            raise ValueError("give either the merchant's own keys or a partner, not both")
        if self.partner is None and self.missing():
            raise ValueError(f"needs {', '.join(self.missing())} (or a partner)")
        return self


class MerchantsFile(BaseSettings):
    """The merchants file, validated; read by pydantic-settings' YAML or JSON source."""

    model_config = SettingsConfigDict(extra="forbid")

    partners: dict[str, Credentials] = Field(default_factory=dict)
    merchants: list[MerchantEntry] = Field(min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> MerchantsFile:
        seen: set[str] = set()
        for entry in self.merchants:
            if entry.msn in seen:
                raise ValueError(f"MSN {entry.msn} is listed twice")
            seen.add(entry.msn)
            if entry.partner is not None and entry.partner not in self.partners:
                raise ValueError(f"merchant {entry.msn} names partner {entry.partner!r}, which is not defined")
        for name, credentials in self.partners.items():
            if credentials.missing():
                raise ValueError(f"partner {name!r} needs {', '.join(credentials.missing())}")
        return self

    @classmethod
    def settings_customise_sources(cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
                                   env_settings: PydanticBaseSettingsSource,
                                   dotenv_settings: PydanticBaseSettingsSource,
                                   file_secret_settings: PydanticBaseSettingsSource,
                                   ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)  # only the file given to `read`, never the environment

    @classmethod
    def read(cls, path: Path) -> MerchantsFile:
        if not path.is_file():
            raise ConfigError(f"MERCHANTS_FILE {path} is not a readable file")
        source: PydanticBaseSettingsSource
        try:
            if path.suffix.lower() == ".json":
                source = JsonConfigSettingsSource(cls, json_file=path)
            else:
                source = YamlConfigSettingsSource(cls, yaml_file=path)
            return cls(**source())
        except ValidationError as exc:
            from schemas.problems import one_line

            raise ConfigError(f"invalid MERCHANTS_FILE {path.name}: {one_line(exc, unnamed='file')}") from None
        except (ValueError, yaml.YAMLError) as exc:  # not YAML or JSON at all
            raise ConfigError(f"MERCHANTS_FILE {path.name} cannot be parsed: {type(exc).__name__}") from None


@dataclass(frozen=True)
class Merchant:
    """One merchant as the worker calls Vipps for it."""

    msn: str
    name: str
    enabled: bool
    credential_set: str  # "merchant:<msn>" or "partner:<name>": which key set calls for it (no secret)
    settings: VippsSettings  # the Vipps settings with this merchant's MSN and keys

    @property
    def through_partner(self) -> bool:
        return self.credential_set.startswith("partner:")


class UnknownMerchant(ValueError):
    """A command names no merchant this deployment serves (or needs to name one)."""


class Merchants:
    """The configured merchants, by MSN."""

    def __init__(self, merchants: list[Merchant]) -> None:
        if not merchants:
            raise ConfigError("no merchant is configured")
        self._by_msn = {m.msn: m for m in merchants}

    def __iter__(self) -> Iterator[Merchant]:
        return iter(self._by_msn.values())

    def __len__(self) -> int:
        return len(self._by_msn)

    @property
    def msns(self) -> tuple[str, ...]:
        return tuple(self._by_msn)

    @property
    def only(self) -> Merchant | None:
        """The merchant when exactly one is configured: commands and CLI calls may leave the MSN out."""
        return next(iter(self._by_msn.values())) if len(self._by_msn) == 1 else None

    def get(self, msn: str) -> Merchant | None:
        return self._by_msn.get(msn)

    def listing(self) -> str:
        return ", ".join(f"{m.msn} ({m.name})" for m in self)

    def resolve(self, msn: str | None) -> Merchant:
        """The merchant a command or a CLI call is for; `UnknownMerchant` says why there is none."""
        if msn is None:
            if self.only is None:
                raise UnknownMerchant(f"msn is required: this deployment serves {len(self)} merchants "
                                      f"({self.listing()})")
            msn = self.only.msn
        merchant = self._by_msn.get(msn)
        if merchant is None:
            raise UnknownMerchant(f"MSN {msn} is not a merchant of this deployment ({self.listing()})")
        if not merchant.enabled:
            raise UnknownMerchant(f"MSN {msn} ({merchant.name}) is disabled in the merchants file")
        return merchant


def load_merchants(base: VippsSettings) -> Merchants:
    """The merchants of ``base``'s ``MERCHANTS_FILE``, or the one merchant its ``VIPPS_*`` settings describe."""
    if base.merchants_file is None:
        assert base.msn is not None
        return Merchants([Merchant(base.msn, base.merchant_name, True, f"merchant:{base.msn}", base)])
    file = MerchantsFile.read(base.merchants_file)
    merchants = []
    for entry in file.merchants:
        keys: Credentials = entry if entry.partner is None else file.partners[entry.partner]
        update: dict[str, Any] = {name: getattr(keys, name) for name in SECRET_FIELDS}
        update |= {"msn": entry.msn, "merchant_name": entry.name, "partner_keys": entry.partner is not None}
        credential_set = f"partner:{entry.partner}" if entry.partner else f"merchant:{entry.msn}"
        merchants.append(Merchant(entry.msn, entry.name, entry.enabled, credential_set,
                                  base.model_copy(update=update)))
    return Merchants(merchants)
