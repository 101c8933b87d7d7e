"""The configured Redis: every accepted form of REDIS_URL and REDIS_SENTINELS, and one-line errors that name
the variable and never show a password."""

from __future__ import annotations

from pathlib import Path

import pytest

from worker.runtime.settings import SettingsError, get_settings
from worker.store.connection import PrimaryConnection, client_for, connect
from worker.store.target import RedisTarget, RedisTargetError, Sentinels, parse, sentinel_url

SECRET = "s3cr3t-p4ss"


@pytest.mark.parametrize(("url", "sentinel", "tls", "password"), [
    ("redis+sentinel://127.0.0.1:26379/mymaster", Sentinels((("127.0.0.1", 26379),), "mymaster", 0), False, None),
    ("redis+sentinel://127.0.0.1:1,127.0.0.1:2,127.0.0.1:3/mymaster/0",
     Sentinels((("127.0.0.1", 1), ("127.0.0.1", 2), ("127.0.0.1", 3)), "mymaster", 0), False, None),
    ("redis+sentinel://:pw@s1,s2:26380/m.a-b_c/7",
     Sentinels((("s1", 26379), ("s2", 26380)), "m.a-b_c", 7), False, "pw"),
    ("rediss+sentinel://[::1]:5000/m/", Sentinels((("::1", 5000),), "m", 0), True, None),
    ("redis+sentinel://pw%40x@s/m", Sentinels((("s", 26379),), "m", 0), False, "pw@x"),
])
def test_sentinel_urls(url: str, sentinel: Sentinels, tls: bool, password: str | None) -> None:
    target = parse(url)
    assert (target.sentinel, target.tls, target.password) == (sentinel, tls, password)


@pytest.mark.parametrize(("url", "tls"), [("redis://127.0.0.1:6379/0", False), ("rediss://:p@h:6380/1", True),
                                          ("unix:///tmp/redis.sock?db=2", False)])
def test_plain_urls_are_redis_pys_own(url: str, tls: bool) -> None:
    target = parse(url)
    assert (target.sentinel, target.tls, target.url) == (None, tls, url)


@pytest.mark.parametrize(("url", "says"), [
    ("http://h:1/0", "REDIS_URL must start with one of"),
    ("127.0.0.1:6379", "REDIS_URL must start with one of"),
    (f"redis+sentinel://:{SECRET}@h:1", "names the master after the hosts"),
    (f"redis+sentinel://:{SECRET}@h:x/m", "sentinel port must be a whole number"),
    (f"redis+sentinel://:{SECRET}@h:70000/m", "within 1..65535"),
    (f"redis+sentinel://:{SECRET}@h:1,,h:2/m", "an empty sentinel address"),
    (f"redis+sentinel://:{SECRET}@::1:5/m", "IPv6"),
    (f"redis+sentinel://:{SECRET}@h/m/zero", "database number"),
    (f"redis+sentinel://:{SECRET}@h/m?ssl=1", "no query options"),
    (f"redis+sentinel://:{SECRET}@h/m$", "master name"),
])
def test_bad_urls_are_one_line_errors_naming_the_variable_not_the_password(url: str, says: str) -> None:
    with pytest.raises(RedisTargetError) as caught:
        parse(url)
    message = str(caught.value)
    assert says in message and "REDIS_URL" in message and SECRET not in message and "\n" not in message


def test_a_target_never_shows_its_password() -> None:
    target = parse(f"redis+sentinel://:{SECRET}@h:1/m")
    assert SECRET not in repr(target) and SECRET not in target.shown and target.shown == "redis+sentinel://***@h:1/m"
    assert SECRET not in repr(RedisTarget(url="redis://h/0", password=SECRET, sentinel_password=SECRET))


def test_sentinels_and_master_make_the_sentinel_url() -> None:
    assert sentinel_url("a:1, b,[::1]:3", "mymaster", db=2, tls=True) == "rediss+sentinel://a:1,b:26379,[::1]:3/mymaster/2"


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ("REDIS_URL", "REDIS_SENTINELS", "REDIS_SENTINEL_MASTER", "REDIS_SENTINEL_DB", "REDIS_TLS",
                 "REDIS_PASSWORD", "REDIS_PASSWORD_FILE", "REDIS_SENTINEL_PASSWORD", "REDIS_SENTINEL_PASSWORD_FILE",
                 "REDIS_TLS_CA_FILE"):
        monkeypatch.delenv(name, raising=False)
    get_settings.cache_clear()
    yield monkeypatch
    get_settings.cache_clear()


def test_settings_from_sentinels_and_password_files(env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "data").write_text(SECRET + "\n")
    (tmp_path / "sentinel").write_text("sentinel-secret")
    (tmp_path / "ca.pem").write_text("not read until connecting")
    env.setenv("REDIS_SENTINELS", "10.0.0.1:26379,10.0.0.2:26379")
    env.setenv("REDIS_SENTINEL_MASTER", "billing")
    env.setenv("REDIS_SENTINEL_DB", "3")
    env.setenv("REDIS_TLS", "true")
    env.setenv("REDIS_PASSWORD_FILE", str(tmp_path / "data"))
    env.setenv("REDIS_SENTINEL_PASSWORD_FILE", str(tmp_path / "sentinel"))
    env.setenv("REDIS_TLS_CA_FILE", str(tmp_path / "ca.pem"))
    settings = get_settings()
    target = settings.redis_target()
    assert target is not None
    assert settings.redis_location() == "rediss+sentinel://10.0.0.1:26379,10.0.0.2:26379/billing/3"
    assert (target.password, target.sentinel_password, target.tls_ca_file) == (SECRET, "sentinel-secret",
                                                                               str(tmp_path / "ca.pem"))
    assert settings.redis_variable == "REDIS_SENTINELS"


def test_a_plain_redis_url_works_as_before(env: pytest.MonkeyPatch, redis_url: str) -> None:
    env.setenv("REDIS_URL", redis_url)
    target = get_settings().redis_target()
    assert target is not None and target.sentinel is None and target.url == redis_url
    client = connect(target)
    assert client.ping() and isinstance(client.connection_pool.get_connection(), PrimaryConnection)
    assert get_settings().redis_target("redis://ignored:1/0") is target
    client.close()


def test_the_default_gets_the_password_too(env: pytest.MonkeyPatch) -> None:
    env.setenv("REDIS_PASSWORD", SECRET)
    target = get_settings().redis_target("redis://127.0.0.1:6379/0")
    assert target is not None and target.password == SECRET


@pytest.mark.parametrize(("variables", "says"), [
    ({"REDIS_SENTINELS": "a:1"}, "REDIS_SENTINELS and REDIS_SENTINEL_MASTER go together"),
    ({"REDIS_SENTINEL_MASTER": "m"}, "REDIS_SENTINELS and REDIS_SENTINEL_MASTER go together"),
    ({"REDIS_SENTINELS": "a:1", "REDIS_SENTINEL_MASTER": "m", "REDIS_URL": "redis://h/0"}, "not both"),
    ({"REDIS_SENTINELS": "a:port", "REDIS_SENTINEL_MASTER": "m"}, "REDIS_SENTINELS: the sentinel port"),
    ({"REDIS_SENTINELS": "a:1", "REDIS_SENTINEL_MASTER": "m m"}, "REDIS_SENTINEL_MASTER: the master name"),
    ({"REDIS_URL": f"redis://:{SECRET}@h/0", "REDIS_PASSWORD": SECRET}, "REDIS_PASSWORD is set and REDIS_URL holds"),
    ({"REDIS_URL": f"redis+sentinel://:{SECRET}@h/m", "REDIS_PASSWORD": SECRET}, "REDIS_PASSWORD is set and"),
    ({"REDIS_URL": "redis://h/0", "REDIS_SENTINEL_PASSWORD": SECRET}, "REDIS_SENTINEL_PASSWORD is set but"),
    ({"REDIS_URL": "redis://h/0", "REDIS_PASSWORD_FILE": "/nonexistent/pw"}, "REDIS_PASSWORD_FILE cannot be read"),
    ({"REDIS_URL": "redis://h/0", "REDIS_TLS_CA_FILE": "/etc/hostname"}, "REDIS_TLS_CA_FILE is set but"),
    ({"REDIS_URL": "rediss://h/0", "REDIS_TLS_CA_FILE": "/nonexistent/ca"}, "REDIS_TLS_CA_FILE is not a readable"),
    ({"REDIS_URL": "redis://h/0", "REDIS_TLS": "true"}, "REDIS_TLS=true wants a rediss://"),
    ({"REDIS_URL": f"redis+sentinel://:{SECRET}@h"}, "REDIS_URL: a redis+sentinel:// URL names the master"),
])
def test_bad_settings_say_which_variable_in_one_line_without_the_secret(
        env: pytest.MonkeyPatch, variables: dict[str, str], says: str) -> None:
    for name, value in variables.items():
        env.setenv(name, value)
    with pytest.raises(SettingsError) as caught:
        get_settings()
    message = str(caught.value)
    assert says in message and SECRET not in message and "\n" not in message, message


def test_a_sentinel_client_asks_the_sentinels_with_their_password() -> None:
    target = RedisTarget(url="redis+sentinel://s:1/m/4", sentinel=Sentinels((("s", 1),), "m", 4),
                         password="data", sentinel_password="watch")
    client = client_for(target, socket_timeout=1)
    pool = client.connection_pool
    assert pool.connection_kwargs["password"] == "data" and pool.connection_kwargs["db"] == 4
    sentinels = pool.sentinel_manager.sentinels  # type: ignore[attr-defined]
    assert sentinels[0].connection_pool.connection_kwargs["password"] == "watch"
