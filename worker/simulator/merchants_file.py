"""The merchants file (``--merchants PATH``, ``SIMULATOR_MERCHANTS``): the sales units the simulator serves and
the partners that act for them, as JSON (or YAML, when pyyaml is installed and the name ends ``.yaml``/``.yml``).

Every mistake is one line naming the file and the entry, never a key's value.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator

KEY_NAMES = ("client_id", "client_secret", "subscription_key")


class MerchantsFileError(ValueError):
    """The merchants file cannot be read or is not valid; the message is one line."""


class _Strict(BaseModel):
    # A misspelt field is an error, not a silently ignored setting; an MSN written as a number is read as text.
    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)


class _Keyed(_Strict):
    def keys(self) -> tuple[str, str, str] | None:
        values = [getattr(self, name) for name in KEY_NAMES]
        if any(value is None for value in values):
            return None
        return values[0].get_secret_value(), values[1].get_secret_value(), values[2].get_secret_value()


class MerchantEntry(_Keyed):
    """One sales unit: its MSN, its own keys (or none: then only a partner can act for it), its configuration."""

    msn: str = Field(pattern=r"^\d{1,12}$")
    name: str = Field(min_length=1)
    client_id: SecretStr | None = None
    client_secret: SecretStr | None = None
    subscription_key: SecretStr | None = None
    recurring_allowed: bool = True
    capture_type: Literal["ReserveCapture", "DirectCapture", "NotApplicable"] = "ReserveCapture"
    active: bool = True
    # None: the simulator-wide setting (SIMULATOR_SKIP_LANDING_PAGE_ALLOWED).
    skip_landing_page_allowed: bool | None = None
    # Allow-listed for UNSCHEDULED charges; None: the simulator-wide setting (SIMULATOR_UNSCHEDULED_CHARGES_ALLOWED).
    unscheduled_allowed: bool | None = None
    # Shown by the Management API; made up from the MSN when not given.
    organization_number: str | None = Field(default=None, pattern=r"^\d{9}$")
    bank_account: str | None = Field(default=None, pattern=r"^\d{11}$")

    @model_validator(mode="after")
    def _all_keys_or_none(self) -> MerchantEntry:
        given = [name for name in KEY_NAMES if getattr(self, name) is not None]
        if given and len(given) != len(KEY_NAMES):
            missing = ", ".join(name for name in KEY_NAMES if name not in given)
            raise ValueError(f"give all three keys or none (missing {missing})")
        return self


class PartnerEntry(_Keyed):
    """Partner keys: one key set that acts for every sales unit it lists."""

    name: str = Field(pattern=r"^[A-Za-z0-9._-]+$")
    client_id: SecretStr
    client_secret: SecretStr
    subscription_key: SecretStr
    msns: list[str] = Field(min_length=1)


class MerchantsFile(_Strict):
    merchants: list[MerchantEntry] = Field(min_length=1)
    partners: list[PartnerEntry] = Field(default_factory=list)

    @model_validator(mode="after")
    def _consistent(self) -> MerchantsFile:
        msns = [m.msn for m in self.merchants]
        _unique("merchant msn", msns)
        _unique("partner name", [p.name for p in self.partners])
        for partner in self.partners:
            _unique(f"msn of partner {partner.name}", partner.msns)
            unknown = sorted(set(partner.msns) - set(msns))
            if unknown:
                raise ValueError(f"partner {partner.name} lists msn {', '.join(unknown)}, not in merchants")
        reachable = {msn for partner in self.partners for msn in partner.msns}
        for merchant in self.merchants:
            if merchant.keys() is None and merchant.msn not in reachable:
                raise ValueError(f"merchant {merchant.msn} has no keys and no partner lists it")
        _distinct_client_ids(
            [(f"merchant {m.msn}", m) for m in self.merchants] + [(f"partner {p.name}", p) for p in self.partners]
        )
        return self


def _distinct_client_ids(owners: list[tuple[str, _Keyed]]) -> None:
    """A token request names its key set by client_id, so no two sets may share one."""
    seen: dict[str, str] = {}
    for owner, entry in owners:
        keys = entry.keys()
        if keys is None:
            continue
        if keys[0] in seen:
            raise ValueError(f"{seen[keys[0]]} and {owner} have the same client_id")
        seen[keys[0]] = owner


def _unique(what: str, values: list[str]) -> None:
    repeated = sorted({value for value in values if values.count(value) > 1})
    if repeated:
        raise ValueError(f"{what} {', '.join(repeated)} given more than once")


def load(path: Path) -> MerchantsFile:
    """The file, parsed and validated; a ``MerchantsFileError`` (one line) otherwise."""
    where = f"merchants file {path}"
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise MerchantsFileError(f"{where} cannot be read: {exc.strerror or exc}") from None
    try:
        data = _parse(text, path.suffix.lower() in (".yaml", ".yml"))
    except ValueError as exc:
        raise MerchantsFileError(f"{where} is not valid {exc}") from None
    try:
        return MerchantsFile.model_validate(data)
    except ValidationError as exc:
        raise MerchantsFileError(f"{where}: {describe(exc)}") from None


def _parse(text: str, as_yaml: bool) -> Any:
    if not as_yaml:
        try:
            return json.loads(text)
        except ValueError as exc:
            raise ValueError(f"JSON (line {getattr(exc, 'lineno', '?')})") from None
    try:
        import yaml
    except ImportError:  # pragma: no cover - pyyaml ships with the project's dev tools
        raise ValueError("YAML: pyyaml is not installed (use JSON)") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise ValueError(f"YAML (line {mark.line + 1 if mark else '?'})") from None


def describe(exc: ValidationError) -> str:
    """Pydantic's errors on one line, each at its place (``merchants[1].msn``), without the inputs."""
    reasons = []
    for error in exc.errors(include_input=False, include_url=False):
        place = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in error["loc"]).lstrip(".")
        message = error["msg"].removeprefix("Value error, ")
        reasons.append(f"{place}: {message}" if place else message)
    return "; ".join(reasons)
