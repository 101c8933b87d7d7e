"""The support console's settings, from the environment (no prefix; see the README's Support console).

The store's settings (``REDIS_URL``, ``KEY_PREFIX``, ...) plus the console's own ``CONSOLE_*``. The
merchants are read as the worker reads them (``MERCHANTS_FILE``, else ``VIPPS_*``). Two ways to log in:
the built-in users (``CONSOLE_USERS_FILE``) and OpenID Connect (``CONSOLE_OIDC_*``, on when
``CONSOLE_OIDC_ISSUER`` is set); at least one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import Field, PrivateAttr, SecretStr, ValidationError, model_validator
from pydantic_core import PydanticCustomError

from schemas.problems import one_line
from worker.console.users import Role
from worker.store.settings import StoreSettings, secret
from worker.store.target import RedisTargetError

# Below this the HMAC key is guessable; 32 bytes is what `secrets.token_urlsafe()` gives.
MIN_SECRET_CHARS = 32
CALLBACK_PATH = "/login/oidc/callback"
# Plain http only where nothing between the console and the provider can read or change it: tests, local runs.
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


class SettingsError(Exception):
    """Invalid settings; the message names the variables, never their values."""


@dataclass(frozen=True)
class OidcSettings:
    """The OpenID Connect login, checked: every field present and well-formed."""

    issuer: str
    client_id: str
    client_secret: str = field(repr=False)
    redirect_url: str
    roles_claim: str
    role_map: dict[str, Role]
    name: str

    @property
    def discovery_url(self) -> str:
        return self.issuer.rstrip("/") + "/.well-known/openid-configuration"


def parse_role_map(text: str) -> dict[str, Role]:
    """``group=role,group=role`` as {group: role}; ``ValueError`` naming the entry by its place, not its text.

    A group may hold ``=`` (an LDAP name does): the role is after the last one.
    """
    found: dict[str, Role] = {}
    for place, entry in enumerate(text.split(","), start=1):
        group, _, role = entry.strip().rpartition("=")
        group, role = group.strip(), role.strip()
        if not group or role not in Role.__members__:
            raise ValueError(f"entry {place} is not group=role (role viewer, agent or operator)")
        if group in found:
            raise ValueError(f"entry {place} names a group a second time")
        found[group] = Role[role]
    return found


def checked_url(url: str, variable: str) -> str:
    """``url`` when it is https (or http on loopback) with a host and no query or fragment."""
    parts = urlsplit(url)
    if not parts.hostname or parts.query or parts.fragment or parts.username or parts.password:
        raise ValueError(f"{variable} is not a URL with a host (and no query, fragment or credentials)")
    if parts.scheme != "https" and not (parts.scheme == "http" and parts.hostname in LOOPBACK_HOSTS):
        raise ValueError(f"{variable} must be an https URL (plain http only on 127.0.0.1 or localhost)")
    return url


# The longest a console session may last (CONSOLE_SESSION_MINUTES), and so a revocation need be kept.
MAX_SESSION_MINUTES = 24 * 60


class ConsoleSettings(StoreSettings):
    console_users_file: Path | None = Field(default=None, description="the built-in users: YAML or JSON, username, "
                                            "password_hash (argon2), role viewer|agent|operator")
    console_session_secret: SecretStr | None = Field(default=None, description="key that signs session cookies "
                                                     "(or _FILE); required")
    console_session_secret_file: Path | None = None
    console_session_minutes: int = Field(default=60, ge=1, le=MAX_SESSION_MINUTES)
    # Off only for a local run over plain http: a browser does not send a Secure cookie back over http.
    console_cookie_secure: bool = True
    console_login_attempts: int = Field(default=10, ge=1, description="login attempts per username and per "
                                        "client within CONSOLE_LOGIN_WINDOW_SECONDS")
    console_login_window_seconds: int = Field(default=900, ge=1)
    console_action_wait_seconds: float = Field(default=15.0, ge=0, le=60, description="how long an action's page "
                                               "waits for the worker's outcome before showing it in progress")
    console_oidc_issuer: str | None = Field(default=None, description="the identity provider's issuer URL; "
                                            "OpenID Connect login is on when set")
    console_oidc_client_id: str | None = None
    console_oidc_client_secret: SecretStr | None = None
    console_oidc_client_secret_file: Path | None = None
    console_oidc_redirect_url: str | None = Field(default=None, description="the console's public callback URL, "
                                                  f"ending in {CALLBACK_PATH}")
    console_oidc_roles_claim: str = Field(default="groups", min_length=1)
    console_oidc_role_map: str | None = Field(default=None, description="group=role,... (roles viewer, agent, "
                                              "operator); a user gets the highest their groups map to")
    console_oidc_name: str = Field(default="single sign-on", min_length=1, max_length=80)
    # Behind an ingress every login would come from the controller's address: trusting its X-Forwarded-For
    # gives the login limit the browser's address instead.
    console_trusted_proxies: str = Field(default="", description="addresses (comma-separated, or *) whose "
                                         "X-Forwarded-For names the client; empty: none")
    console_host: str = "127.0.0.1"
    console_port: int = Field(default=8090, ge=0, le=65535)
    # Kept off the pages' port: an Ingress that exposes the pages never exposes metrics or probes.
    console_metrics_port: int = Field(default=9194, ge=0, le=65535, description="/metrics, /healthz, /readyz "
                                      "on CONSOLE_HOST; 0: not served")
    log_level: str = "INFO"

    _secret: str = PrivateAttr(default="")
    _oidc: OidcSettings | None = PrivateAttr(default=None)

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
    def _resolve_logins(self) -> ConsoleSettings:
        try:
            self._oidc = oidc_settings_of(self)
        except (ValueError, RedisTargetError) as exc:
            raise PydanticCustomError("console_oidc", str(exc)) from None
        if self._oidc is None and self.console_users_file is None:
            raise PydanticCustomError("console_login", "no way to log in: set CONSOLE_USERS_FILE, "
                                      "CONSOLE_OIDC_ISSUER (OpenID Connect), or both")
        return self

    @model_validator(mode="after")
    def _two_ports(self) -> ConsoleSettings:
        if self.console_metrics_port and self.console_metrics_port == self.console_port:
            raise PydanticCustomError("console_ports", "CONSOLE_METRICS_PORT must differ from CONSOLE_PORT")
        return self

    @property
    def session_secret(self) -> bytes:
        return self._secret.encode()

    @property
    def oidc(self) -> OidcSettings | None:
        """The OpenID Connect login, when ``CONSOLE_OIDC_ISSUER`` turns it on."""
        return self._oidc


def oidc_settings_of(settings: ConsoleSettings) -> OidcSettings | None:
    """The checked OpenID Connect settings; None when no issuer is set; ``ValueError`` naming the variable."""
    if not settings.console_oidc_issuer:
        return None
    client_id, redirect_url = settings.console_oidc_client_id, settings.console_oidc_redirect_url
    role_map_text = settings.console_oidc_role_map
    client_secret = secret(settings.console_oidc_client_secret, settings.console_oidc_client_secret_file,
                           "CONSOLE_OIDC_CLIENT_SECRET")
    if not (client_id and client_secret and redirect_url and role_map_text):
        missing = [name for name, value in (("CONSOLE_OIDC_CLIENT_ID", client_id),
                                            ("CONSOLE_OIDC_CLIENT_SECRET (or _FILE)", client_secret),
                                            ("CONSOLE_OIDC_REDIRECT_URL", redirect_url),
                                            ("CONSOLE_OIDC_ROLE_MAP", role_map_text)) if not value]
        raise ValueError(f"CONSOLE_OIDC_ISSUER is set, so {', '.join(missing)} must be set too")
    issuer = checked_url(settings.console_oidc_issuer, "CONSOLE_OIDC_ISSUER")
    redirect = checked_url(redirect_url, "CONSOLE_OIDC_REDIRECT_URL")
    if not urlsplit(redirect).path.endswith(CALLBACK_PATH):
        raise ValueError(f"CONSOLE_OIDC_REDIRECT_URL must end in {CALLBACK_PATH}")
    try:
        role_map = parse_role_map(role_map_text)
    except ValueError as exc:
        raise ValueError(f"CONSOLE_OIDC_ROLE_MAP: {exc}") from None
    return OidcSettings(issuer=issuer, client_id=client_id, client_secret=client_secret,
                        redirect_url=redirect, roles_claim=settings.console_oidc_roles_claim, role_map=role_map,
                        name=settings.console_oidc_name)


def load_settings(**overrides: object) -> ConsoleSettings:
    """The console's settings from the environment, ``overrides`` (e.g. CLI options) winning."""
    try:
        return ConsoleSettings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise SettingsError(f"invalid settings: {one_line(exc, upper=True, unnamed='')}") from None
