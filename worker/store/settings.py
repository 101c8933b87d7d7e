"""Where the store lives and how long it keeps things: the settings every process that touches it shares.

From the environment (no prefix; see the README's configuration table). The worker's settings
extend these; the CLI and the support console read these alone.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, PrivateAttr, SecretStr, model_validator
from pydantic_core import PydanticCustomError
from pydantic_settings import BaseSettings, SettingsConfigDict

from worker.store.keys import DramatiqKeys, Keys, Layout
from worker.store.replication import Replicas
from worker.store.target import RedisTarget, RedisTargetError, parse, sentinel_url

# The variables that name the Redis by its sentinels; a child process handed a REDIS_URL gets none of them.
SENTINEL_VARIABLES = ("REDIS_SENTINELS", "REDIS_SENTINEL_MASTER", "REDIS_SENTINEL_DB")


class StoreSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore")

    redis_url: str | None = Field(default=None, description="Redis for broker, ledger and outbox (a plain URL, "
                                  "or redis+sentinel://host:port,.../<master>[/<db>])")
    redis_sentinels: str | None = Field(default=None, description="host:port,... of the Sentinels, instead of "
                                        "REDIS_URL (with REDIS_SENTINEL_MASTER)")
    redis_sentinel_master: str | None = Field(default=None, description="the name the Sentinels know the primary by")
    redis_sentinel_db: int = Field(default=0, ge=0)
    redis_tls: bool = Field(default=False, description="TLS to the Sentinels and the data nodes (REDIS_SENTINELS)")
    redis_password: SecretStr | None = Field(default=None, description="the data nodes' password (or _FILE)")
    redis_password_file: Path | None = None
    redis_sentinel_password: SecretStr | None = Field(default=None, description="the Sentinels' password (or _FILE)")
    redis_sentinel_password_file: Path | None = None
    redis_tls_ca_file: Path | None = Field(default=None, description="CA bundle to check the Redis TLS certificates")
    dramatiq_namespace: str = "dramatiq"
    key_prefix: str = Field(default="vipps-billing", description="prefix of the worker's own Redis keys")

    agreements_queue: str = "vipps.agreements"
    charges_queue: str = "vipps.charges"
    events_queue: str = "vipps.events"
    events_actor: str = "vipps_event"

    # Replication: the worker's outcomes and parks and the receiver's deliveries wait until this many replicas
    # hold them (0: off; see the README's HA Redis).
    redis_wait_replicas: int = Field(default=0, ge=0)
    redis_wait_timeout_ms: int = Field(default=500, ge=1, description="how long one wait for replicas may take")

    heartbeat_timeout_ms: int = Field(default=10_000, ge=1000)
    dead_letter_retention_days: int = Field(default=30, ge=30)
    ledger_retention_days: int = Field(default=35, ge=1)

    _target: RedisTarget | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _resolve_redis(self) -> StoreSettings:
        try:
            self._target = redis_target_of(self)
        except RedisTargetError as exc:
            raise PydanticCustomError("redis_settings", str(exc)) from None
        return self

    def replicas(self) -> Replicas:
        return Replicas(self.redis_wait_replicas, self.redis_wait_timeout_ms)

    def redis_location(self) -> str | None:
        """The configured Redis as a URL without the secrets kept apart (REDIS_URL, or the sentinel URL of
        REDIS_SENTINELS); None when nothing is configured."""
        return self._target.url if self._target else None

    @property
    def redis_variable(self) -> str:
        """The variable that names the Redis, for messages."""
        return "REDIS_SENTINELS" if self.redis_sentinels else "REDIS_URL"

    def redis_target(self, default: str | None = None) -> RedisTarget | None:
        """The configured Redis with its secrets; else ``default`` (a plain URL) with them; else None."""
        if self._target is not None or default is None:
            return self._target
        return with_secrets(parse(default), self)

    def layout(self, msns: tuple[str, ...] = ()) -> Layout:
        """The layout; with several merchants (``msns``), each gets its own command queues."""
        return Layout(keys=Keys(self.key_prefix), dramatiq=DramatiqKeys(self.dramatiq_namespace),
                      agreements_queue=self.agreements_queue, charges_queue=self.charges_queue,
                      events_queue=self.events_queue, events_actor=self.events_actor,
                      merchant_queues=msns if len(msns) > 1 else (), merchants=msns)


def redis_target_of(settings: StoreSettings) -> RedisTarget | None:
    """The target the settings name, checked; ``RedisTargetError`` naming the variable otherwise."""
    if settings.redis_sentinels is not None or settings.redis_sentinel_master is not None:
        if settings.redis_url:
            raise RedisTargetError("set REDIS_URL or REDIS_SENTINELS with REDIS_SENTINEL_MASTER, not both")
        if not settings.redis_sentinels or not settings.redis_sentinel_master:
            raise RedisTargetError("REDIS_SENTINELS and REDIS_SENTINEL_MASTER go together: set both")
        url = sentinel_url(settings.redis_sentinels, settings.redis_sentinel_master, db=settings.redis_sentinel_db,
                           tls=settings.redis_tls)
        return with_secrets(parse(url), settings)
    if not settings.redis_url:
        return None
    target = parse(settings.redis_url)
    if settings.redis_tls and not target.tls:
        raise RedisTargetError("REDIS_TLS=true wants a rediss:// or rediss+sentinel:// REDIS_URL")
    return with_secrets(target, settings)


def with_secrets(target: RedisTarget, settings: StoreSettings) -> RedisTarget:
    """``target`` with the passwords and the CA file of the settings (each from its variable or its _FILE)."""
    password = secret(settings.redis_password, settings.redis_password_file, "REDIS_PASSWORD")
    if password is not None and (target.password is not None or (target.sentinel is None and "@" in target.url)):
        raise RedisTargetError("REDIS_PASSWORD is set and REDIS_URL holds a password too: set one")
    sentinel_password = secret(settings.redis_sentinel_password, settings.redis_sentinel_password_file,
                               "REDIS_SENTINEL_PASSWORD")
    if sentinel_password is not None and target.sentinel is None:
        raise RedisTargetError("REDIS_SENTINEL_PASSWORD is set but REDIS_URL names no sentinels")
    ca = settings.redis_tls_ca_file
    if ca is not None:
        if not target.tls:
            raise RedisTargetError("REDIS_TLS_CA_FILE is set but the Redis is reached without TLS "
                                   "(rediss://, rediss+sentinel:// or REDIS_TLS=true)")
        if not ca.is_file():
            raise RedisTargetError("REDIS_TLS_CA_FILE is not a readable file")
    return RedisTarget(url=target.url, sentinel=target.sentinel, tls=target.tls, username=target.username,
                       password=target.password if password is None else password,
                       sentinel_password=sentinel_password, tls_ca_file=str(ca) if ca else None)


def secret(value: SecretStr | None, path: Path | None, variable: str) -> str | None:
    """A secret from its variable, else from the file its ``_FILE`` variable names (as Kubernetes mounts one)."""
    if value is not None:
        return value.get_secret_value()
    if path is None:
        return None
    try:
        return path.read_text().strip() or None
    except OSError as exc:
        raise RedisTargetError(f"{variable}_FILE cannot be read: {exc.strerror}") from None
