"""How Vipps signs a webhook delivery (HMAC-SHA256), as pure functions.

Vipps sends ``x-ms-date``, ``x-ms-content-sha256`` (base64 of the SHA-256 of the raw body) and
``Authorization: HMAC-SHA256 SignedHeaders=x-ms-date;host;x-ms-content-sha256&Signature=<base64>``, where
the signature is the HMAC-SHA256, keyed with the registration's secret as UTF-8 bytes (as-is, not
base64-decoded), of ``POST\\n{pathAndQuery}\\n{x-ms-date};{host};{x-ms-content-sha256}``. Path, query and
host are those of the *registered* URL, so a proxy that rewrites the Host header changes nothing.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping
from urllib.parse import urlsplit

SCHEME = "HMAC-SHA256"
SIGNED_HEADERS = "x-ms-date;host;x-ms-content-sha256"
_PREFIX = f"{SCHEME} SignedHeaders={SIGNED_HEADERS}&Signature="
_DIGEST_BYTES = hashlib.sha256().digest_size


def content_hash(body: bytes) -> str:
    """``x-ms-content-sha256`` of a raw body."""
    return base64.b64encode(hashlib.sha256(body).digest()).decode("ascii")


def signed_target(url: str) -> tuple[str, str]:
    """(pathAndQuery, host) of a registered URL, as Vipps signs them (the host with its port, if any)."""
    parts = urlsplit(url)
    path_and_query = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return path_and_query, parts.netloc.rpartition("@")[2]


def string_to_sign(path_and_query: str, host: str, date: str, hash_header: str) -> str:
    return f"POST\n{path_and_query}\n{date};{host};{hash_header}"


def signature(secret: str, message: str) -> str:
    """base64 of the HMAC-SHA256 of ``message`` keyed with ``secret`` as UTF-8."""
    return base64.b64encode(hmac.new(secret.encode("utf-8"), message.encode("utf-8"), hashlib.sha256).digest()
                            ).decode("ascii")


def authorization(signature_b64: str) -> str:
    """The ``Authorization`` header that carries a signature."""
    return _PREFIX + signature_b64


def parse_authorization(header: str) -> bytes | None:
    """The signature bytes an ``Authorization`` header carries, or None unless it has exactly the documented
    form (scheme, signed headers in this order, a base64 SHA-256 digest)."""
    if not header.startswith(_PREFIX):
        return None
    try:
        raw = base64.b64decode(header[len(_PREFIX):].encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        return None
    return raw if len(raw) == _DIGEST_BYTES else None


def matching_registration(secrets: Mapping[str, str], message: str, given: bytes) -> str | None:
    """The registration whose secret signs ``message`` as ``given``, or None.

    Every secret is tried, each with a constant-time comparison, so the time taken tells nothing about
    which secret (or how much of a signature) came close.
    """
    found = None
    for registration, secret in sorted(secrets.items()):
        expected = hmac.new(secret.encode("utf-8"), message.encode("utf-8"), hashlib.sha256).digest()
        if hmac.compare_digest(expected, given) and found is None:
            found = registration
    return found
