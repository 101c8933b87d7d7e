"""The Webhooks API's registrations (webhooks-v1-openapi.yaml)."""

from __future__ import annotations

from pydantic import Field, SecretStr

from worker.vipps.models.common import RequestModel, ResponseModel


class RegisterWebhook(RequestModel):
    # HTTPS only, says the spec; the client lets the simulator's local receivers use http.
    url: str = Field(min_length=1, max_length=2048, pattern=r"^https?://")
    events: list[str] = Field(min_length=1)


class RegisteredWebhook(ResponseModel):
    id: str
    secret: SecretStr  # returned once, at registration; never shown again by Vipps nor logged by us


class Webhook(ResponseModel):
    id: str
    url: str
    events: list[str]


class Webhooks(ResponseModel):
    webhooks: list[Webhook]
