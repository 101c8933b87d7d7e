"""Three merchants for tests of a simulator serving many: Gym One with its own keys, Yoga Two and Dojo Three
reached only through the partner keys of "platform".

``write_merchants_file(tmp_path)`` writes the file and returns a ``MerchantsSetup``: its path, the two key
sets and which MSN each acts for. ``Simulator(*setup.simulator_args)`` (tests/stack.py) serves it;
``SimulatorConfig(merchants=merchants_data())`` does so in process.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

OWN_MSN = "123456"
PARTNER_MSNS = ("223344", "334455")
NAMES = {"123456": "Gym One", "223344": "Yoga Two", "334455": "Dojo Three"}


@dataclass(frozen=True)
class Keys:
    """One key set; ``label`` is how the simulator's effects and request records name it."""

    label: str
    client_id: str
    client_secret: str
    subscription_key: str

    def token_headers(self, msn: str | None = None) -> dict[str, str]:
        """Headers of ``POST /accesstoken/get``."""
        headers = {
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "Ocp-Apim-Subscription-Key": self.subscription_key,
        }
        return headers | ({"Merchant-Serial-Number": msn} if msn is not None else {})

    def call_headers(self, token: str, msn: str | None) -> dict[str, str]:
        """Headers of a Recurring or Management call with a token from these keys."""
        headers = {"Authorization": f"Bearer {token}", "Ocp-Apim-Subscription-Key": self.subscription_key}
        return headers | ({"Merchant-Serial-Number": msn} if msn is not None else {})


OWN = Keys("merchant:123456", "gym-one-client-id", "gym-one-client-secret", "gym-one-subscription-key")
PARTNER = Keys("partner:platform", "platform-client-id", "platform-client-secret", "platform-subscription-key")


@dataclass(frozen=True)
class MerchantsSetup:
    path: Path
    own: Keys = OWN
    partner: Keys = PARTNER
    own_msn: str = OWN_MSN
    partner_msns: tuple[str, ...] = PARTNER_MSNS

    @property
    def msns(self) -> tuple[str, ...]:
        return (self.own_msn, *self.partner_msns)

    @property
    def simulator_args(self) -> tuple[str, str]:
        return ("--merchants", str(self.path))

    def keys_for(self, msn: str) -> Keys:
        """The keys a worker uses for ``msn``: the merchant's own, else the partner's."""
        return self.own if msn == self.own_msn else self.partner


def merchants_data() -> dict[str, Any]:
    """The file's content."""

    def secrets(keys: Keys) -> dict[str, str]:
        return {
            "client_id": keys.client_id,
            "client_secret": keys.client_secret,
            "subscription_key": keys.subscription_key,
        }

    return {
        "merchants": [
            {"msn": OWN_MSN, "name": NAMES[OWN_MSN], **secrets(OWN), "capture_type": "ReserveCapture"},
            *({"msn": msn, "name": NAMES[msn]} for msn in PARTNER_MSNS),
        ],
        "partners": [{"name": "platform", **secrets(PARTNER), "msns": list(PARTNER_MSNS)}],
    }


def write_merchants_file(directory: Path, name: str = "merchants.json") -> MerchantsSetup:
    """The three merchants as JSON (or YAML when ``name`` ends ``.yaml``) in ``directory``."""
    path = directory / name
    if path.suffix in (".yaml", ".yml"):
        import yaml

        path.write_text(yaml.safe_dump(merchants_data()))
    else:
        path.write_text(json.dumps(merchants_data(), indent=2))
    return MerchantsSetup(path)


def worker_merchants_data(extra: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The same three merchants in the worker's ``MERCHANTS_FILE`` shape (partners by name; merchants name
    their partner), plus ``extra`` merchant entries."""
    partner = {"client_id": PARTNER.client_id, "client_secret": PARTNER.client_secret,
               "subscription_key": PARTNER.subscription_key}
    own = {"client_id": OWN.client_id, "client_secret": OWN.client_secret, "subscription_key": OWN.subscription_key}
    return {"partners": {"platform": partner},
            "merchants": [{"msn": OWN_MSN, "name": NAMES[OWN_MSN], **own},
                          *({"msn": msn, "name": NAMES[msn], "partner": "platform"} for msn in PARTNER_MSNS),
                          *(extra or [])]}


def write_worker_merchants_file(directory: Path, extra: list[dict[str, Any]] | None = None) -> Path:
    path = directory / "worker-merchants.json"
    path.write_text(json.dumps(worker_merchants_data(extra), indent=2))
    return path
