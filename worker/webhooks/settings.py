"""The webhook receiver's settings, from the environment (no prefix; see the README's configuration).

The store's settings (``REDIS_URL``, ``KEY_PREFIX``, ...) plus the receiver's own ``WEBHOOK_*``.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlsplit

from pydantic import Field, ValidationError, field_validator

from schemas.problems import one_line
from worker.store.settings import StoreSettings


class SettingsError(Exception):
    """Invalid settings; the message names the variables, never their values."""


class WebhookSettings(StoreSettings):
    webhook_public_url: str = Field(description="the URL registered at Vipps, as Vipps calls it (the receiver "
                                    "serves its path, and checks signatures against its path, query and host)")
    webhook_secrets_dir: Path = Field(description="one file per registration: name = registration id, "
                                      "content = its secret")
    webhook_max_body_bytes: int = Field(default=65_536, ge=1024, le=10_485_760)
    # Vipps documents no freshness window for x-ms-date: this one is ours.
    webhook_date_window_seconds: int = Field(default=300, ge=1)
    webhook_host: str = "0.0.0.0"
    webhook_port: int = Field(default=8080, ge=0, le=65535)
    webhook_metrics_port: int = Field(default=9192, ge=0, le=65535, description="/metrics, /healthz, /readyz")
    webhook_read_timeout_seconds: float = Field(
        default=5.0, gt=0, le=8, description="time a client has to send a request's headers, and again its body")
    webhook_redis_timeout_seconds: float = Field(default=2.0, gt=0, le=5)
    webhook_limit_concurrency: int = Field(default=100, ge=2, description="connections served at once; "
                                           "beyond that uvicorn answers 503")
    log_level: str = "INFO"

    @field_validator("webhook_public_url")
    @classmethod
    def _an_absolute_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("https", "http") or not parts.hostname or parts.fragment:
            raise ValueError("must be an absolute http(s) URL without a fragment")
        return value

    @property
    def webhook_path(self) -> str:
        """The path deliveries arrive on, as the server sees it (percent-decoded)."""
        return unquote(urlsplit(self.webhook_public_url).path) or "/"


def load_settings(**overrides: object) -> WebhookSettings:
    """The receiver's settings from the environment, ``overrides`` (e.g. CLI options) winning."""
    try:
        return WebhookSettings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise SettingsError(f"invalid settings: {one_line(exc, upper=True, unnamed='')}") from None
