"""Validates simulator responses against the official OpenAPI files in tests/fixtures/vipps.

The official v3 spec has a few documented errors that would reject what the real API returns; they
are corrected here, each with its reason, and nothing else is relaxed.
"""

from __future__ import annotations

import copy
import functools
import json
from pathlib import Path
from typing import Any

import yaml
from openapi_core import Config, OpenAPI
from openapi_core.testing import MockRequest, MockResponse

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "vipps"
HOST = "https://api.vipps.no"


def _errata(spec: dict[str, Any]) -> dict[str, Any]:
    spec = copy.deepcopy(spec)
    schemas = spec["components"]["schemas"]
    charge = schemas["ChargeResponseV3"]["properties"]
    # "Contains null until the status has reached CHARGED"; the pattern ^\d{10+}$ is malformed.
    charge["transactionId"].update(nullable=True, pattern=r"^\d{10,}$")
    # externalId is optional on create, so it is null on charges created without one.
    charge["externalId"]["nullable"] = True
    # failureReason is nullable, but under OpenAPI 3.0 a nullable enum must list null to allow it.
    charge["failureReason"]["enum"] = [*charge["failureReason"]["enum"], None]
    # The chargeId is the orderId when given, and orderId may be 50 characters (NOTES §9.6).
    charge["id"]["maxLength"] = 50
    schemas["ChargeReference"]["properties"]["chargeId"]["maxLength"] = 50
    # OpenAPI 3.0 ignores siblings of $ref, so "nullable: true" next to the campaign $ref is lost.
    agreement = schemas["AgreementResponseV3"]["properties"]
    agreement["campaign"] = {
        "anyOf": [
            {"$ref": "#/components/schemas/campaignResponseV3"},
            {"type": "object", "nullable": True, "maxProperties": 0},
        ]
    }
    # Discriminators without a mapping resolve values as schema names ("#/components/schemas/LEGACY");
    # map the documented values to the schemas that describe them.
    schemas["pricingResponse"]["discriminator"]["mapping"] = {
        "LEGACY": "#/components/schemas/LegacyPricingResponse",
        "VARIABLE": "#/components/schemas/VariableAmountPricingResponse",
    }
    schemas["campaignResponseV3"]["discriminator"]["mapping"] = {
        "PRICE_CAMPAIGN": "#/components/schemas/priceCampaignResponseV3",
        "PERIOD_CAMPAIGN": "#/components/schemas/periodCampaignResponseV3",
        "EVENT_CAMPAIGN": "#/components/schemas/eventCampaignResponseV3",
        "FULL_FLEX_CAMPAIGN": "#/components/schemas/fullFlexCampaignResponseV3",
        "LEGACY_CAMPAIGN": "#/components/schemas/legacyCampaignResponseV3",
    }
    # A 204 cannot carry a body (RFC 9110), yet force-accept's 204 declares one.
    spec["paths"]["/recurring/v3/agreements/{agreementId}/accept"]["patch"]["responses"]["204"].pop("content", None)
    _later_additions(spec)
    # YAML 1.1 reads the unquoted country code NO as the boolean false.
    for schema in (schemas["AgreementResponseV3"], schemas["DraftAgreementV3"]):
        schema["properties"]["countryCode"]["enum"] = ["NO"]
    return spec


def _later_additions(spec: dict[str, Any]) -> None:
    """What the API gained after this spec was published (CHANGES §2, §3): UNSCHEDULED charges and the batch
    endpoint, whose answer is ``AsyncChargeResponse`` (deno-sdk types)."""
    spec["components"]["schemas"]["ChargeType"]["enum"].append("UNSCHEDULED")
    spec["components"]["schemas"]["AsyncChargeResponse"] = {
        "type": "object",
        "required": ["validCharges", "invalidCharges"],
        "properties": {
            "validCharges": {"type": "array", "items": {"type": "string"}},
            "invalidCharges": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["chargeBatchItemDto", "errors"],
                    "properties": {
                        "chargeBatchItemDto": {},
                        "errors": {"type": "array", "items": {"type": "string"}, "minItems": 1},
                    },
                },
            },
        },
    }
    spec["paths"]["/recurring/v3/agreements/charges"] = {
        "post": {
            "operationId": "CreateChargesAsyncV3",
            "responses": {
                "202": {
                    "description": "Accepted",
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/AsyncChargeResponse"}}},
                },
                "default": {"$ref": "#/components/responses/ErrorResponseV3"},
            },
        }
    }


@functools.cache
def recurring() -> OpenAPI:
    spec = yaml.safe_load((FIXTURES / "recurring-v3-openapi.yaml").read_text())
    return OpenAPI.from_dict(_errata(spec))


@functools.cache
def access_token() -> OpenAPI:
    spec = yaml.safe_load((FIXTURES / "access-token-openapi.yaml").read_text())
    # The token is a JWT (the Recurring spec says so); JWTs are dot-separated base64url, which
    # "format: byte" (padded standard base64) rejects.
    for schema in spec["components"]["schemas"].values():
        schema.get("properties", {}).get("access_token", {}).pop("format", None)
    return OpenAPI.from_dict(spec)


@functools.cache
def webhooks() -> OpenAPI:
    spec = yaml.safe_load((FIXTURES / "webhooks-v1-openapi.yaml").read_text())
    # Its errors are application/problem+json, which openapi-core does not read as JSON unless told.
    config = Config(extra_media_type_deserializers={"application/problem+json": json.loads})
    return OpenAPI.from_dict(spec, config=config)


# The statuses the Webhooks spec documents; the gateway's 401 and 403 and a 404 for an unknown id are not.
WEBHOOK_STATUSES = (200, 201, 204, 400)


def validate(method: str, path: str, status: int, body: bytes, content_type: str | None) -> None:
    """Raise if the response does not match the spec's response for that operation and status."""
    if path.startswith("/webhooks/"):
        if status in WEBHOOK_STATUSES:
            response = MockResponse(body, status_code=status, content_type=content_type or "application/json")
            webhooks().validate_response(MockRequest(HOST, method.lower(), path), response)
        return
    api = access_token() if path.lower() == "/accesstoken/get" else recurring()
    request = MockRequest(HOST, method.lower(), path if api is recurring() else "/accesstoken/get")
    response = MockResponse(body, status_code=status, content_type=content_type or "application/json")
    api.validate_response(request, response)
