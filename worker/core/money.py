"""Amounts as people read them: integer minor units (øre) shown as kroner and øre."""

from __future__ import annotations

import re


def money(minor: int | None, currency: str = "NOK") -> str:
    """``19900`` -> ``199.00 NOK``; ``-`` for no amount."""
    if minor is None:
        return "-"
    sign = "-" if minor < 0 else ""
    return f"{sign}{abs(minor) // 100}.{abs(minor) % 100:02d} {currency}"


_KRONER = re.compile(r"^(\d{1,9})(?:[.,](\d{1,2}))?$")


def parse_kroner(text: str) -> int:
    """``10``, ``10.5``, ``10,50`` or ``1 000,50`` kroner as øre; ValueError with a readable message otherwise."""
    found = _KRONER.match(text.strip().replace(" ", "").replace("\u00a0", ""))
    if found is None:
        raise ValueError(f"{text.strip()[:20]!r} is not an amount in kroner, e.g. 10.50 or 10,50")
    whole, fraction = found.groups()
    return int(whole) * 100 + int((fraction or "0").ljust(2, "0"))
