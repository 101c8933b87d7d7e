"""Helpers shared by the Vipps client unit tests (constants, the spec loader, openapi-core adapters)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx
import yaml
from openapi_core import OpenAPI
from openapi_core.datatypes import RequestParameters
from werkzeug.datastructures import Headers, ImmutableMultiDict

SPEC_DIR = Path(__file__).resolve().parents[3] / "tests" / "fixtures" / "vipps"
BASE = "https://apitest.vipps.no"
SECRETS = {
    "client_id": "test-client-id-0001",
    "client_secret": "sEcReT-client-secret-value",
    "subscription_key": "sUbKeY-subscription-value",
}
ACCESS_TOKEN = "eyJ-access-token-value-never-logged"


def token_body(token: str = ACCESS_TOKEN, expires_in: str = "3599") -> dict[str, str]:
    """The token endpoint's answer: every number is a string."""
    return {
        "token_type": "Bearer",
        "expires_in": expires_in,
        "ext_expires_in": "0",
        "expires_on": "1495271273",
        "not_before": "1495184574",
        "resource": "00000002-0000-0000-c000-000000000000",
        "access_token": token,
    }


# Corrections to the official spec, each stating what the spec plainly means; nothing else changes.
# The official spec names oneOf discriminators without a mapping, so `type: PRICE_CAMPAIGN`
# resolves to a schema called "PRICE_CAMPAIGN" that does not exist. These mappings state
# what the spec means; nothing else in it is changed.
_DISCRIMINATOR_MAPPINGS = {
    "campaignV3": {
        "PRICE_CAMPAIGN": "#/components/schemas/priceCampaignV3",
        "PERIOD_CAMPAIGN": "#/components/schemas/periodCampaignV3",
        "EVENT_CAMPAIGN": "#/components/schemas/eventCampaignV3",
        "FULL_FLEX_CAMPAIGN": "#/components/schemas/fullFlexCampaignV3",
    },
    "campaignResponseV3": {
        "PRICE_CAMPAIGN": "#/components/schemas/priceCampaignResponseV3",
        "PERIOD_CAMPAIGN": "#/components/schemas/periodCampaignResponseV3",
        "EVENT_CAMPAIGN": "#/components/schemas/eventCampaignResponseV3",
        "FULL_FLEX_CAMPAIGN": "#/components/schemas/fullFlexCampaignResponseV3",
        "LEGACY_CAMPAIGN": "#/components/schemas/legacyCampaignResponseV3",
    },
    "pricingResponse": {
        "LEGACY": "#/components/schemas/LegacyPricingResponse",
        "VARIABLE": "#/components/schemas/VariableAmountPricingResponse",
    },
}


class _Yaml12Loader(yaml.SafeLoader):
    """OpenAPI documents are YAML 1.2, where only true/false are booleans; PyYAML speaks YAML 1.1,
    where the spec's `countryCode` enum value NO would become False."""


_Yaml12Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def load_yaml(name: str) -> dict[str, Any]:
    document: dict[str, Any] = yaml.load((SPEC_DIR / name).read_text(), Loader=_Yaml12Loader)
    return document


def load_recurring_spec() -> OpenAPI:
    document = load_yaml("recurring-v3-openapi.yaml")
    schemas = document["components"]["schemas"]
    for name, mapping in _DISCRIMINATOR_MAPPINGS.items():
        schemas[name]["discriminator"]["mapping"] = mapping
    charge = schemas["ChargeResponseV3"]["properties"]
    # Malformed quantifier (NOTES §9): as written it matches only a digit followed by "{10+}".
    charge["transactionId"]["pattern"] = r"^\d{10,}$"
    # OpenAPI 3.0.3 clarifies that a nullable enum must list null among its values.
    charge["failureReason"]["enum"].append(None)
    return OpenAPI.from_dict(document)


def load_token_spec() -> OpenAPI:
    return OpenAPI.from_dict(load_yaml("access-token-openapi.yaml"))


class SpecRequest:
    """An httpx request seen through openapi-core's Request protocol."""

    def __init__(self, request: httpx.Request) -> None:
        self.method = request.method.lower()
        self.host_url = f"{request.url.scheme}://{request.url.netloc.decode()}"
        self.path = request.url.path
        self.full_url_pattern = self.host_url + self.path
        self.body: bytes | None = request.content or None
        self.content_type = request.headers.get("content-type", "")
        self.parameters = RequestParameters(
            query=ImmutableMultiDict(list(request.url.params.multi_items())),
            header=Headers(list(request.headers.items())),
            cookie=ImmutableMultiDict(),
        )


class SpecResponse:
    def __init__(self, status: int, body: Any, content_type: str = "application/json") -> None:
        self.status_code = status
        self.content_type = content_type
        self.headers = Headers([("Content-Type", content_type)])
        self.data: bytes | None = json.dumps(body).encode() if body is not None else None
