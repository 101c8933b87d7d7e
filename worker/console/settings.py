"""The support console's settings, from the environment (no prefix; see the README's Support console).

The store's settings (``REDIS_URL``, ``KEY_PREFIX``, ...) plus the console's own ``CONSOLE_*``. The
merchants are read as the worker reads them (``MERCHANTS_FILE``, else ``VIPPS_*``).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, PrivateAttr, SecretStr, ValidationError, model_validator
from pydantic_core import PydanticCustomError

from schemas.problems import one_line
from worker.store.settings import StoreSettings, secret
from worker.store.target import RedisTargetError

# Below this the HMAC key is guessable; 32 bytes is what `secrets.token_urlsafe()` gives.
MIN_SECRET_CHARS = 32


class SettingsError(Exception):
    """Invalid settings; the message names the variables, never their values."""


class ConsoleSettings(StoreSettings):
    console_users_file: Path = Field(description="the built-in users: YAML or JSON, username, password_hash "
                                     "(argon2), role viewer|agent|operator")
    console_session_secret: SecretStr | None = Field(default=None, description="key that signs session cookies "
                                                     "(or _FILE); required")
    console_session_secret_file: Path | None = None
    console_session_minutes: int = Field(default=60, ge=1, le=24 * 60)
    # Off only for a local run over plain http: a browser does not send a Secure cookie back over http.
    console_cookie_secure: bool = True
    console_login_attempts: int = Field(default=10, ge=1, description="login attempts per username and per "
                                        "client within CONSOLE_LOGIN_WINDOW_SECONDS")
    console_login_window_seconds: int = Field(default=900, ge=1)
    console_host: str = "127.0.0.1"
    console_port: int = Field(default=8090, ge=0, le=65535)
    # Kept off the pages' port: an Ingress that exposes the pages never exposes metrics or probes.
    console_metrics_port: int = Field(default=9194, ge=0, le=65535, description="/metrics, /healthz, /readyz "
                                      "on CONSOLE_HOST; 0: not served")
    log_level: str = "INFO"

    _secret: str = PrivateAttr(default="")

    @model_validator(mode="after")
    def _resolve_secret(self) -> ConsoleSettings:
        try:
            value = secret(self.console_session_secret, self.console_session_secret_file, "CONSOLE_SESSION_SECRET")
        except RedisTargetError as exc:
            raise PydanticCustomError("console_secret", str(exc)) from None
        if value is None:
            raise PydanticCustomError("console_secret", "CONSOLE_SESSION_SECRET (or _FILE) is required")
        if len(value) < MIN_SECRET_CHARS:
            raise PydanticCustomError("console_secret",
                                      f"CONSOLE_SESSION_SECRET is shorter than {MIN_SECRET_CHARS} characters")
        self._secret = value
        return self

    @model_validator(mode="after")
    def _two_ports(self) -> ConsoleSettings:
        if self.console_metrics_port and self.console_metrics_port == self.console_port:
            raise PydanticCustomError("console_ports", "CONSOLE_METRICS_PORT must differ from CONSOLE_PORT")
        return self

    @property
    def session_secret(self) -> bytes:
        return self._secret.encode()


def load_settings(**overrides: object) -> ConsoleSettings:
    """The console's settings from the environment, ``overrides`` (e.g. CLI options) winning."""
    try:
        return ConsoleSettings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise SettingsError(f"invalid settings: {one_line(exc, upper=True, unnamed='')}") from None
