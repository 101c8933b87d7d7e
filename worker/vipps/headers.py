"""The standard Vipps request headers and client-side checks of caller-supplied values."""

from __future__ import annotations

from urllib.parse import quote

from worker.vipps.config import VippsSettings
from worker.vipps.errors import RequestValidationError

SYSTEM_HEADER_MAX = 30
IDEMPOTENCY_KEY_MAX = 40
_FORBIDDEN_IN_KEY = frozenset("#?/\\")
_ID_MAX = 128


def system_headers(settings: VippsSettings) -> dict[str, str]:
    """Headers sent on every call, the token call included (no secrets here)."""
    headers = {
        "Merchant-Serial-Number": settings.msn or "",
        "Vipps-System-Name": settings.system_name,
        "Vipps-System-Version": settings.system_version,
        "Vipps-System-Plugin-Name": settings.plugin_name,
        "Vipps-System-Plugin-Version": settings.plugin_version,
    }
    for name, value in headers.items():
        if name.startswith("Vipps-") and len(value) > SYSTEM_HEADER_MAX:
            raise ValueError(f"{name} is longer than {SYSTEM_HEADER_MAX} characters")
    if not headers["Merchant-Serial-Number"]:
        del headers["Merchant-Serial-Number"]
    return headers


def check_idempotency_key(key: object, operation: str) -> str:
    """1..40 printable ASCII characters without '#', '?', '/', '\\' or whitespace."""
    if not isinstance(key, str):
        raise RequestValidationError(f"{operation}: Idempotency-Key must be a string", operation=operation)
    if not 1 <= len(key) <= IDEMPOTENCY_KEY_MAX:
        raise RequestValidationError(
            f"{operation}: Idempotency-Key must be 1..{IDEMPOTENCY_KEY_MAX} characters, got {len(key)}",
            operation=operation,
        )
    bad = sorted({c for c in key if c in _FORBIDDEN_IN_KEY or not "\x21" <= c <= "\x7e"})
    if bad:
        raise RequestValidationError(
            f"{operation}: Idempotency-Key contains forbidden characters {bad!r}", operation=operation
        )
    return key


def path_segment(value: object, name: str, operation: str) -> str:
    """An id placed in a URL path: non-empty, bounded, percent-encoded so it stays one segment."""
    if not isinstance(value, str) or not value.strip() or len(value) > _ID_MAX:
        raise RequestValidationError(
            f"{operation}: {name} must be a non-empty string of at most {_ID_MAX} characters",
            operation=operation,
        )
    if any(not c.isprintable() or c.isspace() for c in value):
        raise RequestValidationError(
            f"{operation}: {name} contains whitespace or control characters", operation=operation
        )
    return quote(value, safe="-_.~")
