"""Signing a webhook delivery as Vipps does (CHANGES §1.5, NOTES §6.4).

``x-ms-content-sha256`` is the base64 SHA-256 of the raw body; the string to sign is
``POST\\n{pathAndQuery}\\n{x-ms-date};{host};{x-ms-content-sha256}`` with the path, query and host of the
*registered* URL; the key is the registration's secret as UTF-8 bytes (never base64-decoded).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from email.utils import formatdate
from urllib.parse import urlsplit

DEFAULT_PORTS = {"http": 80, "https": 443}
SIGNED_HEADERS = "x-ms-date;host;x-ms-content-sha256"


def http_date(ts: float) -> str:
    """RFC 1123 in GMT: ``Thu, 30 Mar 2023 08:38:32 GMT``."""
    return formatdate(ts, usegmt=True)


def host_and_path(url: str) -> tuple[str, str]:
    """The ``host`` (with a port that is not the scheme's default) and ``pathAndQuery`` of a URL."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    if parts.port is not None and parts.port != DEFAULT_PORTS.get(parts.scheme.lower()):
        host = f"{host}:{parts.port}"
    path = parts.path or "/"
    return host, path + (f"?{parts.query}" if parts.query else "")


def content_hash(body: bytes) -> str:
    return base64.b64encode(hashlib.sha256(body).digest()).decode()


def signature(secret: str, path_and_query: str, date: str, host: str, body_hash: str) -> str:
    to_sign = f"POST\n{path_and_query}\n{date};{host};{body_hash}"
    return base64.b64encode(hmac.new(secret.encode(), to_sign.encode(), hashlib.sha256).digest()).decode()


def signed_headers(secret: str, url: str, date: str, body: bytes) -> dict[str, str]:
    """The headers of one delivery of ``body`` to ``url``, dated ``date`` (``http_date``)."""
    host, path_and_query = host_and_path(url)
    body_hash = content_hash(body)
    sig = signature(secret, path_and_query, date, host, body_hash)
    return {
        "host": host,
        "x-ms-date": date,
        "x-ms-content-sha256": body_hash,
        "authorization": f"HMAC-SHA256 SignedHeaders={SIGNED_HEADERS}&Signature={sig}",
        "content-type": "application/json",
    }
