"""Where the configured Redis is: a plain URL, or a primary found through Redis Sentinel.

Accepted forms (``REDIS_URL``)::

    redis://[[user]:password@]host:port/db          rediss://...  unix://...   (redis-py's own forms)
    redis+sentinel://[[user]:password@]host[:port][,host[:port]...]/<master>[/<db>]
    rediss+sentinel://...                            (TLS to the sentinels and to the data nodes)

or ``REDIS_SENTINELS=host:port,...`` with ``REDIS_SENTINEL_MASTER`` (see ``StoreSettings``), which
become the ``redis+sentinel://`` URL. A password in a sentinel URL is the data nodes' password; the
sentinels' own is given apart (``REDIS_SENTINEL_PASSWORD``). Errors are one line, name the variable and
never show a password.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import unquote

SENTINEL_SCHEMES = {"redis+sentinel": False, "rediss+sentinel": True}  # scheme -> TLS
PLAIN_SCHEMES = {"redis": False, "rediss": True, "unix": False}
DEFAULT_SENTINEL_PORT = 26379
_MASTER_NAME = re.compile(r"^[A-Za-z0-9._-]{1,128}$")


class RedisTargetError(ValueError):
    """A Redis location that cannot be used; the message names the variable, never a password."""


@dataclass(frozen=True)
class Sentinels:
    hosts: tuple[tuple[str, int], ...]
    master: str
    db: int = 0


@dataclass(frozen=True, repr=False)
class RedisTarget:
    """A Redis to connect to, with the secrets that are not part of its URL."""

    url: str                                    # as configured: may hold a password, print `shown`
    sentinel: Sentinels | None = None
    tls: bool = False
    username: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)           # the data nodes'
    sentinel_password: str | None = field(default=None, repr=False)  # the sentinels'
    tls_ca_file: str | None = None

    @property
    def shown(self) -> str:
        return redact_url(self.url)

    def __repr__(self) -> str:
        return f"RedisTarget({self.shown})"


def redact_url(url: str) -> str:
    """A Redis URL fit to print: its password hidden."""
    if "@" not in url:
        return url
    scheme, _, rest = url.partition("://")
    return f"{scheme}://***@{rest.rpartition('@')[2]}"


def parse(url: str, variable: str = "REDIS_URL") -> RedisTarget:
    """The target a URL names (see the module's forms); ``RedisTargetError`` if it names none."""
    scheme, sep, rest = url.partition("://")
    scheme = scheme.lower()
    if not sep or (scheme not in SENTINEL_SCHEMES and scheme not in PLAIN_SCHEMES):
        known = ", ".join(f"{s}://" for s in (*PLAIN_SCHEMES, *SENTINEL_SCHEMES))
        raise RedisTargetError(f"{variable} must start with one of {known}")
    if scheme in PLAIN_SCHEMES:
        return RedisTarget(url=url, tls=PLAIN_SCHEMES[scheme])
    if "?" in rest or "#" in rest:
        raise RedisTargetError(f"{variable}: a {scheme}:// URL takes no query options (use the REDIS_* settings)")
    netloc, _, path = rest.partition("/")
    userinfo, at, hosts = netloc.rpartition("@")
    username, password = _userinfo(userinfo) if at else (None, None)
    master, _, db_text = path.partition("/")
    if not master:
        raise RedisTargetError(f"{variable}: a {scheme}:// URL names the master after the hosts "
                               "(.../<master>[/<db>])")
    sentinels = Sentinels(parse_hosts(hosts, variable), check_master(master, variable),
                          parse_db(db_text.rstrip("/"), variable))
    return RedisTarget(url=url, sentinel=sentinels, tls=SENTINEL_SCHEMES[scheme], username=username,
                       password=password)


def _userinfo(userinfo: str) -> tuple[str | None, str | None]:
    user, colon, password = userinfo.partition(":")
    if not colon:  # "secret@host": redis-py reads a lone userinfo as the password too
        return None, unquote(user) or None
    return unquote(user) or None, unquote(password) or None


def parse_hosts(text: str, variable: str) -> tuple[tuple[str, int], ...]:
    """``host[:port],host[:port],...`` (IPv6 in brackets); the port defaults to Sentinel's 26379."""
    hosts = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            raise RedisTargetError(f"{variable}: an empty sentinel address (host:port,host:port,...)")
        if item.startswith("["):
            host, _, tail = item[1:].partition("]")
            port_text = tail[1:] if tail.startswith(":") else tail
        elif item.count(":") > 1:
            raise RedisTargetError(f"{variable}: put an IPv6 sentinel address in brackets ([::1]:26379)")
        else:
            host, _, port_text = item.partition(":")
        if not host or not re.fullmatch(r"[A-Za-z0-9._:-]+", host):
            raise RedisTargetError(f"{variable}: a sentinel address has no valid host (host:port,host:port,...)")
        port = DEFAULT_SENTINEL_PORT if not port_text else _number(port_text, variable, "sentinel port")
        if not 0 < port < 65536:
            raise RedisTargetError(f"{variable}: a sentinel port must be within 1..65535")
        hosts.append((host, port))
    return tuple(hosts)


def check_master(name: str, variable: str) -> str:
    if not _MASTER_NAME.match(name):
        raise RedisTargetError(f"{variable}: the master name may hold letters, digits, '.', '_' and '-' only")
    return name


def parse_db(text: str, variable: str) -> int:
    if not text:
        return 0
    return _number(text, variable, "database number")


def _number(text: str, variable: str, what: str) -> int:
    if not text.isdigit():
        raise RedisTargetError(f"{variable}: the {what} must be a whole number")
    return int(text)


def sentinel_url(hosts: str, master: str, *, db: int = 0, tls: bool = False) -> str:
    """The ``redis+sentinel://`` URL of ``REDIS_SENTINELS`` and ``REDIS_SENTINEL_MASTER`` (checked)."""
    parsed = parse_hosts(hosts, "REDIS_SENTINELS")
    check_master(master, "REDIS_SENTINEL_MASTER")
    netloc = ",".join(f"[{h}]:{p}" if ":" in h else f"{h}:{p}" for h, p in parsed)
    return f"{'rediss' if tls else 'redis'}+sentinel://{netloc}/{master}/{db}"
