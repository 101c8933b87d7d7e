"""Redis replies as Python text (replies are bytes unless a client decodes them)."""

from __future__ import annotations

from collections.abc import Iterable


def text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def texts(values: Iterable[object]) -> list[str]:
    return [text(v) for v in values]
