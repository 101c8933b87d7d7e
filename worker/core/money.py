"""Amounts as people read them: integer minor units (øre) shown as kroner and øre."""

from __future__ import annotations


def money(minor: int | None, currency: str = "NOK") -> str:
    """``19900`` -> ``199.00 NOK``; ``-`` for no amount."""
    if minor is None:
        return "-"
    sign = "-" if minor < 0 else ""
    return f"{sign}{abs(minor) // 100}.{abs(minor) % 100:02d} {currency}"
